"""The control loop's settings as one frozen dataclass, validated once at configure time.

The field defaults are the defaults of policy_node's parameters (its ParamSpecs read them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from il_policy_node.errors import ConfigError
from il_policy_node.runtime.chunks import ChunkOptions
from il_policy_node.runtime.robot import VELOCITY, RobotJoints
from il_policy_node.runtime.safety import JointLimits


@dataclass(frozen=True)
class ControllerConfig:
    """Everything the control loop needs, resolved from parameters (and the URDF)."""

    model_path: str
    joint_names: tuple[str, ...]
    limits: JointLimits
    control_rate_hz: float = 100.0
    state_timeout_s: float = 0.1
    ramp_in_s: float = 2.0
    publish_velocities: bool = False
    chunks: ChunkOptions = field(default_factory=ChunkOptions)
    warmup_iterations: int = 20
    lookahead_s: float = -1.0           # < 0: measured each tick (see controller.tick)
    ood_hold_z: float = 0.0             # > 0: hold while an input is this many std off the data

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> 'ControllerConfig':
        """Validate plain parameter values; raise ConfigError naming the first bad one.

        Missing values take the field defaults; limits not given come from the URDF in
        ``robot_description``.
        """
        model_path = str(params.get('model_path', ''))
        if not model_path:
            raise ConfigError('parameter model_path is empty: give the path of policy.pt')
        robot = RobotJoints.resolve(
            tuple(params.get('joint_names') or ()),
            lower=params.get('position_lower_limits') or (),
            upper=params.get('position_upper_limits') or (),
            velocity=params.get(VELOCITY) or (),
            urdf=str(params.get('robot_description', '') or ''),
            require=('position_lower_limits', 'position_upper_limits', VELOCITY))
        rate = _positive(params, 'control_rate_hz')
        timeout = _positive(params, 'state_timeout_s')
        ramp = _number(params, 'ramp_in_s')
        if ramp < 0:
            raise ConfigError(f'parameter ramp_in_s must be >= 0, got {ramp}')
        chunk_defaults = ChunkOptions()
        try:
            chunks = ChunkOptions(
                execution=params.get('chunk_execution', chunk_defaults.execution.value),
                ensemble_decay=_number(params, 'ensemble_decay', chunk_defaults.ensemble_decay),
                replan_every=int(params.get('replan_every', chunk_defaults.replan_every)),
                inference=params.get('inference', chunk_defaults.inference.value))
        except ConfigError as exc:
            raise ConfigError(f'parameter {exc}') from None
        ood = _number(params, 'ood_hold_z')
        if ood < 0:
            raise ConfigError(f'parameter ood_hold_z must be >= 0 (0 = off), got {ood}')
        warmup = int(params.get('warmup_iterations', default('warmup_iterations')))
        if warmup < 0:
            raise ConfigError(f'parameter warmup_iterations must be >= 0, got {warmup}')
        return cls(
            model_path=model_path, joint_names=robot.joint_names,
            limits=JointLimits(lower=robot.lower, upper=robot.upper,
                               max_velocity=robot.velocity),
            control_rate_hz=rate, state_timeout_s=timeout, ramp_in_s=ramp,
            publish_velocities=bool(params.get('publish_velocities',
                                               default('publish_velocities'))),
            chunks=chunks, warmup_iterations=warmup,
            lookahead_s=_number(params, 'lookahead_s'), ood_hold_z=ood)


def default(name: str) -> Any:
    """The default of a ControllerConfig field (the parameter's default)."""
    found = next(f for f in fields(ControllerConfig) if f.name == name)
    return found.default


def _number(params: Mapping[str, Any], name: str, fallback: float | None = None) -> float:
    value = params.get(name, default(name) if fallback is None else fallback)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f'parameter {name} must be a number, got {value!r}') from None
    if not math.isfinite(value):
        raise ConfigError(f'parameter {name} must be a finite number, got {value}')
    return value


def _positive(params: Mapping[str, Any], name: str) -> float:
    value = _number(params, name)
    if value <= 0:
        raise ConfigError(f'parameter {name} must be > 0, got {value}')
    return value
