"""A local LeRobotDataset v3.0 folder -> our dataset directory.

The state feature becomes the robot's positions (``observation.velocity``, when it has the
state's joints, its velocities), every further numeric ``observation.*`` feature a further
input (``layout`` says how keys and names map back to topics and joints), ``action`` the
actions. Images, videos and other features are skipped with a note. Every problem with the
folder is a DatasetError naming the file and the field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from il_policy_node.errors import DatasetError
from il_policy_node.pipeline.dataset.build import fingerprint, split_episodes, train_statistics
from il_policy_node.pipeline.dataset.format import write_dataset
from il_policy_node.pipeline.lerobot import layout
from il_policy_node.runtime.observation import StateField

_NUMERIC = ('float32', 'float64', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8')


@dataclass(frozen=True)
class ImportReport:
    output_dir: Path
    episodes: int
    frames: int
    features: dict[str, str]                 # LeRobot feature -> what it became
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Input:
    key: str
    topic: str | None
    field: StateField
    joints: tuple[str, ...]


def import_lerobot(folder: str | Path, output_dir: str | Path, *,
                   state: str = layout.STATE, action: str = layout.ACTION,
                   val_fraction: float = 0.2, seed: int = 0,
                   overwrite: bool = False) -> ImportReport:
    """Write the LeRobot v3.0 dataset at ``folder`` as our dataset directory ``output_dir``.

    Without a validation split in meta/info.json, ``val_fraction`` of the episodes (a seeded
    choice, as `dataset build` makes it) become the validation split.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f'{root}: no such LeRobot dataset folder')
    if Path(output_dir).exists() and not overwrite:
        raise DatasetError(f'{output_dir} exists (remove it or pass --overwrite)')
    info = _read_info(root)
    notes: list[str] = []
    inputs, skipped = _inputs(root, info, state, action, notes)
    episodes = _read_episodes(root)
    arrays = _read_data(root, info, inputs, action)
    lengths = _check_lengths(root, info, episodes, arrays['episode'])
    spec = _observation(inputs)
    splits = _split_of(root, info, len(lengths), val_fraction, seed, notes)
    rows = np.cumsum([0] + lengths[:-1]).tolist()
    records = [{'name': f'episode_{i:04d}', 'bag': f'{root.name}/episode_{i:04d}',
                'bag_fingerprint': None, 'split': splits[i], 'start': int(rows[i]),
                'length': int(n), 'duration_s': round((n - 1) / float(info['fps']), 9),
                'success': None, 'task': episodes['task'].get(i), 'segment': 0}
               for i, n in enumerate(lengths)]
    names = {i.key: ('robot state ' if i.topic is None else f'input {i.topic} ') + i.field.value
             for i in inputs}
    manifest = {
        'control_rate_hz': float(info['fps']),
        'config': {'lerobot': {'folder': str(root), 'state': state, 'action': action,
                               'skipped_features': dict(skipped)}},
        'observation': spec,
        'action': {'joints': list(_names(info, action, root)), 'source': 'lerobot',
                   'topic': None, 'future_steps': None},
        'timestamps': 'lerobot', 'fingerprint': fingerprint(arrays),
        'stats': train_statistics(arrays, records), 'episodes': records,
        'skipped': [],
        'splits': {'seed': seed, 'val_fraction': val_fraction, 'lerobot': info.get('splits')}}
    try:
        write_dataset(output_dir, manifest, arrays, overwrite=overwrite)
    except DatasetError as exc:
        raise DatasetError(f'{root}: cannot be written as a dataset: {exc}') from None
    notes += [f'{key}: skipped ({reason})' for key, reason in skipped]
    return ImportReport(output_dir=Path(output_dir), episodes=len(lengths),
                        frames=int(sum(lengths)), notes=notes,
                        features={**names, action: 'actions'})


