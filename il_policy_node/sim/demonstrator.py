"""Scripted demonstrator: human-like joint-space demonstrations, deterministic given a seed.

A stand-in for a human demonstrator (a mocap suit retargeted to joints, a teleop leader arm).
ROS-free (numpy only); the node il_policy_node.nodes.demonstrator_node streams these episodes.

Tasks (everything per joint is an array in ``joint_names`` order):

- ``wave``: from a random start pose, a minimum-jerk blend onto a periodic motion
  ``q(t) = center + scale * amplitude * sin(2*pi*t/period + phase)`` (positions, velocities
  and accelerations continuous at the end of the blend), then ``wave_cycles`` cycles. Each
  episode draws its own period (tempo) and amplitude scale around the nominal ones.
- ``detour``: from a random start near ``detour_start`` to a random goal near
  ``detour_goal``, with DETOUR_OBSTACLE (a post, in sim_robot's scene) in the way of the
  straight path: one minimum-jerk move round it, on the left or on the right at random,
  through a way point beside it (the shoulder pan turned by +- ``detour_side_rad`` half
  way) without stopping there, as a person goes round a post, then a hold. Averaging the
  two ways gives the straight path into the post.
- ``reach``: from a random start pose, a minimum-jerk move to a random goal whose duration
  grows with the distance (``reach_base_s + distance / reach_speed_rad_s``, with jitter), then
  a hold at the goal for ``reach_hold_s``. With ``reaches_per_episode`` = n > 1 the episode
  goes on as a human demonstrator would between trials: a reach to a new random start pose,
  a hold, a reach to a new goal, ... (n goals, n - 1 returns; each move is a reach to the pose
  published as the goal, so every part of the episode is a demonstration of the task).

Episode ``i`` of ``episodes(task, seed, config)`` depends only on (task, seed, i, config).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator

import numpy as np

from il_policy_node.errors import ConfigError
from il_policy_node.robots.models import Obstacle

ARM6_JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
               'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint')
ARM6_LOWER = (-2.9, -2.0, -2.5, -2.9, -2.0, -2.9)
ARM6_UPPER = (2.9, 2.0, 2.5, 2.9, 2.0, 2.9)
ARM6_HOME = (0.0, -0.5, 1.0, 0.0, 0.5, 0.0)


NOISE_COMPONENTS = 3     # sinusoids per joint in the robot-command perturbation
NOISE_MIN_HZ = 0.1
NOISE_FADE_S = 0.5       # the perturbation fades in after the start and out before the end


class Task(str, Enum):
    WAVE = 'wave'
    REACH = 'reach'
    DETOUR = 'detour'


GOAL_TASKS = (Task.REACH, Task.DETOUR)      # tasks that publish the goal being reached
# The detour task's obstacle: a post that the straight joint-space path from the detour
# starts to their goals runs into, and that a way round on either side clears.
DETOUR_OBSTACLE = Obstacle(x=0.45, y=0.1, z=0.85, radius=0.06, half_height=0.2)


@dataclass(frozen=True)
class Teaching:
    """How a task is demonstrated to teach a policy (the main job, sim_demo.launch.py).

    Commanded at the policy's control rate (a command and its effect are then timed the same
    in training and in use), with DART drive noise (the demonstrations show the way back from
    deviations); reach episodes of several reaches.
    """

    drive_noise_rad: float
    reaches_per_episode: int = 1


TEACHING_RATE_HZ = 50.0           # demonstrations commanded, policies trained and run at this
TEACHING = {Task.WAVE: Teaching(drive_noise_rad=0.05),
            Task.REACH: Teaching(drive_noise_rad=0.1, reaches_per_episode=4),
            Task.DETOUR: Teaching(drive_noise_rad=0.03)}


def _tuple(values, n: int, name: str) -> tuple[float, ...]:
    """``values`` as n floats; one value is repeated for every joint."""
    values = tuple(float(v) for v in values)
    if len(values) == 1 and n != 1:
        values = values * n
    if len(values) != n:
        raise ConfigError(f'{name} has {len(values)} values, joint_names has {n}')
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f'{name} has values that are not finite: {values}')
    return values


@dataclass(frozen=True)
class DemonstratorConfig:
    """Everything that shapes the demonstrations; the defaults are for the arm6 model.

    Per-joint fields take one value per joint (``joint_names`` order) or a single value for
    all joints. Empty ``wave_center`` and detour poses = ``home``; empty reach goal bounds =
    the limits.
    """

    joint_names: tuple[str, ...] = ARM6_JOINTS
    lower_limits: tuple[float, ...] = ARM6_LOWER
    upper_limits: tuple[float, ...] = ARM6_UPPER
    home: tuple[float, ...] = ARM6_HOME
    limit_margin_rad: float = 0.1           # poses stay this far inside the limits
    start_range_rad: tuple[float, ...] = (0.4,)   # start pose: uniform in home +- this
    # wave
    wave_period_s: float = 2.0
    wave_cycles: int = 4
    wave_center: tuple[float, ...] = ()
    wave_amplitudes_rad: tuple[float, ...] = (0.5, 0.0, 0.4, 0.6, 0.0, 0.0)
    wave_phases_rad: tuple[float, ...] = (0.0, 0.0, math.pi / 2, math.pi, 0.0, 0.0)
    wave_period_jitter: float = 0.05        # period uniform in nominal * (1 +- this)
    wave_amplitude_jitter: float = 0.1      # amplitude scale uniform in 1 +- this
    wave_entry_s: float = 1.5               # minimum-jerk blend from the start onto the cycle
    # reach
    # goals in a region of the workspace (as objects on a table), +-0.3 rad around a pose
    reach_goal_lower: tuple[float, ...] = (0.5, -1.2, 1.2, -0.9, 0.6, 0.5)
    reach_goal_upper: tuple[float, ...] = (1.1, -0.6, 1.8, -0.3, 1.2, 1.1)
    reach_base_s: float = 0.8
    reach_speed_rad_s: float = 1.0          # Euclidean joint-space distance per second
    reach_duration_jitter: float = 0.1      # move duration times uniform 1 +- this
    reach_hold_s: float = 1.0
    reaches_per_episode: int = 1
    # detour (DETOUR_OBSTACLE in the way; poses drawn uniformly in +- detour_range_rad;
    # empty = home)
    detour_start: tuple[float, ...] = (0.0, -0.5, 1.0, 0.0, 0.5, 0.0)
    detour_goal: tuple[float, ...] = (0.0, 0.9, 0.6, 0.0, 0.5, 0.0)
    detour_range_rad: float = 0.08
    detour_side_rad: float = 0.9            # the shoulder pan's turn at the way point
    # DART-style perturbation of what the robot is sent (the recorded command stays clean):
    # smooth noise of this std per joint, up to drive_noise_hz, so the demonstrations also
    # show states off the nominal motion and the command that leads back. 0 = none.
    drive_noise_rad: float = 0.0
    drive_noise_hz: float = 0.5

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.joint_names)
        n = len(names)
        if n == 0 or len(set(names)) != n:
            raise ConfigError(f'joint_names must be non-empty and unique: {names}')
        set_ = object.__setattr__
        set_(self, 'joint_names', names)
        for name in ('lower_limits', 'upper_limits', 'home', 'start_range_rad',
                     'wave_amplitudes_rad', 'wave_phases_rad'):
            set_(self, name, _tuple(getattr(self, name), n, name))
        for name in ('detour_start', 'detour_goal'):
            set_(self, name, _tuple(getattr(self, name) or self.home, n, name))
        set_(self, 'wave_center', _tuple(self.wave_center or self.home, n, 'wave_center'))
        set_(self, 'reach_goal_lower',
             _tuple(self.reach_goal_lower or self.lower_limits, n, 'reach_goal_lower'))
        set_(self, 'reach_goal_upper',
             _tuple(self.reach_goal_upper or self.upper_limits, n, 'reach_goal_upper'))
        set_(self, 'wave_cycles', int(self.wave_cycles))
        set_(self, 'reaches_per_episode', int(self.reaches_per_episode))
        self._validate()

    def _validate(self) -> None:
        lower, upper = self.safe_lower, self.safe_upper
        if self.limit_margin_rad < 0 or not (lower < upper).all():
            raise ConfigError('every lower limit + limit_margin_rad must be below the upper '
                             'limit - limit_margin_rad')
        if not ((lower <= self.home_array) & (self.home_array <= upper)).all():
            raise ConfigError(f'home {self.home} is not inside the limits minus the margin')
        positive = {'wave_period_s': self.wave_period_s, 'wave_entry_s': self.wave_entry_s,
                    'reach_speed_rad_s': self.reach_speed_rad_s}
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f'{name} must be > 0, got {value}')
        non_negative = {'reach_base_s': self.reach_base_s, 'reach_hold_s': self.reach_hold_s,
                        'wave_cycles': self.wave_cycles, 'drive_noise_rad': self.drive_noise_rad}
        for name, value in non_negative.items():
            if not value >= 0:
                raise ConfigError(f'{name} must be >= 0, got {value}')
        if self.reaches_per_episode < 1:
            raise ConfigError(f'reaches_per_episode must be >= 1, got {self.reaches_per_episode}')
        if not self.drive_noise_hz > NOISE_MIN_HZ:
            raise ConfigError(f'drive_noise_hz must be > {NOISE_MIN_HZ}, got '
                             f'{self.drive_noise_hz}')
        for name in ('wave_period_jitter', 'wave_amplitude_jitter', 'reach_duration_jitter'):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f'{name} must be in [0, 1), got {getattr(self, name)}')
        if (np.asarray(self.start_range_rad) < 0).any():
            raise ConfigError('start_range_rad must be >= 0')
        reach = np.asarray(self.reach_goal_lower), np.asarray(self.reach_goal_upper)
        if not (reach[0] <= reach[1]).all():
            raise ConfigError('reach_goal_lower must be <= reach_goal_upper')
        if not ((reach[1] >= lower) & (reach[0] <= upper)).all():
            raise ConfigError('the reach goal box does not overlap the limits minus the margin')
        reach_max = np.abs(self.wave_amplitudes_rad) * (1.0 + self.wave_amplitude_jitter)
        center = np.asarray(self.wave_center)
        outside = (center - reach_max < lower) | (center + reach_max > upper)
        if outside.any():
            joints = [j for j, o in zip(self.joint_names, outside) if o]
            raise ConfigError(f'the wave (center +- amplitude * (1 + wave_amplitude_jitter)) '
                             f'leaves the limits minus the margin for {joints}')

    @property
    def safe_lower(self) -> np.ndarray:
        return np.asarray(self.lower_limits) + self.limit_margin_rad

    @property
    def safe_upper(self) -> np.ndarray:
        return np.asarray(self.upper_limits) - self.limit_margin_rad

    @property
    def home_array(self) -> np.ndarray:
        return np.asarray(self.home, np.float64)


# -- minimum jerk ------------------------------------------------------------------------------
def min_jerk_profile(tau) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """s, ds/dtau, d2s/dtau2 of 10 tau^3 - 15 tau^4 + 6 tau^5 (tau clipped to [0, 1])."""
    tau = np.clip(np.asarray(tau, np.float64), 0.0, 1.0)
    t2 = tau * tau
    s = t2 * tau * (10.0 + tau * (-15.0 + 6.0 * tau))
    ds = 30.0 * t2 * (1.0 - tau) ** 2
    dds = 60.0 * tau * (1.0 - tau) * (1.0 - 2.0 * tau)
    return s, ds, dds


def min_jerk(start, goal, duration_s, t) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities of a minimum-jerk move from ``start`` to ``goal``.

    ``start``/``goal``: [joints] (or one per time, [n, joints]); ``t``: a scalar or [n] times
    (s) -> [joints] or [n, joints]; ``duration_s``: a scalar or one per time. Before 0 the
    start, after ``duration_s`` the goal, both at rest.
    """
    duration_s = np.asarray(duration_s, np.float64)
    if not (duration_s > 0).all():
        raise ConfigError(f'duration_s must be > 0, got {duration_s}')
    start, goal = np.asarray(start, np.float64), np.asarray(goal, np.float64)
    t = np.asarray(t, np.float64)
    s, ds, _ = min_jerk_profile(t / duration_s)
    delta = goal - start
    positions = start + s[..., None] * delta
    velocities = (ds / duration_s)[..., None] * delta
    return positions, velocities


