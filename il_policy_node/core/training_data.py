"""A dataset directory (manifest.json + data.npz) as in-memory tensors of training windows.

A sample at row ``t`` uses the observation history rows ``t-k+1..t`` (clamped to the first row
of its episode: padded with the first frame, as core/observation.py does at run time) and the
action chunk rows ``t..t+H-1`` (clamped to the last row of its episode). Both are precomputed
as index arrays ``[N, k]`` and ``[N, H]``; a batch is two tensor gathers, no per-sample Python.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from il_policy_node.core.dataset import SPLITS, DatasetError, load_dataset, observation_spec
from il_policy_node.core.observation import ObservationSpec

MIN_STD = 1e-6  # the same floor as core/export.py NormalizedPolicy


@dataclass(frozen=True)
class DatasetInfo:
    """What training and export need from a dataset manifest (statistics per feature column)."""

    path: str
    fingerprint: str
    control_rate_hz: float
    obs_joints: tuple[str, ...]
    obs_fields: tuple[str, ...]
    action_joints: tuple[str, ...]
    obs_mean: np.ndarray
    obs_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray
    obs_extra: tuple[dict[str, Any], ...] = ()   # further observed topics (manifest 'extra')
    # Relative actions: the frame columns (positions of the action joints) the actions are
    # relative to, and then action_mean/std are those of the differences; () = absolute.
    relative_to: tuple[int, ...] = ()
    # Relative inputs: (column, subtracted column) pairs of a frame: a further input's position
    # of a joint minus the observed position of the same joint (e.g. goal - position); the
    # statistics of those columns are then those of the differences. () = raw inputs.
    input_differences: tuple[tuple[int, int], ...] = ()

    def observation_spec(self, history: int = 1) -> ObservationSpec:
        return observation_spec({'joints': self.obs_joints, 'fields': self.obs_fields,
                                 'extra': self.obs_extra}, history)

    @property
    def frame_size(self) -> int:
        return self.observation_spec().frame_size

    @property
    def action_size(self) -> int:
        return len(self.action_joints)

    def to_dict(self) -> dict[str, Any]:
        return {'path': self.path, 'fingerprint': self.fingerprint,
                'control_rate_hz': self.control_rate_hz, 'obs_joints': list(self.obs_joints),
                'obs_fields': list(self.obs_fields), 'action_joints': list(self.action_joints),
                'obs_mean': self.obs_mean.tolist(), 'obs_std': self.obs_std.tolist(),
                'action_mean': self.action_mean.tolist(),
                'action_std': self.action_std.tolist(), 'obs_extra': list(self.obs_extra),
                'relative_to': list(self.relative_to),
                'input_differences': [list(p) for p in self.input_differences]}

    @classmethod
    def from_manifest(cls, path: str | Path, manifest: Mapping[str, Any]) -> 'DatasetInfo':
        """The joints, fields, rate, fingerprint and statistics of a checked manifest."""
        obs, action, stats = manifest['observation'], manifest['action'], manifest['stats']
        return cls(path=str(path), fingerprint=str(manifest['fingerprint']),
                   control_rate_hz=float(manifest['control_rate_hz']),
                   obs_joints=tuple(obs['joints']), obs_fields=tuple(obs['fields']),
                   action_joints=tuple(action['joints']),
                   obs_extra=tuple(obs.get('extra', ())),
                   obs_mean=np.asarray(stats['observation']['mean'], np.float32),
                   obs_std=np.asarray(stats['observation']['std'], np.float32),
                   action_mean=np.asarray(stats['action']['mean'], np.float32),
                   action_std=np.asarray(stats['action']['std'], np.float32))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> 'DatasetInfo':
        arrays = {k: np.asarray(data[k], np.float32)
                  for k in ('obs_mean', 'obs_std', 'action_mean', 'action_std')}
        return cls(path=data['path'], fingerprint=data['fingerprint'],
                   control_rate_hz=float(data['control_rate_hz']),
                   obs_joints=tuple(data['obs_joints']), obs_fields=tuple(data['obs_fields']),
                   action_joints=tuple(data['action_joints']),
                   obs_extra=tuple(data.get('obs_extra', ())),
                   relative_to=tuple(int(c) for c in data.get('relative_to', ())),
                   input_differences=tuple((int(c), int(p))
                                           for c, p in data.get('input_differences', ())),
                   **arrays)


def window_indices(starts: np.ndarray, lengths: np.ndarray, history: int,
                   horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(history_index [N, k], chunk_index [N, H])`` for episodes of contiguous rows.

    ``N = sum(lengths)``; row ``r`` of the result belongs to the episode whose rows are
    ``starts[e] .. starts[e] + lengths[e] - 1``; indices are clamped inside that episode.
    """
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(lengths, np.int64)
    rows = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)]) \
        if len(starts) else np.zeros(0, np.int64)
    first = np.repeat(starts, lengths)
    last = first + np.repeat(lengths, lengths) - 1
    back = np.arange(-(history - 1), 1, dtype=np.int64)
    ahead = np.arange(horizon, dtype=np.int64)
    hist = np.maximum(rows[:, None] + back[None, :], first[:, None])
    chunk = np.minimum(rows[:, None] + ahead[None, :], last[:, None])
    return hist, chunk