def _read_info(root: Path) -> dict[str, Any]:
    path = root / layout.INFO_FILE
    if not path.is_file():
        raise DatasetError(f'{path}: missing (not a LeRobotDataset v3.0 folder)')
    try:
        info = json.loads(path.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f'{path}: not valid JSON ({exc})') from None
    if not isinstance(info, dict):
        raise DatasetError(f'{path}: not a JSON object')
    version = info.get('codebase_version')
    if version != layout.CODEBASE_VERSION:
        raise DatasetError(f'{path}: codebase_version {version!r} is not supported (only '
                           f'{layout.CODEBASE_VERSION!r}; convert older datasets with '
                           "lerobot's convert_dataset_v21_to_v30)")
    for key, kind in (('fps', (int, float)), ('features', dict), ('total_frames', int)):
        if not isinstance(info.get(key), kind) or isinstance(info.get(key), bool):
            raise DatasetError(f'{path}: {key} is missing or not a {kind}')
    if info['fps'] <= 0:
        raise DatasetError(f'{path}: fps must be positive, got {info["fps"]}')
    for key, spec in info['features'].items():
        if not isinstance(spec, dict) or 'dtype' not in spec or 'shape' not in spec:
            raise DatasetError(f'{path}: features.{key} has no dtype or shape')
    return info


def _shape(spec: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(int(s) for s in spec['shape'])


def _names(info: Mapping[str, Any], key: str, root: Path) -> tuple[str, ...]:
    spec = info['features'][key]
    names = spec.get('names')
    if isinstance(names, dict):          # older writers: {"motors": [...]}
        names = next(iter(names.values()), None)
    size = int(np.prod(_shape(spec)))
    if names is None:
        return tuple(f'{key.rsplit(".", 1)[-1]}_{i}' for i in range(size))
    names = [str(n) for n in names]
    if len(names) != size:
        raise DatasetError(f'{root / layout.INFO_FILE}: features.{key} has {len(names)} names '
                           f'for shape {list(_shape(spec))}')
    return tuple(names)


def _inputs(root: Path, info: dict[str, Any], state: str, action: str, notes: list[str]
            ) -> tuple[list[_Input], list[tuple[str, str]]]:
    """The features that become observation blocks, in our layout order, and those skipped."""
    path = root / layout.INFO_FILE
    features = info['features']
    for key, option in ((state, '--state'), (action, '--action')):
        if key not in features:
            raise DatasetError(f'{path}: features has no {key!r} (it has {sorted(features)}); '
                               f'choose one with {option}')
        if features[key]['dtype'] not in _NUMERIC or len(_shape(features[key])) != 1:
            raise DatasetError(f'{path}: features.{key} must be a numeric vector, got '
                               f'{features[key]["dtype"]} of shape {features[key]["shape"]}')
    joints = _names(info, state, root)
    for key in (state, action):
        if features[key].get('names') is None:
            notes.append(f'{key} has no names: its values are called {_names(info, key, root)[0]}'
                         ', ... (positional)')
    inputs = [_Input(state, None, StateField.POSITION, joints)]
    skipped: list[tuple[str, str]] = []
    others = [k for k in features
              if k not in (state, action) and k not in layout.INDEX_FEATURES]
    for key in others:
        spec = features[key]
        if spec['dtype'] in layout.VISUAL_DTYPES:
            skipped.append((key, f'{spec["dtype"]} features are not used'))
        elif not key.startswith(layout.OBSERVATION_PREFIX):
            skipped.append((key, 'not an observation'))
        elif spec['dtype'] not in _NUMERIC or len(_shape(spec)) != 1:
            skipped.append((key, f'{spec["dtype"]} of shape {list(spec["shape"])} is not a '
                                 'numeric vector'))
        elif key == layout.VELOCITY and _names(info, key, root) == joints:
            inputs.insert(1, _Input(key, None, StateField.VELOCITY, joints))
        else:
            base = key[:-len(layout.VELOCITY_SUFFIX)] if key.endswith(layout.VELOCITY_SUFFIX) \
                else None
            if base is not None and base in others and base != layout.VELOCITY:
                inputs.append(_Input(key, layout.key_topic(base), StateField.VELOCITY,
                                     layout.strip_prefix(list(_names(info, key, root)), key)))
            else:
                inputs.append(_Input(key, layout.key_topic(key), StateField.POSITION,
                                     layout.strip_prefix(list(_names(info, key, root)), key)))
    return _in_layout_order(inputs), skipped


def _in_layout_order(inputs: list[_Input]) -> list[_Input]:
    """State blocks first, then each topic's blocks together, topics in order of appearance."""
    topics = list(dict.fromkeys(i.topic for i in inputs))
    return [i for topic in topics for i in inputs if i.topic == topic]


def _observation(inputs: list[_Input]) -> dict[str, Any]:
    state = [i for i in inputs if i.topic is None]
    extra: dict[str, dict[str, Any]] = {}
    for i in inputs:
        if i.topic is not None:
            entry = extra.setdefault(i.topic, {'topic': i.topic, 'joints': list(i.joints),
                                               'fields': []})
            if list(i.joints) != entry['joints']:
                raise DatasetError(f'{layout.INFO_FILE}: features.{i.key} names other joints '
                                   f'than the positions of {i.topic}')
            entry['fields'].append(i.field.value)
    return {'topic': '/joint_states', 'joints': list(state[0].joints),
            'fields': [i.field.value for i in state], 'extra': list(extra.values())}


def _read_episodes(root: Path) -> dict[str, dict[int, Any]]:
    """Episode index -> length, and -> task (the first of its tasks)."""
    paths = sorted(root.glob(layout.EPISODES_GLOB))
    if not paths:
        raise DatasetError(f'{root}/meta/episodes: no episode files (meta/episodes/chunk-*/'
                           'file-*.parquet)')
    lengths: dict[int, int] = {}
    tasks: dict[int, str | None] = {}
    for path in paths:
        table = _read_table(path, ['episode_index', 'length', 'tasks'], required=2)
        index = table.column('episode_index').to_pylist()
        for e, n in zip(index, table.column('length').to_pylist()):
            lengths[int(e)] = int(n)
        if 'tasks' in table.column_names:
            for e, t in zip(index, table.column('tasks').to_pylist()):
                tasks[int(e)] = t[0] if t else None
    return {'length': lengths, 'task': tasks}


def _read_table(path: Path, columns: list[str], required: int | None = None) -> pa.Table:
    """The ``columns`` of a parquet file; the first ``required`` of them must be there."""
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f'{path}: not a readable parquet file ({exc})') from None
    needed = columns if required is None else columns[:required]
    missing = [c for c in needed if c not in names]
    if missing:
        raise DatasetError(f'{path}: column {missing[0]!r} is missing')
    try:
        return pq.read_table(path, columns=[c for c in columns if c in names])
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f'{path}: cannot read ({exc})') from None