# -- episodes ----------------------------------------------------------------------------------
def _readonly(values) -> np.ndarray:
    array = np.array(values, np.float64)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Episode:
    """One demonstration: what was drawn for it and ``sample(t)`` of its motion.

    Times are seconds from the episode start; before 0 the start pose, after ``duration_s``
    the final pose, both with zero velocity.
    """

    index: int
    task: Task
    joint_names: tuple[str, ...]
    start: np.ndarray                   # [joints]
    duration_s: float
    goal: np.ndarray | None = None      # reach only: the first goal (the one runs are judged by)
    period_s: float | None = None       # wave only: this episode's period
    amplitude_scale: float | None = None    # wave only
    cycles: int | None = None           # wave only
    entry_s: float | None = None        # wave only: blend from the start onto the cycle
    move_s: float | None = None         # reach: the first minimum-jerk move; detour: all
    hold_s: float | None = None         # reach only: the hold after each move
    # reach: start, goal 1, start 2, goal 2, ... [moves + 1, joints] and each move's time
    # (reach only); detour: start, way point, goal
    waypoints: np.ndarray | None = field(default=None, repr=False)
    moves_s: np.ndarray | None = field(default=None, repr=False)
    center: np.ndarray | None = field(default=None, repr=False)       # wave only
    amplitudes: np.ndarray | None = field(default=None, repr=False)   # wave, scaled
    phases: np.ndarray | None = field(default=None, repr=False)       # wave only
    # poses to pass on the way to the start before the episode (detour: its way point, so
    # the robot does not go through the post from the last goal); None = straight there
    approach: np.ndarray | None = field(default=None, repr=False)
    # the robot-command perturbation: amplitude, frequency (Hz), phase of each [component,
    # joint] sinusoid; None = no perturbation
    drive_noise: np.ndarray | None = field(default=None, repr=False)  # [3, components, J]

    def cycle(self, t) -> tuple[np.ndarray, np.ndarray]:
        """The wave's periodic motion (positions, velocities) at ``t``, without the entry."""
        t = np.asarray(t, np.float64)[..., None]
        omega = 2.0 * math.pi / self.period_s
        angle = omega * t + self.phases
        return (self.center + self.amplitudes * np.sin(angle),
                self.amplitudes * omega * np.cos(angle))

    def sample(self, t) -> tuple[np.ndarray, np.ndarray]:
        """Positions and velocities at ``t`` (scalar -> [joints], [n] -> [n, joints])."""
        t = np.asarray(t, np.float64)
        inside = (t >= 0.0) & (t <= self.duration_s)
        tc = np.clip(t, 0.0, self.duration_s)
        if self.task is Task.DETOUR:
            positions, velocities = self._round_the_post(tc)
        elif self.task is Task.REACH:
            move, t0 = self._reach_segment(tc)
            positions, velocities = min_jerk(self.waypoints[move], self.waypoints[move + 1],
                                             self.moves_s[move], tc - t0)
        else:
            # Convex blend start -> cycle: q = start + s (c - start). At tau = 0 the start at
            # rest; at tau = 1 (s = 1, s' = s'' = 0) the cycle with its velocity and
            # acceleration. A convex combination of poses inside the limits stays inside.
            s, ds, _ = min_jerk_profile(tc / self.entry_s)
            c, dc = self.cycle(tc)
            s, ds = s[..., None], (ds / self.entry_s)[..., None]
            positions = self.start + s * (c - self.start)
            velocities = ds * (c - self.start) + s * dc
        velocities = np.where(inside[..., None], velocities, 0.0)
        return positions, velocities

    def _round_the_post(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detour: minimum-jerk progress s along start -> goal, plus the side offset x sin(pi s).

        The offset is the way point's from the middle of start and goal: the path passes the
        way point at s = 1/2, at speed.
        """
        s, ds, _ = min_jerk_profile(t / self.move_s)
        s, ds = s[..., None], (ds / self.move_s)[..., None]
        line = self.goal - self.start
        side = self.waypoints[1] - 0.5 * (self.start + self.goal)
        positions = self.start + s * line + np.sin(math.pi * s) * side
        velocities = ds * (line + math.pi * np.cos(math.pi * s) * side)
        return positions, velocities

    def _reach_segment(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the reach under way at each ``t`` and the time that reach began."""
        starts = np.concatenate([[0.0], np.cumsum(self.moves_s + self.hold_s)[:-1]])
        move = np.clip(np.searchsorted(starts, t, side='right') - 1, 0, len(starts) - 1)
        return move, starts[move]

    def goal_at(self, t: float) -> np.ndarray:
        """The goal being reached at ``t`` (reach and detour: the way point is not a goal)."""
        if self.task is Task.DETOUR:
            return self.goal
        move, _ = self._reach_segment(np.clip(np.asarray(t, np.float64), 0.0, self.duration_s))
        return self.waypoints[move + 1]

    def perturbation(self, t) -> np.ndarray:
        """What is added to the robot's command at ``t`` (zero at the start and the end)."""
        t = np.asarray(t, np.float64)
        if self.drive_noise is None:
            return np.zeros(t.shape + (len(self.joint_names),))
        amplitude, frequency, phase = self.drive_noise
        fade_in, _, _ = min_jerk_profile(t / NOISE_FADE_S)
        fade_out, _, _ = min_jerk_profile((self.duration_s - t) / NOISE_FADE_S)
        angle = 2.0 * math.pi * frequency * t[..., None, None] + phase
        return (fade_in * fade_out)[..., None] * (amplitude * np.sin(angle)).sum(axis=-2)

    def info(self) -> dict:
        """A JSON-friendly summary (index, task, start, goal, duration, period, ...)."""
        def rounded(values):
            return None if values is None else [round(float(v), 6) for v in values]
        return {'index': self.index, 'task': self.task.value,
                'joint_names': list(self.joint_names), 'start': rounded(self.start),
                'goal': rounded(self.goal), 'duration_s': round(self.duration_s, 6),
                'period_s': self.period_s, 'amplitude_scale': self.amplitude_scale,
                'cycles': self.cycles, 'entry_s': self.entry_s, 'move_s': self.move_s,
                'hold_s': self.hold_s,
                'waypoints': None if self.waypoints is None else
                [rounded(w) for w in self.waypoints],
                'moves_s': rounded(self.moves_s)}


def random_start(config: DemonstratorConfig, rng: np.random.Generator) -> np.ndarray:
    """Uniform in home +- start_range_rad, clipped to the limits minus the margin."""
    span = np.asarray(config.start_range_rad)
    pose = config.home_array + rng.uniform(-1.0, 1.0, span.size) * span
    return np.clip(pose, config.safe_lower, config.safe_upper)


def _drive_noise(config: DemonstratorConfig, rng: np.random.Generator) -> np.ndarray | None:
    """Sinusoids summing to std drive_noise_rad per joint; drawn last, after the rest."""
    if config.drive_noise_rad == 0.0:
        return None
    shape = (NOISE_COMPONENTS, len(config.joint_names))
    amplitude = np.full(shape, config.drive_noise_rad * math.sqrt(2.0 / NOISE_COMPONENTS))
    frequency = rng.uniform(NOISE_MIN_HZ, config.drive_noise_hz, shape)
    phase = rng.uniform(0.0, 2.0 * math.pi, shape)
    return _readonly(np.stack([amplitude, frequency, phase]))


def wave_episode(config: DemonstratorConfig, rng: np.random.Generator,
                 index: int = 0) -> Episode:
    start = random_start(config, rng)
    period = config.wave_period_s * (1.0 + rng.uniform(-1.0, 1.0) * config.wave_period_jitter)
    scale = 1.0 + rng.uniform(-1.0, 1.0) * config.wave_amplitude_jitter
    entry = config.wave_entry_s
    return Episode(
        index=index, task=Task.WAVE, joint_names=config.joint_names, start=_readonly(start),
        duration_s=entry + config.wave_cycles * period, period_s=float(period),
        amplitude_scale=float(scale), cycles=config.wave_cycles, entry_s=entry,
        center=_readonly(config.wave_center),
        amplitudes=_readonly(scale * np.asarray(config.wave_amplitudes_rad)),
        phases=_readonly(config.wave_phases_rad), drive_noise=_drive_noise(config, rng))


def reach_episode(config: DemonstratorConfig, rng: np.random.Generator,
                  index: int = 0) -> Episode:
    low = np.maximum(config.reach_goal_lower, config.safe_lower)
    high = np.minimum(config.reach_goal_upper, config.safe_upper)
    waypoints, moves = [random_start(config, rng)], []
    for reach in range(2 * config.reaches_per_episode - 1):
        target = rng.uniform(low, high) if reach % 2 == 0 else random_start(config, rng)
        distance = float(np.linalg.norm(target - waypoints[-1]))
        move = (config.reach_base_s + distance / config.reach_speed_rad_s) * \
            (1.0 + rng.uniform(-1.0, 1.0) * config.reach_duration_jitter)
        waypoints.append(target)
        moves.append(max(move, 1e-3))
    return Episode(
        index=index, task=Task.REACH, joint_names=config.joint_names,
        start=_readonly(waypoints[0]), goal=_readonly(waypoints[1]), move_s=float(moves[0]),
        duration_s=float(sum(moves) + len(moves) * config.reach_hold_s),
        hold_s=config.reach_hold_s, waypoints=_readonly(waypoints), moves_s=_readonly(moves),
        drive_noise=_drive_noise(config, rng))


def detour_episode(config: DemonstratorConfig, rng: np.random.Generator,
                   index: int = 0) -> Episode:
    span = config.detour_range_rad
    start = np.clip(np.asarray(config.detour_start) + rng.uniform(-span, span, len(
        config.joint_names)), config.safe_lower, config.safe_upper)
    goal = np.clip(np.asarray(config.detour_goal) + rng.uniform(-span, span, len(
        config.joint_names)), config.safe_lower, config.safe_upper)
    side = 1.0 if rng.uniform() < 0.5 else -1.0
    via = 0.5 * (start + goal)
    via[0] += side * config.detour_side_rad
    waypoints, moves = [start, via, goal], []
    for a, b in zip(waypoints[:-1], waypoints[1:]):
        move = (config.reach_base_s + float(np.linalg.norm(b - a)) / config.reach_speed_rad_s) \
            * (1.0 + rng.uniform(-1.0, 1.0) * config.reach_duration_jitter)
        moves.append(max(move, 1e-3))
    return Episode(
        index=index, task=Task.DETOUR, joint_names=config.joint_names,
        start=_readonly(start), goal=_readonly(goal), move_s=float(sum(moves)),
        duration_s=float(sum(moves) + config.reach_hold_s),
        waypoints=_readonly(waypoints), approach=_readonly([via]),
        drive_noise=_drive_noise(config, rng))


MAKERS = {Task.WAVE: wave_episode, Task.REACH: reach_episode, Task.DETOUR: detour_episode}


def make_episode(task: Task | str, seed: int, index: int,
                 config: DemonstratorConfig | None = None) -> Episode:
    """Episode ``index`` of ``episodes(task, seed, config)``, on its own."""
    config = config or DemonstratorConfig()
    task = Task(task)
    rng = np.random.default_rng([int(seed), int(index), list(Task).index(task)])
    return MAKERS[task](config, rng, index)


def episodes(task: Task | str, seed: int,
             config: DemonstratorConfig | None = None) -> Iterator[Episode]:
    """Endless episodes 0, 1, 2, ...; episode i depends only on (task, seed, i, config)."""
    index = 0
    while True:
        yield make_episode(task, seed, index, config)
        index += 1


# -- nominal reference for evaluation ----------------------------------------------------------
def nominal_period(config: DemonstratorConfig | None = None) -> float:
    """The wave's nominal period (s); episodes vary around it by wave_period_jitter."""
    return float((config or DemonstratorConfig()).wave_period_s)


def reference_cycle(config: DemonstratorConfig | None = None,
                    n_samples: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One nominal wave cycle: (t [n], positions [n, joints], velocities [n, joints]).

    t = k * period / n_samples, k = 0 .. n-1 (the cycle without its repeated end point), at
    the nominal period and amplitude scale 1:  center + amplitude * sin(2 pi t / T + phase).
    """
    config = config or DemonstratorConfig()
    if n_samples < 1:
        raise ConfigError(f'n_samples must be >= 1, got {n_samples}')
    period = nominal_period(config)
    t = np.arange(n_samples) * (period / n_samples)
    omega = 2.0 * math.pi / period
    angle = omega * t[:, None] + np.asarray(config.wave_phases_rad)
    amplitude = np.asarray(config.wave_amplitudes_rad)
    positions = np.asarray(config.wave_center) + amplitude * np.sin(angle)
    return t, positions, amplitude * omega * np.cos(angle)
