"""Closed-loop scores of what the robot did: the success criteria of the wave and reach tasks.

ROS-free. A run is its joint positions ``q [n, joints]`` at times ``t [n]`` (seconds from the
run's first command, strictly increasing). The same scores apply to the demonstrator driving
the robot (the reference) and to the policy driving it.

- wave: after ``settle_s`` the period of the motion (autocorrelation) is within
  ``period_tolerance`` of the demonstrated period, and the RMS joint error to the demonstrated
  cycle, at the best phase alignment and at the run's own period, is <= ``rms_tolerance``.
- reach: the arm comes within ``tolerance_rad`` (max over joints) of the goal no later than
  ``time_factor`` x the demonstrated time.
Both fail on any position outside the joint limits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import mujoco
import numpy as np

from il_policy_node.robots.models import Obstacle, actuated_joints, load_model, obstacle_contacts

GRID_DT_S = 0.01          # runs are resampled on this grid before scoring
LIMIT_SLACK_RAD = 1e-3    # tolerance of the limit check (sensor noise, solver slack)
PHASES = 200              # coarse phase search steps per cycle (then refined)


@dataclass(frozen=True)
class WaveReference:
    """One demonstrated cycle: ``positions [m, joints]`` at phases ``k / m`` of ``period_s``."""

    period_s: float
    positions: np.ndarray

    def at(self, phase: np.ndarray) -> np.ndarray:
        """Positions at ``phase`` (cycles; any real number, periodic) by linear interpolation."""
        m = len(self.positions)
        x = np.mod(phase, 1.0) * m
        i = np.floor(x).astype(int) % m
        w = (x - np.floor(x))[..., None]
        return self.positions[i] * (1.0 - w) + self.positions[(i + 1) % m] * w


@dataclass
class Score:
    """One run's verdict, the figure it is judged by and why it failed (empty if it passed)."""

    task: str
    success: bool
    rmse_rad: float
    reason: str = ''
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {'task': self.task, 'success': self.success, 'rmse_rad': self.rmse_rad,
                'reason': self.reason, **self.details}


def resample(t: np.ndarray, q: np.ndarray, dt: float = GRID_DT_S) -> tuple[np.ndarray, np.ndarray]:
    """``q`` linearly interpolated on a uniform grid from ``t[0]`` to ``t[-1]``."""
    t = np.asarray(t, np.float64)
    q = np.asarray(q, np.float64).reshape(len(t), -1)
    if len(t) < 2 or not (np.diff(t) > 0).all():
        raise ValueError('a run needs at least 2 samples at strictly increasing times')
    grid = np.arange(t[0], t[-1] + 1e-12, dt)
    return grid, np.column_stack([np.interp(grid, t, q[:, j]) for j in range(q.shape[1])])


def fold_cycle(t: np.ndarray, q: np.ndarray, period_s: float,
               samples: int = PHASES) -> WaveReference:
    """The mean cycle of a periodic motion: ``q`` averaged over its whole cycles at each phase.

    For a demonstration that is only known as a recording (e.g. retargeted motion capture);
    what does not repeat at ``period_s`` averages out.
    """
    t, q = np.asarray(t, np.float64), np.asarray(q, np.float64).reshape(len(t), -1)
    cycles = int(np.floor((t[-1] - t[0]) / period_s + 1e-9))
    if not period_s > 0 or cycles < 1:
        raise ValueError(f'fold_cycle needs at least one whole period of {period_s} s, the run '
                         f'lasts {t[-1] - t[0]:.3f} s')
    phase_times = t[0] + period_s * (np.arange(cycles)[:, None] + np.arange(samples) / samples)
    folded = np.stack([np.interp(phase_times, t, q[:, j]) for j in range(q.shape[1])], axis=-1)
    return WaveReference(period_s, folded.mean(axis=0))


