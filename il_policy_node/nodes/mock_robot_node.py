"""mock_robot: a kinematic stand-in for ros2_control + hardware, for dry runs without a robot.

Like ros2_control's mock components it tracks commands perfectly: it publishes joint_states at
``publish_rate_hz`` and follows trajectory_msgs/JointTrajectory on ``joint_trajectory`` by
linear interpolation from the current position through the points (header.stamp zero = start
now; a new message replaces the old one). No dynamics: that is the MuJoCo sim's job.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from il_policy_node.errors import ConfigError
from il_policy_node.ros.conversions import JointStateMessage, seconds
from il_policy_node.ros.params import ParamSpec, declare_and_read
from il_policy_node.ros.qos import COMMAND_QOS
from il_policy_node.ros.spin import spin_node

PARAMETERS = (
    ParamSpec('joint_names', Parameter.Type.STRING_ARRAY, 'Joints to simulate.'),
    ParamSpec('initial_positions', Parameter.Type.DOUBLE_ARRAY,
              'Start pose (joint_names order); empty = zeros.'),
    ParamSpec('publish_rate_hz', 500.0, 'joint_states rate.', float_range=(0.1, 20000.0)),
    ParamSpec('follow_commands', True, 'Track joint_trajectory commands (false: stay still).'),
)


class MockRobotNode(Node):
    """Publishes joint_states and moves its joints along received trajectories."""

    def __init__(self, node_name: str = 'mock_robot', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        params = declare_and_read(self, PARAMETERS)
        names = list(params['joint_names'])
        if not names:
            raise ConfigError('parameter joint_names is empty')
        initial = params['initial_positions'] or [0.0] * len(names)
        if len(initial) != len(names):
            raise ConfigError(f'parameter initial_positions has {len(initial)} values, '
                             f'joint_names has {len(names)}')
        self.joint_names = names
        self.position = np.asarray(initial, np.float64)
        self._previous = self.position.copy()
        self._period = 1.0 / float(params['publish_rate_hz'])
        self._segments: list[tuple[float, np.ndarray]] = []  # (time, pose) knots
        self._state = JointStateMessage(names, velocities=True)
        self.commands_received = 0
        self._index = {name: i for i, name in enumerate(names)}
        self._pub = self.create_publisher(JointState, 'joint_states', 10)
        if params['follow_commands']:
            self.create_subscription(JointTrajectory, 'joint_trajectory', self._on_trajectory,
                                     COMMAND_QOS)
        self.create_timer(self._period, self._step)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            columns = [self._index[name] for name in msg.joint_names]
        except KeyError as exc:
            self.get_logger().error(f'trajectory rejected: unknown joint {exc.args[0]!r}')
            return
        now = time.monotonic()
        knots = [(now, self.position.copy())]
        for point in msg.points:
            pose = knots[-1][1].copy()
            pose[columns] = point.positions
            t = seconds(point.time_from_start)
            knots.append((now + t, pose))
        self._segments = knots
        self.commands_received += 1

    def _sample(self, now: float) -> None:
        knots = self._segments
        if not knots:
            return
        if now >= knots[-1][0]:
            self.position[:] = knots[-1][1]
            return
        for (t0, p0), (t1, p1) in zip(knots, knots[1:]):
            if now < t1:
                fraction = 0.0 if t1 <= t0 else (now - t0) / (t1 - t0)
                self.position[:] = p0 + fraction * (p1 - p0)
                return

    def joint_state(self) -> JointState:
        """The message for the current pose (reused between calls)."""
        msg = self._state.msg
        msg.header.stamp = self.get_clock().now().to_msg()
        self._state.positions[:] = self.position
        velocity = self._state.velocities
        np.subtract(self.position, self._previous, out=velocity)
        velocity /= self._period
        self._previous[:] = self.position
        return msg

    def _step(self) -> None:
        self._sample(time.monotonic())
        self._pub.publish(self.joint_state())


def main(args=None) -> None:
    sys.exit(spin_node(MockRobotNode, args))


if __name__ == '__main__':
    main()
