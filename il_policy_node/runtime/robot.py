"""The robot's joints and their limits, from a list, a URDF, or both (the one resolver).

Who asks: policy_node (``joint_names`` + limit parameters, the rest from ``robot_description``),
mocap import and mocap_bridge (a sim model's joints, a URDF, or a list), the demonstrator.
A sim model becomes a RobotJoints in ``robots/models.py``; everything else resolves here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from il_policy_node.errors import ConfigError
from il_policy_node.runtime.observation import check_joint_names
from il_policy_node.runtime.urdf import urdf_joint_limits

# the parameter names of the limits, as the nodes declare them
LOWER, UPPER, VELOCITY = 'position_lower_limits', 'position_upper_limits', 'max_velocity_rad_s'


@dataclass(frozen=True)
class RobotJoints:
    """Joints in command order with position limits (+-inf: none) and velocity limits (None)."""

    source: str                                  # 'model arm6', 'urdf FILE', 'parameters', ...
    joint_names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    velocity: tuple[float | None, ...]

    def __post_init__(self) -> None:
        names = tuple(self.joint_names)
        object.__setattr__(self, 'joint_names', names)
        check_joint_names(self.source, names)
        for key in ('lower', 'upper', 'velocity'):
            values = tuple(getattr(self, key))
            if len(values) != len(names):
                raise ConfigError(f'{self.source}: {len(values)} {key} limits for '
                                  f'{len(names)} joints')
            object.__setattr__(self, key, values)
        for name, lo, hi in zip(names, self.lower, self.upper):
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                raise ConfigError(f'joint {name!r}: lower limit {lo} > upper limit {hi}')

    @classmethod
    def unlimited(cls, joint_names: Sequence[str], source: str) -> 'RobotJoints':
        n = len(joint_names)
        return cls(source, tuple(joint_names), (-math.inf,) * n, (math.inf,) * n, (None,) * n)

    @classmethod
    def resolve(cls, joint_names: Sequence[str], *, lower: Sequence[float] = (),
                upper: Sequence[float] = (), velocity: Sequence[float] = (),
                urdf: str = '', source: str = 'parameters',
                require: tuple[str, ...] = (LOWER, UPPER)) -> 'RobotJoints':
        """``joint_names`` with the limits given, and the URDF's for those not given.

        ``velocity`` may be one value for every joint. ``require``: the limits that must be
        known for every joint (ConfigError names the first joint without, and how to give it).
        """
        names = tuple(joint_names)
        if not names:
            raise ConfigError('parameter joint_names is empty: list the controller joints')
        check_joint_names('parameter joint_names', names)
        given = {LOWER: _per_joint(lower, LOWER, names),
                 UPPER: _per_joint(upper, UPPER, names),
                 VELOCITY: _per_joint(velocity, VELOCITY, names, allow_single=True)}
        limits = {}
        if urdf.strip():
            try:
                limits = urdf_joint_limits(urdf)
            except ConfigError as exc:
                raise ConfigError(f'parameter {exc}') from None
        resolved = {}
        for key, attribute in ((LOWER, 'lower'), (UPPER, 'upper'), (VELOCITY, 'velocity')):
            if given[key] is not None:
                resolved[key] = given[key]
                continue
            values = [getattr(limits[j], attribute) if j in limits else None for j in names]
            missing = [j for j, v in zip(names, values) if v is None]
            if missing and key in require:
                what = 'velocity limit' if key == VELOCITY else 'position limits'
                extra = ' with <limit velocity=...>' if key == VELOCITY else ' that has the joint'
                raise ConfigError(f'no {what} for joint {missing[0]!r}: set {key} or give a '
                                  f'robot_description{extra}')
            default = None if key == VELOCITY else (-math.inf if key == LOWER else math.inf)
            resolved[key] = tuple(default if v is None else v for v in values)
        for name, value in zip(names, resolved[VELOCITY]):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f'joint {name!r}: {VELOCITY} must be finite and > 0')
        source = f'{source} + robot_description' if limits else source
        return cls(source, names, resolved[LOWER], resolved[UPPER], resolved[VELOCITY])

    @classmethod
    def from_urdf(cls, urdf: str, joint_names: Sequence[str], source: str) -> 'RobotJoints':
        """``joint_names``, each a movable joint of the URDF, with its limits."""
        limits = urdf_joint_limits(urdf)
        missing = [name for name in joint_names if name not in limits]
        if missing:
            raise ConfigError(f'joints {missing} are not movable joints of {source}; its '
                              f'movable joints: {sorted(limits)}')
        return cls(source, tuple(joint_names), tuple(limits[n].lower for n in joint_names),
                   tuple(limits[n].upper for n in joint_names),
                   tuple(limits[n].velocity for n in joint_names))


def _per_joint(values: Sequence[float], name: str, joints: Sequence[str],
               allow_single: bool = False) -> tuple[float, ...] | None:
    values = [float(v) for v in values or ()]
    if not values:
        return None
    if allow_single and len(values) == 1:
        values = values * len(joints)
    if len(values) != len(joints):
        raise ConfigError(f'parameter {name} has {len(values)} values but joint_names has '
                          f'{len(joints)}' + (' (or give one value for all)' if allow_single
                                              else ''))
    if any(math.isnan(v) for v in values):
        raise ConfigError(f'parameter {name} contains NaN')
    return tuple(values)
