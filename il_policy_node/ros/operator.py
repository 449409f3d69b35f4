"""An operator node for a local graph: what a person at the robot does, from a script.

Used by the demo and the closed-loop benchmark; its base, BackgroundNode (an rclpy node in its
own Context, spun in a background thread), also by the test clients. The operator calls
services (waiting for the answers), sets parameters of other nodes, drives a lifecycle node,
publishes a JointState input periodically (e.g. a goal pose) and keeps the latest
/diagnostics values of each node.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Mapping, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger

from il_policy_node.ros.diagnostics import parse_values
from il_policy_node.ros.lifecycle_client import LifecycleClient
from il_policy_node.ros.qos import MONITOR_QOS


class BackgroundNode:
    """An rclpy node in its own Context (domain ``domain_id``), spun in a background thread.

    Subclasses create their subscriptions, publishers and clients on ``self.node``, then call
    :meth:`start`; :meth:`close` stops the thread and shuts the context down.
    """

    def __init__(self, domain_id: int, name: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._clients: dict[str, Any] = {}

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._executor.shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_for_service(self, srv_type, service: str, timeout_s: float = 10.0) -> bool:
        """True once ``service`` is available (its client is kept for later calls)."""
        if service not in self._clients:
            self._clients[service] = self.node.create_client(srv_type, service)
        return self._clients[service].wait_for_service(timeout_sec=timeout_s)

    def call(self, srv_type, service: str, request, timeout_s: float = 10.0):
        """Call ``service`` and wait for the answer; TimeoutError names the service."""
        if not self.wait_for_service(srv_type, service, timeout_s):
            raise TimeoutError(f'service {service} is not available')
        client = self._clients[service]
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                client.remove_pending_request(future)
                raise TimeoutError(f'no answer from {service} within {timeout_s} s')
            time.sleep(0.005)
        return future.result()


class Operator(BackgroundNode):
    """Service calls, parameters, lifecycle and periodic inputs on ROS domain ``domain_id``."""

    def __init__(self, domain_id: int, name: str = 'operator') -> None:
        super().__init__(domain_id, name)
        self.diagnostics: dict[str, dict[str, str]] = {}   # node name -> latest values
        self._publishers: dict[str, Any] = {}
        self._inputs: dict[str, JointState] = {}            # topic -> message being published
        self._lock = threading.Lock()
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      MONITOR_QOS)
        self.node.create_timer(0.02, self._publish_inputs)
        self.start()

    # -- services and parameters ---------------------------------------------------------------
    def trigger(self, service: str, timeout_s: float = 10.0) -> Trigger.Response:
        """Call a std_srvs/Trigger service; RuntimeError with its message when it fails."""
        response = self.call(Trigger, service, Trigger.Request(), timeout_s)
        if not response.success:
            raise RuntimeError(f'{service}: {response.message}')
        return response

    def set_bool(self, service: str, data: bool, timeout_s: float = 10.0) -> SetBool.Response:
        response = self.call(SetBool, service, SetBool.Request(data=data), timeout_s)
        if not response.success:
            raise RuntimeError(f'{service}: {response.message}')
        return response

    def set_parameters(self, node: str, values: Mapping[str, Any]) -> None:
        """Set parameters of ``node``; RuntimeError names any the node refused."""
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        results = self.call(SetParameters, f'{node}/set_parameters', request).results
        refused = [f'{k}: {r.reason}' for k, r in zip(values, results) if not r.successful]
        if refused:
            raise RuntimeError(f'{node} refused parameters: {"; ".join(refused)}')

    def lifecycle(self, node: str) -> LifecycleClient:
        return LifecycleClient(self.node, node)

    # -- periodic inputs -----------------------------------------------------------------------
    def publish_input(self, topic: str, joints: Sequence[str],
                      positions: Sequence[float] | None) -> None:
        """Publish a JointState on ``topic`` at 50 Hz from now on; None stops it."""
        with self._lock:
            if positions is None:
                self._inputs.pop(topic, None)
                return
            if topic not in self._publishers:
                self._publishers[topic] = self.node.create_publisher(JointState, topic, 10)
            self._inputs[topic] = JointState(name=list(joints),
                                             position=[float(p) for p in positions])

    def _publish_inputs(self) -> None:
        with self._lock:
            inputs = list(self._inputs.items())
        stamp = self.node.get_clock().now().to_msg()
        for topic, msg in inputs:
            msg.header.stamp = stamp
            self._publishers[topic].publish(msg)

    # -- diagnostics ---------------------------------------------------------------------------
    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            name = status.name.rsplit(': ', 1)[-1]
            self.diagnostics[name] = dict(parse_values(status), _message=status.message)
