"""The processes bench/control_loop.py measures: the real PolicyNode and the floor relay.

``python -m bench._loop_nodes {policy,floor} --out F.npz ... --ros-args ...`` runs one node on
a SingleThreadedExecutor (spun as ``rclpy.spin`` does), warms up, then records one window:
its LoopStats samples and tick totals, and this process's CPU time and RSS (psutil).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import psutil
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import JointState

from il_policy_node.nodes.policy_node import PolicyNode
from il_policy_node.ros.qos import COMMAND_QOS, JOINT_STATE_QOS
from il_policy_node.runtime.timing import LoopStats

SPIN_TIMEOUT_S = 0.1


class FloorRelay(Node):
    """The floor: policy_node's subscription and timer, relaying the latest joint state."""

    def __init__(self, *, rate_hz: float, capacity: int) -> None:
        super().__init__('floor_relay')
        period_s = 1.0 / rate_hz
        self.loop_stats = LoopStats(int(round(period_s * 1e9)), capacity)
        self._latest: JointState | None = None
        self._received_ns = 0
        self._pub = self.create_publisher(JointState, 'joint_states_relay', COMMAND_QOS)
        self.create_subscription(JointState, 'joint_states', self._on_joint_state,
                                 JOINT_STATE_QOS)
        self.create_timer(period_s, self._tick)

    def _on_joint_state(self, msg: JointState) -> None:
        self._latest, self._received_ns = msg, time.monotonic_ns()

    def _tick(self) -> None:
        start = time.monotonic_ns()
        stats = self.loop_stats
        stats.tick_started(start)
        if self._latest is None:
            return
        self._pub.publish(self._latest)
        stats.tick_finished(time.monotonic_ns() - start, start - self._received_ns)


def _spin_for(executor: SingleThreadedExecutor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)


def _totals(node: Node, stats: LoopStats) -> dict[str, int]:
    counts = node.intervention_counts if isinstance(node, PolicyNode) else {}
    return {'ticks': stats.ticks, 'missed_ticks': stats.missed_ticks,
            'overruns': stats.overruns, 'no_chunk': counts.get('no_chunk', 0)}


def measure(node: Node, executor: SingleThreadedExecutor, *, warmup_s: float,
            duration_s: float) -> dict[str, object]:
    """Spin through the warm-up, then one window; samples and totals cover the window only."""
    process = psutil.Process()
    _spin_for(executor, warmup_s)
    stats = node.loop_stats
    if stats is None or stats.ticks == 0:
        raise RuntimeError('the control loop did not start during the warm-up')
    stats.reset_window()
    before, rss_start = _totals(node, stats), process.memory_info().rss
    cpu_start, wall_start = process.cpu_times(), time.monotonic()
    _spin_for(executor, duration_s)
    cpu_end, wall_end = process.cpu_times(), time.monotonic()
    rss_end, after = process.memory_info().rss, _totals(node, stats)
    cpu_s = (cpu_end.user + cpu_end.system) - (cpu_start.user + cpu_start.system)
    meta = {key: after[key] - before[key] for key in after}
    meta.update(cpu_percent=100.0 * cpu_s / (wall_end - wall_start),
                wall_s=wall_end - wall_start, rss_mb_start=rss_start / 2**20,
                rss_mb_end=rss_end / 2**20, loadavg=os.getloadavg()[0])
    return {**stats.samples(), 'meta': json.dumps(meta)}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('role', choices=('policy', 'floor'))
    parser.add_argument('--out', required=True, help='.npz file for samples and totals')
    parser.add_argument('--rate', type=float, required=True, help='control rate (Hz)')
    parser.add_argument('--warmup', type=float, required=True, help='seconds before the window')
    parser.add_argument('--duration', type=float, required=True, help='window (s)')
    parser.add_argument('--capacity', type=int, required=True, help='LoopStats samples kept')
    args = parser.parse_args(remove_ros_args(argv)[1:])
    rclpy.init(args=argv)
    executor = SingleThreadedExecutor()
    node: Node | None = None
    try:
        if args.role == 'floor':
            node = FloorRelay(rate_hz=args.rate, capacity=args.capacity)
        else:
            node = PolicyNode(loop_stats_capacity=args.capacity)
            for transition in (node.trigger_configure, node.trigger_activate):
                if transition() != TransitionCallbackReturn.SUCCESS:
                    raise RuntimeError(f'policy_node: {transition.__name__} failed')
        executor.add_node(node)
        result = measure(node, executor, warmup_s=args.warmup, duration_s=args.duration)
        np.savez(args.out, **result)
        if isinstance(node, PolicyNode):
            node.trigger_deactivate()
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
