"""Bags -> time-aligned episodes -> one dataset directory (pipeline contract, format 1).

- ``DatasetConfig``: config/dataset.yaml, validated once; errors name the key.
- ``load_episode``: one bag -> aligned segments on the control-rate grid (runs in a worker).
- ``build_dataset``: every bag in worker processes, splits, statistics, atomic output.
- ``load_dataset``: a dataset directory, read and checked (the one reader of the format).
- ``dataset_info``: a summary of a dataset directory (or of bags) and optional PNG plots.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from il_policy_node.core.bags import (
    JOINT_STATE,
    JOINT_TRAJECTORY,
    BagError,
    JointSeries,
    bag_fingerprint,
    bag_metadata,
    find_bags,
    read_topics,
)
from il_policy_node.core.observation import ObservationSpec
from il_policy_node.core.recording import MARKER

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1
FIELDS = ('position', 'velocity')
MIN_STD = 1e-6                   # a column with a smaller std is normalized with std 1


class PipelineError(ValueError):
    """A dataset, run or policy of the offline pipeline that cannot be built or used."""


class DatasetError(PipelineError):
    """A dataset that cannot be built or read (or a bad bag in strict mode)."""


class DatasetConfigError(ValueError):
    """A bad dataset.yaml value; the message names the key."""


# -- configuration --------------------------------------------------------------------------
_DEFAULTS: dict[str, Any] = {
    'control_rate_hz': 50.0,
    'timestamps': 'header',
    'observation': {'topic': '/joint_states', 'joints': [], 'fields': list(FIELDS), 'extra': []},
    'action': {'source': 'future_state', 'topic': None, 'joints': [], 'future_steps': 1},
    'gaps': {'max_gap_s': 0.1, 'policy': 'split'},
    'min_episode_s': 0.5,
    'include_failed': False,
    'split': {'seed': 0, 'val_fraction': 0.2},
}


@dataclass(frozen=True)
class DatasetConfig:
    """The dataset builder's settings (config/dataset.yaml)."""

    control_rate_hz: float = 50.0
    timestamps: str = 'header'                       # 'header' | 'receive'
    observation_topic: str = '/joint_states'
    observation_joints: tuple[str, ...] = ()         # () = the joints of the first episode
    fields: tuple[str, ...] = FIELDS
    # further JointState topics in every frame after the state: (topic, joints, fields)
    extra: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()
    action_source: str = 'future_state'              # 'future_state' | 'command'
    action_topic: str | None = None
    action_joints: tuple[str, ...] = ()              # () = the observation joints
    future_steps: int = 1
    max_gap_s: float = 0.1
    gap_policy: str = 'split'                        # 'split' | 'drop'
    min_episode_s: float = 0.5
    include_failed: bool = False
    seed: int = 0
    val_fraction: float = 0.2

    @property
    def dt(self) -> float:
        return 1.0 / self.control_rate_hz

    @classmethod
    def from_yaml(cls, path: str | Path) -> 'DatasetConfig':
        """Read and validate a dataset.yaml."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
        except (OSError, yaml.YAMLError) as exc:
            raise DatasetConfigError(f'cannot read {path}: {exc}') from None
        return cls.from_dict(data or {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'DatasetConfig':
        """Validate a nested mapping shaped like dataset.yaml (missing keys take defaults)."""
        merged = _merge(_DEFAULTS, data, '')
        obs, act = merged['observation'], merged['action']
        gaps, split = merged['gaps'], merged['split']
        rate = _number(merged['control_rate_hz'], 'control_rate_hz', low=0.0, open_low=True)
        timestamps = _choice(merged['timestamps'], 'timestamps', ('header', 'receive'))
        fields = _fields(obs['fields'], 'observation.fields')
        source = _choice(act['source'], 'action.source', ('future_state', 'command'))
        topic = act['topic']
        if source == 'command' and not (isinstance(topic, str) and topic):
            raise DatasetConfigError('action.topic must name the command topic when '
                                     'action.source is command')
        steps = act['future_steps']
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise DatasetConfigError(f'action.future_steps must be an integer >= 1, got '
                                     f'{steps!r}')
        seed = split['seed']
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise DatasetConfigError(f'split.seed must be an integer, got {seed!r}')
        _topic(obs['topic'], 'observation.topic')
        extra = _extra_inputs(obs['extra'], obs['topic'])
        if source == 'command' and topic in [e[0] for e in extra]:
            raise DatasetConfigError(f'action.topic {topic} is also an observation.extra topic')
        return cls(
            control_rate_hz=rate, timestamps=timestamps, observation_topic=obs['topic'],
            observation_joints=tuple(_names(obs['joints'], 'observation.joints')),
            fields=fields, extra=extra, action_source=source,
            action_topic=topic if source == 'command' else None,
            action_joints=tuple(_names(act['joints'], 'action.joints')), future_steps=steps,
            max_gap_s=_number(gaps['max_gap_s'], 'gaps.max_gap_s', low=0.0, open_low=True),
            gap_policy=_choice(gaps['policy'], 'gaps.policy', ('split', 'drop')),
            min_episode_s=_number(merged['min_episode_s'], 'min_episode_s', low=0.0),
            include_failed=_bool(merged['include_failed'], 'include_failed'), seed=seed,
            val_fraction=_number(split['val_fraction'], 'split.val_fraction', low=0.0,
                                 high=1.0, open_high=True))

    def to_dict(self) -> dict[str, Any]:
        """The dataset.yaml content as used (every key, defaults filled in)."""
        return {
            'control_rate_hz': self.control_rate_hz, 'timestamps': self.timestamps,
            'observation': {'topic': self.observation_topic,
                            'joints': list(self.observation_joints), 'fields': list(self.fields),
                            'extra': [{'topic': t, 'joints': list(j), 'fields': list(f)}
                                      for t, j, f in self.extra]},
            'action': {'source': self.action_source, 'topic': self.action_topic,
                       'joints': list(self.action_joints), 'future_steps': self.future_steps},
            'gaps': {'max_gap_s': self.max_gap_s, 'policy': self.gap_policy},
            'min_episode_s': self.min_episode_s, 'include_failed': self.include_failed,
            'split': {'seed': self.seed, 'val_fraction': self.val_fraction}}


def _merge(defaults: Mapping[str, Any], data: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise DatasetConfigError(f'{prefix.rstrip(".") or "dataset.yaml"} must be a mapping, '
                                 f'got {data!r}')
    unknown = sorted(set(data) - set(defaults))
    if unknown:
        raise DatasetConfigError(f'unknown key {prefix}{unknown[0]} (known: '
                                 f'{sorted(defaults)})')
    merged = {}
    for key, default in defaults.items():
        value = data.get(key, default)
        merged[key] = _merge(default, value, f'{prefix}{key}.') \
            if isinstance(default, dict) else value
    return merged


def _number(value: Any, key: str, *, low: float | None = None, high: float | None = None,
            open_low: bool = False, open_high: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise DatasetConfigError(f'{key} must be a finite number, got {value!r}')
    if low is not None and (value < low or (open_low and value == low)):
        raise DatasetConfigError(f'{key} must be {">" if open_low else ">="} {low}, got '
                                 f'{value!r}')
    if high is not None and (value > high or (open_high and value == high)):
        raise DatasetConfigError(f'{key} must be {"<" if open_high else "<="} {high}, got '
                                 f'{value!r}')
    return float(value)


def _choice(value: Any, key: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise DatasetConfigError(f'{key} must be one of {list(choices)}, got {value!r}')
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise DatasetConfigError(f'{key} must be true or false, got {value!r}')
    return value


def _topic(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise DatasetConfigError(f'{key} must be a topic name, got {value!r}')
    return value


def _fields(value: Any, key: str) -> tuple[str, ...]:
    fields = tuple(_names(value, key))
    if not fields or any(f not in FIELDS for f in fields):
        raise DatasetConfigError(f'{key} must be a non-empty list of {list(FIELDS)}, got '
                                 f'{value!r}')
    return fields


def _extra_inputs(value: Any, state_topic: str
                  ) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise DatasetConfigError(f'observation.extra must be a list, got {value!r}')
    inputs = []
    for i, item in enumerate(value):
        key = f'observation.extra[{i}]'
        if not isinstance(item, Mapping):
            raise DatasetConfigError(f'{key} must be a mapping with topic, joints, fields')
        unknown = sorted(set(item) - {'topic', 'joints', 'fields'})
        if unknown:
            raise DatasetConfigError(f'unknown key {key}.{unknown[0]} (known: fields, joints, '
                                     'topic)')
        topic = _topic(item.get('topic'), f'{key}.topic')
        if topic == state_topic or topic in [t for t, _, _ in inputs]:
            raise DatasetConfigError(f'{key}.topic {topic} is observed twice')
        inputs.append((topic, tuple(_names(item.get('joints'), f'{key}.joints')),
                       _fields(item.get('fields', ['position']), f'{key}.fields')))
    return tuple(inputs)


def _names(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or any(not isinstance(v, str) or not v
                                                   for v in value):
        raise DatasetConfigError(f'{key} must be a list of non-empty names, got {value!r}')
    dups = sorted({v for v in value if list(value).count(v) > 1})
    if dups:
        raise DatasetConfigError(f'{key} lists {dups} more than once')
    return list(value)


# -- one episode ----------------------------------------------------------------------------
@dataclass
class Segment:
    """Aligned rows of one episode (or of one part of it between gaps)."""

    index: int
    position: np.ndarray          # float64 [T, J] observation positions (all topic joints)
    velocity: np.ndarray | None   # float64 [T, J]
    action: np.ndarray            # float64 [T, A] (all command joints or the topic joints)
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
    joints: tuple[str, ...] = ()
    action_joints: tuple[str, ...] = ()
    extra_joints: list[tuple[str, ...]] = field(default_factory=list)  # per extra input
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None                  # a bad bag
    notes: list[str] = field(default_factory=list)   # left-out parts (gaps, too short, ...)
    messages: int = 0


def _times(series: JointSeries, config: DatasetConfig, topic: str) -> np.ndarray:
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
    """Linear interpolation of every column of ``values`` (sampled at ``t``) at ``t_grid``."""
    i = np.clip(np.searchsorted(t, t_grid, side='right') - 1, 0, len(t) - 2)
    w = ((t_grid - t[i]) / (t[i + 1] - t[i]))[:, None]
    return values[i] * (1.0 - w) + values[i + 1] * w


def _gaps(t: np.ndarray, max_gap: float) -> list[tuple[float, float]]:
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
    result = EpisodeResult(bag=bag, name=path.stem if path.is_file() else path.name)
    try:
        _load(path, config, result)
    except BagError as exc:
        result.error = str(exc)
        result.segments = []
    except Exception as exc:   # a worker must report, not die
        result.error = f'{type(exc).__name__}: {exc}'
        result.segments = []
    return result


def _load(path: Path, config: DatasetConfig, result: EpisodeResult) -> None:
    if path.is_dir() and (path / MARKER).exists():
        raise BagError(f'partial episode: {MARKER} marker present (the recorder did not '
                       'close this bag)')
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise BagError('no metadata.yaml: an unfinished or damaged bag')
    custom = bag_metadata(path).get('custom_data') or {}
    success = custom.get('success')
    result.success = None if success is None else str(success).lower() == 'true'
    result.task = custom.get('task') or None
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
    ns = _times(obs, config, config.observation_topic)
    origin = ns[0]
    t_obs = (ns - origin) * 1e-9
    gaps = _gaps(t_obs, config.max_gap_s)
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
        t_in = (_times(series_in, config, topic) - origin) * 1e-9
        if len(t_in) < 2:
            raise BagError(f'topic {topic}: fewer than 2 messages')
        gaps += _gaps(t_in, config.max_gap_s)
        start, end = max(start, t_in[0]), min(end, t_in[-1])
        inputs.append((t_in, series_in, 'velocity' in fields))
        result.extra_joints.append(series_in.names)
    cmd = None
    if config.action_source == 'command':
        cmd = series[config.action_topic]
        result.action_joints = cmd.names
        _check_finite(config.action_topic, 'position', cmd.position, cmd.names)
        t_cmd = (_times(cmd, config, config.action_topic) - origin) * 1e-9
        gaps += _gaps(t_cmd, config.max_gap_s)
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


# -- the whole build ------------------------------------------------------------------------
@dataclass
class BuildReport:
    """What ``build_dataset`` did: the output, the episodes kept and what was skipped."""

    output_dir: Path
    episodes: int
    rows: int
    bags: int
    skipped: list[dict[str, str]]     # {"bag", "reason"} like the manifest
    errors: list[dict[str, str]]      # the bad bags among them
    messages: int
    seconds: float
    manifest: dict[str, Any]


def build_dataset(bags_or_dirs: Sequence[str | Path], *, config: DatasetConfig,
                  output_dir: str | Path, workers: int = 1, strict: bool = False,
                  progress: bool = True, overwrite: bool = False) -> BuildReport:
    """Build a dataset directory from bags (or folders holding bags).

    Args:
        bags_or_dirs: bag folders, .mcap/.db3 files, or folders searched for bags.
        config: the builder settings (``DatasetConfig.from_yaml``).
        output_dir: DATASET_DIR; written in a temp folder beside it, then renamed.
        workers: worker processes reading bags (1 = in this process).
        strict: raise DatasetError if any bag is bad (nothing is written).
        progress: show a tqdm progress bar on stderr.
        overwrite: replace an existing DATASET_DIR (otherwise DatasetError).

    Bad bags are logged and listed in ``skipped``; DatasetError if no episode remains.
    """
    import time
    started = time.perf_counter()
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise DatasetError(f'{output_dir} exists (remove it or pass overwrite)')
    try:
        bags = [str(b) for b in find_bags(bags_or_dirs)]
    except BagError as exc:
        raise DatasetError(str(exc)) from None
    if not bags:
        raise DatasetError(f'no bags found in {[str(b) for b in bags_or_dirs]}')
    results = _run_all(bags, config, workers, progress)
    skipped, errors = [], []
    for result in results:
        if result.error is not None:
            LOG.warning('skipping bag %s: %s', result.bag, result.error)
            errors.append({'bag': result.bag, 'reason': result.error})
        for note in result.notes:
            LOG.info('bag %s: %s', result.bag, note)
            if note.startswith(('left out', 'dropped', 'segment')):
                skipped.append({'bag': result.bag, 'reason': note})
    skipped = errors + skipped
    if strict and errors:
        raise DatasetError(f'{len(errors)} bad bag(s) (strict): ' +
                           '; '.join(f'{e["bag"]}: {e["reason"]}' for e in errors))
    usable = [r for r in results if r.segments]
    if not usable:
        raise DatasetError(f'no usable episode in {len(bags)} bag(s): ' +
                           '; '.join(f'{s["bag"]}: {s["reason"]}' for s in skipped))
    obs_joints = config.observation_joints or usable[0].joints
    extra_joints = [joints or usable[0].extra_joints[i]
                    for i, (_, joints, _) in enumerate(config.extra)]
    act_joints = config.action_joints or (obs_joints if config.action_source == 'future_state'
                                          else usable[0].action_joints)
    kept = []
    for result in usable:
        missing = [j for j in obs_joints if j not in result.joints] + \
            [j for j in act_joints if j not in result.action_joints]
        missing += [f'{topic}:{j}' for (topic, _, _), wanted, have in
                    zip(config.extra, extra_joints, result.extra_joints)
                    for j in wanted if j not in have]
        if missing:
            reason = f'joints not in the bag: {sorted(set(missing))}'
            LOG.warning('skipping bag %s: %s', result.bag, reason)
            errors.append({'bag': result.bag, 'reason': reason})
            skipped.append({'bag': result.bag, 'reason': reason})
            continue
        kept.append(result)
    if strict and len(kept) < len(usable):
        raise DatasetError('bags without the configured joints (strict): ' +
                           '; '.join(f'{e["bag"]}: {e["reason"]}' for e in errors))
    if not kept:
        raise DatasetError('no usable episode: ' + '; '.join(s['reason'] for s in skipped))
    manifest, arrays = _assemble(kept, config, obs_joints, extra_joints, act_joints, skipped)
    _write_atomically(output_dir, manifest, arrays, overwrite)
    messages = sum(r.messages for r in results)
    report = BuildReport(output_dir=output_dir, episodes=len(manifest['episodes']),
                         rows=len(arrays['time']), bags=len(bags), skipped=skipped,
                         errors=errors, messages=messages,
                         seconds=time.perf_counter() - started, manifest=manifest)
    LOG.info('dataset %s: %d episodes, %d rows from %d bags (%d skipped entries)', output_dir,
             report.episodes, report.rows, len(bags), len(skipped))
    return report


def _run_all(bags: list[str], config: DatasetConfig, workers: int,
             progress: bool) -> list[EpisodeResult]:
    from tqdm import tqdm
    bar = tqdm(total=len(bags), unit='bag', desc='dataset', disable=not progress)
    results: list[EpisodeResult | None] = [None] * len(bags)
    try:
        if workers <= 1 or len(bags) == 1:
            for i, bag in enumerate(bags):
                results[i] = load_episode(bag, config)
                bar.update()
        else:
            context = multiprocessing.get_context('spawn')
            with ProcessPoolExecutor(max_workers=min(workers, len(bags)),
                                     mp_context=context) as pool:
                futures = {pool.submit(load_episode, bag, config): i
                           for i, bag in enumerate(bags)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    finally:
        bar.close()
    return [r for r in results if r is not None]


def _split(names: list[str], seed: int, val_fraction: float) -> set[str]:
    """The bags in the validation split: a seeded permutation of the sorted bag keys."""
    keys = sorted(set(names))
    n_val = int(round(val_fraction * len(keys)))
    if val_fraction > 0 and len(keys) >= 2:
        n_val = min(max(n_val, 1), len(keys) - 1)
    order = np.random.default_rng(seed).permutation(len(keys))
    return {keys[i] for i in order[:n_val]}


def _assemble(results: list[EpisodeResult], config: DatasetConfig,
              obs_joints: Sequence[str], extra_joints: Sequence[Sequence[str]],
              act_joints: Sequence[str], skipped: list[dict[str, str]]
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    val_bags = _split([r.bag for r in results], config.seed, config.val_fraction)
    names_seen: dict[str, int] = {}
    obs_parts, act_parts, ep_parts, time_parts = [], [], [], []
    episodes = []
    row = 0
    for result in results:
        obs_cols = [result.joints.index(j) for j in obs_joints]
        act_cols = [result.action_joints.index(j) for j in act_joints]
        extra_cols = [[have.index(j) for j in wanted]
                      for wanted, have in zip(extra_joints, result.extra_joints)]
        for segment in result.segments:
            fields = _blocks(config.fields, segment.position, segment.velocity, obs_cols)
            for (_, _, extra_fields), cols, (position, velocity) in zip(
                    config.extra, extra_cols, segment.extra):
                fields += _blocks(extra_fields, position, velocity, cols)
            n = segment.length
            name = result.name if len(result.segments) == 1 and segment.index == 0 \
                else f'{result.name}.seg{segment.index}'
            names_seen[name] = names_seen.get(name, 0) + 1
            if names_seen[name] > 1:
                name = f'{name}~{names_seen[name] - 1}'
            obs_parts.append(np.hstack(fields).astype(np.float32))
            act_parts.append(segment.action[:, act_cols].astype(np.float32))
            ep_parts.append(np.full(n, len(episodes), np.int32))
            time_parts.append(np.arange(n) / config.control_rate_hz)
            episodes.append({
                'name': name, 'bag': result.bag, 'bag_fingerprint': result.fingerprint,
                'split': 'val' if result.bag in val_bags else 'train', 'start': row,
                'length': n, 'duration_s': round((n - 1) / config.control_rate_hz, 9),
                'success': result.success, 'task': result.task, 'segment': segment.index})
            row += n
    arrays = {'observations': np.concatenate(obs_parts),
              'actions': np.concatenate(act_parts),
              'episode': np.concatenate(ep_parts), 'time': np.concatenate(time_parts)}
    train = np.isin(arrays['episode'],
                    [i for i, e in enumerate(episodes) if e['split'] == 'train'])
    stats = {key: _stats(arrays[array][train] if train.any() else arrays[array])
             for key, array in (('observation', 'observations'), ('action', 'actions'))}
    digest = hashlib.sha256()
    for key in ('observations', 'actions', 'episode', 'time'):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    manifest = {
        'format_version': FORMAT_VERSION,
        'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'control_rate_hz': config.control_rate_hz, 'config': config.to_dict(),
        'observation': {'topic': config.observation_topic, 'joints': list(obs_joints),
                        'fields': list(config.fields),
                        'extra': [{'topic': topic, 'joints': list(joints), 'fields': list(fields)}
                                  for (topic, _, fields), joints in zip(config.extra,
                                                                         extra_joints)]},
        'action': {'joints': list(act_joints),
                   'source': 'command' if config.action_source == 'command' else 'future_state',
                   'topic': config.action_topic, 'future_steps': config.future_steps},
        'timestamps': config.timestamps, 'fingerprint': digest.hexdigest()[:16],
        'stats': stats, 'episodes': episodes, 'skipped': skipped,
        'splits': {'seed': config.seed, 'val_fraction': config.val_fraction}}
    return manifest, arrays


def _blocks(fields: Sequence[str], position: np.ndarray, velocity: np.ndarray | None,
            cols: list[int]) -> list[np.ndarray]:
    """The frame blocks of one topic: each field's columns of the selected joints, in order."""
    return [(position if f == 'position' else velocity)[:, cols] for f in fields]


