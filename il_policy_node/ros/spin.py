"""The one way our executables run a node: init, spin, clean shutdown on Humble and Jazzy."""
from __future__ import annotations

import signal
import threading
from typing import Callable, TypeVar

import rclpy
from rclpy.duration import Duration
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from il_policy_node.errors import IlPolicyError

NodeT = TypeVar('NodeT', bound=Node)
DELIVERY_TIMEOUT_S = 2.0
SPIN_PERIOD_S = 0.1             # the longest a spin waits before it looks at shutdown and signals


def make_executor(kind: str, node: Node) -> Executor:
    """The executor a node is spun with.

    ``single``: rclpy's SingleThreadedExecutor (what rclpy.spin uses); ``events``: rclpy's
    EventsExecutor (experimental in Jazzy, far less CPU per message; absent in Humble, where
    the node falls back to ``single`` with a warning).
    """
    if kind == 'events':
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            node.get_logger().warn('executor events: rclpy has no EventsExecutor here; '
                                   'running with single')
        else:
            return EventsExecutor(context=node.context)
    return SingleThreadedExecutor(context=node.context)


def wait_for_delivery(node: Node, timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
    """Wait (bounded) until the subscribers acknowledged what the reliable publishers sent.

    Destroying a publisher right after publishing can drop its last messages: a node that
    ends by itself would lose its final messages (a clip's closing report, a hold).
    """
    for publisher in list(node.publishers):
        if publisher.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
            publisher.wait_for_all_acked(Duration(seconds=timeout_s))


def spin_node(make_node: Callable[[], NodeT], args: list[str] | None = None, *,
              before_shutdown: Callable[[NodeT, Executor], None] | None = None) -> int:
    """Create the node, spin until it finishes, Ctrl-C, SIGTERM or an external shutdown.

    A node that ends by itself has a ``finished`` future (rclpy.task.Future) whose result has
    an ``exit_code``: spinning stops when it is done, its reliable publishers' messages are
    delivered, and the exit code is returned (0 otherwise). A node whose construction raises
    IlPolicyError (bad parameters) logs it in one line and returns 1. The executor is the
    node's ``executor_kind`` (see make_executor; 'single' when it has none). With
    ``before_shutdown(node, executor)`` (e.g. publish a last hold) rclpy's own signal
    handlers are not installed: SIGINT and SIGTERM ask the spin loop to stop (a second one
    raises KeyboardInterrupt), so the hook runs while the context is still valid. The
    handler only sets a flag: an exception raised inside rclpy while it converts a message
    would surface as a RuntimeError instead.
    """
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    if before_shutdown is None:
        rclpy.init(args=args)
    else:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        # Explicitly for both: a process started in the background inherits SIGINT ignored.
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
    node = executor = None
    code = 0
    try:
        node = make_node()
        executor = make_executor(getattr(node, 'executor_kind', 'single'), node)
        executor.add_node(node)
        finished = getattr(node, 'finished', None)
        # spin_once in a loop: the EventsExecutor of the Jazzy wheels never returns control
        # from spin() (no callback runs, no signal gets through); spin_once works for both
        while node.context.ok() and not stop.is_set() and \
                not (finished is not None and finished.done()):
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        if finished is not None and finished.done():
            code = finished.result().exit_code
            wait_for_delivery(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except IlPolicyError as exc:
        rclpy.logging.get_logger('il_policy_node').error(' '.join(str(exc).split()))
        code = 1
    finally:
        if node is not None:
            if before_shutdown is not None and executor is not None:
                before_shutdown(node, executor)
            node.destroy_node()
        if executor is not None:
            executor.shutdown()
        rclpy.try_shutdown()
    return code
