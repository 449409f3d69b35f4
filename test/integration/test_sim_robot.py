"""sim_robot as a real process over DDS: joint states, trajectories, rejections, reset."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from il_policy_node.nodes.sim_robot_node import PARAMETERS
from il_policy_node.robots.models import model_info
from il_policy_node.ros.conversions import seconds
from il_policy_node.ros.local_graph import local_ros_env, ros_args, spawn, stop
from il_policy_node.runtime.urdf import urdf_joint_limits
from test.support.graph import wait_until
from test.support.sim import SimClient, trajectory

REPO = Path(__file__).resolve().parents[2]
ARM6 = model_info('arm6')
HOME = np.array(ARM6.home)
RATE_HZ = 200.0


@pytest.fixture
def sim_robot(ros_domain, tmp_path):
    """Start sim_robot with the given parameters; yields (client, start); all stopped after."""
    env = local_ros_env(ros_domain)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(REPO), env.get('PYTHONPATH', '')) if p)
    client = SimClient(ros_domain)
    processes = []

    def start(**params):
        log = tmp_path / f'sim_robot-{len(processes)}.log'
        process = spawn('il_policy_node.nodes.sim_robot_node', env=env, log_path=log,
                        args=ros_args({'publish_rate_hz': RATE_HZ,
                                       'diagnostics_period_s': 0.2, **params}))
        processes.append((process, log))
        assert wait_until(lambda: client.states, 20.0), log.read_text()
        return process, log

    try:
        yield client, start
    finally:
        for process, _ in processes:
            stop(process)
        client.close()
        for _, log in processes:
            print(f'----- {log.name} -----\n{log.read_text()[-3000:]}')


def positions(client: SimClient) -> np.ndarray:
    return np.array(client.latest().position)


def test_follows_trajectories_rejects_bad_ones_and_describes_itself(sim_robot):
    client, start = sim_robot
    _, log = start()
    # robot_description: the URDF with the model's limits.
    assert wait_until(lambda: client.descriptions, 10.0)
    limits = urdf_joint_limits(client.descriptions[-1])
    assert [limits[n].upper for n in ARM6.joint_names] == list(ARM6.upper_limits)
    # joint_states at about the rate, at home, with efforts.
    msg = client.latest()
    assert tuple(msg.name) == ARM6.joint_names
    assert len(msg.velocity) == 6 and len(msg.effort) == 6
    np.testing.assert_allclose(positions(client), HOME, atol=1e-3)
    assert abs(msg.effort[1]) > 1.0                             # holding the arm up
    count, t0 = len(client.states), time.monotonic()
    time.sleep(1.0)
    rate = (len(client.states) - count) / (time.monotonic() - t0)
    assert 0.3 * RATE_HZ < rate < 1.5 * RATE_HZ, rate
    stamps = [seconds(m.header.stamp) for _, m in client.states[-20:]]
    assert np.all(np.diff(stamps) > 0)

    # A trajectory, joints in another order: the robot gets there.
    target = HOME + np.array([0.3, 0.2, -0.2, 0.4, -0.3, 0.5])
    order = list(reversed(range(6)))
    client.send(trajectory([ARM6.joint_names[i] for i in order],
                           [(target[order], 0.5)]))
    assert wait_until(lambda: np.abs(positions(client) - target).max() < 2e-3, 10.0), \
        positions(client)
    assert wait_until(lambda: client.diagnostic('trajectories_accepted') == '1', 5.0)

    # Rejected (unknown joint): logged with the reason, counted, ignored.
    client.send(trajectory([*ARM6.joint_names[:5], 'no_such_joint'], [(HOME, 0.5)]))
    assert wait_until(lambda: client.diagnostic('trajectories_rejected') == '1', 5.0)
    assert "unknown joint 'no_such_joint'" in client.diagnostic('last_rejection')
    assert wait_until(lambda: "trajectory rejected: unknown joint 'no_such_joint'"
                      in log.read_text(), 5.0)
    time.sleep(0.3)
    np.testing.assert_allclose(positions(client), target, atol=2e-3)
    values = client.diagnostics[-1]
    assert values['trajectories_accepted'] == '1' and values['limit_violations'] == '0'
    assert values['model'] == 'arm6' and float(values['sim_time_s']) > 0


def test_reset_to_the_initial_positions_parameter_and_sim_clock(sim_robot):
    client, start = sim_robot
    initial = [0.2, -0.3, 0.4, 0.1, 0.2, -0.1]
    start(initial_positions=initial, publish_clock=True)
    np.testing.assert_allclose(positions(client), initial, atol=1e-3)
    # /clock carries the simulated time, which stamps the joint states.
    assert wait_until(lambda: client.clocks, 10.0)
    stamp = client.latest().header.stamp
    assert stamp.sec < 100                                    # simulated, not wall-clock time

    client.send(trajectory(ARM6.joint_names, [(HOME, 0.2)]))
    assert wait_until(lambda: np.abs(positions(client) - HOME).max() < 2e-3, 10.0)
    answer = client.reset()
    assert answer.success, answer.message
    assert wait_until(lambda: np.abs(positions(client) - initial).max() < 1e-3, 5.0)

    # initial_positions may change while running; the next reset uses it.
    pose = [-0.2, 0.3, -0.4, 0.0, -0.2, 0.3]
    assert client.set_parameters({'initial_positions': pose})[0].successful
    assert client.reset().success
    assert wait_until(lambda: np.abs(positions(client) - pose).max() < 1e-3, 5.0)
    assert not client.set_parameters({'initial_positions': [0.0] * 3})[0].successful
    refused = client.set_parameters({'real_time_factor': 2.0})[0]
    assert not refused.successful and 'start-up only' in refused.reason
    assert wait_until(lambda: client.diagnostic('resets') == '2', 5.0)


def test_config_file_lists_exactly_the_node_parameters():
    document = yaml.safe_load((REPO / 'config' / 'sim_robot.yaml').read_text())
    values = document['sim_robot']['ros__parameters']
    assert list(values) == [spec.name for spec in PARAMETERS]
    for spec in PARAMETERS:
        default = [] if not isinstance(spec.default, (str, bool, int, float)) else spec.default
        assert values[spec.name] == default, spec.name
