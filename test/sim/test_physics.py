"""RobotSimulation: holds under gravity, tracks targets, deterministic, reports efforts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from il_policy_node.errors import SimError
from il_policy_node.robots.models import UnknownModelError, urdf_path
from il_policy_node.runtime.urdf import urdf_joint_limits
from il_policy_node.sim.physics import RobotSimulation
from il_policy_node.sim.trajectory import TrajectoryCommand, TrajectoryPoint, TrajectoryRejected
from test.support.physics import run


def sine_command(sim: RobotSimulation, *, amplitude: float, frequency_hz: float,
                 duration_s: float, dt: float = 0.02) -> TrajectoryCommand:
    """Points of home + amplitude * sin(w t) with velocities, ending at rest."""
    home, w = np.array(sim.info.home), 2 * math.pi * frequency_hz
    times = np.arange(1, int(round(duration_s / dt)) + 1) * dt
    points = [TrajectoryPoint(positions=list(home + amplitude * math.sin(w * t)),
                              velocities=[amplitude * w * math.cos(w * t)] * len(home),
                              time_from_start=float(t)) for t in times]
    points[-1] = TrajectoryPoint(points[-1].positions, [0.0] * len(home),
                                 time_from_start=points[-1].time_from_start)
    return TrajectoryCommand(sim.joint_names, points)


def test_holds_home_under_gravity():
    sim = RobotSimulation('arm6')
    home = np.array(sim.info.home)
    np.testing.assert_allclose(sim.joint_states().positions, home)
    positions = run(sim, 2.0)
    assert np.abs(positions - home).max() < 1e-3
    assert math.isclose(sim.time, 2.0, abs_tol=1e-9)


def test_efforts_are_the_torques_that_hold_the_arm():
    sim = RobotSimulation('arm6')
    sim.step(100)
    efforts = sim.joint_states().efforts
    gravity = sim.data.qfrc_bias[sim.model.jnt_dofadr]           # at rest: gravity only
    np.testing.assert_allclose(efforts, gravity, atol=1e-3)
    assert abs(efforts[1]) > 1.0                                  # the shoulder carries the arm


def test_tracks_a_ramp_and_settles_on_the_target():
    sim = RobotSimulation('arm6')
    home = np.array(sim.info.home)
    target = home + np.array([0.4, 0.3, -0.3, 0.5, -0.4, 0.6])
    sim.command(TrajectoryCommand(sim.joint_names, [TrajectoryPoint(list(target),
                                                                    time_from_start=1.0)]))
    positions = run(sim, 1.0)
    desired = home + np.outer(np.arange(1, len(positions) + 1) * sim.timestep, target - home)
    assert np.abs(positions - desired).max() < 0.02               # during the ramp
    run(sim, 0.5)
    np.testing.assert_allclose(sim.joint_states().positions, target, atol=1e-3)
    assert np.abs(sim.joint_states().velocities).max() < 1e-2


def test_tracks_a_step_target():
    sim = RobotSimulation('arm6')
    target = np.array(sim.info.home) + 0.2
    sim.command(TrajectoryCommand(sim.joint_names, [TrajectoryPoint(list(target), (), (), 0.0)]))
    run(sim, 1.0)
    np.testing.assert_allclose(sim.joint_states().positions, target, atol=2e-3)


def test_tracks_a_half_hertz_sine_closely():
    sim = RobotSimulation('arm6')
    sim.command(sine_command(sim, amplitude=0.5, frequency_hz=0.5, duration_s=6.0))
    home, w = np.array(sim.info.home), 2 * math.pi * 0.5
    positions = run(sim, 5.0)
    times = np.arange(1, len(positions) + 1) * sim.timestep
    error = positions - (home + 0.5 * np.sin(w * times)[:, None])
    rms = float(np.sqrt(np.mean(error[times >= 1.0] ** 2)))       # after the start from rest
    print(f'0.5 Hz sine, amplitude 0.5 rad: RMS error {rms:.4f} rad, '
          f'max {np.abs(error).max():.4f} rad')
    assert rms < 0.01
    assert np.abs(error).max() < 0.03


def test_step_to_advances_whole_steps():
    sim = RobotSimulation('arm6')
    assert sim.step_to(0.1) == 50
    assert sim.step_to(0.1) == 0
    assert sim.step_to(0.05) == 0
    assert math.isclose(sim.time, 0.1, abs_tol=1e-9)


def test_reset_teleports_clears_the_trajectory_and_keeps_time():
    sim = RobotSimulation('arm6')
    sim.command(TrajectoryCommand(sim.joint_names, [TrajectoryPoint([0.5] * 6,
                                                                    time_from_start=1.0)]))
    sim.step(100)
    pose = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6]
    sim.reset(pose)
    assert math.isclose(sim.time, 0.2, abs_tol=1e-9)
    np.testing.assert_allclose(sim.joint_states().positions, pose)
    assert not sim.follower.active(sim.time)
    run(sim, 0.5)
    np.testing.assert_allclose(sim.joint_states().positions, pose, atol=1e-3)
    sim.reset()
    np.testing.assert_allclose(sim.joint_states().positions, sim.info.home)
    with pytest.raises(SimError, match='6 finite positions'):
        sim.reset([0.0] * 5)


def test_rejected_command_leaves_the_robot_holding():
    sim = RobotSimulation('arm6')
    with pytest.raises(TrajectoryRejected, match="joint 'elbow_joint' is outside its limits"):
        sim.command(TrajectoryCommand(sim.joint_names, [TrajectoryPoint(
            [0.0, 0.0, 3.0, 0.0, 0.0, 0.0], time_from_start=1.0)]))
    run(sim, 0.5)
    np.testing.assert_allclose(sim.joint_states().positions, sim.info.home, atol=1e-3)


def test_limit_violations_are_counted_once_per_excursion():
    sim = RobotSimulation('arm6')
    assert sim.limit_violations == 0
    sim.reset([3.2, -0.5, 1.0, 0.0, 0.5, 0.0])                    # pan beyond its 2.9 limit
    sim.step(5)
    assert sim.limit_violations == 1
    sim.reset()
    sim.step(200)
    assert sim.limit_violations == 1


def commanded_run(seed: int, noise: float) -> np.ndarray:
    sim = RobotSimulation('arm6', seed=seed, position_noise_std=noise)
    sim.command(sine_command(sim, amplitude=0.3, frequency_hz=1.0, duration_s=0.5))
    return run(sim, 0.6)


def test_deterministic_for_a_seed():
    np.testing.assert_array_equal(commanded_run(1, 0.01), commanded_run(1, 0.01))
    np.testing.assert_array_equal(commanded_run(1, 0.0), commanded_run(2, 0.0))
    noisy1, noisy2 = commanded_run(1, 0.01), commanded_run(2, 0.01)
    assert not np.array_equal(noisy1, noisy2)
    assert (noisy1 - commanded_run(1, 0.0)).std() == pytest.approx(0.01, rel=0.1)


def test_model_metadata_matches_the_urdf_limits():
    sim = RobotSimulation('arm6')
    limits = urdf_joint_limits(urdf_path('arm6').read_text())
    for i, name in enumerate(sim.joint_names):
        assert (limits[name].lower, limits[name].upper) == (
            sim.info.lower_limits[i], sim.info.upper_limits[i]), name
        assert limits[name].velocity == sim.info.velocity_limits[i], name
        lower, upper = sim.model.actuator_ctrlrange[i]               # ctrlrange = joint range
        assert (lower, upper) == (sim.info.lower_limits[i], sim.info.upper_limits[i]), name


def test_bad_arguments():
    with pytest.raises(UnknownModelError, match="'nope'"):
        RobotSimulation('nope')
    with pytest.raises(SimError, match='position_noise_std'):
        RobotSimulation('arm6', position_noise_std=-1.0)
