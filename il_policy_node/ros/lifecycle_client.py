"""Drive a lifecycle node's transitions from another node (a minimal lifecycle manager)."""
from __future__ import annotations

import time

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

TRANSITIONS = {
    'configure': Transition.TRANSITION_CONFIGURE,
    'activate': Transition.TRANSITION_ACTIVATE,
    'deactivate': Transition.TRANSITION_DEACTIVATE,
    'cleanup': Transition.TRANSITION_CLEANUP,
    'shutdown': Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
}


class LifecycleClient:
    """Calls ``<node>/change_state`` and ``<node>/get_state`` and waits for the answers.

    ``node`` may live in any context. When it is already spun by an executor (e.g. in a
    background thread) the client only waits for the answer; otherwise it spins the node
    with an executor of the node's own context until the answer arrives.
    """

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
        if self._node.executor is not None:
            deadline = time.monotonic() + timeout_s
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.005)
        else:
            # Not the global executor: that one belongs to the default context only.
            executor = SingleThreadedExecutor(context=self._node.context)
            try:
                rclpy.spin_until_future_complete(self._node, future, executor=executor,
                                                 timeout_sec=timeout_s)
            finally:
                executor.shutdown()
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
