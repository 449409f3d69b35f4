"""A numbered-message publisher for integration tests of anything that records topics.

Run as ``python -m test.support.seq_publisher --topic /js --count 300 --rate-hz 300``.
Every message carries its sequence number: ``header.frame_id == str(seq)`` and the first
position (JointState: ``position[0]``; JointTrajectory: ``points[0].positions[0]``) equals seq.
It waits for ``--subscribers`` matched subscribers (then ``--delay`` seconds), publishes
``--count`` messages or for ``--duration`` seconds, waits until reliable readers acknowledged
them, then prints one JSON line ``{"topic", "published", "first_seq", "last_seq", "acked"}``
(also to ``--report`` when given) and stays alive ``--linger`` seconds (or until SIGINT or
SIGTERM). A publisher that never publishes is ``--count 0 --linger 60``.

It does not spin (nothing to receive), so it has its own small init/shutdown instead of
il_policy_node.ros.spin.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import rclpy
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

JOINTS = tuple(f'joint_{i}' for i in range(30))      # the most --joints can be
TYPES = {'joint_state': JointState, 'joint_trajectory': JointTrajectory}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--topic', required=True)
    parser.add_argument('--type', choices=sorted(TYPES), default='joint_state')
    parser.add_argument('--count', type=int, help='publish N messages (default: unbounded)')
    parser.add_argument('--duration', type=float, help='publish for T seconds')
    parser.add_argument('--rate-hz', type=float, default=200.0)
    parser.add_argument('--joints', type=int, default=len(JOINTS), choices=range(1, 31),
                        metavar='N', help='joints per message (default: 30)')
    parser.add_argument('--first-seq', type=int, default=0)
    parser.add_argument('--best-effort', action='store_true', help='default: reliable')
    parser.add_argument('--transient-local', action='store_true', help='default: volatile')
    parser.add_argument('--depth', type=int, default=5000, help='keep-last history depth')
    parser.add_argument('--subscribers', type=int, default=1,
                        help='wait for this many matched subscribers before publishing')
    parser.add_argument('--delay', type=float, default=0.0,
                        help='seconds between the subscribers matching and the first message')
    parser.add_argument('--wait-timeout', type=float, default=60.0,
                        help='give up (exit 2) when the subscribers do not come')
    parser.add_argument('--linger', type=float, default=0.0,
                        help='stay alive this long after the report')
    parser.add_argument('--report', type=Path, help='also write the JSON report to this file')
    options = parser.parse_args(argv)
    if options.count is None and options.duration is None and options.linger <= 0:
        parser.error('give --count, --duration or --linger')
    return options


def qos_of(options: argparse.Namespace) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=options.depth,
        reliability=(ReliabilityPolicy.BEST_EFFORT if options.best_effort
                     else ReliabilityPolicy.RELIABLE),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if options.transient_local
                    else DurabilityPolicy.VOLATILE))


def make_message(kind: str, seq: int, stamp, joints: int = len(JOINTS)
                 ) -> JointState | JointTrajectory:
    """Message number ``seq`` of type ``kind`` (the first ``joints`` joints)."""
    names = list(JOINTS[:joints])
    positions = [float(seq)] + [0.01 * i for i in range(1, joints)]
    if kind == 'joint_state':
        msg = JointState(name=names, position=positions, velocity=[0.0] * joints)
    else:
        point = JointTrajectoryPoint(positions=positions, velocities=[0.0] * joints)
        point.time_from_start.nanosec = 10_000_000
        msg = JointTrajectory(joint_names=names, points=[point])
    msg.header.stamp = stamp
    msg.header.frame_id = str(seq)
    return msg


def report(options: argparse.Namespace, published: int, acked: bool) -> None:
    line = json.dumps({
        'topic': options.topic, 'published': published, 'first_seq': options.first_seq,
        'last_seq': options.first_seq + published - 1, 'acked': acked})
    print(line, flush=True)
    if options.report is not None:
        tmp = options.report.with_suffix('.tmp')
        tmp.write_text(line + '\n')
        os.replace(tmp, options.report)


def read_report(output: str) -> dict | None:
    """The report in a publisher's output (its log), or None before it printed one."""
    for line in reversed(output.splitlines()):
        if line.startswith('{') and '"published"' in line:
            return json.loads(line)
    return None


def publish(node, publisher, options: argparse.Namespace) -> int:
    """Publish at the rate until count or duration; returns how many were published."""
    period = 1.0 / options.rate_hz
    count = options.count if options.count is not None else math.inf
    if options.count is None and options.duration is None:
        count = 0                                       # --linger only: a silent publisher
    end = math.inf if options.duration is None else time.monotonic() + options.duration
    published = 0
    next_t = time.monotonic()
    while published < count and next_t < end:
        publisher.publish(make_message(options.type, options.first_seq + published,
                                       node.get_clock().now().to_msg(), options.joints))
        published += 1
        next_t += period
        pause = next_t - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    return published


def main() -> int:
    options = parse_args(remove_ros_args(sys.argv)[1:])
    rclpy.init(args=sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    node = rclpy.create_node('seq_publisher')
    publisher = node.create_publisher(TYPES[options.type], options.topic, qos_of(options))
    published, acked, reported = 0, False, False
    try:
        deadline = time.monotonic() + options.wait_timeout
        while publisher.get_subscription_count() < options.subscribers:
            if time.monotonic() > deadline:
                print(f'no {options.subscribers} subscriber(s) on {options.topic}', flush=True)
                return 2
            time.sleep(0.01)
        print(json.dumps({'topic': options.topic, 'matched': True}), flush=True)
        time.sleep(options.delay)
        published = publish(node, publisher, options)
        acked = publisher.wait_for_all_acked(Duration(seconds=30.0))
        report(options, published, acked)
        reported = True
        time.sleep(options.linger)
    except KeyboardInterrupt:
        if not reported:
            report(options, published, acked)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