class WindowedData:
    """Normalized frames and actions on one device, with per-row window indices and splits.

    With ``reference`` (relative actions) ``actions`` are divided by their std but not
    centered, and ``reference`` [N, A] is the row's own position of each action joint scaled
    the same way: a chunk is then ``actions[chunk] - reference[row] - offset``.
    """

    def __init__(self, observations: torch.Tensor, actions: torch.Tensor,
                 history_index: torch.Tensor, chunk_index: torch.Tensor,
                 splits: dict[str, torch.Tensor], reference: torch.Tensor | None = None,
                 offset: torch.Tensor | None = None) -> None:
        self.observations = observations  # [N, F]
        self.actions = actions  # [N, A]
        self.history_index = history_index  # [N, k]
        self.chunk_index = chunk_index  # [N, H]
        self.splits = splits  # name -> row indices (int64)
        self.reference = reference  # [N, A] or None
        self.offset = offset  # [A]: mean / std of the differences, or None

    @property
    def obs_size(self) -> int:
        return self.history_index.shape[1] * self.observations.shape[1]

    @property
    def chunk_size(self) -> int:
        return self.chunk_index.shape[1] * self.actions.shape[1]

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(obs [B, k*F], action chunk [B, H*A])`` for the given row indices."""
        obs = self.observations[self.history_index[rows]].reshape(rows.shape[0], -1)
        act = self.actions[self.chunk_index[rows]]
        if self.reference is not None:
            act = act - (self.reference[rows].unsqueeze(1) + self.offset)
        return obs, act.reshape(rows.shape[0], -1)

    def to(self, device: torch.device | str) -> 'WindowedData':
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device)
        return WindowedData(self.observations.to(device), self.actions.to(device),
                            self.history_index.to(device), self.chunk_index.to(device),
                            {k: v.to(device) for k, v in self.splits.items()},
                            move(self.reference), move(self.offset))


def load_windows(dataset_dir: str | Path, *, history: int, horizon: int,
                 normalize: bool = True, relative: bool = False, relative_inputs: bool = False
                 ) -> tuple[WindowedData, DatasetInfo]:
    """Load a dataset directory (checked by core/dataset.py load_dataset) into CPU tensors.

    ``relative``: targets are the actions minus the row's own observed position of each
    action joint; ``info.action_mean/std`` are then those differences' statistics over the
    training chunks, and ``info.relative_to`` names the frame columns subtracted.
    ``relative_inputs``: further inputs' positions become differences to the observed
    positions of the same joints (``info.input_differences``, statistics of the differences).
    """
    dataset = load_dataset(dataset_dir)
    info = DatasetInfo.from_manifest(dataset_dir, dataset.manifest)
    observations = np.asarray(dataset.observations, np.float32)
    actions = np.asarray(dataset.actions, np.float32)
    episodes = dataset.manifest['episodes']
    n = observations.shape[0]
    starts = np.array([e['start'] for e in episodes], np.int64)
    lengths = np.array([e['length'] for e in episodes], np.int64)
    rows = np.concatenate([np.arange(s, s + m) for s, m in zip(starts, lengths)]) \
        if len(episodes) else np.zeros(0, np.int64)
    hist, chunk = window_indices(starts, lengths, history, horizon)
    split_of = np.repeat(np.array([e['split'] for e in episodes] or ['train']),
                         lengths if len(episodes) else 0)
    # Window tables are indexed by row position in the arrays; rows not in any episode keep
    # identity windows and are in no split.
    hist_full = np.repeat(np.arange(n, dtype=np.int64)[:, None], history, axis=1)
    chunk_full = np.repeat(np.arange(n, dtype=np.int64)[:, None], horizon, axis=1)
    hist_full[rows], chunk_full[rows] = hist, chunk
    splits = {s: torch.from_numpy(rows[split_of == s].astype(np.int64)) for s in SPLITS}
    train_rows = splits['train'].numpy() if len(splits['train']) else rows

    if relative_inputs:
        pairs = input_difference_columns(info, dataset_dir)
        columns, subtracted = (np.array(c, np.int64) for c in zip(*pairs))
        observations = observations.copy()
        observations[:, columns] -= observations[:, subtracted]
        mean, std = info.obs_mean.copy(), info.obs_std.copy()
        mean[columns] = observations[train_rows][:, columns].mean(axis=0)
        std[columns] = observations[train_rows][:, columns].std(axis=0)
        info = replace(info, input_differences=pairs, obs_mean=mean, obs_std=std)
    reference = offset = None
    if relative:
        columns = _reference_columns(info, dataset_dir)
        reference = observations[:, columns]
        mean, std = _difference_stats(actions, reference, chunk_full, train_rows)
        info = replace(info, relative_to=tuple(int(c) for c in columns), action_mean=mean,
                       action_std=std)
    if normalize:
        observations = (observations - info.obs_mean) / np.maximum(info.obs_std, MIN_STD)
        action_std = np.maximum(info.action_std, MIN_STD)
        if relative:
            actions, reference = actions / action_std, reference / action_std
            offset = torch.from_numpy((info.action_mean / action_std).astype(np.float32))
        else:
            actions = (actions - info.action_mean) / action_std
    elif relative:
        offset = torch.zeros(len(info.action_joints))
    data = WindowedData(torch.from_numpy(np.ascontiguousarray(observations, np.float32)),
                        torch.from_numpy(np.ascontiguousarray(actions, np.float32)),
                        torch.from_numpy(hist_full), torch.from_numpy(chunk_full), splits,
                        None if reference is None else
                        torch.from_numpy(np.ascontiguousarray(reference, np.float32)), offset)
    return data, info


def state_position_columns(info: DatasetInfo) -> dict[str, int]:
    """The frame column of each observed joint's position on the state topic ({} without)."""
    columns, offset = {}, 0
    for topic, field, joints in info.observation_spec().parts:
        if topic is None and field.value == 'position':
            columns.update((joint, offset + i) for i, joint in enumerate(joints))
        offset += len(joints)
    return columns


