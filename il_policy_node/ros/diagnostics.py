"""diagnostic_msgs helpers: one DiagnosticStatus from plain key/value figures."""
from __future__ import annotations

from typing import Any, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN,
          'error': DiagnosticStatus.ERROR, 'stale': DiagnosticStatus.STALE}


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)


def diagnostic_array(stamp, *, name: str, hardware_id: str, level: str, message: str,
                     values: Mapping[str, Any]) -> DiagnosticArray:
    """A DiagnosticArray holding one status; ``level`` is ok, warn, error or stale."""
    status = DiagnosticStatus(
        level=LEVELS[level], name=name, message=message, hardware_id=hardware_id,
        values=[KeyValue(key=key, value=_text(value)) for key, value in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


def node_status(node, *, level: str, message: str,
                values: Mapping[str, Any]) -> DiagnosticArray:
    """The status of ``node`` as our nodes publish it: name 'il_policy_node: <node name>'."""
    return diagnostic_array(
        node.get_clock().now().to_msg(), name=f'il_policy_node: {node.get_name()}',
        hardware_id=node.get_fully_qualified_name(), level=level, message=message,
        values=values)


def parse_values(status: DiagnosticStatus) -> dict[str, str]:
    """The key/value pairs of a status as a dict (for tools and tests that read diagnostics)."""
    return {kv.key: kv.value for kv in status.values}
