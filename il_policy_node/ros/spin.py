"""The one way our executables run a node: init, spin, clean shutdown on Humble and Jazzy."""
from __future__ import annotations

import signal
from typing import Callable, TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

NodeT = TypeVar('NodeT', bound=Node)


def spin_node(make_node: Callable[[], NodeT], args: list[str] | None = None, *,
              before_shutdown: Callable[[NodeT], None] | None = None) -> None:
    """Create the node, spin until Ctrl-C, SIGTERM or an external shutdown, then clean up.

    With ``before_shutdown`` (e.g. publish a last hold) rclpy's own signal handlers are not
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
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if before_shutdown is not None:
                before_shutdown(node)
            node.destroy_node()
        rclpy.try_shutdown()
