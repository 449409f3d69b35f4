"""Drive demo_recorder in integration tests: start it on a Graph, control episodes, read results.

The recorder runs as its own process (``python -m il_policy_node.nodes.demo_recorder_node``);
the test talks to it only through its services, /diagnostics and the files it writes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from std_srvs.srv import SetBool, Trigger

from il_policy_node.ros.local_graph import ros_args
from test.support.graph import Graph, Process, wait_until
from test.support.seq_publisher import read_report

MODULE = 'il_policy_node.nodes.demo_recorder_node'
NODE = '/demo_recorder'
JOINT_STATE = 'sensor_msgs/msg/JointState'
JOINT_TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
SERVICES = ((Trigger, '~/start_episode'), (SetBool, '~/stop_episode'),
            (Trigger, '~/discard_episode'))


def recorder_params(output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Two topics (/js JointState, /traj JointTrajectory), session 'session'; overrides win."""
    params = {'output_dir': str(output_dir), 'session': 'session',
              'topics': ['/js', '/traj'], 'topic_types': [JOINT_STATE, JOINT_TRAJECTORY]}
    params.update(overrides)
    return params


@dataclass
class Recorder:
    """A running demo_recorder and the session folder it writes."""

    graph: Graph
    process: Process
    session_dir: Path

    @property
    def rx(self):
        return self.graph.receiver

    def start(self) -> Trigger.Response:
        return self.rx.trigger('~/start_episode', timeout_s=20.0)

    def stop(self, success: bool) -> SetBool.Response:
        return self.rx.set_bool('~/stop_episode', success, timeout_s=20.0)

    def discard(self) -> Trigger.Response:
        return self.rx.trigger('~/discard_episode', timeout_s=20.0)

    def episodes(self) -> list[dict]:
        """The lines of episodes.jsonl ([] while it does not exist)."""
        path = self.session_dir / 'episodes.jsonl'
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def episode_dir(self, index: int) -> Path:
        return self.session_dir / f'episode_{index:04d}'

    def count(self, topic: str) -> int:
        """Messages of ``topic`` in the episode in progress, as its diagnostics say (-1: none)."""
        value = self.rx.diagnostic(f'count {topic}')
        return int(value) if value.lstrip('-').isdigit() else -1

    def wait_received(self, counts: dict[str, int], timeout_s: float = 20.0) -> None:
        """Wait until the diagnostics show ``counts`` messages per topic in this episode."""
        ok = wait_until(lambda: all(self.count(t) == n for t, n in counts.items()), timeout_s,
                        0.05)
        assert ok, (f'recorder counts {[(t, self.count(t)) for t in counts]} never reached '
                    f'{counts}; diagnostics: {self.rx.diagnostics[-1:]}\n{self.process.log()}')


def start_recorder(graph: Graph, params: dict[str, Any], name: str = 'recorder') -> Recorder:
    """Spawn demo_recorder with ``params``; return when its services answer."""
    process = graph.spawn(MODULE, ros_args(params), name)
    rx = graph.receiver
    for srv_type, service in SERVICES:             # clients made now: matched by first use
        rx.client(srv_type, service)
    for srv_type, service in SERVICES:
        if not rx.client(srv_type, service).wait_for_service(timeout_sec=30.0):
            raise TimeoutError(f'demo_recorder did not come up:\n{process.log()}')
    # Idle, stop_episode changes nothing: a call that may be repeated while discovery settles.
    answer = rx.set_bool('~/stop_episode', False, timeout_s=20.0, attempts=10)
    assert not answer.success, f'stop_episode while idle succeeded: {answer.message}'
    session = Path(params['output_dir']).expanduser() / params['session']
    return Recorder(graph, process, session)


def publish(graph: Graph, topic: str, count: int, *options: str, first_seq: int = 0,
            rate_hz: float = 400.0, name: str = 'publisher') -> Process:
    """A seq_publisher of ``count`` messages on ``topic`` from ``first_seq``."""
    return graph.seq_publisher(topic, '--count', str(count), '--first-seq', str(first_seq),
                               '--rate-hz', str(rate_hz), *options, name=name)


def wait_report(process: Process, timeout_s: float = 30.0) -> dict:
    """The publisher's report (published, first_seq, last_seq, acked) once it printed it."""
    assert wait_until(lambda: read_report(process.log()) is not None, timeout_s, 0.05), \
        f'publisher gave no report:\n{process.log()}'
    return read_report(process.log())
