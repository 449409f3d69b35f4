"""demonstrator over DDS: it drives mock_robot and demo_recorder (real processes) to the end.

mock_robot follows the demonstrator's commands on joint_trajectory_controller/joint_trajectory
(remapped), demo_recorder writes one bag per episode; the bags are read back with rosbags.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from std_msgs.msg import String

from il_policy_node.nodes.demonstrator_node import PARAMETERS, config_from_parameters
from il_policy_node.ros.local_graph import ros_args
from il_policy_node.sim.demonstrator import (
    ARM6_HOME,
    ARM6_JOINTS,
    ARM6_LOWER,
    ARM6_UPPER,
    DemonstratorConfig,
)
from test.support.bags import TYPESTORE, metadata
from test.support.graph import REPO, wait_until
from test.support.recorder import JOINT_STATE, start_recorder

DEMONSTRATOR = 'il_policy_node.nodes.demonstrator_node'
CONFIG_YAML = REPO / 'config' / 'demonstrator.yaml'
TOPICS = ['/joint_states', '/demo/joint_command', '/demo/goal']
SHORT = {   # two short episodes of each task
    'episodes': 2, 'seed': 3, 'settle_s': 0.5, 'service_timeout_s': 20.0,
    'wave_period_s': 0.5, 'wave_cycles': 1, 'wave_entry_s': 0.5,
    'wave_amplitudes_rad': [0.2, 0.0, 0.15, 0.2, 0.0, 0.0],
    'reach_base_s': 0.3, 'reach_speed_rad_s': 3.0, 'reach_hold_s': 0.3,
}


def read_bag(bag: Path) -> dict[str, list]:
    """Decoded messages per topic (rosbags)."""
    messages = defaultdict(list)
    with Reader(bag) as reader:
        for connection, _, raw in reader.messages():
            messages[connection.topic].append(TYPESTORE.deserialize_cdr(raw, connection.msgtype))
    return dict(messages)


def start_mock_robot(graph) -> None:
    params = {'joint_names': list(ARM6_JOINTS), 'initial_positions': list(ARM6_HOME),
              'publish_rate_hz': 100.0}
    remaps = {'joint_trajectory': 'joint_trajectory_controller/joint_trajectory'}
    graph.spawn('il_policy_node.nodes.mock_robot_node', ros_args(params, remaps), 'mock_robot')


@pytest.mark.parametrize('task', ['wave', 'reach'])
def test_demonstrator_records_two_episodes_through_the_recorder(recorder_graph, tmp_path, task):
    graph = recorder_graph
    infos: list[dict] = []
    graph.receiver.node.create_subscription(
        String, '/demonstrator/episode', lambda m: infos.append(json.loads(m.data)),
        QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                   reliability=ReliabilityPolicy.RELIABLE,
                   durability=DurabilityPolicy.TRANSIENT_LOCAL))
    start_mock_robot(graph)
    recorder = start_recorder(graph, {
        'output_dir': str(tmp_path / 'demos'), 'session': 'session', 'topics': TOPICS,
        'topic_types': [JOINT_STATE] * 3, 'required_topics': ['/joint_states'], 'task': task})
    demonstrator = graph.spawn(DEMONSTRATOR, ros_args({'task': task, **SHORT}), 'demonstrator')
    assert demonstrator.popen.wait(timeout=60.0) == 0, demonstrator.log()
    assert 'done: 2' in demonstrator.log()

    assert wait_until(lambda: len(infos) == 2, 10.0), infos
    assert [info['index'] for info in infos] == [0, 1]
    assert all(info['task'] == task for info in infos)
    index = recorder.episodes()
    assert len(index) == 2 and all(line['success'] for line in index), index
    bags = [recorder.session_dir / line['path'] for line in index]
    for bag, info in zip(bags, infos):
        assert metadata(bag)['custom_data']['success'] == 'true'
        messages = read_bag(bag)
        commands, states = messages.get('/demo/joint_command', []), messages.get('/joint_states')
        assert len(commands) > 20 and states, {t: len(m) for t, m in messages.items()}
        assert all(list(m.name) == list(ARM6_JOINTS) for m in commands)
        positions = np.array([m.position for m in commands])
        velocities = np.array([m.velocity for m in commands])
        assert positions.shape == velocities.shape == (len(commands), 6)
        assert (positions > np.array(ARM6_LOWER)).all() and \
            (positions < np.array(ARM6_UPPER)).all()
        # The stream starts at the episode's start pose (t = 0), where the robot was settled
        np.testing.assert_allclose(positions[0], info['start'], atol=1e-5)
        # (the tolerance leaves room for a late command on a loaded machine)
        np.testing.assert_allclose(states[0].position, info['start'], atol=0.02)
        if task == 'reach':
            goals = messages.get('/demo/goal', [])
            assert goals, 'no demo/goal in a reach bag'
            for goal in goals:
                np.testing.assert_allclose(goal.position, info['goal'], atol=1e-5)
            np.testing.assert_allclose(positions[-1], info['goal'], atol=1e-5)
            # mock_robot followed the teleop stream to the goal and held it there.
            np.testing.assert_allclose(states[-1].position, info['goal'], atol=1e-3)
        else:
            assert '/demo/goal' not in messages
            assert info['goal'] is None and info['period_s'] > 0


def test_a_missing_recorder_ends_the_demonstrator_with_an_error(graph):
    demonstrator = graph.spawn(DEMONSTRATOR, ros_args({
        'recorder': 'nobody', 'episodes': 1, 'service_timeout_s': 1.0}), 'demonstrator')
    assert demonstrator.popen.wait(timeout=30.0) == 1, demonstrator.log()
    assert 'nobody/start_episode' in demonstrator.log()


def test_bad_parameters_end_the_demonstrator_with_an_error(graph):
    demonstrator = graph.spawn(DEMONSTRATOR, ros_args({'task': 'juggle'}), 'demonstrator')
    assert demonstrator.popen.wait(timeout=30.0) != 0
    assert "task must be one of ['wave', 'reach', 'detour']" in demonstrator.log()


# -- config/demonstrator.yaml ----------------------------------------------------------------
def _yaml_parameters() -> dict:
    document = yaml.safe_load(CONFIG_YAML.read_text())
    assert list(document) == ['demonstrator']
    assert list(document['demonstrator']) == ['ros__parameters']
    return document['demonstrator']['ros__parameters']


def test_demonstrator_yaml_lists_exactly_the_node_parameters_with_their_defaults():
    values = _yaml_parameters()
    names = [spec.name for spec in PARAMETERS]
    assert sorted(values) == sorted(names), (
        f'missing from demonstrator.yaml: {sorted(set(names) - set(values))}; '
        f'not parameters of demonstrator: {sorted(set(values) - set(names))}')
    for spec in PARAMETERS:
        value = values[spec.name]
        if isinstance(spec.default, Parameter.Type):
            assert value == [], spec.name
        elif isinstance(spec.default, list):
            assert value == spec.default, spec.name
            assert all(type(v) is type(spec.default[0]) for v in value), \
                f'{spec.name}: write 1.0, not 1'
        else:
            assert type(value) is type(spec.default) and value == spec.default, spec.name


def test_parameter_defaults_are_the_core_defaults():
    defaults = {spec.name: [] if isinstance(spec.default, Parameter.Type) else spec.default
                for spec in PARAMETERS}
    assert config_from_parameters(defaults) == DemonstratorConfig()
