"""Our dataset -> a LeRobotDataset v3.0 folder (pyarrow), laid out as the lerobot package writes.

Data files hold whole episodes, one row group per episode, a new file once a file reaches
``data_files_size_in_mb`` (and a new chunk folder every ``chunks_size`` files); the episodes
table carries each episode's statistics; meta/stats.json aggregates them as LeRobot does
(weighted means, pooled variances, count-weighted quantiles).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from il_policy_node.errors import DatasetError
from il_policy_node.files import atomic_directory
from il_policy_node.pipeline.dataset.format import Dataset, load_dataset
from il_policy_node.pipeline.lerobot import layout
from il_policy_node.pipeline.lerobot.layout import QUANTILES

DEFAULT_TASK = 'demonstration'
# the index LeRobot's pandas reader restores from tasks.parquet (the task strings)
_TASKS_PANDAS = {
    'index_columns': ['__index_level_0__'],
    'column_indexes': [{'name': None, 'field_name': None, 'pandas_type': 'unicode',
                        'numpy_type': 'str', 'metadata': {'encoding': 'UTF-8'}}],
    'columns': [{'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
                 'numpy_type': 'int64', 'metadata': None},
                {'name': None, 'field_name': '__index_level_0__', 'pandas_type': 'object',
                 'numpy_type': 'str', 'metadata': None}],
    'attributes': {}, 'creator': {'library': 'pyarrow', 'version': pa.__version__},
    'pandas_version': '2.2.0'}


@dataclass(frozen=True)
class ExportReport:
    output_dir: Path
    episodes: int
    frames: int
    data_files: int
    tasks: list[str]


@dataclass(frozen=True)
class _Feature:
    key: str
    names: list[str] | None
    values: np.ndarray           # [N, d] float32 rows of every exported frame


def export_lerobot(dataset_dir: str | Path, output_dir: str | Path, *, task: str | None = None,
                   repo_id: str | None = None, robot_type: str | None = None,
                   data_files_size_mb: float = layout.DATA_FILES_SIZE_MB,
                   overwrite: bool = False, progress: bool = False) -> ExportReport:
    """Write ``dataset_dir`` as a LeRobotDataset v3.0 folder at ``output_dir`` (atomically).

    ``task`` names every episode's task (default: each episode's own, else 'demonstration');
    ``repo_id`` adds the dataset card (README.md) the Hugging Face hub shows.
    """
    if Path(output_dir).exists() and not overwrite:
        raise DatasetError(f'{output_dir} exists (remove it or pass --overwrite)')
    dataset = load_dataset(dataset_dir)
    rows, starts, lengths = _episode_rows(dataset)
    observations = dataset.observations[rows]      # the exported rows, selected once
    features = _features(dataset, observations, rows)
    fps = _number(dataset.control_rate_hz)
    episodes = dataset.manifest['episodes']
    task_of = [task or e.get('task') or DEFAULT_TASK for e in episodes]
    tasks = list(dict.fromkeys(task_of))
    task_index = np.array([tasks.index(t) for t in task_of], np.int64)
    frames = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths]) \
        if len(lengths) else np.zeros(0, np.int64)
    episode_index = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    columns = {**{f.key: f.values for f in features},
               'timestamp': (frames / fps).astype(np.float32), 'frame_index': frames,
               'episode_index': episode_index, 'index': np.arange(len(frames), dtype=np.int64),
               'task_index': task_index[episode_index]}
    info_features = _info_features(features)
    table = _data_table(columns, info_features, dataset.fingerprint)
    files = _file_of_episodes(table.nbytes / max(len(frames), 1), lengths, data_files_size_mb)
    sources = _stat_sources(dataset, observations, features)
    stats = [_ordered(_episode_stats(sources, a, n, fps=fps, episode=e,
                                     task=int(task_index[e])), info_features)
             for e, (a, n) in enumerate(tqdm(zip(starts, lengths), total=len(lengths),
                                             desc='statistics', unit='episode',
                                             disable=not progress))]
    try:
        with atomic_directory(output_dir, overwrite=overwrite) as tmp:
            _write_data(tmp, table, starts, lengths, files, progress)
            _write_episodes(tmp, lengths, starts, files, [[t] for t in task_of], stats,
                            info_features)
            _write_tasks(tmp, tasks)
            _write_json(tmp / layout.STATS_FILE, _aggregate(stats, lengths, info_features))
            _write_json(tmp / layout.INFO_FILE, _info(
                info_features, episodes=len(lengths), frames=len(frames), tasks=len(tasks),
                fps=fps, robot_type=robot_type, splits=_splits(episodes),
                data_files_size_mb=data_files_size_mb))
            if repo_id:
                (tmp / 'README.md').write_text(_card(repo_id, dataset), encoding='utf-8')
    except FileExistsError:
        raise DatasetError(f'{output_dir} exists (remove it or pass --overwrite)') from None
    return ExportReport(output_dir=Path(output_dir), episodes=len(lengths), frames=len(frames),
                        data_files=len(set(files)), tasks=tasks)


def _episode_rows(dataset: Dataset) -> tuple[np.ndarray | slice, list[int], list[int]]:
    """The dataset rows of its episodes in order (a slice when they are all rows, in order)."""
    episodes = dataset.manifest['episodes']
    lengths = [int(e['length']) for e in episodes]
    starts = np.cumsum([0] + lengths[:-1]).astype(int).tolist() if lengths else []
    if [int(e['start']) for e in episodes] == starts and sum(lengths) == len(dataset.episode):
        return slice(None), starts, lengths
    rows = np.concatenate([np.arange(e['start'], e['start'] + e['length']) for e in episodes])
    return rows, starts, lengths


def _features(dataset: Dataset, observations: np.ndarray, rows: np.ndarray | slice
              ) -> list[_Feature]:
    """One feature per observation block (of the exported ``observations``), then the action."""
    features, keys = [], set()
    for block in layout.blocks_of(dataset.observation_spec()):
        if block.key in keys or block.key in layout.INDEX_FEATURES or block.key == layout.ACTION:
            raise DatasetError(f'{dataset.path}: input {block.topic} maps to the LeRobot feature '
                               f'{block.key!r}, which another block uses already')
        keys.add(block.key)
        features.append(_Feature(block.key, block.names,
                                 np.ascontiguousarray(observations[:, block.columns],
                                                      dtype=np.float32)))
    features.append(_Feature(layout.ACTION, dataset.action_joints,
                             np.ascontiguousarray(dataset.actions[rows], dtype=np.float32)))
    return features


def _stat_sources(dataset: Dataset, observations: np.ndarray, features: Sequence[_Feature]
                  ) -> list[tuple[np.ndarray, list[tuple[str, slice]]]]:
    """The observation and action arrays with the feature of each column block."""
    blocks = layout.blocks_of(dataset.observation_spec())
    return [(observations, [(b.key, b.columns) for b in blocks]),
            (features[-1].values, [(layout.ACTION, slice(None))])]


def _ordered(stats: dict[str, dict[str, list]], info: dict[str, Any]
             ) -> dict[str, dict[str, list]]:
    """Features in info.json order, statistics in LeRobot's order."""
    return {key: {name: stats[key][name] for name in layout.STATISTICS} for key in info}


