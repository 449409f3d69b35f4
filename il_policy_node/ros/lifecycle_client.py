"""Drive a lifecycle node's transitions from another node (a minimal lifecycle manager)."""
from __future__ import annotations

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node

TRANSITIONS = {
    'configure': Transition.TRANSITION_CONFIGURE,
    'activate': Transition.TRANSITION_ACTIVATE,
    'deactivate': Transition.TRANSITION_DEACTIVATE,
    'cleanup': Transition.TRANSITION_CLEANUP,
    'shutdown': Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
}


class LifecycleClient:
    """Calls ``<node>/change_state`` and ``<node>/get_state`` and waits for the answers."""

    def __init__(self, node: Node, target: str) -> None:
        self._node = node
        self._change = node.create_client(ChangeState, f'{target}/change_state')
        self._get = node.create_client(GetState, f'{target}/get_state')
        self.target = target

    def wait_for_services(self, timeout_s: float = 10.0) -> bool:
        return self._change.wait_for_service(timeout_sec=timeout_s) and \
            self._get.wait_for_service(timeout_sec=timeout_s)

    def _call(self, client, request, timeout_s: float):
        future = client.call_async(request)
        rclpy.spin_until_future_complete(self._node, future, timeout_sec=timeout_s)
        if not future.done():
            raise TimeoutError(f'{self.target}: no answer from {client.srv_name} '
                               f'within {timeout_s} s')
        return future.result()

    def change(self, transition: str, timeout_s: float = 30.0) -> bool:
        """Request a transition by name; True when the node reports success."""
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        return bool(self._call(self._change, request, timeout_s).success)

    def state(self, timeout_s: float = 10.0) -> str:
        return self._call(self._get, GetState.Request(), timeout_s).current_state.label