def _read_data(root: Path, info: Mapping[str, Any], inputs: list[_Input], action: str
               ) -> dict[str, np.ndarray]:
    """Our arrays, filled file by file (one file's table in memory at a time), by episode."""
    paths = sorted(root.glob('data/*/*.parquet'))
    if not paths:
        raise DatasetError(f'{root}/data: no data files (data/chunk-*/file-*.parquet)')
    try:
        total = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f'{root}/data: a data file is not readable parquet ({exc})') from None
    starts = np.cumsum([0] + [len(i.joints) for i in inputs])
    action_size = int(np.prod(_shape(info['features'][action])))
    arrays = {'observations': np.empty((total, starts[-1]), np.float32),
              'actions': np.empty((total, action_size), np.float32),
              'episode': np.empty(total, np.int64), 'frame': np.empty(total, np.int64)}
    columns = [i.key for i in inputs] + [action, 'episode_index', 'frame_index']
    row = 0
    for path in paths:
        table = _read_table(path, columns)
        rows = slice(row, row + table.num_rows)
        for i, a, b in zip(inputs, starts[:-1], starts[1:]):
            arrays['observations'][rows, a:b] = _numpy(table.column(i.key), b - a, path, i.key)
        arrays['actions'][rows] = _numpy(table.column(action), action_size, path, action)
        arrays['episode'][rows] = _numpy(table.column('episode_index'), 1, path, 'episode_index')
        arrays['frame'][rows] = _numpy(table.column('frame_index'), 1, path, 'frame_index')
        row += table.num_rows
    order = np.lexsort((arrays['frame'], arrays['episode']))
    if not np.all(order[1:] > order[:-1]):
        arrays = {key: values[order] for key, values in arrays.items()}
    frame = arrays.pop('frame')
    arrays['episode'] = arrays['episode'].astype(np.int32)
    arrays['time'] = frame / float(info['fps'])
    return arrays


