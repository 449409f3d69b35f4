"""A test client of sim_robot: records what it publishes, commands it, calls its services.

An rclpy node in its own Context, spun in a background thread (like test.support.graph's
Receiver), so a test talks to a sim_robot process over DDS.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Sequence

import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from il_policy_node.ros.diagnostics import parse_values
from il_policy_node.ros.qos import COMMAND_QOS
from test.support.graph import wait_until

NODE = '/sim_robot'
TRAJECTORY_TOPIC = '/joint_trajectory_controller/joint_trajectory'
_DEEP = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10000,
                   reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
_LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def trajectory(joint_names: Sequence[str], points: Sequence[tuple[Sequence[float], float]]
               ) -> JointTrajectory:
    """A JointTrajectory (stamp zero) of (positions, time_from_start) points."""
    msg = JointTrajectory(joint_names=list(joint_names))
    for positions, t in points:
        nanoseconds = int(round(t * 1e9))
        msg.points.append(JointTrajectoryPoint(
            positions=[float(p) for p in positions],
            time_from_start=Duration(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)))
    return msg


class SimClient:
    def __init__(self, domain_id: int) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = node = rclpy.create_node('sim_test_client', context=self.context)
        self.states: list[tuple[float, JointState]] = []      # (monotonic receive time, msg)
        self.descriptions: list[str] = []
        self.diagnostics: list[dict[str, str]] = []
        self.clocks: list[Clock] = []
        node.create_subscription(JointState, '/joint_states',
                                 lambda m: self.states.append((time.monotonic(), m)), _DEEP)
        node.create_subscription(String, '/robot_description',
                                 lambda m: self.descriptions.append(m.data), _LATCHED)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, _DEEP)
        node.create_subscription(Clock, '/clock', self.clocks.append, _DEEP)
        self.trajectory_pub = node.create_publisher(JointTrajectory, TRAJECTORY_TOPIC,
                                                    COMMAND_QOS)
        self._reset = node.create_client(Trigger, f'{NODE}/reset')
        self._set_params = node.create_client(SetParameters, f'{NODE}/set_parameters')
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._executor.shutdown()
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

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

    def _call(self, client, request, timeout_s: float = 10.0):
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f'service {client.srv_name} not available')
        future = client.call_async(request)
        if not wait_until(future.done, timeout_s, 0.005):
            raise TimeoutError(f'no answer from {client.srv_name}')
        return future.result()

    def reset(self) -> Trigger.Response:
        return self._call(self._reset, Trigger.Request())

    def set_parameters(self, params: dict[str, Any]) -> list:
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()
                        for name, value in params.items()])
        return list(self._call(self._set_params, request).results)
