"""Recorder benchmark: messages lost, CPU and bytes written by demo_recorder, against a floor.

For each rate: a 30-joint JointState publisher at the rate and a 500 Hz JointTrajectory
publisher, each in its own process (bench/_recorder_nodes.py: reliable, pre-serialized, a
sequence number in every message, paced on the monotonic clock with several messages per
wake-up when a sleep overshoots; each reports exactly how many it published and the rate it
achieved). Two windows of the same length against the same two publisher processes:

- floor: a bare rclpy node with raw subscriptions on both topics that only keeps sequence
  numbers (its own process, the recorder's QoS);
- recorder: the real demo_recorder recording one episode (~/start_episode, publish,
  ~/stop_episode) into a temporary folder; the closed bag is read back with rosbags' Reader
  without deserializing (sequence numbers and header stamps are read from the CDR bytes).

lost = published - received (floor) or recorded (bag), summed over both topics; sequence
numbers give the missing count, gaps and duplicates per topic. cpu_percent is the subscriber
process's CPU time (psutil, sampled every 0.1 s) over the publishing window, 100 = one core.
bytes_per_s is the size of the episode folder divided by the publishing window. Each window
ends once the subscriber process is idle again (drained), at most DRAIN_TIMEOUT_S later.
Progress goes to stderr; the last stdout line is one JSON object.
Usage: ``python bench/recorder.py --duration 10 --rates 500,1000,2000,5000``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._graph import bench_graph  # noqa: E402
from bench._recorder_nodes import SEQ_SLICE, TYPE_NAMES, stamp_ns  # noqa: E402
from il_policy_node.recording.config import EXECUTORS  # noqa: E402
from il_policy_node.recording.qos import RECORDING_DEPTH  # noqa: E402
from il_policy_node.ros.local_graph import ros_args, spawn, stop  # noqa: E402

TOPICS = {'joint_states': '/joint_states', 'joint_trajectory': '/joint_trajectory'}
TRAJECTORY_RATE_HZ = 500.0
RECORDER_NODE = 'demo_recorder'
STARTUP_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 30.0
IDLE_CPU_PERCENT = 15.0         # a subscriber below this over IDLE_WINDOW_S has drained
IDLE_WINDOW_S = 0.5
GOAL_RATE_HZ = 2000.0
FLOOR_FRACTION = 0.9
RATE_TOLERANCE = 0.98           # publishers must reach this fraction of the requested rate


class Control:
    """An rclpy node in this process, spun in a thread: graph queries and service calls."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self._rclpy = rclpy
        rclpy.init()
        self.node = rclpy.create_node('bench_recorder_control')
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            self._executor.spin_once(timeout_sec=0.1)

    def close(self) -> None:
        self._running = False
        self._thread.join()
        self._executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown()

    def endpoints(self, topic: str, *, publishers: bool) -> set[str]:
        """Names of the nodes with a publisher (or subscription) on ``topic``."""
        get = (self.node.get_publishers_info_by_topic if publishers
               else self.node.get_subscriptions_info_by_topic)
        return {info.node_name for info in get(topic)}

    def wait_graph(self, what: str, predicate, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out waiting for {what}')
            time.sleep(0.05)

    def call(self, srv_type, name: str, request, timeout_s: float = 30.0):
        """Call a service (waiting for it); the response."""
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout_s):
                raise TimeoutError(f'service {name} not available')
            future = client.call_async(request)
            deadline = time.monotonic() + timeout_s
            while not future.done():
                if time.monotonic() > deadline:
                    raise TimeoutError(f'no response from {name}')
                time.sleep(0.01)
            return future.result()
        finally:
            self.node.destroy_client(client)