def _number(value: float) -> int | float:
    """An integral value as the int LeRobot writes (fps 50, not 50.0)."""
    return int(value) if float(value).is_integer() else float(value)


def _info_features(features: Sequence[_Feature]) -> dict[str, dict[str, Any]]:
    info = {f.key: {'dtype': 'float32', 'shape': [f.values.shape[1]], 'names': f.names}
            for f in features}
    info.update({key: {'dtype': dtype, 'shape': [1], 'names': None}
                 for key, dtype in layout.INDEX_FEATURES.items()})
    return info


def _data_table(columns: dict[str, np.ndarray], info: dict[str, dict[str, Any]],
                fingerprint: str) -> pa.Table:
    """The data rows, with the `huggingface` schema metadata LeRobot's files carry."""
    arrays = []
    for key, spec in info.items():
        values = columns[key]
        if values.ndim == 2:
            size = values.shape[1]
            flat = pa.array(values.reshape(-1), pa.float32())
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, size))
        else:
            arrays.append(pa.array(values, pa.from_numpy_dtype(np.dtype(spec['dtype']))))
    hf = {key: {'dtype': spec['dtype'], '_type': 'Value'} if key in layout.INDEX_FEATURES
          else {'feature': {'dtype': spec['dtype'], '_type': 'Value'},
                'length': spec['shape'][0], '_type': 'List'}
          for key, spec in info.items()}
    table = pa.Table.from_arrays(arrays, names=list(info))
    return table.replace_schema_metadata(
        {'huggingface': json.dumps({'info': {'features': hf}, 'fingerprint': fingerprint})})


