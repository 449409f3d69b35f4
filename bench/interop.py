"""LeRobot interop benchmark: export and import frames/s on one core, peak memory, round trip.

Writes one of our datasets of N frames (14 joints, positions and velocities observed, 14
actions: an ALOHA-sized arm pair; episodes of 1000 frames, 10 % validation), then, each in a
child process pinned to one core (pyarrow's thread pools set to 1):
- floor: np.save and np.load of the same arrays (the raw bytes, no format);
- export-lerobot of the dataset, then import-lerobot of that folder;
and checks that the imported arrays, splits and joint names equal the original ones.
peak_rss_mb: the largest resident set of either child (getrusage in the child).
Progress goes to stderr; the last stdout line is one JSON object.
Usage: ``python bench/interop.py --frames 1000000``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from il_policy_node.pipeline.dataset.build import fingerprint, train_statistics  # noqa: E402
from il_policy_node.pipeline.dataset.format import load_dataset, write_dataset  # noqa: E402

JOINTS = [f'joint_{i}' for i in range(14)]
RATE_HZ = 50.0
EPISODE_FRAMES = 1000
GOAL_FRAMES_PER_S = 200_000


def write_source(path: Path, frames: int) -> None:
    lengths = [EPISODE_FRAMES] * (frames // EPISODE_FRAMES)
    if frames % EPISODE_FRAMES:
        lengths.append(frames % EPISODE_FRAMES)
    t = np.concatenate([np.arange(n) / RATE_HZ for n in lengths])
    phase = np.linspace(0.0, 1.0, len(JOINTS), dtype=np.float32)
    q = np.sin(t[:, None].astype(np.float32) + phase)
    arrays = {'observations': np.hstack([q, np.cos(t[:, None].astype(np.float32) + phase)]),
              'actions': np.roll(q, -1, axis=0),
              'episode': np.repeat(np.arange(len(lengths), dtype=np.int32), lengths),
              'time': t}
    starts = np.cumsum([0] + lengths[:-1])
    episodes = [{'name': f'episode_{e:04d}', 'bag': f'bags/episode_{e:04d}',
                 'bag_fingerprint': None, 'split': 'val' if e % 10 == 3 else 'train',
                 'start': int(s), 'length': int(n), 'duration_s': (n - 1) / RATE_HZ,
                 'success': True, 'task': 'wave', 'segment': 0}
                for e, (s, n) in enumerate(zip(starts, lengths))]
    manifest = {'control_rate_hz': RATE_HZ, 'config': {},
                'observation': {'topic': '/joint_states', 'joints': JOINTS,
                                'fields': ['position', 'velocity'], 'extra': []},
                'action': {'joints': JOINTS, 'source': 'future_state', 'topic': None,
                           'future_steps': 1},
                'timestamps': 'header', 'fingerprint': fingerprint(arrays),
                'stats': train_statistics(arrays, episodes), 'episodes': episodes,
                'skipped': [], 'splits': {'seed': 0, 'val_fraction': 0.1}}
    write_dataset(path, manifest, arrays)


def phase(name: str, source: Path, target: Path) -> None:
    """One measured step on one core; prints {"seconds", "peak_rss_mb"}."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import pyarrow as pa
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from il_policy_node.pipeline.lerobot.reader import import_lerobot
    from il_policy_node.pipeline.lerobot.writer import export_lerobot
    start = time.perf_counter()
    if name == 'floor':
        with np.load(source / 'data.npz') as data:
            arrays = {key: data[key] for key in data.files}
        start = time.perf_counter()
        target.mkdir()
        for key, values in arrays.items():
            np.save(target / f'{key}.npy', values)
        loaded = [np.load(target / f'{key}.npy') for key in arrays]
        assert len(loaded) == len(arrays)
    elif name == 'export':
        export_lerobot(source, target)
    else:
        import_lerobot(source, target)
    seconds = time.perf_counter() - start
    print(json.dumps({'seconds': seconds,
                      'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_phase(name: str, source: Path, target: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, '--phase', name, str(source), str(target)],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(f'{name}: {result["seconds"]:.2f} s, peak {result["peak_rss_mb"]:.0f} MB',
          file=sys.stderr)
    return result


def identical(a: Path, b: Path) -> bool:
    before, after = load_dataset(a), load_dataset(b)
    return (all(np.array_equal(before.arrays[k], after.arrays[k]) for k in before.arrays)
            and [e['split'] for e in before.manifest['episodes']]
            == [e['split'] for e in after.manifest['episodes']]
            and before.action_joints == after.action_joints
            and before.observation_spec() == after.observation_spec())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=1_000_000)
    parser.add_argument('--phase', nargs=3, metavar=('NAME', 'SOURCE', 'TARGET'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase(args.phase[0], Path(args.phase[1]), Path(args.phase[2]))
        return
    with tempfile.TemporaryDirectory(prefix='bench_interop_') as tmp:
        folder = Path(tmp)
        write_source(folder / 'ours', args.frames)
        print(f'wrote a dataset of {args.frames} frames', file=sys.stderr)
        floor = run_phase('floor', folder / 'ours', folder / 'raw')
        export = run_phase('export', folder / 'ours', folder / 'lerobot')
        imported = run_phase('import', folder / 'lerobot', folder / 'back')
        same = identical(folder / 'ours', folder / 'back')
        size_mb = sum(p.stat().st_size for p in (folder / 'lerobot').rglob('*')
                      if p.is_file()) / 2**20
    result = {'frames': args.frames, 'joints': len(JOINTS),
              'floor_frames_per_s': round(args.frames / floor['seconds']),
              'export_frames_per_s': round(args.frames / export['seconds']),
              'import_frames_per_s': round(args.frames / imported['seconds']),
              'export_peak_rss_mb': round(export['peak_rss_mb'], 1),
              'import_peak_rss_mb': round(imported['peak_rss_mb'], 1),
              'peak_rss_mb': round(max(export['peak_rss_mb'], imported['peak_rss_mb']), 1),
              'lerobot_folder_mb': round(size_mb, 1), 'round_trip_identical': same}
    result['export_to_floor'] = round(result['export_frames_per_s']
                                      / result['floor_frames_per_s'], 3)
    result['import_to_floor'] = round(result['import_frames_per_s']
                                      / result['floor_frames_per_s'], 3)
    result['goal_export_ge_200k'] = result['export_frames_per_s'] >= GOAL_FRAMES_PER_S
    result['goal_import_ge_200k'] = result['import_frames_per_s'] >= GOAL_FRAMES_PER_S
    print(json.dumps(result))


if __name__ == '__main__':
    main()
