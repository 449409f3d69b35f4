"""A joint_states publisher for integration tests: MockRobotNode plus fault injection.

Run as ``python -m test.support.joint_state_source [options] --ros-args -p joint_names:=[...]``
(MockRobotNode's parameters: joint_names, initial_positions, publish_rate_hz, follow_commands).
Fault times count from the first subscriber's arrival, not from start-up, so slow discovery
cannot make a fault happen before anyone listens.
"""
from __future__ import annotations

import argparse
import random
import sys
import time

from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import JointState

from il_policy_node.nodes.mock_robot_node import MockRobotNode
from il_policy_node.ros.spin import spin_node


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--shuffle', action='store_true',
                        help='list the joints in a fixed random order')
    parser.add_argument('--extra', type=int, default=0, help='add N joints nobody asked for')
    parser.add_argument('--omit', action='append', default=[], help='never publish this joint')
    parser.add_argument('--nan-joint', help='joint whose position becomes NaN ...')
    parser.add_argument('--nan-after', type=float, default=0.0, help='... after T seconds ...')
    parser.add_argument('--nan-for', type=float, default=float('inf'), help='... for D seconds')
    parser.add_argument('--stop-after', type=float, help='stop publishing after T seconds')
    parser.add_argument('--parts', type=int, default=1,
                        help='split each state into N partial messages')
    return parser.parse_args(argv)


class JointStateSource(MockRobotNode):
    """MockRobotNode whose joint_states can be reordered, padded, split, cut or poisoned."""

    def __init__(self, options: argparse.Namespace) -> None:
        super().__init__('joint_state_source')
        self._options = options
        order = [i for i, name in enumerate(self.joint_names) if name not in options.omit]
        if options.shuffle:
            random.Random(1).shuffle(order)
        self._order = order
        self._extra = [f'extra_joint_{i}' for i in range(options.extra)]
        self._started: float | None = None      # when the first subscriber matched
        self.get_logger().info(f'publishing {[self.joint_names[i] for i in order]} '
                               f'(+{len(self._extra)} extra) in {options.parts} part(s)')

    def _step(self) -> None:
        now = time.monotonic()
        if self._started is None and self._pub.get_subscription_count() > 0:
            self._started = now
        elapsed = 0.0 if self._started is None else now - self._started
        options = self._options
        if options.stop_after is not None and elapsed >= options.stop_after:
            return
        self._sample(now)
        full = self.joint_state()
        positions = [full.position[i] for i in self._order] + [0.5] * len(self._extra)
        velocities = [full.velocity[i] for i in self._order] + [0.0] * len(self._extra)
        names = [self.joint_names[i] for i in self._order] + self._extra
        if options.nan_joint in names and \
                options.nan_after <= elapsed < options.nan_after + options.nan_for:
            positions[names.index(options.nan_joint)] = float('nan')
        parts = max(1, options.parts)
        size = -(-len(names) // parts)
        for start in range(0, len(names), size):
            self._pub.publish(JointState(
                header=full.header, name=names[start:start + size],
                position=positions[start:start + size],
                velocity=velocities[start:start + size]))


def main() -> None:
    options = parse_args(remove_ros_args(sys.argv)[1:])
    spin_node(lambda: JointStateSource(options), sys.argv)


if __name__ == '__main__':
    main()
