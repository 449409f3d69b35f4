"""Normalization statistics of feature columns (numpy only: dataset builders use them too).

A column whose spread is below ``MIN_STD`` is constant in the data: it is normalized with
std 1 (centered, not scaled), so a tiny difference at run time is not blown up. A column that
barely moves (a joint the demonstrations hold still, up to retargeting noise) is normalized
with at least ``RELATIVE_STD_FLOOR`` times the largest std of its group (the columns of one
unit, e.g. one field's joints, see :func:`with_std_floor`): otherwise a robot's tracking
error of a millimetre would reach the network as hundreds of standard deviations.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_STD = 1e-6
RELATIVE_STD_FLOOR = 0.1


def normalization_std(std: np.ndarray) -> np.ndarray:
    """``std`` with every column below MIN_STD replaced by 1."""
    std = np.asarray(std, np.float64)
    return np.where(std < MIN_STD, 1.0, std)


@dataclass(frozen=True)
class Statistics:
    """Per-column mean and normalization std (see the module doc) over ``count`` rows."""

    mean: np.ndarray
    std: np.ndarray
    count: int

    @classmethod
    def of(cls, values: np.ndarray) -> 'Statistics':
        """Of the rows of ``values`` [n, d] (any float dtype; accumulated in float64)."""
        running = RunningStatistics(np.asarray(values).shape[-1])
        running.add(values)
        return running.result()

    def to_dict(self) -> dict[str, list[float]]:
        return {'mean': self.mean.tolist(), 'std': self.std.tolist()}


class RunningStatistics:
    """Statistics of rows added block by block (bounded memory over large datasets).

    Each block's mean and squared deviations are merged by Chan's parallel update, so the
    result equals the two-pass one over all rows (no cancellation of large means).
    """

    def __init__(self, columns: int) -> None:
        self._mean = np.zeros(columns)
        self._squares = np.zeros(columns)     # sum of squared deviations from the mean
        self._count = 0

    def add(self, block: np.ndarray) -> None:
        block = np.asarray(block)
        if block.dtype != np.float32:
            block = block.astype(np.float64, copy=False)
        block = block.reshape(-1, self._mean.size)
        n = len(block)
        if n == 0:
            return
        mean = np.add.reduce(block, axis=0, dtype=np.float64) / n
        deviation = block - mean.astype(block.dtype)     # float32 data stay float32 here
        squares = np.einsum('ij,ij->j', deviation, deviation, dtype=np.float64)
        total = self._count + n
        delta = mean - self._mean
        self._squares += squares + delta * delta * (self._count * n / total)
        self._mean += delta * (n / total)
        self._count = total

    def result(self) -> Statistics:
        variance = self._squares / max(self._count, 1)
        return Statistics(mean=self._mean.copy(), std=normalization_std(np.sqrt(variance)),
                          count=self._count)


def with_std_floor(stats: Statistics, groups: Sequence[Sequence[int]],
                   relative: float = RELATIVE_STD_FLOOR) -> Statistics:
    """``stats`` with each column's std at least ``relative`` x the largest of its group."""
    std = np.asarray(stats.std, np.float64).copy()
    for group in groups:
        columns = np.asarray(group, dtype=np.int64)
        if columns.size:
            std[columns] = np.maximum(std[columns], relative * std[columns].max())
    return Statistics(mean=stats.mean, std=std, count=stats.count)
