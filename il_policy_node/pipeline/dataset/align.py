"""One bag -> time-aligned segments on the control-rate grid (runs in a worker process)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from il_policy_node.errors import BagError
from il_policy_node.pipeline.bag_decoding import JOINT_STATE, JOINT_TRAJECTORY, JointSeries
from il_policy_node.pipeline.bags import bag_fingerprint, bag_metadata, bag_name, read_topics
from il_policy_node.pipeline.dataset.config import DatasetConfig
from il_policy_node.recording.metadata import EpisodeMetadata, partial_reason


@dataclass
class Segment:
    """Aligned rows of one episode (or of one part of it between gaps)."""

    index: int
    position: np.ndarray          # float32 [T, J] observation positions (all topic joints)
    velocity: np.ndarray | None   # float32 [T, J]
    action: np.ndarray            # float32 [T, A] (all command joints or the topic joints)
    extra: list[tuple[np.ndarray, np.ndarray | None]] = field(default_factory=list)
    # per observation.extra input: (positions, velocities or None), all its topic's joints

    @property
    def length(self) -> int:
        return len(self.position)


@dataclass
class EpisodeResult:
    """What a worker returns for one bag: segments, or why the bag is not used."""

    bag: str
    name: str
    fingerprint: str = ''
    success: bool | None = None
    task: str | None = None
    partial: bool = False                     # salvaged from an episode never closed
    joints: tuple[str, ...] = ()
    action_joints: tuple[str, ...] = ()
    extra_joints: list[tuple[str, ...]] = field(default_factory=list)  # per extra input
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None                  # a bad bag
    notes: list[str] = field(default_factory=list)   # left-out parts (gaps, too short, ...)
    messages: int = 0


def event_times(series: JointSeries, config: DatasetConfig, topic: str) -> np.ndarray:
    """The timestamps (ns) the config aligns on; BagError for zero, equal or unsorted ones."""
    if config.timestamps == 'header':
        zero = int(np.count_nonzero(series.stamp_ns == 0))
        if zero:
            raise BagError(f'topic {topic}: header.stamp is zero in {zero} messages (use '
                           'timestamps: receive)')
        ns = series.stamp_ns
    else:
        ns = series.receive_ns
    diffs = np.diff(ns)
    bad = np.flatnonzero(diffs <= 0)
    if len(bad):
        kind = 'duplicate' if diffs[bad[0]] == 0 else 'unsorted'
        raise BagError(f'topic {topic}: {kind} {config.timestamps} timestamps at message '
                       f'{bad[0] + 1} ({len(bad)} in all)')
    return ns


def _check_finite(topic: str, name: str, values: np.ndarray | None,
                  joints: Sequence[str]) -> None:
    if values is None:
        return
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise BagError(f'topic {topic}: NaN or infinite {name} in {len(rows)} values (first: '
                       f'message {rows[0]}, joint {joints[cols[0]]})')


def _interp(t_grid: np.ndarray, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation of every column of ``values`` (sampled at ``t``) at ``t_grid``.

    Computed in float64, returned in the dataset's float32.
    """
    i = np.clip(np.searchsorted(t, t_grid, side='right') - 1, 0, len(t) - 2)
    w = ((t_grid - t[i]) / (t[i + 1] - t[i]))[:, None]
    return (values[i] * (1.0 - w) + values[i + 1] * w).astype(np.float32)


def gap_intervals(t: np.ndarray, max_gap: float) -> list[tuple[float, float]]:
    """(start, end) of every interval between samples longer than ``max_gap`` seconds."""
    idx = np.flatnonzero(np.diff(t) > max_gap)
    return [(float(t[i]), float(t[i + 1])) for i in idx]


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, overlapping intervals merged (a stall seen on several topics is one gap)."""
    merged: list[tuple[float, float]] = []
    for g0, g1 in sorted(intervals):
        if merged and g0 <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], g1))
        else:
            merged.append((g0, g1))
    return merged


def load_episode(bag: str, config: DatasetConfig) -> EpisodeResult:
    """One bag -> aligned segments; any problem becomes ``error`` (never raises)."""
    path = Path(bag)
    result = EpisodeResult(bag=bag, name=bag_name(path))
    try:
        _load(path, config, result)
    except BagError as exc:
        result.error = str(exc)
        result.segments = []
    except Exception as exc:   # a worker must report, not die
        result.error = f'{type(exc).__name__}: {exc}'
        result.segments = []
    return result


def episode_metadata(path: Path) -> EpisodeMetadata:
    """A bag's episode metadata; BagError for a partial episode or a bad metadata.yaml."""
    partial = partial_reason(path) if path.is_dir() else None
    if partial is not None:
        raise BagError(partial)
    return EpisodeMetadata.from_custom_data(bag_metadata(path).get('custom_data'))