class CpuSampler:
    """CPU time and RSS of one process, sampled with wall times, for windows found later."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.rss: list[float] = []

    def sample(self) -> None:
        with self.process.oneshot():
            times, rss = self.process.cpu_times(), self.process.memory_info().rss
        self.wall.append(time.time())
        self.cpu.append(times.user + times.system)
        self.rss.append(rss / 2**20)

    def percent(self, start: float, end: float) -> float:
        """CPU % (100 = one core) between two wall times (interpolated)."""
        cpu = np.interp([start, end], self.wall, self.cpu)
        return 100.0 * float(cpu[1] - cpu[0]) / max(end - start, 1e-9)

    def recent_percent(self, seconds: float) -> float:
        if len(self.wall) < 2 or self.wall[-1] - self.wall[0] < seconds:
            return float('inf')
        return self.percent(self.wall[-1] - seconds, self.wall[-1])


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_phase(publishers: dict[str, subprocess.Popen], outs: dict[str, Path], phase: int, *,
              subscriber: subprocess.Popen, timeout_s: float) -> tuple[dict, CpuSampler]:
    """Start one publishing phase, sample the subscriber until the phase is done and drained."""
    sampler = CpuSampler(subscriber.pid)
    sampler.sample()
    for process in publishers.values():
        process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    results: dict[str, dict] = {}
    while len(results) < len(publishers):
        time.sleep(0.1)
        sampler.sample()
        for kind, process in publishers.items():
            if process.poll() is not None:
                raise RuntimeError(f'{kind} publisher exited ({process.returncode})')
            lines = _lines(outs[kind])
            if len(lines) >= phase:
                results[kind] = lines[phase - 1]
        if subscriber.poll() is not None:
            raise RuntimeError(f'subscriber exited ({subscriber.returncode})')
        if time.monotonic() > deadline:
            raise TimeoutError(f'publishing phase {phase} did not finish')
    for kind, result in results.items():
        if 'error' in result:
            raise RuntimeError(f'{kind} publisher: {result["error"]}')
    drain_start = time.monotonic()
    while time.monotonic() - drain_start < DRAIN_TIMEOUT_S:
        time.sleep(0.1)
        sampler.sample()
        if (time.monotonic() - drain_start > IDLE_WINDOW_S
                and sampler.recent_percent(IDLE_WINDOW_S) < IDLE_CPU_PERCENT):
            break
    results['drain_s'] = round(time.monotonic() - drain_start, 2)
    return results, sampler


def seq_check(received: list[int], first: int, count: int) -> dict:
    """Missing, duplicate and out-of-window sequence numbers, gaps and reorderings."""
    seqs = np.asarray(received, dtype=np.int64)
    inside = seqs[(seqs >= first) & (seqs < first + count)]
    unique = np.unique(inside)
    present = np.zeros(count, dtype=bool)
    present[unique - first] = True
    missing = ~present
    starts = np.flatnonzero(missing & ~np.concatenate(([False], missing[:-1])))
    return {'missing': int(missing.sum()), 'gaps': int(starts.size),
            'first_missing': int(first + starts[0]) if starts.size else None,
            'duplicates': int(inside.size - unique.size),
            'outside_window': int(seqs.size - inside.size),
            'reordered': int(np.count_nonzero(np.diff(seqs) < 0)) if seqs.size > 1 else 0}


def _json_or_none(text: str | None):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _percentiles_ms(values_ns: list[int]) -> dict | None:
    if not values_ns:
        return None
    ms = np.asarray(values_ns, dtype=np.float64) / 1e6
    return {key: round(float(np.percentile(ms, q)), 3)
            for key, q in (('p50', 50), ('p99', 99), ('max', 100))}


def read_bag(path: Path) -> dict:
    """Sequence numbers and receive lags per topic from a closed bag, without deserializing."""
    from rosbags.rosbag2 import Reader
    seqs: dict[str, list[int]] = {}
    lags: dict[str, list[int]] = {}
    start = time.monotonic()
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            seqs.setdefault(connection.topic, []).append(int(raw[SEQ_SLICE]))
            lags.setdefault(connection.topic, []).append(timestamp - stamp_ns(raw))
    metadata = yaml.safe_load((path / 'metadata.yaml').read_text())
    info = metadata.get('rosbag2_bagfile_information', {})
    return {'seqs': seqs, 'lags': lags, 'read_s': time.monotonic() - start,
            'custom_data': info.get('custom_data') or {},
            'storage': info.get('storage_identifier'),
            'bytes': sum(f.stat().st_size for f in path.rglob('*') if f.is_file())}


def _summary(kind_results: dict, received: dict[str, list[int]]) -> dict:
    """Per-topic published/received/lost and sequence checks."""
    topics = {}
    for kind, result in kind_results.items():
        seqs = received.get(result['topic'], [])
        topics[result['topic']] = {
            'published': result['count'], 'received': len(seqs),
            'lost': result['count'] - len(seqs),
            **seq_check(seqs, result['first_seq'], result['count'])}
    return topics


def _window(results: dict) -> tuple[float, float]:
    """Wall-clock publishing window: first to last publish over both publishers."""
    starts = [r['wall_start'] for k, r in results.items() if k in TOPICS]
    ends = [r['wall_end'] for k, r in results.items() if k in TOPICS]
    return min(starts), max(ends)


def floor_window(publishers, outs, *, control: Control, env, workdir: Path, rate_hz: float,
                 phase: int, timeout_s: float, depth: int, executor: str) -> dict:
    """The bare raw subscriber against one publishing phase."""
    out = workdir / f'floor_{rate_hz:g}.json'
    topics = ','.join(f'{topic}={kind}' for kind, topic in TOPICS.items())
    floor = spawn('bench._recorder_nodes', env=env, log_path=workdir / f'floor_{rate_hz:g}.log',
                  args=['floor', '--topics', topics, '--depth', str(depth), '--executor', executor,
                        '--out', str(out), *ros_args()])
    try:
        control.wait_graph('the floor subscriptions', lambda: all(
            'bench_floor' in control.endpoints(t, publishers=False) for t in TOPICS.values()))
        results, sampler = run_phase(publishers, outs, phase, subscriber=floor,
                                     timeout_s=timeout_s)
    finally:
        code = stop(floor)
    if code != 0 or not out.exists():
        raise RuntimeError(f'floor failed (exit {code}): '
                           f'{(workdir / f"floor_{rate_hz:g}.log").read_text()[-2000:]}')
    received = json.loads(out.read_text())
    start, end = _window(results)
    return {'publishers': results, 'topics': _summary(
        {k: v for k, v in results.items() if k in TOPICS}, received),
        'cpu_percent': round(sampler.percent(start, end), 1), 'window_s': end - start,
        'rss_mb': round(max(sampler.rss), 1), 'drain_s': results['drain_s']}


def recorder_window(publishers, outs, *, control: Control, env, workdir: Path, rate_hz: float,
                    phase: int, timeout_s: float, storage: str, compression: str,
                    executor: str) -> dict:
    """The real demo_recorder recording one episode against one publishing phase."""
    from std_srvs.srv import SetBool, Trigger
    output_dir = workdir / f'bags_{rate_hz:g}'
    log = workdir / f'recorder_{rate_hz:g}.log'
    params = {'output_dir': str(output_dir), 'session': 'bench',
              'topics': list(TOPICS.values()), 'topic_types': [TYPE_NAMES[k] for k in TOPICS],
              'storage': storage, 'compression': compression, 'executor': executor}
    recorder = spawn('il_policy_node.nodes.demo_recorder_node', env=env, log_path=log,
                     args=ros_args(params))
    try:
        started = control.call(Trigger, f'/{RECORDER_NODE}/start_episode', Trigger.Request(),
                                timeout_s=STARTUP_TIMEOUT_S)
        if not started.success:
            raise RuntimeError(f'start_episode refused: {started.message}')
        control.wait_graph('the recorder subscriptions', lambda: all(
            RECORDER_NODE in (nodes := control.endpoints(t, publishers=False))
            and 'bench_floor' not in nodes for t in TOPICS.values()))
        rss_start = psutil.Process(recorder.pid).memory_info().rss / 2**20
        results, sampler = run_phase(publishers, outs, phase, subscriber=recorder,
                                     timeout_s=timeout_s)
        stop_start = time.monotonic()
        stopped = control.call(SetBool, f'/{RECORDER_NODE}/stop_episode',
                               SetBool.Request(data=True))
        stop_s = time.monotonic() - stop_start
        if not stopped.success:
            raise RuntimeError(f'stop_episode refused: {stopped.message}')
        rss_end = psutil.Process(recorder.pid).memory_info().rss / 2**20
    finally:
        code = stop(recorder)
    if code != 0:
        print(f'recorder exit code {code}: {log.read_text()[-2000:]}', file=sys.stderr)
    episodes = sorted((output_dir / 'bench').glob('episode_*'))
    if len(episodes) != 1 or not (episodes[0] / 'metadata.yaml').exists():
        raise RuntimeError(f'expected one closed episode in {output_dir}: {episodes}\n'
                           f'{log.read_text()[-2000:]}')
    bag = read_bag(episodes[0])
    start, end = _window(results)
    kinds = {k: v for k, v in results.items() if k in TOPICS}
    topics = _summary(kinds, bag['seqs'])
    for topic, entry in topics.items():
        entry['lag_ms'] = _percentiles_ms(bag['lags'].get(topic, []))
    custom = bag['custom_data']
    return {'publishers': results, 'topics': topics,
            'cpu_percent': round(sampler.percent(start, end), 1), 'window_s': end - start,
            'bytes': bag['bytes'], 'bytes_per_s': round(bag['bytes'] / (end - start)),
            'rss_mb_start': round(rss_start, 1), 'rss_mb_end': round(rss_end, 1),
            'rss_mb_max': round(max(sampler.rss), 1), 'drain_s': results['drain_s'],
            'stop_episode_s': round(stop_s, 3), 'exit_code': code, 'storage': bag['storage'],
            'bag_read_s': round(bag['read_s'], 3),
            'recorder_counts': {key: _json_or_none(custom.get(key))
                                for key in ('message_counts', 'lost_counts')}}


def bench_rate(rate_hz: float, *, control: Control, env, workdir: Path, duration_s: float,
               publisher_depth: int, floor_depth: int, floor_executor: str, storage: str,
               compression: str, recorder_executor: str, skip_recorder: bool) -> dict:
    """Floor and recorder windows at one JointState rate against the same publishers."""
    rates = {'joint_states': rate_hz, 'joint_trajectory': TRAJECTORY_RATE_HZ}
    publishers, outs = {}, {}
    try:
        for kind, topic in TOPICS.items():
            outs[kind] = workdir / f'{kind}_{rate_hz:g}.jsonl'
            publishers[kind] = spawn(
                'bench._recorder_nodes', env=env, log_path=workdir / f'{kind}_{rate_hz:g}.log',
                args=['publisher', '--kind', kind, '--topic', topic, '--rate', repr(rates[kind]),
                      '--duration', repr(duration_s), '--depth', str(publisher_depth),
                      '--out', str(outs[kind]), *ros_args()])
        for kind, topic in TOPICS.items():
            control.wait_graph(f'the {kind} publisher', lambda t=topic, k=kind: (
                f'bench_{k}_publisher' in control.endpoints(t, publishers=True)))
        timeout_s = duration_s + 120.0
        window = {'control': control, 'env': env, 'workdir': workdir, 'rate_hz': rate_hz,
                  'timeout_s': timeout_s}
        print(f'{rate_hz:g} Hz: floor ({duration_s:g} s)', file=sys.stderr)
        floor = floor_window(publishers, outs, phase=1, depth=floor_depth,
                             executor=floor_executor, **window)
        recorder = None
        if not skip_recorder:
            print(f'{rate_hz:g} Hz: recorder ({duration_s:g} s)', file=sys.stderr)
            recorder = recorder_window(publishers, outs, phase=2, storage=storage,
                                       compression=compression, executor=recorder_executor,
                                       **window)
    finally:
        for process in publishers.values():
            stop(process)
    return assemble(rate_hz, floor, recorder)


def _publish_summary(window: dict) -> dict:
    return {r['topic']: {key: r[key] for key in ('count', 'achieved_hz', 'max_batch',
                                                   'batched_messages', 'acked', 'cpu_percent')}
            for k, r in window['publishers'].items() if k in TOPICS}


def assemble(rate_hz: float, floor: dict, recorder: dict | None) -> dict:
    """One run entry: the required keys first, then details."""
    js, jt = TOPICS['joint_states'], TOPICS['joint_trajectory']
    floor_lost = sum(t['lost'] for t in floor['topics'].values())
    run = {'rate_hz': rate_hz,
           'lost': None if recorder is None else sum(
               t['lost'] for t in recorder['topics'].values()),
           'floor_lost': floor_lost,
           'cpu_percent': None if recorder is None else recorder['cpu_percent'],
           'bytes_per_s': None if recorder is None else recorder['bytes_per_s'],
           'floor_cpu_percent': floor['cpu_percent']}
    if recorder is not None:
        rec_topics = recorder['topics']
        run.update({
            'lost_joint_states': rec_topics[js]['lost'],
            'lost_joint_trajectory': rec_topics[jt]['lost'],
            'published': {t: v['published'] for t, v in rec_topics.items()},
            'recorded': {t: v['received'] for t, v in rec_topics.items()},
            'recorder_seq_check': {t: {k: v[k] for k in ('missing', 'gaps', 'first_missing',
                                                         'duplicates', 'outside_window',
                                                         'reordered')}
                                   for t, v in rec_topics.items()},
            'record_lag_ms': {t: v['lag_ms'] for t, v in rec_topics.items()},
            'window_s': round(recorder['window_s'], 3),
            'bytes': recorder['bytes'],
            'rss_mb': {k: recorder[f'rss_mb_{k}'] for k in ('start', 'end', 'max')},
            'drain_s': recorder['drain_s'], 'stop_episode_s': recorder['stop_episode_s'],
            'recorder_exit_code': recorder['exit_code'], 'storage': recorder['storage'],
            'recorder_reported': recorder['recorder_counts'],
            'publishers': _publish_summary(recorder),
        })
    ft = floor['topics']
    run.update({
        'floor_lost_joint_states': ft[js]['lost'],
        'floor_lost_joint_trajectory': ft[jt]['lost'],
        'floor_published': {t: v['published'] for t, v in ft.items()},
        'floor_received': {t: v['received'] for t, v in ft.items()},
        'floor_seq_check': {t: {k: v[k] for k in ('missing', 'gaps', 'duplicates')}
                            for t, v in ft.items()},
        'floor_rss_mb': floor['rss_mb'], 'floor_drain_s': floor['drain_s'],
        'floor_publishers': _publish_summary(floor),
    })
    achieved = [p['achieved_hz'] / rate for window in (floor, recorder) if window
                for p, rate in ((window['publishers']['joint_states'], rate_hz),
                                (window['publishers']['joint_trajectory'],
                                 TRAJECTORY_RATE_HZ))]
    run['publishers_reached_rate'] = bool(min(achieved) >= RATE_TOLERANCE)
    return run


def goals(runs: list[dict]) -> dict:
    """The issue's goals as checks with their limits.

    Zero loss at 2 kHz JointState + 500 Hz JointTrajectory; zero loss up to >= 0.9 x the
    highest rate the floor receives without loss.
    """
    by_rate = {run['rate_hz']: run for run in runs}
    result: dict = {}
    at_goal = by_rate.get(GOAL_RATE_HZ)
    result['zero_loss_at_2000_hz'] = (
        {'value': at_goal['lost'], 'limit': 0, 'pass': at_goal['lost'] == 0}
        if at_goal and at_goal['lost'] is not None
        else {'value': None, 'limit': 0, 'pass': None, 'note': '2000 Hz not measured'})
    floor_ok = [rate for rate, run in sorted(by_rate.items()) if run['floor_lost'] == 0]
    floor_max = max(floor_ok) if floor_ok else None
    recorder_max = None
    for rate, run in sorted(by_rate.items()):
        if run['lost'] != 0:
            break
        recorder_max = rate
    if floor_max is None or any(run['lost'] is None for run in runs):
        result['zero_loss_up_to_0.9_floor'] = {'pass': None, 'floor_max_lossless_hz': floor_max}
    else:
        limit = FLOOR_FRACTION * floor_max
        result['zero_loss_up_to_0.9_floor'] = {
            'value': recorder_max, 'limit': limit, 'floor_max_lossless_hz': floor_max,
            'pass': recorder_max is not None and recorder_max >= limit,
            'note': 'value: highest tested rate up to which the recorder lost nothing'}
    result['publishers_reached_rate'] = {
        'pass': all(run['publishers_reached_rate'] for run in runs),
        'limit': f'achieved >= {RATE_TOLERANCE} x requested'}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration', type=float, default=10.0, help='publishing window (s)')
    parser.add_argument('--rates', default='500,1000,2000,5000',
                        help='JointState rates (Hz), comma separated')
    parser.add_argument('--publisher-depth', type=int, default=10,
                        help='history depth of the reliable publishers')
    parser.add_argument('--floor-depth', type=int, default=RECORDING_DEPTH,
                        help='floor subscription history depth (default: the recorder depth)')
    parser.add_argument('--floor-executor', choices=('single', 'events', 'drain'),
                        default='single', help='single (the floor: as rclpy.spin); events, '
                        'drain: experiments, see bench/_recorder_nodes.py')
    parser.add_argument('--recorder-executor', choices=EXECUTORS, default='single',
                        help="demo_recorder's executor parameter (default: single)")
    parser.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'))
    parser.add_argument('--compression', default='none', choices=('none', 'zstd'))
    parser.add_argument('--floor-only', action='store_true', help='skip the recorder windows')
    parser.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID (default: a free one)')
    parser.add_argument('--keep', type=Path, help='keep bags, results and logs in this dir')
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(',') if r.strip()]
    if not rates or min(rates) <= 0 or args.duration <= 0:
        parser.error('--rates needs positive rates, --duration a positive duration')
    with contextlib.ExitStack() as stack:
        _, workdir, env = bench_graph(stack, domain_id=args.domain_id, keep=args.keep)
        os.environ.update(env)      # this process's control node joins the same local graph
        control = Control()
        stack.callback(control.close)
        runs = []
        for rate in rates:
            runs.append(bench_rate(rate, control=control, env=env, workdir=workdir,
                                   duration_s=args.duration,
                                   publisher_depth=args.publisher_depth,
                                   floor_depth=args.floor_depth,
                                   floor_executor=args.floor_executor, storage=args.storage,
                                   compression=args.compression,
                                   recorder_executor=args.recorder_executor,
                                   skip_recorder=args.floor_only))
            print(json.dumps(runs[-1]), file=sys.stderr)
    report = {'runs': runs, 'goals': goals(runs),
              'config': {'duration_s': args.duration, 'joints': 30,
                         'trajectory_rate_hz': TRAJECTORY_RATE_HZ,
                         'qos': f'reliable, volatile; publisher depth {args.publisher_depth}, '
                                f'floor depth {args.floor_depth}',
                         'floor_executor': args.floor_executor,
                         'recorder_executor': args.recorder_executor,
                         'storage': args.storage, 'compression': args.compression,
                         'cpus': os.cpu_count()}}
    report['all_goals_pass'] = all(g['pass'] for g in report['goals'].values())
    print(json.dumps(report))


if __name__ == '__main__':
    try:
        main()
    except (RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
        sys.exit(f'recorder bench failed: {exc}')
