"""Invalid lifecycle transitions answered as failed, instead of killing the node.

rclpy's LifecycleNode in the Jazzy wheels raises RCLError out of its ``change_state`` service
callback when the requested transition is not valid from the current state (activate twice,
configure while active, ...), and the executor ends the process (ros2/rclpy#1209, fixed after
those wheels). A lifecycle manager's mistake must not take the robot's controller down with
it: the guard checks the transition against the state machine first, answers ``success:
false`` and logs why; a valid request goes to rclpy's own handler.
"""
from __future__ import annotations

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.lifecycle import LifecycleNode

LABELS = {getattr(Transition, name): name.removeprefix('TRANSITION_').lower()
          for name in dir(Transition) if name.startswith('TRANSITION_')}


def guard_transitions(node: LifecycleNode) -> None:
    """Route ``node``'s change_state requests through the check (call in its __init__)."""
    service = node._service_change_state          # rclpy keeps no public handle on it
    handle = service.callback

    def change_state(request: ChangeState.Request,
                     response: ChangeState.Response) -> ChangeState.Response:
        machine = node._state_machine
        _, state_label = machine.current_state
        available = {t[0]: t[1] for t in machine.available_transitions}
        wanted = request.transition.label or LABELS.get(request.transition.id,
                                                         request.transition.id)
        valid = (request.transition.label in available.values()) if request.transition.label \
            else request.transition.id in available
        if not valid:
            node.get_logger().error(
                f'transition {wanted!r} refused: not valid from state {state_label!r} '
                f'(valid: {sorted(available.values())})')
            response.success = False
            return response
        return handle(request, response)

    service.callback = change_state
