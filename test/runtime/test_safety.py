"""Safety layer: unit cases and properties over any model output."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from il_policy_node.errors import ConfigError
from il_policy_node.runtime.safety import (
    Intervention,
    JointLimits,
    SafetyFilter,
    clamp_positions,
    limit_step,
    ramp_fraction,
    ramp_in,
)

N = 4
LIMITS = JointLimits(lower=[-1.0, -2.0, 0.0, -np.inf], upper=[1.0, 0.5, 3.0, np.inf],
                     max_velocity=[1.0, 2.0, 0.5, 3.0])
PERIOD = 0.01
EPS = 1e-9


def test_clamp_counts_the_joints_it_moved():
    out, changed = clamp_positions(np.array([2.0, 0.0, -1.0, 1e9]), LIMITS)
    assert out.tolist() == [1.0, 0.0, 0.0, 1e9] and changed == 2


def test_limit_step_bounds_each_joint():
    out, changed = limit_step(np.array([1.0, -1.0, 0.05]), np.zeros(3), np.array([0.1, 0.5, 0.1]))
    assert np.allclose(out, [0.1, -0.5, 0.05]) and changed == 2


def test_ramp_is_smooth_and_ends_at_one():
    assert ramp_fraction(0.0, 2.0) == 0.0
    assert ramp_fraction(1.0, 2.0) == pytest.approx(0.5)
    assert ramp_fraction(2.5, 2.0) == 1.0
    assert ramp_fraction(0.3, 0.0) == 1.0
    fractions = [ramp_fraction(t, 1.0) for t in np.linspace(0, 1, 50)]
    assert all(b >= a for a, b in zip(fractions, fractions[1:]))
    assert np.allclose(ramp_in(np.zeros(2), np.array([2.0, -2.0]), 0.25), [0.5, -0.5])


def test_limits_are_validated():
    with pytest.raises(ConfigError, match='lower limit > upper limit'):
        JointLimits(lower=[1.0], upper=[0.0], max_velocity=[1.0])
    with pytest.raises(ConfigError, match='max_velocity'):
        JointLimits(lower=[0.0], upper=[1.0], max_velocity=[0.0])
    with pytest.raises(ConfigError, match='NaN'):
        JointLimits(lower=[np.nan], upper=[1.0], max_velocity=[1.0])


def test_filter_counts_every_intervention():
    safety = SafetyFilter(LIMITS, PERIOD)
    previous = np.zeros(N)
    held = safety.apply(np.array([np.nan, 0.5, 0.5, 0.5]), previous)
    assert held.tolist() == previous.tolist()       # the whole vector holds
    safety.apply(np.array([5.0, 0.0, 0.0, 0.0]), previous)
    counts = safety.counts
    assert counts[Intervention.NONFINITE_ACTION] == 1
    assert counts[Intervention.POSITION_CLAMP] == 1
    assert counts[Intervention.STEP_LIMIT] == 1


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def previous_within_limits(draw):
    lower = np.where(np.isfinite(LIMITS.lower), LIMITS.lower, -10.0)
    upper = np.where(np.isfinite(LIMITS.upper), LIMITS.upper, 10.0)
    fractions = draw(arrays(np.float64, N, elements=st.floats(0.0, 1.0)))
    return lower + fractions * (upper - lower)


@settings(max_examples=500, deadline=None)
@given(target=arrays(np.float64, N, elements=finite_or_not), previous=previous_within_limits())
def test_any_model_output_gives_a_finite_bounded_small_step(target, previous):
    out = SafetyFilter(LIMITS, PERIOD).apply(target, previous)
    assert np.isfinite(out).all()
    assert (out >= LIMITS.lower).all() and (out <= LIMITS.upper).all()
    assert (np.abs(out - previous) <= LIMITS.max_velocity * PERIOD + EPS).all()


@settings(max_examples=300, deadline=None)
@given(targets=st.lists(arrays(np.float64, N, elements=finite_or_not), min_size=1, max_size=30),
       previous=previous_within_limits())
def test_a_stream_of_outputs_stays_safe_tick_after_tick(targets, previous):
    safety = SafetyFilter(LIMITS, PERIOD)
    for target in targets:
        out = safety.apply(target, previous)
        assert np.isfinite(out).all()
        assert (out >= LIMITS.lower).all() and (out <= LIMITS.upper).all()
        assert (np.abs(out - previous) <= LIMITS.max_velocity * PERIOD + EPS).all()
        previous = out.copy()


@settings(max_examples=200, deadline=None)
@given(target=arrays(np.float64, N, elements=st.floats(-1e6, 1e6)),
       start=arrays(np.float64, N, elements=st.floats(-20.0, 20.0)))
def test_a_start_outside_the_limits_never_jumps(target, start):
    out = SafetyFilter(LIMITS, PERIOD).apply(target, start)
    assert (np.abs(out - start) <= LIMITS.max_velocity * PERIOD + EPS).all()
