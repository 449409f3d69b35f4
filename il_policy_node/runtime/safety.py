"""The safety layer: pure functions on joint position vectors that return what they changed.

Nothing downstream protects the robot (joint_trajectory_controller accepts NaN, ``np.clip``
returns NaN), so every command passes through :class:`SafetyFilter` before it is published:
non-finite targets are replaced by the previous command, positions are clamped to the joint
limits, and the change per tick is bounded by the velocity limit. Functions here never log;
they return counts or masks that the node turns into diagnostics.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from il_policy_node.errors import ConfigError


class Intervention(str, Enum):
    """Everything the safety layer or the watchdog can do to a command; counted on diagnostics."""

    NONFINITE_ACTION = 'nonfinite_action'
    NONFINITE_STATE = 'nonfinite_state'
    POSITION_CLAMP = 'position_clamp'
    STEP_LIMIT = 'step_limit'
    STATE_TIMEOUT = 'state_timeout'
    MISSING_JOINT = 'missing_joint'
    ESTOP = 'estop'
    NO_CHUNK = 'no_chunk'            # asynchronous inference: no chunk covered the tick
    OUT_OF_DATA = 'out_of_data'      # ood_hold_z: the observation left the training data


@dataclass(frozen=True)
class JointLimits:
    """Per-joint position limits (rad or m; +-inf where unbounded) and velocity limits (/s)."""

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray

    def __post_init__(self) -> None:
        for name in ('lower', 'upper', 'max_velocity'):
            object.__setattr__(self, name, np.asarray(getattr(self, name), np.float64).copy())
            getattr(self, name).setflags(write=False)
        if not self.lower.shape == self.upper.shape == self.max_velocity.shape:
            raise ConfigError('lower, upper and max_velocity must have one value per joint')
        if np.isnan(self.lower).any() or np.isnan(self.upper).any():
            raise ConfigError('position limits must not be NaN')
        bad = np.flatnonzero(self.lower > self.upper)
        if bad.size:
            raise ConfigError(f'lower limit > upper limit for joint index {bad.tolist()}')
        if not (np.isfinite(self.max_velocity) & (self.max_velocity > 0)).all():
            raise ConfigError('max_velocity must be finite and > 0 for every joint')

    def max_step(self, period_s: float) -> np.ndarray:
        return self.max_velocity * period_s


def nonfinite(values: np.ndarray) -> bool:
    """True when any value is NaN or infinite."""
    return not np.isfinite(values).all()


def clamp_positions(target: np.ndarray, limits: JointLimits,
                    out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Clamp to [lower, upper]; returns (result, joints changed).

    Target must be finite; ``out`` must not be ``target`` (the count compares the two).
    """
    out = np.clip(target, limits.lower, limits.upper, out=out)
    return out, int(np.count_nonzero(out != target))


def limit_step(target: np.ndarray, previous: np.ndarray, max_step: np.ndarray,
               out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Move from ``previous`` toward ``target`` by at most ``max_step`` per joint.

    Returns (result, number of joints limited). Inputs must be finite and ``out`` must not be
    ``target``. A joint that is not limited gets exactly ``target``.
    """
    out = np.clip(target, previous - max_step, previous + max_step, out=out)
    return out, int(np.count_nonzero(out != target))


def ramp_fraction(elapsed_s: float, duration_s: float) -> float:
    """Smooth 0 -> 1 blend (zero slope at both ends) over ``duration_s``; 1 when duration is 0."""
    if duration_s <= 0.0 or elapsed_s >= duration_s:
        return 1.0
    x = max(elapsed_s, 0.0) / duration_s
    return x * x * (3.0 - 2.0 * x)


def ramp_in(start: np.ndarray, target: np.ndarray, fraction: float,
            out: np.ndarray | None = None) -> np.ndarray:
    """Blend from the measured ``start`` toward ``target``: start + fraction * (target - start)."""
    out = np.subtract(target, start, out=out)
    out *= fraction
    out += start
    return out


@dataclass
class SafetyFilter:
    """Non-finite target -> previous command; then clamp_positions -> limit_step; all counted.

    The result is finite, within limits whenever ``previous`` is, and never more than
    ``max_velocity * period_s`` away from ``previous``.
    """

    limits: JointLimits
    period_s: float
    counts: dict[Intervention, int] = field(default_factory=lambda: {i: 0 for i in Intervention})

    def __post_init__(self) -> None:
        self._max_step = self.limits.max_step(self.period_s)
        self._scratch = np.empty_like(self.limits.lower)

    def apply(self, target: np.ndarray, previous: np.ndarray,
              out: np.ndarray | None = None) -> np.ndarray:
        """The safe command for ``target`` one tick after ``previous`` (in ``out`` if given)."""
        out = np.empty_like(self._scratch) if out is None else out
        counts = self.counts
        if nonfinite(target):
            counts[Intervention.NONFINITE_ACTION] += 1
            target = previous
        scratch, changed = clamp_positions(target, self.limits, out=self._scratch)
        if changed:
            counts[Intervention.POSITION_CLAMP] += changed
        out, changed = limit_step(scratch, previous, self._max_step, out=out)
        if changed:
            counts[Intervention.STEP_LIMIT] += changed
        return out