def _reference_columns(info: DatasetInfo, dataset_dir: str | Path) -> np.ndarray:
    """Frame columns of the observed positions of the action joints (relative actions)."""
    positions = state_position_columns(info)
    if not positions:
        raise DatasetError(f'{dataset_dir}: relative actions need the observed positions, '
                           f'the dataset observes {list(info.obs_fields)}')
    missing = [j for j in info.action_joints if j not in positions]
    if missing:
        raise DatasetError(f'{dataset_dir}: relative actions need observed positions of the '
                           f'action joints; {missing} are not observed')
    return np.array([positions[j] for j in info.action_joints], np.int64)


def input_difference_columns(info: DatasetInfo, dataset_dir: str | Path
                             ) -> tuple[tuple[int, int], ...]:
    """(column, observed position column) of every further input position of an observed joint.

    DatasetError when there is none (relative inputs need e.g. a goal of the observed joints).
    """
    spec = info.observation_spec()
    positions = state_position_columns(info)
    pairs = []
    offset = 0
    for topic, field, joints in spec.parts:
        if topic is not None and field.value == 'position':
            pairs += [(offset + i, positions[joint]) for i, joint in enumerate(joints)
                      if joint in positions]
        offset += len(joints)
    if not pairs:
        raise DatasetError(f'{dataset_dir}: relative inputs need a further observed topic with '
                           f'positions of observed joints (e.g. a goal pose); the dataset has '
                           f'{[(t, f.value, list(j)) for t, f, j in spec.parts if t]}')
    return tuple(pairs)


def _difference_stats(actions: np.ndarray, reference: np.ndarray, chunk: np.ndarray,
                      rows: np.ndarray, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint mean and std of ``actions[chunk[r]] - reference[r]`` over rows ``r``."""
    total = np.zeros(actions.shape[1])
    squares = np.zeros(actions.shape[1])
    count = 0
    for start in range(0, len(rows), block):
        r = rows[start:start + block]
        diff = (actions[chunk[r]] - reference[r][:, None, :]).reshape(-1, actions.shape[1])
        total += diff.sum(axis=0, dtype=np.float64)
        squares += (diff.astype(np.float64) ** 2).sum(axis=0)
        count += len(diff)
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - mean ** 2, 0.0))
    std = np.where(std < MIN_STD, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


__all__ = ['DatasetError', 'DatasetInfo', 'WindowedData', 'load_windows',
           'state_position_columns', 'window_indices']
