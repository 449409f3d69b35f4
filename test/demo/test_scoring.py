"""Closed-loop scores on runs with known answers (sinusoids, ramps)."""
import numpy as np
import pytest

from il_policy_node.demo.scoring import (
    WaveReference,
    estimate_period,
    fold_cycle,
    phase_aligned_rms,
    score_reach,
    score_wave,
    summarize,
)

AMPLITUDE = np.array([0.5, 0.0, 0.3])
PHASE = np.array([0.0, 0.0, np.pi / 2])
LOWER, UPPER = -np.ones(3) * 2, np.ones(3) * 2
PERIOD = 2.0


def wave(t, period=PERIOD, scale=1.0, shift_s=0.0):
    angle = 2 * np.pi * (np.asarray(t)[:, None] + shift_s) / period + PHASE
    return 0.2 + scale * AMPLITUDE * np.sin(angle)


def reference(m=100):
    return WaveReference(PERIOD, wave(np.arange(m) * PERIOD / m))


def test_period_of_a_sinusoid_is_found_to_a_fraction_of_a_percent():
    t = np.arange(0.0, 10.0, 0.002)
    for period in (1.8, 2.0, 2.3):
        assert estimate_period(t, wave(t, period), PERIOD) == pytest.approx(period, rel=3e-3)
    assert np.isnan(estimate_period(t, np.zeros((len(t), 3)), PERIOD))     # no motion


def test_folding_a_recording_gives_its_cycle_and_averages_out_the_rest():
    t = np.arange(801) * 0.01                 # 0 .. 8 s: 4 whole cycles

    def sway(times):     # 0.37 Hz on joint 1: not periodic at the wave's period
        return 0.1 * np.sin(2 * np.pi * 0.37 * times)[..., None] * np.array([0.0, 1.0, 0.0])

    folded = fold_cycle(t, wave(t) + sway(t), PERIOD, samples=100)
    assert folded.period_s == PERIOD and folded.positions.shape == (100, 3)
    np.testing.assert_allclose(fold_cycle(t, wave(t), PERIOD, 100).positions,
                               reference().positions, atol=1e-4)
    # 4 whole cycles: at each phase the sway's mean over the cycles remains, much reduced
    phases = np.arange(100) * PERIOD / 100
    remainder = sway(phases[None, :] + PERIOD * np.arange(4)[:, None]).mean(axis=0)
    np.testing.assert_allclose(folded.positions, reference().positions + remainder, atol=1e-4)
    assert np.abs(remainder).max() < 0.5 * 0.1
    with pytest.raises(ValueError, match='at least one whole period'):
        fold_cycle(t[:100], wave(t[:100]), PERIOD)


def test_phase_aligned_rms_ignores_phase_and_measures_amplitude():
    t = np.arange(0.0, 8.0, 0.004)
    rms, phase = phase_aligned_rms(t, wave(t, shift_s=0.37), reference(), PERIOD)
    assert rms < 2e-3 and phase == pytest.approx(0.37 / PERIOD, abs=3e-3)
    # a 20 % larger amplitude: error = 0.2 * amplitude sinusoids, RMS over the 3 joints
    expected = np.sqrt(np.mean((0.2 * AMPLITUDE) ** 2) / 2)
    rms, _ = phase_aligned_rms(t, wave(t, scale=1.2), reference(), PERIOD)
    assert rms == pytest.approx(expected, rel=0.03)


def test_wave_success_and_each_failure_reason():
    t = np.arange(0.0, 10.0, 0.01)
    ok = score_wave(t, wave(t, shift_s=0.5), reference(), lower=LOWER, upper=UPPER)
    assert ok.success and ok.reason == '' and ok.rmse_rad < 0.01
    assert ok.details['period_s'] == pytest.approx(PERIOD, rel=3e-3)
    slow = score_wave(t, wave(t, period=2.5), reference(), lower=LOWER, upper=UPPER)
    assert not slow.success and 'period 2.5' in slow.reason and '25.0 %' in slow.reason
    big = score_wave(t, wave(t, scale=2.0), reference(), lower=LOWER, upper=UPPER)
    assert not big.success and 'RMS error' in big.reason
    tight = score_wave(t, wave(t), reference(), lower=LOWER, upper=np.array([2, 2, 0.3]))
    assert not tight.success and 'outside the joint limits' in tight.reason
    still = score_wave(t, np.zeros((len(t), 3)), reference(), lower=LOWER, upper=UPPER)
    assert not still.success and 'no periodic motion' in still.reason
    short = score_wave(t[:400], wave(t[:400]), reference(), lower=LOWER, upper=UPPER)
    assert not short.success and 'too short' in short.reason


def test_the_settling_time_is_not_judged():
    t = np.arange(0.0, 10.0, 0.01)
    q = wave(t)
    q[t < 2.5] = 1.5          # somewhere else entirely before settling
    assert score_wave(t, q, reference(), lower=LOWER, upper=UPPER, settle_s=3.0).success


def test_reach_deadline_tolerance_and_rmse():
    goal, start = np.array([1.0, -0.5, 0.3]), np.zeros(3)

    def ramp(duration):
        return lambda t: start + np.clip(np.asarray(t) / duration, 0, 1)[:, None] * (goal - start)

    t = np.arange(0.0, 5.0, 0.01)
    on_time = score_reach(t, ramp(2.0)(t), goal, 2.0, lower=LOWER, upper=UPPER,
                          demonstration=ramp(2.0))
    assert on_time.success and on_time.rmse_rad == pytest.approx(0.0, abs=1e-12)
    # 0.05 rad from the goal on the largest joint (1.0 rad) = 95 % of the way
    assert on_time.details['reached_s'] == pytest.approx(1.9, abs=0.011)
    late = score_reach(t, ramp(3.2)(t), goal, 2.0, lower=LOWER, upper=UPPER,
                       demonstration=ramp(2.0))
    assert not late.success and 'by 3.00 s' in late.reason and late.rmse_rad > 0.05
    in_time = score_reach(t, ramp(3.0)(t), goal, 2.0, lower=LOWER, upper=UPPER)
    assert in_time.success and np.isnan(in_time.rmse_rad)
    short_of_goal = score_reach(t, ramp(2.0)(t) * 0.9, goal, 2.0, lower=LOWER, upper=UPPER)
    assert not short_of_goal.success and 'closest 0.100 rad' in short_of_goal.reason


def test_summary_counts_successes_and_lists_failures():
    t = np.arange(0.0, 10.0, 0.01)
    scores = [score_wave(t, wave(t), reference(), lower=LOWER, upper=UPPER),
              score_wave(t, wave(t, period=3.0), reference(), lower=LOWER, upper=UPPER)]
    summary = summarize(scores)
    assert summary['rollouts'] == 2 and summary['success_rate'] == 0.5
    assert len(summary['failures']) == 1 and 'period' in summary['failures'][0]
