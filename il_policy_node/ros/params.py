"""Parameter declaration with descriptors, and reading them into a plain dict for the core.

A value that violates its descriptor (a range, a type) does not crash the node at start-up:
the error is kept and reported when configure is called, so a lifecycle manager sees a failed
transition with a message instead of a process that died.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from il_policy_node.errors import ConfigError


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any            # a value, or a Parameter.Type for arrays that default to empty
    description: str
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None

    def descriptor(self) -> ParameterDescriptor:
        # Float scalars accept integers too (``control_rate_hz: 500`` in YAML); the core
        # converts and validates them.
        descriptor = ParameterDescriptor(description=self.description,
                                         dynamic_typing=isinstance(self.default, float))
        if self.float_range is not None:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=self.float_range[0], to_value=self.float_range[1], step=0.0)]
        if self.int_range is not None:
            descriptor.integer_range = [IntegerRange(
                from_value=self.int_range[0], to_value=self.int_range[1], step=0)]
        return descriptor


def default_of(config_class: type, name: str) -> Any:
    """The default of a config dataclass field, as a parameter value (tuples become lists).

    The config dataclasses of the core own the defaults; parameter specs take them from there.
    """
    found = next(f for f in dataclasses.fields(config_class) if f.name == name)
    value = found.default if found.default is not dataclasses.MISSING else \
        found.default_factory()
    if hasattr(value, 'value') and isinstance(value.value, str):   # a str Enum
        return value.value
    return list(value) if isinstance(value, tuple) else value


def declare_all(node: Node, specs: tuple[ParamSpec, ...]) -> list[str]:
    """Declare every parameter; return the errors of overrides that were refused."""
    errors = []
    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            errors.append(f'parameter {spec.name}: {exc}')
            node.declare_parameter(spec.name, spec.default, spec.descriptor(),
                                   ignore_override=True)
    return errors


def read_all(node: Node, specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Current values; arrays never set read as empty lists."""
    values = {}
    for spec in specs:
        try:
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            value = None
        values[spec.name] = list(value) if isinstance(value, (list, tuple)) else value
        if values[spec.name] is None and isinstance(spec.default, Parameter.Type):
            values[spec.name] = []
    return values


def declare_and_read(node: Node, specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Declare every parameter and read the values; ConfigError lists refused overrides.

    For nodes that cannot run with a refused start-up value (the process ends with it).
    """
    errors = declare_all(node, specs)
    if errors:
        raise ConfigError('; '.join(errors))
    return read_all(node, specs)