def estimate_period(t: np.ndarray, q: np.ndarray, guess_s: float,
                    search: tuple[float, float] = (0.5, 1.5)) -> float:
    """The period of a multi-joint periodic motion near ``guess_s`` (NaN when there is none).

    The lag among ``search x guess_s`` that minimizes the mean squared difference between the
    motion and itself shifted by the lag (the difference function of pitch trackers such as
    YIN), refined by a parabola through its neighbours. No period: a minimum on the edge of
    the range, or a motion that does not repeat (difference above its variance, half the
    value for an unrelated motion).
    """
    _, x = resample(t, q)
    variance = float(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean())
    lags = np.arange(int(search[0] * guess_s / GRID_DT_S), int(search[1] * guess_s / GRID_DT_S))
    if variance < 1e-9 or len(lags) < 3 or lags[-1] + 2 >= len(x):
        return float('nan')
    d = np.array([((x[:-lag] - x[lag:]) ** 2).sum(axis=1).mean() for lag in lags])
    k = int(np.argmin(d))
    if k == 0 or k == len(lags) - 1 or d[k] > variance:
        return float('nan')
    a, b, c = d[k - 1], d[k], d[k + 1]
    curvature = a - 2 * b + c
    offset = 0.5 * (a - c) / curvature if curvature > 0 else 0.0
    return float((lags[k] + offset) * GRID_DT_S)


def phase_aligned_rms(t: np.ndarray, q: np.ndarray, reference: WaveReference,
                      period_s: float) -> tuple[float, float]:
    """(RMS error over every joint and sample, phase offset in cycles) at the best alignment.

    The run is read at its own period: sample ``i`` is at phase ``t_i / period_s + offset``
    of the reference cycle; the offset minimizing the RMS is searched on a grid, then refined.
    """
    grid, x = resample(t, q)
    base = (grid - grid[0]) / period_s

    def rms(offset: float) -> float:
        return float(np.sqrt(np.mean((x - reference.at(base + offset)) ** 2)))

    coarse = np.arange(PHASES) / PHASES
    best = min(coarse, key=rms)
    fine = best + np.linspace(-1.0, 1.0, 41) / PHASES
    best = min(fine, key=rms)
    return rms(best), float(np.mod(best, 1.0))