def _stats(values: np.ndarray) -> dict[str, list[float]]:
    mean = values.astype(np.float64).mean(axis=0)
    std = values.astype(np.float64).std(axis=0)
    std = np.where(std < MIN_STD, 1.0, std)
    return {'mean': mean.tolist(), 'std': std.tolist()}


def _write_atomically(output_dir: Path, manifest: dict[str, Any],
                      arrays: dict[str, np.ndarray], overwrite: bool) -> None:
    output_dir = output_dir.absolute()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{output_dir.name}.tmp-', dir=output_dir.parent))
    try:
        with open(tmp / 'data.npz', 'wb') as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        with open(tmp / 'manifest.json', 'w', encoding='utf-8') as stream:
            json.dump(manifest, stream, indent=1)
            stream.write('\n')
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, 0o755)
        old = None
        if output_dir.exists():
            if not overwrite:
                raise DatasetError(f'{output_dir} exists')
            old = Path(tempfile.mkdtemp(prefix=f'.{output_dir.name}.old-',
                                        dir=output_dir.parent))
            os.replace(output_dir, old / 'dataset')
        os.replace(tmp, output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- reading and summarizing ----------------------------------------------------------------
def observation_spec(observation: Mapping[str, Any], history: int = 1) -> ObservationSpec:
    """The manifest's ``observation`` entry as the policy's observation spec."""
    return ObservationSpec(joints=tuple(observation['joints']),
                           fields=tuple(observation['fields']), history=history,
                           extra=tuple(observation.get('extra', ())))


MANIFEST_FILE = 'manifest.json'
DATA_FILE = 'data.npz'
ARRAYS = ('observations', 'actions', 'episode', 'time')
SPLITS = ('train', 'val')
_MANIFEST_KEYS = ('fingerprint', 'control_rate_hz', 'observation', 'action', 'stats',
                  'episodes')


@dataclass(frozen=True)
class Dataset:
    """A dataset directory in memory: its manifest and its arrays (checked by load_dataset)."""

    path: Path
    manifest: Mapping[str, Any]
    observations: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    time: np.ndarray

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {key: getattr(self, key) for key in ARRAYS}

    @property
    def action_joints(self) -> list[str]:
        return list(self.manifest['action']['joints'])

    def observation_spec(self, history: int = 1) -> 'ObservationSpec':
        """The layout of an observation row (one frame), with ``history`` frames."""
        return observation_spec(self.manifest['observation'], history)

    @property
    def control_rate_hz(self) -> float:
        return float(self.manifest['control_rate_hz'])

    def episodes(self, split: str | None = None) -> list[tuple[int, Mapping[str, Any]]]:
        """(index, episode entry) pairs, optionally only those of one split."""
        return [(i, e) for i, e in enumerate(self.manifest['episodes'])
                if split is None or e['split'] == split]


def load_dataset(path: str | Path) -> Dataset:
    """Read and check a dataset directory; DatasetError names what is missing or inconsistent."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f'{path}: no such dataset directory')
    manifest_path, data_path = path / MANIFEST_FILE, path / DATA_FILE
    for required in (manifest_path, data_path):
        if not required.is_file():
            raise DatasetError(f'{path}: not a dataset directory ({required.name} is missing)')
    try:
        manifest = json.loads(manifest_path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as exc:
        raise DatasetError(f'{manifest_path}: not valid JSON ({exc})') from None
    if not isinstance(manifest, dict):
        raise DatasetError(f'{manifest_path}: not a JSON object')
    if manifest.get('format_version') != FORMAT_VERSION:
        raise DatasetError(f'{manifest_path}: unsupported format_version '
                           f'{manifest.get("format_version")!r} (expected {FORMAT_VERSION})')
    missing = [k for k in _MANIFEST_KEYS if k not in manifest]
    if missing:
        raise DatasetError(f'{manifest_path}: missing {missing}')
    try:
        with np.load(data_path) as data:
            arrays = {key: data[key] for key in ARRAYS}
    except KeyError as exc:
        raise DatasetError(f'{data_path}: array {exc.args[0]} is missing') from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f'{data_path}: cannot read ({exc})') from None
    try:
        _check(manifest, arrays)
    except (KeyError, TypeError) as exc:
        raise DatasetError(f'{manifest_path}: malformed ({type(exc).__name__}: {exc})') from None
    except DatasetError as exc:
        raise DatasetError(f'{path}: {exc}') from None
    return Dataset(path=path, manifest=manifest, **arrays)


def _check(manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Shapes, statistics, episode ranges and finiteness of a dataset against its manifest."""
    rows = len(arrays['observations'])
    if any(a.ndim < 1 or len(a) != rows for a in arrays.values()):
        raise DatasetError(f'{DATA_FILE}: arrays have different lengths')
    try:
        frame = observation_spec(manifest['observation']).frame_size
    except ValueError as exc:
        raise DatasetError(f'manifest observation: {exc}') from None
    joints = len(manifest['action']['joints'])
    for key, size in (('observations', frame), ('actions', joints)):
        if arrays[key].shape != (rows, size):
            raise DatasetError(f'{key} have shape {arrays[key].shape}, expected '
                               f'[{rows}, {size}] (manifest)')
    if arrays['episode'].shape != (rows,):
        raise DatasetError(f'episode has shape {arrays["episode"].shape}, expected [{rows}]')
    for name, size in (('observation', frame), ('action', joints)):
        for stat in ('mean', 'std'):
            got = len(manifest['stats'][name][stat])
            if got != size:
                raise DatasetError(f'manifest stats.{name}.{stat} has {got} values, '
                                   f'expected {size}')
    episodes = manifest['episodes']
    for e in episodes:
        start, length = e['start'], e['length']
        if length < 1 or start < 0 or start + length > rows:
            raise DatasetError(f'manifest episode {e.get("name")!r} rows {start}..'
                               f'{start + length} are outside the {rows} rows of {DATA_FILE}')
    unknown = sorted({str(e['split']) for e in episodes} - set(SPLITS))
    if unknown:
        raise DatasetError(f'manifest episodes have unknown splits {unknown}')
    lengths = np.array([e['length'] for e in episodes], np.int64)
    owner = np.repeat(np.arange(len(episodes)), lengths)
    covered = np.concatenate([np.arange(e['start'], e['start'] + e['length'])
                              for e in episodes]) if episodes else np.zeros(0, np.int64)
    if not np.array_equal(arrays['episode'][covered], owner):
        raise DatasetError('the episode array disagrees with the manifest episodes '
                           '(start/length)')
    if not (np.isfinite(arrays['observations']).all() and np.isfinite(arrays['actions']).all()):
        raise DatasetError(f'{DATA_FILE} holds non-finite values')


def dataset_info(path: str | Path | Sequence[str | Path], *, plot: bool = False,
                 plot_dir: str | Path | None = None,
                 config: DatasetConfig | None = None) -> dict[str, Any]:
    """Summarize a dataset directory, or bags (read with ``config``); log and return it.

    Args:
        path: a DATASET_DIR, or bag folders/files (or folders of bags).
        plot: write one PNG per observation joint (position over time, every episode).
        plot_dir: where the PNGs go (default: DATASET_DIR/plots, or ./dataset_plots).
        config: settings used to read bags (default: DatasetConfig()).

    Returns a dict: episodes (name, split, duration_s, rows, rate_hz, gaps), joint ranges,
    plots written; ``format_info`` turns it into the printed text.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if len(paths) == 1 and (Path(paths[0]) / 'manifest.json').is_file():
        data = load_dataset(paths[0])
        manifest, arrays = data.manifest, data.arrays
        info = _info_from_dataset(manifest, arrays)
        default_dir = Path(paths[0]) / 'plots'
    else:
        info, manifest, arrays = _info_from_bags(paths, config or DatasetConfig())
        default_dir = Path('dataset_plots')
    if plot:
        info['plots'] = _plot(manifest, arrays, Path(plot_dir or default_dir))
    for line in format_info(info).splitlines():
        LOG.info('%s', line)
    return info


def _info_from_dataset(manifest: dict[str, Any], arrays: dict[str, np.ndarray]
                       ) -> dict[str, Any]:
    rate = manifest['control_rate_hz']
    joints = manifest['observation']['joints']
    obs = arrays['observations']
    episodes = [{'name': e['name'], 'split': e['split'], 'rows': e['length'],
                 'duration_s': e['duration_s'], 'rate_hz': rate, 'segment': e['segment'],
                 'success': e['success'], 'task': e['task']} for e in manifest['episodes']]
    n = len(joints)
    ranges = {j: [float(obs[:, i].min()), float(obs[:, i].max())] for i, j in enumerate(joints)}
    return {'source': 'dataset', 'fingerprint': manifest['fingerprint'],
            'control_rate_hz': rate, 'rows': int(len(obs)), 'episodes': episodes,
            'total_duration_s': float(sum(e['duration_s'] for e in episodes)),
            'observation_joints': joints, 'action_joints': manifest['action']['joints'],
            'action_source': manifest['action']['source'], 'joint_ranges': ranges,
            'velocity_columns': n if 'velocity' in manifest['observation']['fields'] else 0,
            'skipped': manifest['skipped'], 'plots': []}


def _info_from_bags(paths: Sequence[str | Path], config: DatasetConfig
                    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    episodes, skipped, ranges = [], [], {}
    plot_rows: list[tuple[str, np.ndarray, np.ndarray, tuple[str, ...]]] = []
    for bag in find_bags(paths):
        try:
            series = read_topics(bag, {config.observation_topic: (JOINT_STATE,)})
            obs = series[config.observation_topic]
            ns = _times(obs, config, config.observation_topic)
        except BagError as exc:
            skipped.append({'bag': str(bag), 'reason': str(exc)})
            continue
        t = (ns - ns[0]) * 1e-9
        duration = float(t[-1]) if len(t) else 0.0
        gaps = _gaps(t, config.max_gap_s)
        episodes.append({'name': bag.name, 'bag': str(bag), 'rows': int(len(t)),
                         'duration_s': duration,
                         'rate_hz': (len(t) - 1) / duration if duration > 0 else 0.0,
                         'gaps': [[g0, g1 - g0] for g0, g1 in gaps]})
        for i, joint in enumerate(obs.names):
            lo, hi = float(np.nanmin(obs.position[:, i])), float(np.nanmax(obs.position[:, i]))
            old = ranges.get(joint, [lo, hi])
            ranges[joint] = [min(old[0], lo), max(old[1], hi)]
        plot_rows.append((bag.name, t, obs.position, obs.names))
    info = {'source': 'bags', 'episodes': episodes, 'rows': sum(e['rows'] for e in episodes),
            'total_duration_s': float(sum(e['duration_s'] for e in episodes)),
            'observation_joints': list(ranges), 'joint_ranges': ranges, 'skipped': skipped,
            'plots': []}
    return info, {'bag_series': plot_rows}, {}


def format_info(info: dict[str, Any]) -> str:
    """The summary as text: one line per episode, then joint ranges and skipped bags."""
    lines = []
    if info['source'] == 'dataset':
        lines.append(f'dataset {info["fingerprint"]}: {len(info["episodes"])} episodes, '
                     f'{info["rows"]} rows at {info["control_rate_hz"]:g} Hz, '
                     f'{info["total_duration_s"]:.1f} s; action {info["action_source"]} '
                     f'({len(info["action_joints"])} joints)')
        for e in info['episodes']:
            lines.append(f'  {e["name"]:<28} {e["split"]:<5} {e["rows"]:>7} rows '
                         f'{e["duration_s"]:>8.2f} s  success={e["success"]} '
                         f'task={e["task"]}')
    else:
        lines.append(f'{len(info["episodes"])} bags, {info["rows"]} messages, '
                     f'{info["total_duration_s"]:.1f} s')
        for e in info['episodes']:
            gaps = ', '.join(f'{g[1]:.3f} s at {g[0]:.2f} s' for g in e['gaps']) or 'none'
            lines.append(f'  {e["name"]:<28} {e["rows"]:>7} msgs {e["duration_s"]:>8.2f} s '
                         f'{e["rate_hz"]:>8.1f} Hz  gaps: {gaps}')
    lines.append('joint ranges (rad):')
    for joint, (lo, hi) in info['joint_ranges'].items():
        lines.append(f'  {joint:<28} [{lo:+.4f}, {hi:+.4f}]')
    for s in info['skipped']:
        lines.append(f'skipped {s["bag"]}: {s["reason"]}')
    for p in info.get('plots', []):
        lines.append(f'plot {p}')
    return '\n'.join(lines)


def _plot(manifest: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> list[str]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if 'bag_series' in manifest:
        joints = list(dict.fromkeys(j for _, _, _, names in manifest['bag_series']
                                    for j in names))
        series = [(name, t, {j: pos[:, names.index(j)] for j in names})
                  for name, t, pos, names in manifest['bag_series']]
    else:
        joints = manifest['observation']['joints']
        obs, ep, time = arrays['observations'], arrays['episode'], arrays['time']
        series = []
        for i, e in enumerate(manifest['episodes']):
            rows = slice(e['start'], e['start'] + e['length'])
            series.append((e['name'], time[rows],
                           {j: obs[rows, k] for k, j in enumerate(joints)}))
        del ep
    for joint in joints:
        fig, ax = plt.subplots(figsize=(8, 3))
        for name, t, values in series:
            if joint in values:
                ax.plot(t, values[joint], linewidth=0.8, label=name)
        ax.set_title(joint)
        ax.set_xlabel('time since episode start (s)')
        ax.set_ylabel('position (rad)')
        if len(series) <= 10:
            ax.legend(fontsize='small')
        fig.tight_layout()
        target = folder / f'{joint.replace("/", "_")}.png'
        fig.savefig(target, dpi=80)
        plt.close(fig)
        written.append(str(target))
    return written


__all__ = ['BuildReport', 'Dataset', 'DatasetConfig', 'DatasetConfigError', 'DatasetError',
           'EpisodeResult', 'PipelineError', 'build_dataset', 'dataset_info', 'format_info',
           'load_dataset', 'load_episode']