def _file_of_episodes(row_bytes: float, lengths: Sequence[int], size_mb: float) -> list[int]:
    """The data file (0, 1, ...) of each episode: a new file once one reaches ``size_mb``."""
    files, current, filled = [], 0, 0.0
    for n in lengths:
        if filled >= size_mb * 1024 * 1024:
            current, filled = current + 1, 0.0
        files.append(current)
        filled += n * row_bytes
    return files


def _location(file: int) -> dict[str, int]:
    return {'chunk_index': file // layout.CHUNKS_SIZE, 'file_index': file % layout.CHUNKS_SIZE}


def _groups(files: Sequence[int]) -> Iterator[tuple[int, list[int]]]:
    """(file, its episodes) in order."""
    order: dict[int, list[int]] = {}
    for episode, file in enumerate(files):
        order.setdefault(file, []).append(episode)
    yield from order.items()


def _write_data(root: Path, table: pa.Table, starts: Sequence[int], lengths: Sequence[int],
                files: Sequence[int], progress: bool) -> None:
    bar = tqdm(total=int(sum(lengths)), desc='data', unit='frame', disable=not progress)
    for file, episodes in _groups(files):
        path = root / layout.DATA_PATH.format(**_location(file))
        path.parent.mkdir(parents=True, exist_ok=True)
        # dictionary pages only for the columns that repeat (floats do not: it triples the time)
        with pq.ParquetWriter(path, table.schema,
                              use_dictionary=['episode_index', 'task_index']) as writer:
            for e in episodes:
                writer.write_table(table.slice(starts[e], lengths[e]))
                bar.update(lengths[e])
    bar.close()


def _episode_stats(sources: Sequence[tuple[np.ndarray, list[tuple[str, slice]]]],
                   start: int, n: int, *, fps: float, episode: int, task: int
                   ) -> dict[str, dict[str, list]]:
    """LeRobot's per-episode statistics (min, max, mean, std, count, q..) of every feature.

    One pass per source array (observations, actions) gives the features that are its column
    blocks; the index features are affine in the frame index, so theirs follow from arange(n).
    """
    stats: dict[str, dict[str, list]] = {}
    for values, parts in sources:
        rows = values[start:start + n]
        of = {'min': rows.min(axis=0).astype(np.float64), 'max': rows.max(axis=0)
              .astype(np.float64), 'mean': rows.mean(axis=0, dtype=np.float64),
              'std': rows.std(axis=0, dtype=np.float64)}
        quantiles = np.quantile(rows, list(QUANTILES.values()), axis=0).astype(np.float64)
        of.update(zip(QUANTILES, quantiles))
        for key, columns in parts:
            stats[key] = {name: of[name][columns].tolist() for name in of}
            stats[key]['count'] = [n]
    frames = _frame_stats(n)
    for key, offset, scale in (('timestamp', 0.0, 1.0 / fps), ('frame_index', 0, 1),
                               ('episode_index', episode, 0), ('index', start, 1),
                               ('task_index', task, 0)):
        integer = layout.INDEX_FEATURES[key] == 'int64'
        stats[key] = {name: [(int if integer and name in ('min', 'max') else float)(
            offset + scale * frames[name])] for name in frames}
        stats[key]['std'] = [abs(scale) * frames['std']]
        stats[key]['count'] = [n]
    return stats


@functools.lru_cache(maxsize=64)
def _frame_stats(n: int) -> dict[str, float]:
    """The statistics of the frame indices 0..n-1."""
    frames = np.arange(n, dtype=np.float64)
    return {'min': 0.0, 'max': float(n - 1), 'mean': float(frames.mean()),
            'std': float(frames.std()),
            **dict(zip(QUANTILES, np.quantile(frames, list(QUANTILES.values())).tolist()))}


def _aggregate(stats: Sequence[dict[str, dict[str, list]]], lengths: Sequence[int],
               info: dict[str, dict[str, Any]]) -> dict[str, dict[str, list]]:
    """The dataset's statistics from its episodes', as LeRobot aggregates them."""
    if not stats:
        return {}
    weights = np.asarray(lengths, np.float64)[:, None]
    total = weights.sum()
    result = {}
    for key in info:
        of = {s: np.array([episode[key][s] for episode in stats], np.float64)
              for s in ('mean', 'std', *QUANTILES)}
        mean = (of['mean'] * weights).sum(axis=0) / total
        variance = ((of['std'] ** 2 + (of['mean'] - mean) ** 2) * weights).sum(axis=0) / total
        mins = [episode[key]['min'] for episode in stats]
        maxs = [episode[key]['max'] for episode in stats]
        result[key] = {'min': np.min(mins, axis=0).tolist(), 'max': np.max(maxs, axis=0).tolist(),
                       'mean': mean.tolist(), 'std': np.sqrt(variance).tolist(),
                       'count': [int(total)],
                       **{q: ((of[q] * weights).sum(axis=0) / total).tolist()
                          for q in QUANTILES}}
    return result


def _write_episodes(root: Path, lengths: Sequence[int], starts: Sequence[int],
                    files: Sequence[int], tasks: list[list[str]],
                    stats: Sequence[dict[str, dict[str, list]]],
                    info: dict[str, dict[str, Any]]) -> None:
    columns: dict[str, pa.Array] = {
        'episode_index': pa.array(range(len(lengths)), pa.int64()),
        'tasks': pa.array(tasks, pa.list_(pa.string())),
        'length': pa.array(lengths, pa.int64()),
        'data/chunk_index': pa.array([_location(f)['chunk_index'] for f in files], pa.int64()),
        'data/file_index': pa.array([_location(f)['file_index'] for f in files], pa.int64()),
        'dataset_from_index': pa.array(starts, pa.int64()),
        'dataset_to_index': pa.array([a + n for a, n in zip(starts, lengths)], pa.int64())}
    for key, spec in info.items():
        for name in layout.STATISTICS:
            integer = name == 'count' or (name in ('min', 'max') and spec['dtype'] == 'int64')
            columns[f'stats/{key}/{name}'] = pa.array(
                [s[key][name] for s in stats], pa.list_(pa.int64() if integer else pa.float64()))
    columns['meta/episodes/chunk_index'] = pa.array([0] * len(lengths), pa.int64())
    columns['meta/episodes/file_index'] = pa.array([0] * len(lengths), pa.int64())
    path = root / layout.EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _write_tasks(root: Path, tasks: Sequence[str]) -> None:
    table = pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()),
                      '__index_level_0__': pa.array(tasks, pa.large_string())})
    pq.write_table(table.replace_schema_metadata({'pandas': json.dumps(_TASKS_PANDAS)}),
                   root / layout.TASKS_FILE)


