"""The detour task: a post in the arm's way, demonstrated on either side, never touched."""
import mujoco
import numpy as np
import pytest

from il_policy_node.demo.scoring import obstacle_frames, score_detour
from il_policy_node.errors import SimError
from il_policy_node.robots.models import OBSTACLE_GEOM, Obstacle, load_model, model_info
from il_policy_node.sim.demonstrator import DETOUR_OBSTACLE, DemonstratorConfig, make_episode
from il_policy_node.sim.physics import RobotSimulation

EPISODES = 40


def _path(episode, samples=150):
    return episode.sample(np.linspace(0.0, episode.duration_s, samples))[0]


def test_demonstrations_go_round_on_both_sides_and_never_touch_the_post():
    config = DemonstratorConfig()
    episodes = [make_episode('detour', 0, i, config) for i in range(EPISODES)]
    sides = {np.sign(e.waypoints[1][0] - 0.5 * (e.start[0] + e.goal[0])) for e in episodes}
    assert sides == {-1.0, 1.0}
    for e in episodes:
        assert np.abs(e.start - config.detour_start).max() <= config.detour_range_rad + 1e-9
        np.testing.assert_allclose(_path(e)[-1], e.goal, atol=1e-9)
        np.testing.assert_allclose(e.goal_at(0.0), e.goal)       # the way point is no goal
        assert obstacle_frames('arm6', DETOUR_OBSTACLE, _path(e)) == 0, e.index
    # between episodes the robot goes from the last goal to the next start by the way point
    for previous, e in zip(episodes[:-1], episodes[1:]):
        path = [previous.goal, *e.approach, e.start]
        moves = np.concatenate([a + np.linspace(0.0, 1.0, 40)[:, None] * (b - a)
                                for a, b in zip(path[:-1], path[1:])])
        assert obstacle_frames('arm6', DETOUR_OBSTACLE, moves) == 0, e.index
    # what a squared-error policy learns from both ways: their average, into the post
    left = next(e for e in episodes if e.waypoints[1][0] > e.start[0])
    right = next(e for e in episodes if e.waypoints[1][0] < e.start[0])
    t = np.linspace(0.0, 1.0, 100)
    mean = 0.5 * (left.sample(t * left.move_s)[0] + right.sample(t * right.move_s)[0])
    assert obstacle_frames('arm6', DETOUR_OBSTACLE, mean) > 0


def test_the_demonstrator_passes_its_way_point_at_speed_and_ends_at_rest():
    for e in [make_episode('detour', 0, i, DemonstratorConfig()) for i in range(10)]:
        t = np.linspace(0.0, e.move_s, 201)
        positions, velocities = e.sample(t)
        np.testing.assert_allclose(positions[100], e.waypoints[1], atol=1e-9)
        speed = np.linalg.norm(velocities, axis=1)
        # no stop between start and goal (a stop leaves position-only policies a fixed point)
        assert speed[60:141].min() > 0.4 * speed.max(), e.index
        assert speed[0] == speed[-1] == 0.0
        # the velocities are the derivative of the positions
        np.testing.assert_allclose(np.gradient(positions, t, axis=0)[1:-1], velocities[1:-1],
                                   atol=5e-3 * speed.max())


def test_the_post_is_real_geometry_the_simulated_arm_collides_with():
    model = load_model('arm6', DETOUR_OBSTACLE)
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, OBSTACLE_GEOM) >= 0
    plain = load_model('arm6')
    assert mujoco.mj_name2id(plain, mujoco.mjtObj.mjOBJ_GEOM, OBSTACLE_GEOM) < 0
    sim = RobotSimulation('arm6', obstacle=DETOUR_OBSTACLE)
    straight = 0.5 * (np.asarray(DemonstratorConfig().detour_start) +
                      np.asarray(DemonstratorConfig().detour_goal))
    sim.data.qpos[:6] = straight
    mujoco.mj_forward(sim.model, sim.data)
    assert sim.data.ncon > 0                     # the links and the post are in contact
    assert model_info('arm6').joint_names == sim.joint_names


def test_obstacle_parameter_and_the_detour_score():
    assert Obstacle.of([]) is None
    assert Obstacle.of(DETOUR_OBSTACLE.parameters) == DETOUR_OBSTACLE
    with pytest.raises(SimError, match='obstacle must be'):
        Obstacle.of([0.0, 0.0, 1.0, -0.1, 0.2])
    t = np.linspace(0.0, 3.0, 151)
    goal = np.zeros(6)
    q = np.zeros((151, 6))
    lower, upper = -np.ones(6) * 3, np.ones(6) * 3
    clear = score_detour(t, q, goal, 2.0, lower=lower, upper=upper, touching=0)
    touched = score_detour(t, q, goal, 2.0, lower=lower, upper=upper, touching=7)
    assert clear.success and not touched.success
    assert '7 samples touch the obstacle' in touched.reason
    assert touched.details['obstacle_samples'] == 7
