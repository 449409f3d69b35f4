"""mocap_bridge over DDS: BVH clips streamed like a mocap suit, to a recorder and the sim robot.

The bridge, sim_robot (humanoid_upper) and demo_recorder run as real processes; the test
listens on mocap/joint_command, an end-effector topic, ~/clip and joint_states, and compares
what arrives with retarget() of the same files in-process.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import PointStamped
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from il_policy_node.mocap.bvh import BvhClip, load_bvh, write_bvh
from il_policy_node.mocap.retarget import RetargetedMotion, load_retarget_map, retarget
from il_policy_node.mocap.synthetic import wave_clip
from il_policy_node.nodes.mocap_bridge_node import PARAMETERS
from il_policy_node.robots.models import model_info
from il_policy_node.ros.conversions import seconds
from il_policy_node.ros.local_graph import ros_args
from il_policy_node.ros.qos import JOINT_STATE_QOS
from test.support.bags import TYPESTORE
from test.support.graph import REPO, wait_until
from test.support.recorder import JOINT_STATE, start_recorder

BRIDGE = 'il_policy_node.nodes.mocap_bridge_node'
CONFIG_YAML = REPO / 'config' / 'mocap_bridge.yaml'
MAP = REPO / 'config' / 'retarget' / 'humanoid_upper.yaml'
ROBOT = model_info('humanoid_upper')
LIMITS = dict(joint_names=ROBOT.joint_names, lower=ROBOT.lower_limits, upper=ROBOT.upper_limits)
POINT_STAMPED = 'geometry_msgs/msg/PointStamped'
HAND = '/mocap/end_effectors/right_hand'
DEEP = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10000,
                  reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Listener:
    """What the bridge (and the robot) publish, received by the graph's test node."""

    def __init__(self, node) -> None:
        self.commands: list[JointState] = []
        self.hands: list[PointStamped] = []
        self.clips: list[dict] = []
        self.states: list[JointState] = []
        node.create_subscription(JointState, '/mocap/joint_command', self.commands.append, DEEP)
        node.create_subscription(PointStamped, HAND, self.hands.append, DEEP)
        node.create_subscription(String, '/mocap_bridge/clip',
                                 lambda m: self.clips.append(json.loads(m.data)), LATCHED)
        node.create_subscription(JointState, '/joint_states', self.states.append,
                                 JOINT_STATE_QOS)


def write_clip(path: Path, clip: BvhClip) -> tuple[BvhClip, RetargetedMotion]:
    """Write ``clip``; the file read back and retargeted in-process at its own rate."""
    write_bvh(path, clip)
    clip = load_bvh(path)
    return clip, retarget(clip, load_retarget_map(MAP), rate_hz=1.0 / clip.frame_time, **LIMITS)


def write_malformed(path: Path) -> int:
    """A wave clip whose third frame line has a non-numeric value; returns that line."""
    write_bvh(path, wave_clip(duration_s=0.2, rate_hz=30.0))
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith('Frame Time')) + 4
    values = lines[line - 1].split()
    values[4] = 'abc'
    lines[line - 1] = ' '.join(values)
    path.write_text('\n'.join(lines) + '\n')
    return line


def check_stream(commands: list[JointState], expected: RetargetedMotion) -> None:
    """One message per frame, the model's joints, retarget()'s positions, stamps increasing."""
    assert len(commands) == len(expected.times)
    assert all(tuple(m.name) == ROBOT.joint_names for m in commands)
    positions = np.array([m.position for m in commands])
    velocities = np.array([m.velocity for m in commands])
    np.testing.assert_allclose(positions, expected.positions, atol=1e-6)
    # central differences against the spline's derivative; one-sided at the ends
    np.testing.assert_allclose(velocities[1:-1], expected.velocities[1:-1], atol=0.05)
    stamps = np.array([seconds(m.header.stamp) for m in commands])
    assert (np.diff(stamps) > 0).all()


def read_bag(bag: Path) -> dict[str, list]:
    messages = defaultdict(list)
    with Reader(bag) as reader:
        for connection, _, raw in reader.messages():
            messages[connection.topic].append(TYPESTORE.deserialize_cdr(raw, connection.msgtype))
    return dict(messages)


