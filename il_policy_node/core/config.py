"""The policy node's settings as one frozen dataclass, validated once at configure time."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from il_policy_node.core.runtime import ChunkExecution
from il_policy_node.core.safety import JointLimits
from il_policy_node.core.urdf import urdf_joint_limits


class ConfigError(ValueError):
    """A bad parameter; the message names it."""


@dataclass(frozen=True)
class ControllerConfig:
    """Everything the control loop needs, resolved from parameters (and the URDF)."""

    model_path: str
    joint_names: tuple[str, ...]
    limits: JointLimits
    control_rate_hz: float
    state_timeout_s: float
    ramp_in_s: float
    publish_velocities: bool
    execution: ChunkExecution
    ensemble_decay: float
    replan_every: int
    warmup_iterations: int
    lookahead_s: float = -1.0           # < 0: measured each tick (see controller.tick)

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> 'ControllerConfig':
        """Validate plain parameter values; raise ConfigError naming the first bad one."""
        model_path = str(params.get('model_path', ''))
        if not model_path:
            raise ConfigError('parameter model_path is empty: give the path of policy.pt')
        joints = tuple(params.get('joint_names') or ())
        if not joints:
            raise ConfigError('parameter joint_names is empty: list the controller joints')
        if any(not j for j in joints):
            raise ConfigError('parameter joint_names contains an empty name')
        duplicates = sorted({j for j in joints if joints.count(j) > 1})
        if duplicates:
            raise ConfigError(f'parameter joint_names lists {duplicates} more than once')
        rate = _positive(params, 'control_rate_hz')
        timeout = _positive(params, 'state_timeout_s')
        ramp = float(params.get('ramp_in_s', 0.0))
        if not math.isfinite(ramp) or ramp < 0:
            raise ConfigError(f'parameter ramp_in_s must be >= 0, got {ramp}')
        try:
            execution = ChunkExecution(params.get('chunk_execution', 'ensemble'))
        except ValueError:
            raise ConfigError(f'parameter chunk_execution must be one of '
                              f'{[e.value for e in ChunkExecution]}, '
                              f'got {params.get("chunk_execution")!r}') from None
        decay = float(params.get('ensemble_decay', 0.01))
        if not math.isfinite(decay) or decay < 0:
            raise ConfigError(f'parameter ensemble_decay must be >= 0, got {decay}')
        replan = int(params.get('replan_every', 0))
        if replan < 0:
            raise ConfigError(f'parameter replan_every must be >= 0, got {replan}')
        lookahead = float(params.get('lookahead_s', -1.0))
        if not math.isfinite(lookahead):
            raise ConfigError(f'parameter lookahead_s must be a number, got {lookahead}')
        warmup = int(params.get('warmup_iterations', 20))
        if warmup < 0:
            raise ConfigError(f'parameter warmup_iterations must be >= 0, got {warmup}')
        return cls(
            model_path=model_path, joint_names=joints,
            limits=resolve_limits(joints, params), control_rate_hz=rate,
            state_timeout_s=timeout, ramp_in_s=ramp,
            publish_velocities=bool(params.get('publish_velocities', False)),
            execution=execution, ensemble_decay=decay, replan_every=replan,
            warmup_iterations=warmup, lookahead_s=lookahead)


def _positive(params: Mapping[str, Any], name: str) -> float:
    value = params.get(name)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f'parameter {name} must be a number, got {value!r}') from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f'parameter {name} must be > 0, got {value}')
    return value


def _per_joint(params: Mapping[str, Any], name: str, joints: Sequence[str],
               allow_single: bool = False) -> np.ndarray | None:
    values = list(params.get(name) or ())
    if not values:
        return None
    if allow_single and len(values) == 1:
        values = values * len(joints)
    if len(values) != len(joints):
        raise ConfigError(f'parameter {name} has {len(values)} values but joint_names has '
                          f'{len(joints)}' + (' (or give one value for all)' if allow_single
                                              else ''))
    array = np.asarray(values, np.float64)
    if np.isnan(array).any():
        raise ConfigError(f'parameter {name} contains NaN')
    return array


def resolve_limits(joints: Sequence[str], params: Mapping[str, Any]) -> JointLimits:
    """Position and velocity limits from parameters, else from the URDF in robot_description."""
    lower = _per_joint(params, 'position_lower_limits', joints)
    upper = _per_joint(params, 'position_upper_limits', joints)
    velocity = _per_joint(params, 'max_velocity_rad_s', joints, allow_single=True)
    urdf_text = str(params.get('robot_description', '') or '')
    urdf = {}
    if urdf_text.strip():
        try:
            urdf = urdf_joint_limits(urdf_text)
        except ValueError as exc:
            raise ConfigError(f'parameter {exc}') from None
    for name, array, attr in (('position_lower_limits', lower, 'lower'),
                              ('position_upper_limits', upper, 'upper')):
        if array is not None:
            continue
        missing = [j for j in joints if j not in urdf]
        if missing:
            raise ConfigError(
                f'no position limits for joint {missing[0]!r}: set {name} or give a '
                'robot_description that has the joint')
        resolved = np.array([getattr(urdf[j], attr) for j in joints])
        if attr == 'lower':
            lower = resolved
        else:
            upper = resolved
    if velocity is None:
        missing = [j for j in joints if j not in urdf or urdf[j].velocity is None]
        if missing:
            raise ConfigError(
                f'no velocity limit for joint {missing[0]!r}: set max_velocity_rad_s or give a '
                'robot_description with <limit velocity=...>')
        velocity = np.array([urdf[j].velocity for j in joints])
    bad = [j for j, lo, hi in zip(joints, lower, upper) if lo > hi]
    if bad:
        i = joints.index(bad[0])
        raise ConfigError(f'joint {bad[0]!r}: lower limit {lower[i]} > upper limit {upper[i]}')
    bad = [j for j, v in zip(joints, velocity) if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ConfigError(f'joint {bad[0]!r}: max_velocity_rad_s must be finite and > 0')
    return JointLimits(lower=lower, upper=upper, max_velocity=velocity)