def _load(path: Path, config: DatasetConfig, result: EpisodeResult) -> None:
    metadata = episode_metadata(path)
    result.success, result.task = metadata.success, metadata.task or None
    result.partial = metadata.partial
    result.fingerprint = bag_fingerprint(path)
    if result.success is False and not config.include_failed:
        result.notes.append('left out: success=false')
        return
    topics = {config.observation_topic: (JOINT_STATE,)}
    topics.update({topic: (JOINT_STATE,) for topic, _, _ in config.extra})
    if config.action_source == 'command':
        if config.action_topic == config.observation_topic:
            raise BagError('action.topic is the observation topic')
        topics[config.action_topic] = (JOINT_STATE, JOINT_TRAJECTORY)
    series = read_topics(path, topics)
    obs = series[config.observation_topic]
    result.messages = sum(len(s.position) for s in series.values())
    result.joints = obs.names
    _check_finite(config.observation_topic, 'position', obs.position, obs.names)
    if 'velocity' in config.fields:
        if obs.velocity is None:
            raise BagError(f'topic {config.observation_topic}: messages carry no velocity '
                           '(observation.fields asks for it)')
        _check_finite(config.observation_topic, 'velocity', obs.velocity, obs.names)
    ns = event_times(obs, config, config.observation_topic)
    origin = ns[0]
    t_obs = (ns - origin) * 1e-9
    gaps = gap_intervals(t_obs, config.max_gap_s)
    start, end = t_obs[0], t_obs[-1]
    inputs = []
    for topic, _, fields in config.extra:
        series_in = series[topic]
        _check_finite(topic, 'position', series_in.position, series_in.names)
        if 'velocity' in fields:
            if series_in.velocity is None:
                raise BagError(f'topic {topic}: messages carry no velocity (observation.extra '
                               'asks for it)')
            _check_finite(topic, 'velocity', series_in.velocity, series_in.names)
        t_in = (event_times(series_in, config, topic) - origin) * 1e-9
        if len(t_in) < 2:
            raise BagError(f'topic {topic}: fewer than 2 messages')
        gaps += gap_intervals(t_in, config.max_gap_s)
        start, end = max(start, t_in[0]), min(end, t_in[-1])
        inputs.append((t_in, series_in, 'velocity' in fields))
        result.extra_joints.append(series_in.names)
    cmd = None
    if config.action_source == 'command':
        cmd = series[config.action_topic]
        result.action_joints = cmd.names
        _check_finite(config.action_topic, 'position', cmd.position, cmd.names)
        t_cmd = (event_times(cmd, config, config.action_topic) - origin) * 1e-9
        gaps += gap_intervals(t_cmd, config.max_gap_s)
        start, end = max(start, t_cmd[0]), min(end, t_cmd[-1])
        if len(t_cmd) < 2:
            raise BagError(f'topic {config.action_topic}: fewer than 2 commands')
    else:
        result.action_joints = obs.names
    if len(t_obs) < 2 or end <= start:
        raise BagError(f'topic {config.observation_topic}: no overlapping time span')
    if gaps and config.gap_policy == 'drop':
        first = min(gaps)
        result.notes.append(f'dropped: {len(gaps)} gap(s) longer than {config.max_gap_s} s '
                            f'(first {first[1] - first[0]:.3f} s at t={first[0]:.3f} s)')
        return
    # pieces between gaps (split policy): the common span [start, end] minus the gaps (sorted,
    # disjoint; a gap may begin before the start or end after the end); each piece is one
    # segment on its own grid
    cuts = _union(gaps)
    pieces, lo = [], start
    for g0, g1 in cuts:
        if g0 > lo:
            pieces.append((lo, min(g0, end)))
        lo = max(lo, g1)
        if lo >= end:
            break
    if lo < end:
        pieces.append((lo, end))
    if cuts:
        result.notes.append(f'split at {len(cuts)} gap(s) longer than {config.max_gap_s} s: '
                            + ', '.join(f'{g1 - g0:.3f} s at t={g0:.3f} s' for g0, g1 in cuts))
    dt = config.dt
    k = config.future_steps if config.action_source == 'future_state' else 0
    min_rows = max(2, int(math.floor(config.min_episode_s / dt + 1e-9)) + 1)
    for number, (p0, p1) in enumerate(pieces):
        rows = int(math.floor((p1 - p0) / dt + 1e-9)) + 1
        if rows - k < min_rows:
            result.notes.append(f'segment {number} left out: {(rows - 1) * dt:.3f} s, shorter '
                                f'than min_episode_s {config.min_episode_s} s after alignment')
            continue
        grid = p0 + np.arange(rows) * dt
        position = _interp(grid, t_obs, obs.position)
        velocity = _interp(grid, t_obs, obs.velocity) \
            if 'velocity' in config.fields else None
        extra = [(_interp(grid, t_in, s_in.position),
                  _interp(grid, t_in, s_in.velocity) if with_velocity else None)
                 for t_in, s_in, with_velocity in inputs]
        if cmd is None:
            action = position[k:]
            keep = slice(0, rows - k)
            position = position[keep]
            velocity = None if velocity is None else velocity[keep]
            extra = [(p[keep], None if v is None else v[keep]) for p, v in extra]
        else:
            action = _interp(grid, t_cmd, cmd.position)
        result.segments.append(Segment(len(result.segments), position, velocity, action, extra))
    if not result.segments:
        result.notes.append('left out: no segment long enough')


