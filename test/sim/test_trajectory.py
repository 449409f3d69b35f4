"""TrajectoryFollower: joint_trajectory_controller semantics against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from il_policy_node.errors import SimError
from il_policy_node.sim.trajectory import (
    TrajectoryCommand,
    TrajectoryFollower,
    TrajectoryPoint,
    TrajectoryRejected,
)

JOINTS = ('a', 'b')


def follower(initial=(0.0, 0.0), **limits) -> TrajectoryFollower:
    return TrajectoryFollower(JOINTS, initial, **limits)


def command(*points, names=JOINTS, start_time=0.0) -> TrajectoryCommand:
    return TrajectoryCommand(joint_names=list(names), start_time=start_time,
                             points=[p if isinstance(p, TrajectoryPoint)
                                     else TrajectoryPoint(p[0], time_from_start=p[1])
                                     for p in points])


def point(positions, t, velocities=()) -> TrajectoryPoint:
    return TrajectoryPoint(positions=positions, velocities=velocities, time_from_start=t)


def expect(f: TrajectoryFollower, now: float, positions, velocities) -> None:
    p, v = f.sample(now)
    np.testing.assert_allclose(p, positions, atol=1e-12)
    np.testing.assert_allclose(v, velocities, atol=1e-12)


# -- following --------------------------------------------------------------------------------
def test_holds_initial_positions_without_a_trajectory():
    f = follower((0.3, -0.2))
    expect(f, 0.0, [0.3, -0.2], [0, 0])
    expect(f, 100.0, [0.3, -0.2], [0, 0])
    assert not f.active(0.0)


def test_linear_segments_from_the_current_state_then_hold():
    f = follower()
    f.accept(command(([1.0, 2.0], 1.0), ([3.0, 2.0], 2.0)), now=10.0)
    expect(f, 10.0, [0, 0], [1, 2])
    expect(f, 10.5, [0.5, 1.0], [1, 2])
    expect(f, 11.0, [1.0, 2.0], [2, 0])          # the second segment starts at the point
    expect(f, 11.5, [2.0, 2.0], [2, 0])
    assert f.active(11.5) and f.end_time == 12.0
    expect(f, 12.0, [3.0, 2.0], [0, 0])
    expect(f, 50.0, [3.0, 2.0], [0, 0])
    assert not f.active(12.0)


def test_cubic_hermite_segments_positions_and_velocities():
    f = follower()
    # From rest at 0 through (1 at t=1 moving at 1/s) to rest at 2 at t=2 (joint a);
    # joint b does the same scaled by -2.
    f.accept(command(point([1.0, -2.0], 1.0, [1.0, -2.0]), point([2.0, -4.0], 2.0, [0, 0])),
             now=0.0)
    # Segment 1: p0=0 v0=0 p1=1 v1=1, h=1 -> p = 2s^2 - s^3, v = 4s - 3s^2.
    for s in (0.0, 0.25, 0.5, 0.75):
        a, va = 2 * s**2 - s**3, 4 * s - 3 * s**2
        expect(f, s, [a, -2 * a], [va, -2 * va])
    expect(f, 0.5, [0.375, -0.75], [1.25, -2.5])
    # Segment 2: p0=1 v0=1 p1=2 v1=0 -> p = 1 + s + s^2 - s^3, v = 1 + 2s - 3s^2.
    for s in (0.0, 0.25, 0.5, 0.75):
        a, va = 1 + s + s**2 - s**3, 1 + 2 * s - 3 * s**2
        expect(f, 1 + s, [a, -2 * a], [va, -2 * va])
    expect(f, 1.5, [1.625, -3.25], [1.25, -2.5])
    expect(f, 2.0, [2.0, -4.0], [0, 0])
    expect(f, 3.0, [2.0, -4.0], [0, 0])


def test_continuous_at_the_knots():
    f = follower()
    f.accept(command(point([1.0, 0.5], 0.4, [0.7, -0.3]), point([0.2, 0.1], 1.0, [0, 0])), 0.0)
    for knot in (0.4, 1.0):
        before, after = f.sample(knot - 1e-7), f.sample(knot + 1e-7)
        np.testing.assert_allclose(before[0], after[0], atol=1e-5)
        np.testing.assert_allclose(before[1], after[1], atol=1e-4)


def test_starts_from_the_current_desired_state_not_from_zero():
    f = follower((0.5, -0.5))
    f.accept(command(([1.5, 0.5], 2.0)), now=1.0)
    expect(f, 2.0, [1.0, 0.0], [0.5, 0.5])


def test_replacement_mid_trajectory_has_no_jump():
    f = follower()
    f.accept(command(([1.0, 1.0], 1.0)), now=0.0)
    before = f.sample(0.5)
    f.accept(command(([0.0, 1.5], 1.0)), now=0.5)
    np.testing.assert_allclose(f.sample(0.5)[0], before[0])
    expect(f, 1.0, [0.25, 1.0], [-0.5, 1.0])
    expect(f, 1.5, [0.0, 1.5], [0, 0])


def test_cubic_replacement_keeps_position_and_velocity():
    f = follower()
    f.accept(command(point([1.0, 1.0], 1.0, [0, 0])), now=0.0)
    p, v = f.sample(0.3)
    assert (v > 0).all()
    f.accept(command(point([-1.0, 0.0], 2.0, [0, 0])), now=0.3)
    p2, v2 = f.sample(0.3)
    np.testing.assert_allclose(p2, p)
    np.testing.assert_allclose(v2, v)


def test_empty_points_stop_at_the_current_desired_position():
    f = follower()
    f.accept(command(([2.0, 2.0], 2.0)), now=0.0)
    f.accept(command(), now=1.0)
    expect(f, 1.0, [1.0, 1.0], [0, 0])
    expect(f, 5.0, [1.0, 1.0], [0, 0])


def test_future_start_time_interpolates_from_receipt_to_the_first_point():
    f = follower()
    f.accept(command(([1.0, 2.0], 1.0), start_time=2.0), now=0.0)
    expect(f, 1.5, [0.5, 1.0], [1 / 3, 2 / 3])
    expect(f, 3.0, [1.0, 2.0], [0, 0])


def test_start_time_in_the_past_joins_the_points_already_due():
    f = follower()
    f.accept(command(([1.0, 1.0], 0.5), ([4.0, 1.0], 2.0), start_time=4.0), now=5.0)
    expect(f, 5.0, [2.0, 1.0], [2.0, 0.0])
    expect(f, 6.0, [4.0, 1.0], [0, 0])


def test_first_point_at_time_zero_is_taken_at_once():
    f = follower()
    f.accept(command(([1.0, 1.0], 0.0), ([2.0, 1.0], 1.0)), now=3.0)
    expect(f, 3.0, [1.0, 1.0], [1.0, 0.0])
    expect(f, 3.5, [1.5, 1.0], [1.0, 0.0])


def test_joint_order_is_mapped_by_name():
    f = follower()
    f.accept(command(point([2.0, 1.0], 1.0, [0.0, 0.0]), names=('b', 'a')), now=0.0)
    expect(f, 1.0, [1.0, 2.0], [0, 0])
    f.accept(command(([4.0, 3.0], 1.0), names=('b', 'a')), now=1.0)
    expect(f, 1.5, [2.0, 3.0], [2.0, 2.0])


def test_reset_drops_the_trajectory():
    f = follower()
    f.accept(command(([1.0, 1.0], 1.0)), now=0.0)
    f.reset([0.2, 0.3])
    expect(f, 0.5, [0.2, 0.3], [0, 0])


# -- rejections -------------------------------------------------------------------------------
NAN, INF = math.nan, math.inf
REJECTED = {
    'empty joint_names': (command(([1.0, 1.0], 1.0), names=()), 'empty joint_names'),
    'unknown joint': (command(([1.0, 1.0, 1.0], 1.0), names=('a', 'b', 'c')),
                      "unknown joint 'c'"),
    'missing joint': (command(([1.0], 1.0), names=('a',)), "missing joints 'b'"),
    'duplicate joint': (command(([1.0, 1.0], 1.0), names=('a', 'a')),
                        "duplicate joint name 'a'"),
    'positions size': (command(([1.0, 1.0], 1.0), ([1.0], 2.0)),
                       'point 1 has 1 positions for 2 joints'),
    'velocities size': (command(point([1.0, 1.0], 1.0, [0.0])),
                        'point 0 has 1 velocities for 2 joints'),
    'mixed velocities': (command(point([1.0, 1.0], 1.0, [1.0, 1.0]), point([1.0, 1.0], 2.0)),
                         'point 1 has no velocities while other points have them'),
    'accelerations': (command(TrajectoryPoint([1.0, 1.0], [0, 0], [0, 0], 1.0)),
                      'point 0 has 2 accelerations: accelerations are not supported'),
    'accelerations size': (command(TrajectoryPoint([1.0, 1.0], accelerations=[0.0],
                                                   time_from_start=1.0)),
                           'point 0 has 1 accelerations'),
    'time not increasing': (command(([1.0, 1.0], 1.0), ([2.0, 2.0], 1.0)),
                            'time_from_start not strictly increasing: point 1 at 1.0 s, '
                            'point 0 at 1.0 s'),
    'time decreasing': (command(([1.0, 1.0], 1.0), ([2.0, 2.0], 2.0), ([2.0, 2.0], 1.5)),
                        'point 2 at 1.5 s'),
    'negative first time': (command(([1.0, 1.0], -0.1)), 'point 0: negative time_from_start'),
    'nan position': (command(([1.0, NAN], 1.0)), "point 0: non-finite positions (nan) for "
                                                 "joint 'b'"),
    'inf velocity': (command(point([1.0, 1.0], 1.0, [INF, 0.0]), point([1.0, 1.0], 2.0, [0, 0])),
                     "point 0: non-finite velocities (inf) for joint 'a'"),
    'last velocity': (command(point([1.0, 1.0], 1.0, [0.0, 0.5])),
                      "last point 0 has non-zero velocity 0.5 for joint 'b'"),
    'below limit': (command(([1.0, 1.0], 1.0), ([-5.0, 1.0], 2.0)),
                    "point 1: position -5.0 of joint 'a' is outside its limits [-2.0, 2.0]"),
    'above limit': (command(([1.0, 2.5], 1.0)),
                    "point 0: position 2.5 of joint 'b' is outside its limits [-3.0, 2.0]"),
    'ends in the past': (command(([1.0, 1.0], 1.0), start_time=3.0), 'ends in the past'),
}


@pytest.mark.parametrize('case', list(REJECTED))
def test_rejection_names_the_problem_and_keeps_the_running_trajectory(case):
    msg, reason = REJECTED[case]
    f = follower(lower_limits=[-2.0, -3.0], upper_limits=[2.0, 2.0])
    f.accept(command(([1.0, -1.0], 10.0)), now=0.0)
    expected = [f.sample(t) for t in (5.0, 7.0, 12.0)]
    with pytest.raises(TrajectoryRejected) as info:
        f.accept(msg, now=5.0)
    assert reason in str(info.value)
    for t, (p, v) in zip((5.0, 7.0, 12.0), expected):
        expect(f, t, p, v)


def test_positions_without_limits_are_not_range_checked():
    f = follower()
    f.accept(command(([100.0, -100.0], 1.0)), now=0.0)
    expect(f, 1.0, [100.0, -100.0], [0, 0])


def test_bad_construction_is_a_value_error():
    with pytest.raises(SimError):
        TrajectoryFollower(('a', 'a'), [0.0, 0.0])
    with pytest.raises(SimError):
        TrajectoryFollower(JOINTS, [0.0])
    with pytest.raises(SimError):
        TrajectoryFollower(JOINTS, [0.0, 0.0], lower_limits=[0.0])