def _splits(episodes: Sequence[dict[str, Any]]) -> dict[str, str]:
    by_split: dict[str, list[int]] = {}
    for i, episode in enumerate(episodes):
        by_split.setdefault(str(episode['split']), []).append(i)
    return {name: layout.format_ranges(by_split[name]) for name in ('train', 'val')
            if name in by_split}


def _info(features: dict[str, dict[str, Any]], *, episodes: int, frames: int, tasks: int,
          fps: int | float, robot_type: str | None, splits: dict[str, str],
          data_files_size_mb: float) -> dict[str, Any]:
    return {'codebase_version': layout.CODEBASE_VERSION, 'robot_type': robot_type,
            'total_episodes': episodes, 'total_frames': frames, 'total_tasks': tasks,
            'chunks_size': layout.CHUNKS_SIZE,
            'data_files_size_in_mb': _number(data_files_size_mb),
            'video_files_size_in_mb': layout.VIDEO_FILES_SIZE_MB, 'fps': fps,
            'splits': splits, 'data_path': layout.DATA_PATH, 'video_path': None,
            'features': features}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + '\n', encoding='utf-8')


def _card(repo_id: str, dataset: Dataset) -> str:
    """The Hugging Face dataset card: the LeRobot tag and where the data files are."""
    return (f'---\ntags:\n- LeRobot\n- il_policy_node\nconfigs:\n- config_name: default\n'
            f'  data_files: data/*/*.parquet\n---\n\n# {repo_id}\n\n'
            f'Exported by il_policy_node from {dataset.path.name} (dataset fingerprint '
            f'{dataset.fingerprint}). Load it with '
            f"`LeRobotDataset('{repo_id}', root=...)`.\n")