def test_clips_stream_to_the_recorder_and_drive_the_sim_robot_and_a_bad_one_is_skipped(
        recorder_graph, tmp_path):
    graph = recorder_graph
    wave, wave_motion = write_clip(tmp_path / 'wave.bvh', wave_clip(duration_s=2.0, seed=1))
    short, short_motion = write_clip(tmp_path / 'short.bvh',
                                     wave_clip(duration_s=0.5, rate_hz=30.0, seed=2))
    bad_line = write_malformed(tmp_path / 'bad.bvh')
    listener = Listener(graph.receiver.node)
    graph.spawn('il_policy_node.nodes.sim_robot_node',
                ros_args({'model': 'humanoid_upper', 'publish_rate_hz': 100.0}), 'sim_robot')
    recorder = start_recorder(graph, {
        'output_dir': str(tmp_path / 'demos'), 'session': 'session', 'task': 'wave',
        'topics': ['/joint_states', '/mocap/joint_command', HAND],
        'topic_types': [JOINT_STATE, JOINT_STATE, POINT_STAMPED],
        'required_topics': ['/joint_states']})
    bridge = graph.spawn(BRIDGE, ros_args({
        'files': [str(tmp_path / name) for name in ('wave.bvh', 'bad.bvh', 'short.bvh')],
        'drive_robot': True, 'settle_s': 0.5, 'recorder': 'demo_recorder',
        'service_timeout_s': 20.0, 'min_subscribers': 2,           # the recorder and the test
        'wait_for_subscribers_s': 20.0}), 'mocap_bridge')
    assert bridge.popen.wait(timeout=60.0) == 0, bridge.log()
    log = bridge.log()
    assert f'{tmp_path / "bad.bvh"}:{bad_line}: frame 3, value 5: non-numeric' in log, log
    assert 'done: 2 clips played' in log and '1 skipped' in log

    # What a live listener got: every frame of both clips, in order, at each clip's rate.
    assert wait_until(lambda: len(listener.commands) == 121 + 16 and len(listener.clips) == 2,
                      10.0), (len(listener.commands), listener.clips)
    check_stream(listener.commands[:121], wave_motion)
    check_stream(listener.commands[121:], short_motion)
    # stamps are the samples' due times, one frame apart (not the receive times' jitter)
    gaps = np.diff([seconds(m.header.stamp) for m in listener.commands[:121]])
    assert abs(np.median(gaps) - 1 / 60) < 1e-3, np.median(gaps)
    hands = np.array([[m.point.x, m.point.y, m.point.z] for m in listener.hands[:121]])
    np.testing.assert_allclose(hands, wave_motion.end_effectors['right_hand'], atol=1e-6)
    assert {m.header.frame_id for m in listener.hands} == {'Hips'}
    first, second = listener.clips
    assert first['file'] == str(wave.source) and second['file'] == str(short.source)
    assert (first['frames'], first['complete']) == (121, True)
    assert first['frame_rate_hz'] == pytest.approx(60.0) and first['rate_hz'] == \
        pytest.approx(60.0)
    assert (second['frames'], second['index'], second['clamped']) == (16, 2, {})
    assert first['map_sha256'] == load_retarget_map(MAP).sha256
    assert first['file_sha256'] == wave.sha256
    assert first['joint_names'] == list(ROBOT.joint_names)

    # The robot followed: it holds the last pose of the last clip.
    last = short_motion.positions[-1]
    assert wait_until(lambda: listener.states and np.abs(
        np.array(listener.states[-1].position) - last).max() < 0.03, 10.0), \
        np.array(listener.states[-1].position) - last

    # The recorder: one successful episode per clip, every frame in it.
    index = recorder.episodes()
    assert len(index) == 2 and all(line['success'] for line in index), index
    for line, motion in zip(index, (wave_motion, short_motion)):
        messages = read_bag(recorder.session_dir / line['path'])
        commands = messages['/mocap/joint_command']
        assert len(commands) == len(messages[HAND]) == len(motion.times)
        np.testing.assert_allclose([m.position for m in commands], motion.positions, atol=1e-6)
        assert messages['/joint_states']


def test_follows_a_file_being_written_until_no_frame_comes(graph, tmp_path):
    clip, motion = write_clip(tmp_path / 'full.bvh', wave_clip(duration_s=1.0, seed=3))
    lines = Path(clip.source).read_text().splitlines(keepends=True)
    data = next(i for i, text in enumerate(lines) if text.startswith('Frame Time')) + 1
    header = ''.join(lines[:data]).replace('Frames: 61', 'Frames: 0')   # a live writer's
    frames = lines[data:]
    live = tmp_path / 'live.bvh'
    live.write_text(header + ''.join(frames[:20]))
    listener = Listener(graph.receiver.node)
    bridge = graph.spawn(BRIDGE, ros_args({
        'files': [str(live)], 'follow': True, 'follow_timeout_s': 3.0,
        'wait_for_subscribers_s': 20.0}), 'mocap_bridge')
    # a frame's velocity needs the next frame: the 20th waits for the 21st
    assert wait_until(lambda: len(listener.commands) == 19, 20.0), \
        (len(listener.commands), bridge.log())
    with live.open('a') as stream:
        stream.write(''.join(frames[20:40]))
    assert wait_until(lambda: len(listener.commands) == 39, 10.0), \
        (len(listener.commands), bridge.log())
    assert bridge.popen.poll() is None                     # still following
    with live.open('a') as stream:                        # the last line unterminated
        stream.write(''.join(frames[40:]).rstrip('\n'))
    assert bridge.popen.wait(timeout=20.0) == 0, bridge.log()
    assert wait_until(lambda: len(listener.commands) == 61 and len(listener.clips) == 2, 10.0), \
        (len(listener.commands), listener.clips)
    check_stream(listener.commands, motion)
    start, end = listener.clips
    assert (start['complete'], start['follow'], end['complete'], end['frames']) == \
        (False, True, True, 61)
    assert end['file_sha256'] == hashlib.sha256(live.read_bytes()).hexdigest()
    assert 'following' in bridge.log() and 'done: 1 clips played' in bridge.log()


