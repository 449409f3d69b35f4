"""A dataset as in-memory training windows, and the policy processor fitted to its train split.

A sample at row ``t`` uses the observation history rows ``t-k+1..t`` (clamped to the first row
of its episode: padded with the first frame, as runtime/observation.py does at run time) and
the action chunk rows ``t..t+H-1`` (clamped to the last row of its episode). Both are
precomputed as index arrays ``[N, k]`` and ``[N, H]``; a batch is two tensor gathers of raw
values, which the processor then turns into what the network sees and should output.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from il_policy_node.errors import DatasetError
from il_policy_node.formats import SPLITS
from il_policy_node.pipeline.dataset.format import Dataset
from il_policy_node.policies.processor import Processor, ProcessorLayout
from il_policy_node.policies.statistics import RunningStatistics, Statistics, with_std_floor

STATISTICS_BLOCK = 65536          # rows per block when the processor's statistics are computed


def window_indices(starts: Sequence[int], lengths: Sequence[int], history: int,
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


@dataclass
class WindowedData:
    """Raw frames and actions on one device, with per-row window indices and the splits."""

    observations: torch.Tensor          # [N, F]
    actions: torch.Tensor               # [N, A]
    history_index: torch.Tensor         # [N, k]
    chunk_index: torch.Tensor           # [N, H]
    splits: dict[str, torch.Tensor]     # name -> row indices (int64)

    @property
    def obs_size(self) -> int:
        return self.history_index.shape[1] * self.observations.shape[1]

    @property
    def chunk_size(self) -> int:
        return self.chunk_index.shape[1] * self.actions.shape[1]

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(observations [B, k*F], action chunks [B, H, A])`` of the given rows, raw."""
        obs = self.observations[self.history_index[rows]].reshape(rows.shape[0], -1)
        return obs, self.actions[self.chunk_index[rows]]

    def to(self, device: torch.device | str) -> 'WindowedData':
        return WindowedData(self.observations.to(device), self.actions.to(device),
                            self.history_index.to(device), self.chunk_index.to(device),
                            {k: v.to(device) for k, v in self.splits.items()})

    def processed(self, processor: Processor) -> 'ProcessedWindows':
        """The rows through ``processor`` once: batches are then gathers (and a subtraction)."""
        with torch.no_grad():
            return ProcessedWindows(
                processor.encode_frames(self.observations),
                processor.scale_actions(self.actions),
                processor.action_offsets(self.observations), self.history_index,
                self.chunk_index, self.splits)


@dataclass
class ProcessedWindows:
    """What the network sees and should output, per row: the processor applied to each row.

    ``batch(rows)`` equals ``processor.encode(obs), processor.targets(chunk, obs)`` of the raw
    batch (the processor works frame by frame and row by row), without redoing it per batch.
    """

    inputs: torch.Tensor                # [N, C / k] encoded frames
    scaled_actions: torch.Tensor        # [N, A]
    offsets: torch.Tensor               # [N, A]: of each row's own (newest) frame
    history_index: torch.Tensor
    chunk_index: torch.Tensor
    splits: dict[str, torch.Tensor]

    @property
    def chunk_size(self) -> int:
        return self.chunk_index.shape[1] * self.scaled_actions.shape[1]

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(network inputs [B, C], targets [B, H*A])`` of the given rows."""
        inputs = self.inputs[self.history_index[rows]].reshape(rows.shape[0], -1)
        targets = self.scaled_actions[self.chunk_index[rows]] - self.offsets[rows].unsqueeze(1)
        return inputs, targets.reshape(rows.shape[0], -1)


def load_windows(dataset: Dataset, *, history: int, horizon: int) -> WindowedData:
    """The dataset's rows as CPU tensors with their windows (rows in no episode: no split)."""
    episodes = dataset.manifest['episodes']
    n = len(dataset.observations)
    starts = np.array([e['start'] for e in episodes], np.int64)
    lengths = np.array([e['length'] for e in episodes], np.int64)
    rows = np.concatenate([np.arange(s, s + m) for s, m in zip(starts, lengths)]) \
        if len(episodes) else np.zeros(0, np.int64)
    hist, chunk = window_indices(starts, lengths, history, horizon)
    split_of = np.repeat(np.array([e['split'] for e in episodes] or ['train']),
                         lengths if len(episodes) else 0)
    hist_full = np.repeat(np.arange(n, dtype=np.int64)[:, None], history, axis=1)
    chunk_full = np.repeat(np.arange(n, dtype=np.int64)[:, None], horizon, axis=1)
    hist_full[rows], chunk_full[rows] = hist, chunk
    splits = {s: torch.from_numpy(rows[split_of == s].astype(np.int64)) for s in SPLITS}
    return WindowedData(
        torch.from_numpy(np.ascontiguousarray(dataset.observations, np.float32)),
        torch.from_numpy(np.ascontiguousarray(dataset.actions, np.float32)),
        torch.from_numpy(hist_full), torch.from_numpy(chunk_full), splits)


def fit_processor(dataset: Dataset, data: WindowedData, layout: ProcessorLayout) -> Processor:
    """The processor of a run: statistics of the train split, for this layout.

    Frame columns take the dataset's statistics; columns seen as differences (relative
    inputs) and, with relative actions, the differences of the demonstrated chunks to the
    newest observed positions get their own, over the training rows: computed by the
    processor itself with identity statistics (every frame column kept). Input columns that
    barely move get a std floor within their block (statistics.with_std_floor).
    """
    train = data.splits['train']
    if len(train) == 0:
        raise DatasetError(f'{dataset.path} has no training rows')
    horizon, action_size = data.chunk_index.shape[1], data.actions.shape[1]
    raw = Processor(replace(layout, hidden=(), history=1), horizon=horizon,
                    action_size=action_size)
    stats = dataset.manifest['stats']
    inputs = Statistics(np.asarray(stats['observation']['mean'], np.float64),
                        np.asarray(stats['observation']['std'], np.float64), len(train))
    actions = Statistics(np.asarray(stats['action']['mean'], np.float64),
                         np.asarray(stats['action']['std'], np.float64), len(train))
    differenced = [c for c, _ in layout.differences]
    frames = RunningStatistics(layout.frame_size)
    chunks = RunningStatistics(action_size)
    with torch.no_grad():
        for start in range(0, len(train), STATISTICS_BLOCK):
            rows = train[start:start + STATISTICS_BLOCK]
            frame = data.observations[rows]
            if differenced:
                frames.add(raw.encode_frames(frame).numpy())
            if layout.reference:
                chunks.add(raw.targets(data.actions[data.chunk_index[rows]], frame).numpy())
    if differenced:
        fitted = frames.result()
        mean, std = inputs.mean.copy(), inputs.std.copy()
        mean[differenced], std[differenced] = fitted.mean[differenced], fitted.std[differenced]
        inputs = Statistics(mean, std, len(train))
    if layout.reference:
        actions = chunks.result()
    return Processor(layout, horizon=horizon, action_size=action_size,
                     inputs=with_std_floor(inputs, input_groups(dataset)), actions=actions)


def input_groups(dataset: Dataset) -> list[range]:
    """The frame columns of each observed block (one field of one topic's joints)."""
    return [range(start, start + len(joints))
            for _, _, start, joints in dataset.observation_spec().blocks()]
