"""The dataset directory (manifest.json + data.npz): the one reader and the one writer.

A row is one control tick: ``observations [N, F]`` (a frame laid out as the manifest's
observation spec says), ``actions [N, A]``, ``episode [N]`` and ``time [N]`` (s from the
episode's start). The manifest lists the episodes (rows, split, source bag), the statistics of
the train split and how the dataset was built.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from il_policy_node.errors import DatasetError, IlPolicyError
from il_policy_node.files import atomic_directory
from il_policy_node.formats import (
    DATA_FILE,
    DATASET_ARRAYS,
    DATASET_FORMAT_VERSION,
    MANIFEST_FILE,
    MANIFEST_KEYS,
    SPLITS,
)
from il_policy_node.runtime.observation import ObservationSpec


def observation_spec(observation: Mapping[str, Any], history: int = 1) -> ObservationSpec:
    """The manifest's ``observation`` entry as the policy's observation spec."""
    return ObservationSpec(joints=tuple(observation['joints']),
                           fields=tuple(observation['fields']), history=history,
                           extra=tuple(observation.get('extra', ())))



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
    def fingerprint(self) -> str:
        return str(self.manifest['fingerprint'])

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {key: getattr(self, key) for key in DATASET_ARRAYS}

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
    if manifest.get('format_version') != DATASET_FORMAT_VERSION:
        raise DatasetError(f'{manifest_path}: unsupported format_version '
                           f'{manifest.get("format_version")!r} (expected '
                           f'{DATASET_FORMAT_VERSION})')
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise DatasetError(f'{manifest_path}: missing {missing}')
    try:
        with np.load(data_path) as data:
            arrays = {key: data[key] for key in DATASET_ARRAYS}
    except KeyError as exc:
        raise DatasetError(f'{data_path}: array {exc.args[0]} is missing') from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f'{data_path}: cannot read ({exc})') from None
    _check_named(manifest, arrays, path, manifest_path)
    return Dataset(path=path, manifest=manifest, **arrays)


def _check_named(manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray], path: Path,
                 manifest_path: Path) -> None:
    """_check, its problems named by the dataset (or its manifest, when malformed)."""
    try:
        _check(manifest, arrays)
    except (KeyError, TypeError) as exc:
        raise DatasetError(f'{manifest_path}: malformed ({type(exc).__name__}: {exc})') from None
    except DatasetError as exc:
        raise DatasetError(f'{path}: {exc}') from None


def _check(manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Shapes, statistics, episode ranges and finiteness of a dataset against its manifest."""
    rows = len(arrays['observations'])
    if any(a.ndim < 1 or len(a) != rows for a in arrays.values()):
        raise DatasetError(f'{DATA_FILE}: arrays have different lengths')
    try:
        frame = observation_spec(manifest['observation']).frame_size
    except IlPolicyError as exc:
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




def write_dataset(path: str | Path, manifest: Mapping[str, Any],
                  arrays: Mapping[str, np.ndarray], *, overwrite: bool = False) -> Path:
    """Write a dataset directory atomically (never half a dataset); DatasetError if it exists.

    The manifest and arrays are checked as ``load_dataset`` checks them, before anything is
    written.
    """
    path = Path(path)
    manifest = {'format_version': DATASET_FORMAT_VERSION, **manifest}
    _check_named(manifest, arrays, path, path / MANIFEST_FILE)
    try:
        with atomic_directory(path, overwrite=overwrite) as tmp:
            with open(tmp / DATA_FILE, 'wb') as stream:
                np.savez(stream, **{key: arrays[key] for key in DATASET_ARRAYS})
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + '\n',
                                             encoding='utf-8')
    except FileExistsError:
        raise DatasetError(f'{path} exists (remove it or pass overwrite)') from None
    return path
