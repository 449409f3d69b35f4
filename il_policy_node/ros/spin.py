"""The one way our executables run a node: init, spin, clean shutdown on Humble and Jazzy."""
from __future__ import annotations

import signal
from typing import Callable, TypeVar

import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from il_policy_node.errors import IlPolicyError

NodeT = TypeVar('NodeT', bound=Node)
DELIVERY_TIMEOUT_S = 2.0


def wait_for_delivery(node: Node, timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
    """Wait (bounded) until the subscribers acknowledged what the reliable publishers sent.

    Destroying a publisher right after publishing can drop its last messages: a node that
    ends by itself would lose its final messages (a clip's closing report, a hold).
    """
    for publisher in list(node.publishers):
        if publisher.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
            publisher.wait_for_all_acked(Duration(seconds=timeout_s))


def spin_node(make_node: Callable[[], NodeT], args: list[str] | None = None, *,
              before_shutdown: Callable[[NodeT], None] | None = None) -> int:
    """Create the node, spin until it finishes, Ctrl-C, SIGTERM or an external shutdown.

    A node that ends by itself has a ``finished`` future (rclpy.task.Future) whose result has
    an ``exit_code``: spinning stops when it is done, its reliable publishers' messages are
    delivered, and the exit code is returned (0 otherwise). A node whose construction raises
    IlPolicyError (bad parameters) logs it in one line and returns 1. With
    ``before_shutdown`` (e.g. publish a last hold) rclpy's own signal handlers are not
    installed: SIGINT and SIGTERM raise KeyboardInterrupt here, so the hook runs while the
    context is still valid.
    """
    if before_shutdown is None:
        rclpy.init(args=args)
    else:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        # Explicitly for both: a process started in the background inherits SIGINT ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    node = None
    code = 0
    try:
        node = make_node()
        finished = getattr(node, 'finished', None)
        if finished is None:
            rclpy.spin(node)
        else:
            rclpy.spin_until_future_complete(node, finished)
            if finished.done():
                code = finished.result().exit_code
                wait_for_delivery(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except IlPolicyError as exc:
        rclpy.logging.get_logger('il_policy_node').error(' '.join(str(exc).split()))
        code = 1
    finally:
        if node is not None:
            if before_shutdown is not None:
                before_shutdown(node)
            node.destroy_node()
        rclpy.try_shutdown()
    return code
