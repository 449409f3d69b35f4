"""LoopStats: period error, missed ticks, overruns, bounded memory."""
import numpy as np
import pytest

from il_policy_node.runtime.timing import LoopStats, Percentiles, Ring

PERIOD = 2_000_000  # 2 ms


def test_period_error_and_missed_ticks():
    stats = LoopStats(PERIOD)
    starts = [0, 2_000_000, 4_100_000, 6_000_000, 12_000_000]   # 100 us late, then 2 missed
    for start in starts:
        stats.tick_started(start)
        stats.tick_finished(50_000, 300_000)
    summary = stats.summary()
    assert summary.ticks == 5 and summary.missed_ticks == 2 and summary.overruns == 0
    assert stats.samples()['period_error_us'].tolist() == [0.0, 100.0, 100.0, 4000.0]
    assert summary.compute_us.p50 == pytest.approx(50.0)
    assert summary.state_age_us.max == pytest.approx(300.0)
    assert summary.rate_hz == pytest.approx(4 / 0.012)


def test_overruns_and_windows():
    stats = LoopStats(PERIOD)
    stats.tick_started(0)
    stats.tick_finished(3_000_000, None)
    assert stats.summary().overruns == 1
    stats.reset_window()
    assert np.isnan(stats.summary().compute_us.p50) and stats.summary().overruns == 1
    stats.restart()
    stats.tick_started(10 * PERIOD)            # no period sample across a pause
    assert stats.samples()['period_error_us'].size == 0


def test_ring_keeps_the_newest_samples_in_order():
    ring = Ring(3)
    for value in range(5):
        ring.append(value)
    assert ring.values().tolist() == [2.0, 3.0, 4.0]
    assert Percentiles.of(np.array([1.0, 2.0, 3.0])).as_dict() == {'p50': 2.0, 'p99': 3.0,
                                                                   'max': 3.0}
