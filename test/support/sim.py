"""A test client of sim_robot: records what it publishes, commands it, calls its services.

An rclpy node in its own Context, spun in a background thread (like test.support.graph's
Receiver), so a test talks to a sim_robot process over DDS.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from il_policy_node.ros.conversions import duration_msg
from il_policy_node.ros.diagnostics import parse_values
from il_policy_node.ros.operator import BackgroundNode
from il_policy_node.ros.qos import COMMAND_QOS, LATCHED_QOS
from test.support.graph import wait_until

NODE = '/sim_robot'
TRAJECTORY_TOPIC = '/joint_trajectory_controller/joint_trajectory'
_DEEP = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10000,
                   reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def trajectory(joint_names: Sequence[str], points: Sequence[tuple[Sequence[float], float]]
               ) -> JointTrajectory:
    """A JointTrajectory (stamp zero) of (positions, time_from_start) points."""
    msg = JointTrajectory(joint_names=list(joint_names))
    for positions, t in points:
        msg.points.append(JointTrajectoryPoint(positions=[float(p) for p in positions],
                                               time_from_start=duration_msg(t)))
    return msg


class SimClient(BackgroundNode):
    def __init__(self, domain_id: int) -> None:
        super().__init__(domain_id, 'sim_test_client')
        node = self.node
        self.states: list[tuple[float, JointState]] = []      # (monotonic receive time, msg)
        self.descriptions: list[str] = []
        self.diagnostics: list[dict[str, str]] = []
        self.clocks: list[Clock] = []
        node.create_subscription(JointState, '/joint_states',
                                 lambda m: self.states.append((time.monotonic(), m)), _DEEP)
        node.create_subscription(String, '/robot_description',
                                 lambda m: self.descriptions.append(m.data), LATCHED_QOS)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, _DEEP)
        node.create_subscription(Clock, '/clock', self.clocks.append, _DEEP)
        self.trajectory_pub = node.create_publisher(JointTrajectory, TRAJECTORY_TOPIC,
                                                    COMMAND_QOS)
        self.start()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == f'il_policy_node: {NODE[1:]}':
                self.diagnostics.append(parse_values(status))

    def latest(self) -> JointState | None:
        return self.states[-1][1] if self.states else None

    def diagnostic(self, key: str) -> str:
        return self.diagnostics[-1].get(key, '') if self.diagnostics else ''

    def send(self, msg: JointTrajectory) -> None:
        if not wait_until(lambda: self.trajectory_pub.get_subscription_count() > 0, 10.0):
            raise TimeoutError(f'nobody subscribes {TRAJECTORY_TOPIC}')
        self.trajectory_pub.publish(msg)

    def reset(self) -> Trigger.Response:
        return self.call(Trigger, f'{NODE}/reset', Trigger.Request())

    def set_parameters(self, params: dict[str, Any]) -> list:
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()
                        for name, value in params.items()])
        return list(self.call(SetParameters, f'{NODE}/set_parameters', request).results)
