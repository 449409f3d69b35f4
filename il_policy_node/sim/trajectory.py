"""joint_trajectory_controller (ROS 2 Jazzy) semantics as a pure class: accept, then sample.

The input is plain data (:class:`TrajectoryCommand`), converted from
trajectory_msgs/JointTrajectory by the node. What is accepted and how it is followed:

- ``start_time`` 0 starts the trajectory at receipt; another value (same clock as ``now``)
  starts it then, and one that ends before ``now`` is rejected.
- The robot goes from the desired state at receipt to the first point, then through the
  points: linear interpolation per segment when the points carry positions only, cubic
  Hermite (continuous positions and velocities) when every point carries velocities. After
  the last point it holds that point.
- A new accepted command replaces the rest of the running one, starting from the desired
  state at the time of replacement (no jump). A command with joint names and no points is a
  stop: hold the current desired position.
- Joint order in a command may differ from the robot's: columns are mapped by name.
- Rejected (:class:`TrajectoryRejected`, its message names the problem; the running
  trajectory is left alone): empty, unknown, missing (no partial goals, JTC's default) or
  duplicate joint names; positions or velocities of the wrong size, velocities on some
  points only; accelerations (not supported); time_from_start not strictly increasing or
  negative; non-finite values; a non-zero velocity on the last point (Jazzy's default);
  a position outside the joint limits (when limits are given).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from il_policy_node.errors import SimError


class TrajectoryRejected(SimError):
    """A command the controller refuses; ``str(exc)`` is the reason."""


@dataclass(frozen=True)
class TrajectoryPoint:
    positions: Sequence[float]
    velocities: Sequence[float] = ()
    accelerations: Sequence[float] = ()
    time_from_start: float = 0.0             # s, relative to the start time


@dataclass(frozen=True)
class TrajectoryCommand:
    joint_names: Sequence[str]
    points: Sequence[TrajectoryPoint]
    start_time: float = 0.0                  # s on the follower's clock; 0 = at receipt


class TrajectoryFollower:
    """The desired joint state over time, as joint_trajectory_controller computes it.

    Times are seconds on any clock (the simulation's); ``now`` must not go backwards.
    Arrays are in ``joint_names`` order.
    """

    def __init__(self, joint_names: Sequence[str], initial_positions: Sequence[float], *,
                 lower_limits: Sequence[float] | None = None,
                 upper_limits: Sequence[float] | None = None) -> None:
        self.joint_names = tuple(joint_names)
        n = len(self.joint_names)
        if n == 0 or len(set(self.joint_names)) != n:
            raise SimError('joint_names must be non-empty and unique')
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        self._lower = self._limit(lower_limits, -np.inf, 'lower_limits')
        self._upper = self._limit(upper_limits, np.inf, 'upper_limits')
        self._times = np.zeros(1)
        self._positions = np.zeros((1, n))
        self._velocities: np.ndarray | None = None   # None: linear segments
        self.reset(initial_positions)

    def _limit(self, values: Sequence[float] | None, default: float, what: str) -> np.ndarray:
        if values is None:
            return np.full(len(self.joint_names), default)
        array = np.asarray(values, np.float64)
        if array.shape != (len(self.joint_names),):
            raise SimError(f'{what} has {array.size} values for {len(self.joint_names)} '
                             'joints')
        return array

    # -- state ------------------------------------------------------------------------------
    def reset(self, positions: Sequence[float]) -> None:
        """Hold ``positions`` (desired velocity zero); any trajectory is dropped."""
        array = np.asarray(positions, np.float64)
        if array.shape != (len(self.joint_names),) or not np.isfinite(array).all():
            raise SimError(f'need {len(self.joint_names)} finite positions, got {positions!r}')
        self._hold(array)

    def _hold(self, positions: np.ndarray) -> None:
        self._times = np.zeros(1)
        self._positions = positions.reshape(1, -1).copy()
        self._velocities = None

    @property
    def end_time(self) -> float:
        """When the current trajectory reaches its last point (0 while holding after reset)."""
        return float(self._times[-1])

    def active(self, now: float) -> bool:
        """True while a trajectory is still moving (``now`` before its last point)."""
        return len(self._times) > 1 and now < self._times[-1]

    def sample(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) desired at ``now`` (new arrays)."""
        n = len(self.joint_names)
        positions, velocities = np.empty(n), np.empty(n)
        self.sample_into(now, positions, velocities)
        return positions, velocities

    def sample_into(self, now: float, positions: np.ndarray, velocities: np.ndarray) -> None:
        """Write the desired state at ``now`` into the given arrays (no allocation)."""
        times = self._times
        if now >= times[-1] or len(times) == 1:
            positions[:] = self._positions[-1]
            velocities[:] = 0.0
            return
        if now <= times[0]:
            positions[:] = self._positions[0]
            if self._velocities is None:
                velocities[:] = (self._positions[1] - self._positions[0]) / (times[1] - times[0])
            else:
                velocities[:] = self._velocities[0]
            return
        k = int(np.searchsorted(times, now, side='right')) - 1
        t0, t1 = times[k], times[k + 1]
        h = t1 - t0
        p0, p1 = self._positions[k], self._positions[k + 1]
        if self._velocities is None:
            s = (now - t0) / h
            velocities[:] = (p1 - p0) / h
            positions[:] = p0 + s * (p1 - p0)
            return
        v0, v1 = self._velocities[k], self._velocities[k + 1]
        s = (now - t0) / h
        s2, s3 = s * s, s * s * s
        positions[:] = ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * v0
                        + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * h * v1)
        velocities[:] = ((6 * s2 - 6 * s) / h * (p0 - p1) + (3 * s2 - 4 * s + 1) * v0
                         + (3 * s2 - 2 * s) * v1)

    # -- commands ---------------------------------------------------------------------------
    def accept(self, command: TrajectoryCommand, now: float) -> None:
        """Follow ``command`` from ``now``; raises TrajectoryRejected (and changes nothing)."""
        columns = self._columns(command.joint_names)
        points = list(command.points)
        current_p, current_v = self.sample(now)
        if not points:                              # stop: hold the current desired position
            self._hold(current_p)
            return
        positions, velocities, offsets = self._validate(points, columns)
        start = now if command.start_time == 0 else float(command.start_time)
        if not math.isfinite(start):
            raise TrajectoryRejected(f'start time {start} is not finite')
        if start + offsets[-1] < now:
            raise TrajectoryRejected(
                f'trajectory with start time {start:.6f} s ends in the past '
                f'({start + offsets[-1]:.6f} s < now {now:.6f} s)')
        times = start + offsets
        if times[0] > now:               # from the desired state at receipt to the first point
            times = np.concatenate([[now], times])
            positions = np.vstack([current_p, positions])
            if velocities is not None:
                velocities = np.vstack([current_v, velocities])
        # else the first point is due already (time_from_start 0, or a start in the past):
        # like JTC, the state jumps onto the points' own interpolation.
        self._times = times
        self._positions = positions
        self._velocities = velocities

    def _columns(self, joint_names: Sequence[str]) -> np.ndarray:
        names = list(joint_names)
        if not names:
            raise TrajectoryRejected('empty joint_names')
        seen = set()
        for name in names:
            if name in seen:
                raise TrajectoryRejected(f'duplicate joint name {name!r} in joint_names')
            seen.add(name)
            if name not in self._index:
                raise TrajectoryRejected(
                    f'unknown joint {name!r} (the robot has {", ".join(self.joint_names)})')
        missing = [name for name in self.joint_names if name not in seen]
        if missing:
            raise TrajectoryRejected(
                f'missing joints {", ".join(repr(m) for m in missing)}: partial goals are not '
                'allowed, every joint must be listed')
        # order[i] = message column holding robot joint i
        position = {name: i for i, name in enumerate(names)}
        return np.array([position[name] for name in self.joint_names])

    def _validate(self, points: list[TrajectoryPoint], columns: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        n = len(self.joint_names)
        with_velocity = [len(p.velocities) > 0 for p in points]
        if any(with_velocity) and not all(with_velocity):
            missing = with_velocity.index(False)
            raise TrajectoryRejected(
                f'point {missing} has no velocities while other points have them: give '
                'velocities on every point or on none')
        positions = np.empty((len(points), n))
        velocities = np.empty((len(points), n)) if all(with_velocity) else None
        offsets = np.empty(len(points))
        for i, point in enumerate(points):
            if len(point.positions) != n:
                raise TrajectoryRejected(
                    f'point {i} has {len(point.positions)} positions for {n} joints')
            if velocities is not None and len(point.velocities) != n:
                raise TrajectoryRejected(
                    f'point {i} has {len(point.velocities)} velocities for {n} joints '
                    '(give none or one per joint)')
            if len(point.accelerations):
                raise TrajectoryRejected(
                    f'point {i} has {len(point.accelerations)} accelerations: accelerations '
                    'are not supported (give none)')
            offsets[i] = float(point.time_from_start)
            if not math.isfinite(offsets[i]):
                raise TrajectoryRejected(f'point {i}: time_from_start is not finite')
            if i == 0 and offsets[i] < 0:
                raise TrajectoryRejected(f'point 0: negative time_from_start {offsets[0]} s')
            if i > 0 and offsets[i] <= offsets[i - 1]:
                raise TrajectoryRejected(
                    f'time_from_start not strictly increasing: point {i} at {offsets[i]} s, '
                    f'point {i - 1} at {offsets[i - 1]} s')
            positions[i] = np.asarray(point.positions, np.float64)[columns]
            self._check_finite(positions[i], 'positions', i)
            if velocities is not None:
                velocities[i] = np.asarray(point.velocities, np.float64)[columns]
                self._check_finite(velocities[i], 'velocities', i)
            outside = (positions[i] < self._lower) | (positions[i] > self._upper)
            if outside.any():
                j = int(np.argmax(outside))
                raise TrajectoryRejected(
                    f'point {i}: position {positions[i, j]} of joint {self.joint_names[j]!r} is '
                    f'outside its limits [{self._lower[j]}, {self._upper[j]}]')
        if velocities is not None and np.any(velocities[-1] != 0.0):
            j = int(np.argmax(velocities[-1] != 0.0))
            raise TrajectoryRejected(
                f'last point {len(points) - 1} has non-zero velocity {velocities[-1, j]} for '
                f'joint {self.joint_names[j]!r}: a trajectory must end at rest')
        return positions, velocities, offsets

    def _check_finite(self, values: np.ndarray, what: str, point: int) -> None:
        bad = ~np.isfinite(values)
        if bad.any():
            j = int(np.argmax(bad))
            raise TrajectoryRejected(
                f'point {point}: non-finite {what} ({values[j]}) for joint '
                f'{self.joint_names[j]!r}')
