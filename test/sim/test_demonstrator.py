"""The scripted demonstrator's episodes: minimum jerk, wave, reach, limits, seeds (no ROS)."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from il_policy_node.errors import ConfigError
from il_policy_node.sim.demonstrator import (
    DemonstratorConfig,
    Episode,
    Task,
    episodes,
    make_episode,
    min_jerk,
    min_jerk_profile,
    nominal_period,
    reference_cycle,
)

CONFIG = DemonstratorConfig()
SEEDS = range(100)


def times(episode: Episode, n: int = 4001) -> np.ndarray:
    return np.linspace(0.0, episode.duration_s, n)


# -- minimum jerk ------------------------------------------------------------------------------
def test_min_jerk_boundary_conditions_and_midpoint():
    start, goal, duration = np.array([0.0, 1.0, -2.0]), np.array([1.0, -1.0, 0.5]), 2.0
    p, v = min_jerk(start, goal, duration, np.array([0.0, duration / 2, duration]))
    np.testing.assert_allclose(p[0], start)
    np.testing.assert_allclose(p[2], goal)
    np.testing.assert_allclose(p[1], (start + goal) / 2)          # symmetric profile
    np.testing.assert_allclose(v[[0, 2]], 0.0, atol=1e-12)
    np.testing.assert_allclose(v[1], 1.875 * (goal - start) / duration)   # peak 15/8 d/T
    s, ds, dds = min_jerk_profile(np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(s, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(ds, [0.0, 1.875, 0.0], atol=1e-12)
    np.testing.assert_allclose(dds[[0, 2]], 0.0, atol=1e-12)


def test_min_jerk_profile_is_the_quintic_and_its_derivatives():
    tau = np.linspace(0.0, 1.0, 1001)
    s, ds, dds = min_jerk_profile(tau)
    np.testing.assert_allclose(s, 10 * tau**3 - 15 * tau**4 + 6 * tau**5, atol=1e-12)
    np.testing.assert_allclose(ds, np.gradient(s, tau), atol=2e-3)
    np.testing.assert_allclose(dds, np.gradient(ds, tau), atol=1e-1)


def test_min_jerk_holds_outside_its_duration_and_is_vectorized():
    start, goal = np.zeros(2), np.ones(2)
    p, v = min_jerk(start, goal, 1.0, np.array([-1.0, 2.0]))
    np.testing.assert_allclose(p, [start, goal])
    np.testing.assert_allclose(v, 0.0)
    scalar, _ = min_jerk(start, goal, 1.0, 0.3)
    assert scalar.shape == (2,)
    with pytest.raises(ConfigError):
        min_jerk(start, goal, 0.0, 0.5)


# -- wave --------------------------------------------------------------------------------------
@pytest.mark.parametrize('seed', range(5))
def test_wave_is_periodic_with_the_episodes_period_after_the_entry(seed):
    episode = make_episode('wave', seed, 0, CONFIG)
    assert episode.task is Task.WAVE and episode.goal is None
    period = episode.period_s
    t = np.linspace(episode.entry_s, episode.duration_s - period, 500)
    p0, v0 = episode.sample(t)
    p1, v1 = episode.sample(t + period)
    np.testing.assert_allclose(p1, p0, atol=1e-9)
    np.testing.assert_allclose(v1, v0, atol=1e-9)
    assert episode.duration_s == pytest.approx(episode.entry_s + CONFIG.wave_cycles * period)
    # After the entry it is exactly the scaled cycle.
    expected = np.asarray(CONFIG.wave_center) + episode.amplitude_scale * np.asarray(
        CONFIG.wave_amplitudes_rad) * np.sin(2 * math.pi * t[:, None] / period +
                                             np.asarray(CONFIG.wave_phases_rad))
    np.testing.assert_allclose(p0, expected, atol=1e-12)


@pytest.mark.parametrize('seed', range(5))
def test_wave_entry_starts_at_rest_and_blends_continuously(seed):
    episode = make_episode('wave', seed, 3, CONFIG)
    p, v = episode.sample(0.0)
    np.testing.assert_allclose(p, episode.start)
    np.testing.assert_allclose(v, 0.0, atol=1e-12)
    t_e, eps = episode.entry_s, 1e-7
    (p_before, p_after), (v_before, v_after) = episode.sample(np.array([t_e - eps, t_e + eps]))
    np.testing.assert_allclose(p_after, p_before, atol=1e-5)
    np.testing.assert_allclose(v_after, v_before, atol=1e-5)
    c, dc = episode.cycle(t_e)
    p, v = episode.sample(t_e)
    np.testing.assert_allclose(p, c, atol=1e-12)
    np.testing.assert_allclose(v, dc, atol=1e-12)
    # No jump anywhere: steps between fine samples are bounded by the velocity limit.
    t = np.linspace(0.0, episode.duration_s, 20001)
    positions, _ = episode.sample(t)
    assert np.abs(np.diff(positions, axis=0)).max() <= 3.0 * (t[1] - t[0])


@pytest.mark.parametrize('task', ['wave', 'reach'])
def test_velocities_are_the_derivative_of_positions(task):
    for seed in range(3):
        episode = make_episode(task, seed, 0, CONFIG)
        t = np.linspace(0.0, episode.duration_s, 20001)
        positions, velocities = episode.sample(t)
        numeric = np.gradient(positions, t, axis=0)
        np.testing.assert_allclose(numeric[1:-1], velocities[1:-1], atol=2e-3)


@pytest.mark.parametrize('task', ['wave', 'reach'])
def test_positions_stay_within_limits_and_velocities_under_the_arm_limit(task):
    lower, upper = CONFIG.safe_lower, CONFIG.safe_upper
    for seed in SEEDS:
        episode = make_episode(task, seed, seed % 7, CONFIG)
        positions, velocities = episode.sample(times(episode, 2001))
        assert (positions >= lower - 1e-12).all() and (positions <= upper + 1e-12).all(), seed
        assert np.isfinite(velocities).all()
        assert np.abs(velocities).max() < 3.0, (seed, np.abs(velocities).max())


def test_limits_hold_for_a_wide_start_box_too():
    config = DemonstratorConfig(start_range_rad=(5.0,), reach_goal_lower=(),
                                reach_goal_upper=())
    for task in Task:
        for seed in range(50):
            episode = make_episode(task, seed, 0, config)
            positions, _ = episode.sample(times(episode, 1001))
            assert (positions >= config.safe_lower - 1e-12).all()
            assert (positions <= config.safe_upper + 1e-12).all()


def test_outside_the_episode_it_holds_at_rest():
    for task in Task:
        episode = make_episode(task, 1, 0, CONFIG)
        p, v = episode.sample(np.array([-1.0, episode.duration_s + 1.0]))
        np.testing.assert_allclose(p[0], episode.start)
        np.testing.assert_allclose(p[1], episode.sample(episode.duration_s)[0])
        np.testing.assert_allclose(v, 0.0)


# -- seeds and variability ---------------------------------------------------------------------
@pytest.mark.parametrize('task', ['wave', 'reach'])
def test_reproducible_per_seed_and_index_and_different_across_seeds(task):
    first = [e for _, e in zip(range(4), episodes(task, 7, CONFIG))]
    again = [e for _, e in zip(range(4), episodes(task, 7, CONFIG))]
    other = [e for _, e in zip(range(4), episodes(task, 8, CONFIG))]
    for a, b, c in zip(first, again, other):
        assert a.info() == b.info()
        np.testing.assert_array_equal(a.sample(times(a, 101))[0], b.sample(times(b, 101))[0])
        assert not np.allclose(a.start, c.start)
    assert [e.index for e in first] == [0, 1, 2, 3]
    assert make_episode(task, 7, 2, CONFIG).info() == first[2].info()   # i on its own
    assert not np.allclose(first[0].start, first[1].start)               # episodes differ


def test_wave_variability_is_within_the_configured_bounds():
    periods, scales, offsets = [], [], []
    for seed in SEEDS:
        episode = make_episode('wave', seed, 0, CONFIG)
        periods.append(episode.period_s)
        scales.append(episode.amplitude_scale)
        offsets.append(episode.start - CONFIG.home_array)
    periods, scales, offsets = np.array(periods), np.array(scales), np.array(offsets)
    nominal = CONFIG.wave_period_s
    assert (np.abs(periods / nominal - 1.0) <= CONFIG.wave_period_jitter).all()
    assert (np.abs(scales - 1.0) <= CONFIG.wave_amplitude_jitter).all()
    assert (np.abs(offsets) <= 0.4 + 1e-12).all()
    # It does vary, over most of the range.
    assert np.ptp(periods) > nominal * CONFIG.wave_period_jitter
    assert np.ptp(scales) > CONFIG.wave_amplitude_jitter
    assert (np.ptp(offsets, axis=0) > 0.4).all()


def test_several_reaches_per_episode_alternate_goals_and_new_starts():
    config = DemonstratorConfig(reaches_per_episode=3, reach_hold_s=0.5)
    episode = make_episode('reach', 4, 2, config)
    single = make_episode('reach', 4, 2, DemonstratorConfig(reach_hold_s=0.5))
    np.testing.assert_array_equal(episode.waypoints[:2], single.waypoints)  # same first reach
    assert episode.move_s == single.move_s and len(episode.moves_s) == 5
    assert episode.duration_s == pytest.approx(episode.moves_s.sum() + 5 * 0.5)
    lower, upper = np.asarray(config.reach_goal_lower), np.asarray(config.reach_goal_upper)
    goals, starts = episode.waypoints[1::2], episode.waypoints[2::2]
    assert ((goals >= lower) & (goals <= upper)).all()
    span = np.asarray(config.start_range_rad)
    assert (np.abs(starts - config.home_array) <= span + 1e-12).all()
    ends = np.cumsum(episode.moves_s + 0.5) - 0.5          # each move's end, then its hold
    for k, end in enumerate(ends):
        p, v = episode.sample(np.array([end, end + 0.25]))
        np.testing.assert_allclose(p, [episode.waypoints[k + 1]] * 2, atol=1e-12)
        np.testing.assert_allclose(v, 0.0, atol=1e-12)
        np.testing.assert_array_equal(episode.goal_at(end - 0.1), episode.waypoints[k + 1])
    t = np.linspace(0.0, episode.duration_s, 20001)
    p, v = episode.sample(t)
    assert np.abs(np.diff(p, axis=0)).max() < 1e-3                  # continuous
    np.testing.assert_allclose(np.gradient(p, t, axis=0)[1:-1], v[1:-1], atol=2e-3)
    with pytest.raises(ConfigError, match='reaches_per_episode'):
        DemonstratorConfig(reaches_per_episode=0)


def test_reach_ends_at_the_goal_and_holds_with_a_duration_that_grows_with_distance():
    lower, upper = np.asarray(CONFIG.reach_goal_lower), np.asarray(CONFIG.reach_goal_upper)
    for seed in SEEDS:
        episode = make_episode('reach', seed, 0, CONFIG)
        assert episode.task is Task.REACH and episode.period_s is None
        assert ((episode.goal >= lower) & (episode.goal <= upper)).all()
        assert episode.duration_s == pytest.approx(episode.move_s + CONFIG.reach_hold_s)
        distance = np.linalg.norm(episode.goal - episode.start)
        nominal = CONFIG.reach_base_s + distance / CONFIG.reach_speed_rad_s
        assert abs(episode.move_s / nominal - 1.0) <= CONFIG.reach_duration_jitter + 1e-12
        hold = np.linspace(episode.move_s, episode.duration_s, 50)
        p, v = episode.sample(hold)
        np.testing.assert_allclose(p, np.broadcast_to(episode.goal, p.shape), atol=1e-12)
        np.testing.assert_allclose(v, 0.0, atol=1e-12)
        p0, v0 = episode.sample(0.0)
        np.testing.assert_allclose(p0, episode.start)
        np.testing.assert_allclose(v0, 0.0, atol=1e-12)


def test_episode_info_is_json_friendly():
    import json
    for task in Task:
        info = json.loads(json.dumps(make_episode(task, 3, 1, CONFIG).info()))
        assert info['index'] == 1 and info['task'] == task.value
        assert len(info['start']) == len(CONFIG.joint_names)
        assert (info['goal'] is None) == (task is Task.WAVE)
        assert (info['period_s'] is None) == (task is not Task.WAVE)


# -- reference ---------------------------------------------------------------------------------
def test_reference_cycle_matches_the_nominal_formula():
    config = DemonstratorConfig(wave_period_s=1.6)
    assert nominal_period(config) == 1.6
    t, positions, velocities = reference_cycle(config, 64)
    assert t.shape == (64,) and positions.shape == velocities.shape == (64, 6)
    np.testing.assert_allclose(t, np.arange(64) * 1.6 / 64)
    angle = 2 * np.pi * t[:, None] / 1.6 + np.asarray(config.wave_phases_rad)
    amplitude = np.asarray(config.wave_amplitudes_rad)
    np.testing.assert_allclose(positions, config.home_array + amplitude * np.sin(angle),
                               atol=1e-12)
    np.testing.assert_allclose(velocities, amplitude * 2 * np.pi / 1.6 * np.cos(angle),
                               atol=1e-12)


def test_an_episode_at_nominal_tempo_and_scale_follows_the_reference():
    config = DemonstratorConfig(wave_period_jitter=0.0, wave_amplitude_jitter=0.0)
    episode = make_episode('wave', 5, 0, config)
    t_ref, ref, _ = reference_cycle(config, 50)
    period = nominal_period(config)
    k = math.ceil(episode.entry_s / period)       # a cycle boundary after the entry
    positions, _ = episode.sample(k * period + t_ref)
    np.testing.assert_allclose(positions, ref, atol=1e-12)


# -- configuration -----------------------------------------------------------------------------
def test_config_is_generic_in_the_joints_and_repeats_single_values():
    config = DemonstratorConfig(joint_names=('a', 'b'), lower_limits=(-1.0,), upper_limits=(1.0,),
                                home=(0.0, 0.2), start_range_rad=(0.1,),
                                wave_amplitudes_rad=(0.3, 0.1), wave_phases_rad=(0.0, 1.0),
                                reach_goal_lower=(), reach_goal_upper=(), detour_start=(),
                                detour_goal=())
    assert config.lower_limits == (-1.0, -1.0) and config.wave_center == (0.0, 0.2)
    assert config.detour_start == config.detour_goal == (0.0, 0.2)
    for task in Task:
        episode = make_episode(task, 0, 0, config)
        positions, velocities = episode.sample(times(episode, 101))
        assert positions.shape == velocities.shape == (101, 2)


@pytest.mark.parametrize('overrides, match', [
    ({'home': (0.0,) * 5}, 'home has 5 values'),
    ({'wave_amplitudes_rad': (2.7, 0, 0, 0, 0, 0)}, 'shoulder_pan_joint'),
    ({'wave_period_s': 0.0}, 'wave_period_s'),
    ({'wave_period_jitter': 1.0}, 'wave_period_jitter'),
    ({'home': (3.0, -0.5, 1.0, 0.0, 0.5, 0.0)}, 'home'),
    ({'joint_names': ('a', 'a', 'b', 'c', 'd', 'e')}, 'unique'),
    ({'reach_goal_lower': (1.0,) * 6, 'reach_goal_upper': (0.0,) * 6}, 'reach_goal_lower'),
    ({'start_range_rad': (float('nan'),)}, 'not finite'),
    ({'drive_noise_rad': -0.1}, 'drive_noise_rad'),
    ({'drive_noise_hz': 0.1}, 'drive_noise_hz'),
])
def test_bad_config_is_refused_with_a_message(overrides, match):
    with pytest.raises(ConfigError, match=match):
        DemonstratorConfig(**overrides)


def test_demonstrator_is_ros_free():
    assert 'il_policy_node.sim.demonstrator' in sys.modules
    import il_policy_node.sim.demonstrator as module
    source = open(module.__file__).read()
    assert 'rclpy' not in source and '_msgs' not in source


@pytest.mark.parametrize('task', ['wave', 'reach'])
def test_drive_noise_is_smooth_faded_and_changes_nothing_else(task):
    noisy = DemonstratorConfig(drive_noise_rad=0.1, drive_noise_hz=0.5)
    episode, clean = make_episode(task, 3, 2, noisy), make_episode(task, 3, 2, CONFIG)
    np.testing.assert_array_equal(episode.start, clean.start)
    assert episode.duration_s == clean.duration_s
    t = np.linspace(0.0, episode.duration_s, 4001)
    np.testing.assert_array_equal(episode.sample(t)[0], clean.sample(t)[0])
    noise = episode.perturbation(t)
    assert np.abs(noise[[0, -1]]).max() < 1e-12              # faded in and out
    assert not clean.perturbation(t).any()
    middle = noise[(t > 0.5) & (t < episode.duration_s - 0.5)]
    assert 0.03 < middle.std() < 0.2                         # about drive_noise_rad
    # smooth: 3 sinusoids of amplitude 0.1 sqrt(2/3) at <= 0.5 Hz, times minimum-jerk fades
    # over 0.5 s (peak slope 1.875 / 0.5 per second)
    amplitudes = 3 * 0.1 * math.sqrt(2 / 3)
    slope = np.abs(np.diff(noise, axis=0)).max() / (t[1] - t[0])
    assert slope < amplitudes * (2 * math.pi * 0.5 + 1.875 / 0.5)