def test_inverse_kinematics_streams_what_the_import_computes(graph, tmp_path):
    from il_policy_node.mocap.ik import IkRetargeter
    from il_policy_node.mocap.skeleton import choose
    from il_policy_node.mocap.synthetic import whole_body_clip
    path = tmp_path / 'cmu.bvh'
    write_bvh(path, whole_body_clip('cmu', duration_s=1.0, rate_hz=30.0))
    clip = load_bvh(path)
    expected = IkRetargeter('humanoid').retarget(clip, choose(clip)).motion
    listener = Listener(graph.receiver.node)
    feet: list[PointStamped] = []
    graph.receiver.node.create_subscription(PointStamped, '/mocap/end_effectors/left_foot',
                                            feet.append, DEEP)
    bridge = graph.spawn(BRIDGE, ros_args({
        'files': [str(path)], 'retarget': 'ik', 'model': 'humanoid',
        'wait_for_subscribers_s': 20.0}), 'mocap_bridge')
    assert bridge.popen.wait(timeout=60.0) == 0, bridge.log()
    assert wait_until(lambda: len(listener.commands) == 31 and len(feet) == 31, 10.0), \
        (len(listener.commands), len(feet), bridge.log())
    assert tuple(listener.commands[0].name) == expected.joint_names
    positions = np.array([m.position for m in listener.commands])
    np.testing.assert_allclose(positions, expected.positions, atol=1e-6)
    assert feet[0].header.frame_id == 'pelvis'
    assert listener.clips[-1]['retarget_map'] == 'ik:humanoid:auto'


def test_a_malformed_only_file_or_a_bad_map_ends_with_an_error(graph, tmp_path):
    bad_line = write_malformed(tmp_path / 'bad.bvh')
    bridge = graph.spawn(BRIDGE, ros_args({'files': [str(tmp_path / 'bad.bvh')],
                                           'wait_for_subscribers_s': 0.0}), 'bad_file')
    bad_map = tmp_path / 'map.yaml'
    content = yaml.safe_load(MAP.read_text())
    del content['joints']['head_yaw_joint']
    bad_map.write_text(yaml.safe_dump(content))
    mapped = graph.spawn(BRIDGE, ros_args({'files': [str(tmp_path / 'bad.bvh')],
                                           'retarget_map': str(bad_map)}), 'bad_map')
    assert bridge.popen.wait(timeout=30.0) != 0, bridge.log()
    assert f'{tmp_path / "bad.bvh"}:{bad_line}: frame 3, value 5' in bridge.log()
    assert 'no clip could be played' in bridge.log()
    assert mapped.popen.wait(timeout=30.0) != 0, mapped.log()
    assert f"{bad_map}: the map does not fit the robot: no entry for robot joints " \
           "['head_yaw_joint']" in mapped.log()


# -- config/mocap_bridge.yaml --------------------------------------------------------------
def test_mocap_bridge_yaml_lists_exactly_the_node_parameters_with_their_defaults():
    document = yaml.safe_load(CONFIG_YAML.read_text())
    assert list(document) == ['mocap_bridge']
    values = document['mocap_bridge']['ros__parameters']
    names = [spec.name for spec in PARAMETERS]
    assert sorted(values) == sorted(names), (
        f'missing from mocap_bridge.yaml: {sorted(set(names) - set(values))}; '
        f'not parameters of mocap_bridge: {sorted(set(values) - set(names))}')
    for spec in PARAMETERS:
        if isinstance(spec.default, Parameter.Type):
            assert values[spec.name] == [], spec.name
        else:
            assert type(values[spec.name]) is type(spec.default), spec.name
            assert values[spec.name] == spec.default, spec.name


def test_the_default_map_is_the_package_one():
    from il_policy_node.mocap.retarget import RetargetError, package_map
    assert package_map('humanoid_upper').read_text() == MAP.read_text()
    with pytest.raises(RetargetError, match=r'no_such_model\.yaml.*give one'):
        package_map('no_such_model')
