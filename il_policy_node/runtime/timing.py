"""Control-loop statistics: tick period error, compute time, state age, missed ticks.

All buffers are preallocated rings, so recording a tick allocates nothing and memory stays flat
over hours of running. Times are integer nanoseconds from a monotonic clock.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class Ring:
    """Fixed-size float ring of the most recent samples."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(capacity, np.float64)
        self._next = 0
        self._count = 0

    def append(self, value: float) -> None:
        self._data[self._next] = value
        self._next = (self._next + 1) % self._data.size
        self._count = min(self._count + 1, self._data.size)

    def values(self) -> np.ndarray:
        """The samples held, oldest first (a copy)."""
        if self._count < self._data.size:
            return self._data[:self._count].copy()
        return np.roll(self._data, -self._next)

    def clear(self) -> None:
        self._next = self._count = 0


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: np.ndarray) -> 'Percentiles':
        if values.size == 0:
            return cls(float('nan'), float('nan'), float('nan'))
        p50, p99 = np.percentile(values, (50, 99))
        return cls(float(p50), float(p99), float(values.max()))

    def as_dict(self, digits: int = 1) -> dict[str, float]:
        return {'p50': round(self.p50, digits), 'p99': round(self.p99, digits),
                'max': round(self.max, digits)}


@dataclass(frozen=True)
class LoopSummary:
    """Statistics over the samples currently held, in microseconds where a time."""

    ticks: int
    missed_ticks: int
    overruns: int
    rate_hz: float
    period_error_us: Percentiles
    compute_us: Percentiles
    state_age_us: Percentiles


class LoopStats:
    """Records each tick of a loop meant to run every ``period_ns``.

    A tick is missed when the gap since the previous tick spans more than one period (the gap
    is counted in whole periods, minus one); an overrun is a tick whose compute time exceeded
    the period. ``capacity`` bounds the samples kept for percentiles.
    """

    def __init__(self, period_ns: int, capacity: int = 4096) -> None:
        self.period_ns = int(period_ns)
        self._period_error = Ring(capacity)
        self._compute = Ring(capacity)
        self._state_age = Ring(capacity)
        self._last_start: int | None = None
        self._window_start: int | None = None
        self._window_first_tick = 0
        self.ticks = 0
        self.missed_ticks = 0
        self.overruns = 0

    def restart(self) -> None:
        """Forget the previous tick (after a pause, e.g. deactivate) but keep the totals."""
        self._last_start = None
        self._window_start = None

    def tick_started(self, now_ns: int) -> None:
        if self._last_start is not None:
            gap = now_ns - self._last_start
            self._period_error.append(abs(gap - self.period_ns) / 1e3)
            self.missed_ticks += max(0, int(round(gap / self.period_ns)) - 1)
        if self._window_start is None:
            self._window_start, self._window_first_tick = now_ns, self.ticks
        self._last_start = now_ns
        self.ticks += 1

    def tick_finished(self, compute_ns: int, state_age_ns: int | None) -> None:
        self._compute.append(compute_ns / 1e3)
        if state_age_ns is not None:
            self._state_age.append(state_age_ns / 1e3)
        if compute_ns > self.period_ns:
            self.overruns += 1

    def summary(self) -> LoopSummary:
        """Totals since start; rate and percentiles over the current window."""
        window_ticks = self.ticks - self._window_first_tick
        elapsed_ns = 0 if self._window_start is None else self._last_start - self._window_start
        rate = (window_ticks - 1) * 1e9 / elapsed_ns if elapsed_ns > 0 else 0.0
        return LoopSummary(
            ticks=self.ticks, missed_ticks=self.missed_ticks, overruns=self.overruns,
            rate_hz=rate, period_error_us=Percentiles.of(self._period_error.values()),
            compute_us=Percentiles.of(self._compute.values()),
            state_age_us=Percentiles.of(self._state_age.values()))

    def samples(self) -> dict[str, np.ndarray]:
        """Raw samples held (microseconds), for benchmarks and plots."""
        return {'period_error_us': self._period_error.values(),
                'compute_us': self._compute.values(),
                'state_age_us': self._state_age.values()}

    def reset_window(self) -> None:
        """Drop the samples (not the totals), so the next summary covers a fresh window."""
        for ring in (self._period_error, self._compute, self._state_age):
            ring.clear()
        self._window_start = None