def limit_violations(q: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> int:
    """Samples with a joint outside [lower, upper] (beyond LIMIT_SLACK_RAD)."""
    outside = (q < np.asarray(lower) - LIMIT_SLACK_RAD) | (q > np.asarray(upper) + LIMIT_SLACK_RAD)
    return int(np.count_nonzero(outside.any(axis=1)))


def score_wave(t: np.ndarray, q: np.ndarray, reference: WaveReference, *, lower: np.ndarray,
               upper: np.ndarray, settle_s: float = 3.0, period_tolerance: float = 0.1,
               rms_tolerance: float = 0.1) -> Score:
    """The wave criterion on one run (see the module docstring)."""
    t, q = np.asarray(t, np.float64), np.asarray(q, np.float64)
    violations = limit_violations(q, lower, upper)
    steady = t >= settle_s
    if t[-1] - settle_s < 1.5 * reference.period_s or np.count_nonzero(steady) < 3:
        return Score('wave', False, float('nan'), f'run too short: {t[-1]:.2f} s, needs '
                     f'{settle_s + 1.5 * reference.period_s:.2f} s',
                     {'limit_violations': violations})
    period = estimate_period(t[steady], q[steady], reference.period_s)
    details: dict[str, Any] = {'period_s': period, 'demonstrated_period_s': reference.period_s,
                               'limit_violations': violations}
    if not np.isfinite(period):
        return Score('wave', False, float('nan'), 'no periodic motion near the demonstrated '
                     'period', details)
    rms, phase = phase_aligned_rms(t[steady], q[steady], reference, period)
    period_error = abs(period - reference.period_s) / reference.period_s
    details.update(period_error=period_error, phase_cycles=phase)
    reasons = []
    if period_error > period_tolerance:
        reasons.append(f'period {period:.3f} s is {100 * period_error:.1f} % off the '
                       f'demonstrated {reference.period_s:.3f} s')
    if rms > rms_tolerance:
        reasons.append(f'phase-aligned RMS error {rms:.3f} rad > {rms_tolerance} rad')
    if violations:
        reasons.append(f'{violations} samples outside the joint limits')
    return Score('wave', not reasons, rms, '; '.join(reasons), details)


def score_reach(t: np.ndarray, q: np.ndarray, goal: np.ndarray, demonstrated_s: float, *,
                lower: np.ndarray, upper: np.ndarray,
                demonstration: Callable[[np.ndarray], np.ndarray] | None = None,
                tolerance_rad: float = 0.05, time_factor: float = 1.5) -> Score:
    """The reach criterion on one run.

    ``demonstrated_s``: the demonstrator's time for this start and goal. ``demonstration``:
    its motion, positions at given times; the RMSE is to it, over the demonstrated time.
    """
    t, q = np.asarray(t, np.float64), np.asarray(q, np.float64)
    violations = limit_violations(q, lower, upper)
    error = np.abs(q - np.asarray(goal)).max(axis=1)
    inside = np.flatnonzero(error <= tolerance_rad)
    reached_s = float(t[inside[0]]) if len(inside) else float('nan')
    deadline = time_factor * demonstrated_s
    rmse = float('nan')
    if demonstration is not None:
        window = t <= demonstrated_s
        rmse = float(np.sqrt(np.mean((q[window] - demonstration(t[window])) ** 2)))
    details = {'reached_s': reached_s, 'demonstrated_s': demonstrated_s,
               'final_error_rad': float(error[-1]), 'limit_violations': violations}
    reasons = []
    if not reached_s <= deadline:
        reasons.append(f'not within {tolerance_rad} rad of the goal by {deadline:.2f} s '
                       f'(closest {error.min():.3f} rad)')
    if violations:
        reasons.append(f'{violations} samples outside the joint limits')
    return Score('reach', not reasons, rmse, '; '.join(reasons), details)


def obstacle_frames(model_name: str, obstacle: Obstacle, q: np.ndarray) -> int:
    """Samples of joint positions ``q`` [n, joints] at which the robot touches ``obstacle``."""
    model = load_model(model_name, obstacle)
    data = mujoco.MjData(model)
    qpos = model.jnt_qposadr[actuated_joints(model_name, model)]
    touching = 0
    for row in q:
        data.qpos[qpos] = row
        mujoco.mj_forward(model, data)
        touching += obstacle_contacts(model, data) > 0
    return touching


def score_detour(t: np.ndarray, q: np.ndarray, goal: np.ndarray, demonstrated_s: float, *,
                 lower: np.ndarray, upper: np.ndarray, touching: int,
                 demonstration: Callable[[np.ndarray], np.ndarray] | None = None) -> Score:
    """The reach criterion, and no sample touching the obstacle (``touching``: how many did)."""
    reach = score_reach(t, q, goal, demonstrated_s, lower=lower, upper=upper,
                        demonstration=demonstration)
    reasons = [reach.reason] if reach.reason else []
    if touching:
        reasons.append(f'{touching} samples touch the obstacle')
    return Score('detour', not reasons, reach.rmse_rad, '; '.join(reasons),
                 {**reach.details, 'obstacle_samples': touching})


def summarize(scores: list[Score]) -> dict[str, Any]:
    """Rollouts, success rate, mean RMSE (over runs with a finite one) and the failures."""
    finite = [s.rmse_rad for s in scores if np.isfinite(s.rmse_rad)]
    return {'rollouts': len(scores),
            'success_rate': sum(s.success for s in scores) / len(scores) if scores else 0.0,
            'rmse_rad': float(np.mean(finite)) if finite else float('nan'),
            'failures': [s.reason for s in scores if not s.success]}