def _numpy(column: pa.ChunkedArray, size: int, path: Path, name: str) -> np.ndarray:
    """A column as numpy: [rows, size] for list columns, [rows] for scalars."""
    rows = len(column)
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type) or \
            pa.types.is_large_list(column.type):
        flat = pa.concat_arrays([chunk.flatten() for chunk in column.chunks]) \
            if column.num_chunks else pa.array([], pa.float32())
        if len(flat) != rows * size:
            raise DatasetError(f'{path}: column {name!r} holds {len(flat)} values in {rows} '
                               f'rows, expected {size} per row (meta/info.json shape)')
        return flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False) \
            .reshape(rows, size)
    values = column.to_numpy()
    if size != 1:
        raise DatasetError(f'{path}: column {name!r} holds scalars, expected {size} values per '
                           'row (meta/info.json shape)')
    return values


def _check_lengths(root: Path, info: Mapping[str, Any], episodes: dict[str, dict[int, Any]],
                   episode_index: np.ndarray) -> list[int]:
    """Each episode's length, checked against the data files; episodes must be 0..E-1."""
    lengths = episodes['length']
    if len(episode_index) and episode_index.min() < 0:
        raise DatasetError(f'{root}/data: episode_index holds {episode_index.min()} (< 0)')
    counts = np.bincount(episode_index.astype(np.int64), minlength=len(lengths)) \
        if len(episode_index) else np.zeros(0, np.int64)
    where = f'{root}/meta/episodes'
    if sorted(lengths) != list(range(len(lengths))):
        raise DatasetError(f'{where}: episode_index must run 0..{len(lengths) - 1}, got '
                           f'{sorted(lengths)[:5]}...')
    if len(counts) > len(lengths):
        raise DatasetError(f'{root}/data: rows of episode {len(counts) - 1}, which '
                           'meta/episodes does not list')
    for e in range(len(lengths)):
        if counts[e] != lengths[e]:
            raise DatasetError(f'{where}: episode {e} has length {lengths[e]}, the data files '
                               f'hold {counts[e]} rows of it')
    if int(info['total_frames']) != len(episode_index):
        raise DatasetError(f'{root / layout.INFO_FILE}: total_frames is {info["total_frames"]}, '
                           f'the data files hold {len(episode_index)} rows')
    return [lengths[e] for e in range(len(lengths))]


def _split_of(root: Path, info: Mapping[str, Any], episodes: int, val_fraction: float,
              seed: int, notes: list[str]) -> list[str]:
    """train/val per episode from info.json's splits, or a seeded choice when it has no val."""
    splits = ['train'] * episodes
    has_val = False
    for name, text in (info.get('splits') or {}).items():
        if name == 'train':
            continue
        if name not in layout.VAL_SPLIT_NAMES:
            notes.append(f'split {name!r} is read as train')
            continue
        try:
            indices = layout.parse_ranges(text)
        except (ValueError, AttributeError):
            raise DatasetError(f'{root / layout.INFO_FILE}: splits.{name} {text!r} is not '
                               '"start:end" ranges') from None
        if any(not 0 <= i < episodes for i in indices):
            raise DatasetError(f'{root / layout.INFO_FILE}: splits.{name} {text!r} names '
                               f'episodes outside 0..{episodes - 1}')
        for i in indices:
            splits[i] = 'val'
        has_val = has_val or bool(indices)
    if not has_val:
        names = [f'episode_{i:04d}' for i in range(episodes)]
        val = split_episodes(names, seed, val_fraction)
        splits = ['val' if n in val else 'train' for n in names]
        notes.append(f'no validation split in meta/info.json: {len(val)} of {episodes} '
                     f'episodes chosen (val_fraction {val_fraction}, seed {seed})')
    return splits
