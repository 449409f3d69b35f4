"""il-policy mocap import: BVH clips -> recorder-layout bags the dataset builder takes."""
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from il_policy_node.errors import ConfigError
from il_policy_node.formats import RECORDING_MARKER as MARKER
from il_policy_node.mocap import importer
from il_policy_node.mocap.bvh import BvhClip, load_bvh, write_bvh
from il_policy_node.mocap.importer import FAILED, IMPORTED, SKIPPED, ImportConfig, import_clips
from il_policy_node.mocap.retarget import RetargetError, load_retarget_map, retarget
from il_policy_node.mocap.synthetic import skeleton, wave_clip
from il_policy_node.pipeline.bag_decoding import typestore
from il_policy_node.pipeline.bags import bag_metadata, read_topics
from il_policy_node.pipeline.dataset.build import build_dataset
from il_policy_node.pipeline.dataset.config import DatasetConfig
from il_policy_node.pipeline.dataset.format import load_dataset
from il_policy_node.recording.metadata import MocapClip
from il_policy_node.recording.session import Session
from il_policy_node.robots.models import model_info, robot_joints
from il_policy_node.runtime.robot import RobotJoints

ROOT = Path(__file__).resolve().parents[2]
MAP = ROOT / 'config' / 'retarget' / 'humanoid_upper.yaml'
MODEL = 'humanoid_upper'
START_S = 1_700_000_000.25
RECORDER_KEYS = ('task', 'operator', 'success', 'episode_index', 'start_wall_time',
                 'stop_wall_time', 'stop_reason', 'lost_counts', 'recorder', 'message_counts')
EFFECTORS = ('head', 'left_hand', 'right_hand')
METADATA_KEYS = tuple(f'mocap_{f.name}' for f in dataclasses.fields(MocapClip))


def write_waves(folder: Path, count: int, duration_s: float = 2.0) -> list[Path]:
    """``count`` different wave clips (seed, tempo, amplitude) as BVH files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        path = folder / f'wave_{k}.bvh'
        write_bvh(path, wave_clip(duration_s=duration_s, seed=k, tempo_hz=1.0 + 0.3 * k,
                                  amplitude=1.0 - 0.2 * k))
        paths.append(path)
    return paths


def config(tmp_path: Path, **changes) -> ImportConfig:
    values = {'map_path': MAP, 'output_dir': tmp_path / 'demos', 'task': 'wave',
              'robot': robot_joints(MODEL), 'start_time_s': START_S, **changes}
    return ImportConfig(**values)


def urdf_robot(urdf: Path) -> RobotJoints:
    """The map's joints with the URDF's limits, as il-policy mocap import --urdf makes it."""
    return RobotJoints.from_urdf(urdf.read_text(), tuple(load_retarget_map(MAP).joints),
                                 f'urdf {urdf}')


def expected_motion(path: Path, map_path: Path = MAP):
    info = model_info(MODEL)
    return retarget(load_bvh(path), load_retarget_map(map_path), joint_names=info.joint_names,
                    lower=info.lower_limits, upper=info.upper_limits)


def read_bag(bag: Path) -> dict[str, list]:
    """Messages by topic, [(bag time, message)], with rosbags' generic decoder."""
    store, messages = typestore(), {}
    with Reader(bag) as reader:
        for connection, timestamp, data in reader.messages():
            messages.setdefault(connection.topic, []).append(
                (timestamp, store.deserialize_cdr(data, connection.msgtype)))
    return messages


def stamp_ns(message) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def episodes(session_dir: Path) -> list[str]:
    return sorted(p.name for p in session_dir.iterdir() if p.is_dir())


# -- the bags -------------------------------------------------------------------------------
@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_each_clip_becomes_a_bag_holding_the_retargeted_motion(tmp_path, storage):
    clips = write_waves(tmp_path / 'clips', 2)
    report = import_clips(clips, config=config(tmp_path, storage=storage, operator='ana'))
    assert report.ok and [r.status for r in report.results] == [IMPORTED, IMPORTED]
    session = tmp_path / 'demos' / 'mocap'
    assert episodes(session) == ['episode_0001', 'episode_0002']
    for clip, result in zip(clips, report.results):
        motion = expected_motion(clip)
        n, rate = len(motion.times), motion.rate_hz
        assert result.episode == session / f'episode_000{clips.index(clip) + 1}'
        assert result.samples == n == 101 and rate == 50.0
        assert not (result.episode / MARKER).exists()
        messages = read_bag(result.episode)
        assert set(messages) == {'/mocap/joint_command',
                                 *(f'/mocap/end_effectors/{e}' for e in EFFECTORS)}
        expected_ns = int(START_S * 1e9) + np.round(np.arange(n) / rate * 1e9).astype(np.int64)
        commands = messages['/mocap/joint_command']
        assert [t for t, _ in commands] == [stamp_ns(m) for _, m in commands] == \
            expected_ns.tolist()
        assert all(list(m.name) == list(motion.joint_names) and m.header.frame_id == ''
                   and len(m.effort) == 0 for _, m in commands)
        np.testing.assert_array_equal([m.position for _, m in commands], motion.positions)
        np.testing.assert_array_equal([m.velocity for _, m in commands], motion.velocities)
        for name in EFFECTORS:
            points = messages[f'/mocap/end_effectors/{name}']
            assert [t for t, _ in points] == [stamp_ns(m) for _, m in points] == \
                expected_ns.tolist()
            assert {m.header.frame_id for _, m in points} == {'Hips'}
            np.testing.assert_array_equal([[m.point.x, m.point.y, m.point.z]
                                           for _, m in points], motion.end_effectors[name])
        # the dataset builder's bulk decoder reads the same
        series = read_topics(result.episode, {'/mocap/joint_command':
                                              ('sensor_msgs/msg/JointState',)})
        np.testing.assert_array_equal(series['/mocap/joint_command'].position, motion.positions)
        np.testing.assert_array_equal(series['/mocap/joint_command'].stamp_ns, expected_ns)


def test_the_metadata_has_the_recorder_keys_and_the_mocap_ones(tmp_path):
    clip, = write_waves(tmp_path / 'clips', 1)
    report = import_clips([clip], config=config(tmp_path, operator='ana'))
    bag = report.results[0].episode
    meta = bag_metadata(bag)
    custom = meta['custom_data']
    assert set(custom) == set(RECORDER_KEYS) | set(METADATA_KEYS)
    assert all(isinstance(v, str) for v in custom.values())
    mapping, frames = load_retarget_map(MAP), load_bvh(clip)
    assert custom['task'] == 'wave' and custom['operator'] == 'ana'
    assert custom['success'] == 'true' and custom['episode_index'] == '1'
    assert custom['stop_reason'] == 'end_of_clip' and json.loads(custom['lost_counts']) == {}
    assert custom['recorder'].startswith('il_policy_node mocap import')
    assert json.loads(custom['message_counts']) == {
        '/mocap/joint_command': 101, **{f'/mocap/end_effectors/{e}': 101 for e in EFFECTORS}}
    assert custom['mocap_source_file'] == str(clip.absolute())
    assert custom['mocap_source_sha256'] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert custom['mocap_clip'] == 'wave_0'
    assert float(custom['mocap_clip_frame_rate_hz']) == pytest.approx(60.0, rel=1e-6)
    assert int(custom['mocap_clip_frames']) == frames.num_frames == 121
    assert float(custom['mocap_clip_duration_s']) == pytest.approx(2.0, rel=1e-6)
    assert custom['mocap_retarget_map'] == str(MAP)
    assert custom['mocap_retarget_map_sha256'] == mapping.sha256
    assert float(custom['mocap_rate_hz']) == 50.0 and custom['mocap_samples'] == '101'
    assert int(custom['mocap_start_time_ns']) == int(START_S * 1e9) == \
        meta['starting_time']['nanoseconds_since_epoch']
    assert custom['start_wall_time'].startswith('2023-11-14T22:13:20.25')
    assert custom['mocap_robot'] == f'model {MODEL}'
    assert json.loads(custom['mocap_joints']) == list(model_info(MODEL).joint_names)
    assert custom['mocap_command_topic'] == '/mocap/joint_command'
    assert json.loads(custom['mocap_end_effectors']) == {
        e: {'topic': f'/mocap/end_effectors/{e}', 'frame_id': 'Hips'} for e in EFFECTORS}
    assert json.loads(custom['mocap_clamped']) == {}
    entry, = Session(tmp_path / 'demos' / 'mocap').read_index()
    assert entry['index'] == 1 and entry['path'] == 'episode_0001' and entry['success'] is True
    assert entry['task'] == 'wave' and entry['duration_s'] == 2.0
    assert entry['mocap']['source_sha256'] == custom['mocap_source_sha256']


def test_values_outside_the_limits_are_clamped_and_reported(tmp_path):
    narrowed = yaml.safe_load(MAP.read_text())
    narrowed['limits'] = {'right_elbow_joint': [0.0, 1.4]}
    map_path = tmp_path / 'narrow.yaml'
    map_path.write_text(yaml.safe_dump(narrowed))
    clip, = write_waves(tmp_path / 'clips', 1)
    result, = import_clips([clip], config=config(tmp_path, map_path=map_path)).results
    motion = expected_motion(clip, map_path)
    assert set(motion.clamped) == {'right_elbow_joint'}
    clamp = motion.clamped['right_elbow_joint']
    assert clamp.frames > 0 and clamp.worst_excess > 0.1
    expected = {'right_elbow_joint': {'frames': clamp.frames,
                                      'worst_excess_rad': clamp.worst_excess}}
    assert result.clamped == expected
    assert json.loads(bag_metadata(result.episode)['custom_data']['mocap_clamped']) == expected
    assert f'clamped right_elbow_joint: {clamp.frames} frames, worst ' \
           f'{clamp.worst_excess:.4f} rad' in result.describe()
    commands = read_bag(result.episode)['/mocap/joint_command']
    elbow = motion.joint_names.index('right_elbow_joint')
    assert max(m.position[elbow] for _, m in commands) == 1.4


def test_the_start_time_is_the_file_modification_time_by_default(tmp_path):
    clip, = write_waves(tmp_path / 'clips', 1)
    os.utime(clip, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    result, = import_clips([clip], config=config(tmp_path, start_time_s=None)).results
    commands = read_bag(result.episode)['/mocap/joint_command']
    assert commands[0][0] == stamp_ns(commands[0][1]) == 1_600_000_000_123_456_789
    assert commands[1][0] - commands[0][0] == 20_000_000


# -- the dataset builder takes them ---------------------------------------------------------
def test_the_dataset_builder_takes_the_imported_bags(tmp_path):
    clips = write_waves(tmp_path / 'clips', 3)
    assert import_clips(clips, config=config(tmp_path, start_time_s=None)).ok
    dataset_config = DatasetConfig.from_dict({
        'control_rate_hz': 50.0,
        'observation': {'topic': '/mocap/joint_command', 'fields': ['position', 'velocity']},
        'action': {'source': 'future_state', 'future_steps': 1},
        'split': {'val_fraction': 0.34}})
    report = build_dataset([tmp_path / 'demos'], config=dataset_config,
                           output_dir=tmp_path / 'dataset', progress=False)
    assert report.episodes == 3 and report.bags == 3 and not report.skipped
    assert report.rows == 3 * 100                # 101 samples, the last has no future
    dataset = load_dataset(tmp_path / 'dataset')
    arrays, manifest = dataset.arrays, dataset.manifest
    joints = list(model_info(MODEL).joint_names)
    assert manifest['observation']['joints'] == joints and dataset.action_joints == joints
    assert {e['split'] for e in manifest['episodes']} == {'train', 'val'}
    for clip, episode in zip(clips, manifest['episodes']):
        assert Path(episode['bag']).name == f'episode_000{clips.index(clip) + 1}'
        assert episode['task'] == 'wave' and episode['success'] is True
        motion = expected_motion(clip)
        rows = slice(episode['start'], episode['start'] + episode['length'])
        observed = arrays['observations'][rows]
        np.testing.assert_allclose(observed[:, :len(joints)], motion.positions[:-1], atol=1e-6)
        np.testing.assert_allclose(observed[:, len(joints):], motion.velocities[:-1],
                                   atol=1e-5, rtol=1e-6)
        np.testing.assert_allclose(arrays['actions'][rows], motion.positions[1:], atol=1e-6)


# -- errors ---------------------------------------------------------------------------------
def write_bad(folder: Path) -> tuple[Path, int]:
    path = folder / 'bad.bvh'
    lines = (folder / 'wave_0.bvh').read_text().splitlines()
    row = lines.index('MOTION') + 5                      # the third frame line
    lines[row] = lines[row].replace(' ', ' x', 1)
    path.write_text('\n'.join(lines) + '\n')
    return path, row + 1


def test_a_malformed_clip_is_reported_by_file_and_line_and_the_others_imported(tmp_path):
    good = write_waves(tmp_path / 'clips', 2)
    bad, line = write_bad(tmp_path / 'clips')
    seen = []
    report = import_clips([good[0], bad, good[1]], config=config(tmp_path),
                          on_result=seen.append)
    assert [r.status for r in report.results] == [IMPORTED, FAILED, IMPORTED] and not report.ok
    assert seen == report.results
    assert report.results[1].message.startswith(f'{bad.absolute()}:{line}:')
    session = tmp_path / 'demos' / 'mocap'
    assert episodes(session) == ['episode_0001', 'episode_0002']
    assert not Session(session).partial_episodes()
    assert [e['mocap']['source_file'] for e in Session(session).read_index()] == \
        [str(good[0].absolute()), str(good[1].absolute())]


def test_strict_stops_at_the_first_bad_clip(tmp_path):
    good = write_waves(tmp_path / 'clips', 2)
    bad, _ = write_bad(tmp_path / 'clips')
    report = import_clips([good[0], bad, good[1]], config=config(tmp_path, strict=True))
    assert [r.status for r in report.results] == [IMPORTED, FAILED] and report.files == 3
    assert not report.ok and episodes(tmp_path / 'demos' / 'mocap') == ['episode_0001']


@pytest.mark.filterwarnings('ignore:Gimbal lock')     # a T-pose is at the map's gimbal lock
def test_missing_and_too_short_clips_fail_by_name(tmp_path):
    one_frame = tmp_path / 'one.bvh'
    write_bvh(one_frame, BvhClip(joints=skeleton(), frames=np.zeros((1, 60)), frame_time=0.01))
    short = tmp_path / 'short.bvh'               # 1/60 s: one sample at 50 Hz
    write_bvh(short, BvhClip(joints=skeleton(), frames=np.zeros((2, 60)), frame_time=1 / 60))
    report = import_clips([tmp_path / 'nope.bvh', one_frame, short], config=config(tmp_path))
    missing, single, brief = report.results
    assert all(r.status == FAILED for r in report.results)
    assert 'nope.bvh' in missing.message
    assert str(one_frame) in single.message and 'at least 2' in single.message
    assert str(short) in brief.message and '1 sample' in brief.message
    assert episodes(tmp_path / 'demos' / 'mocap') == []


def test_a_clip_without_a_joint_the_map_needs_fails_naming_the_joint(tmp_path):
    clip, = write_waves(tmp_path / 'clips', 1)
    renamed = tmp_path / 'clips' / 'renamed.bvh'
    renamed.write_text(clip.read_text().replace('Spine1', 'Chest'))
    report = import_clips([renamed, clip], config=config(tmp_path))
    assert [r.status for r in report.results] == [FAILED, IMPORTED]
    message = report.results[0].message
    assert "joints.torso_yaw_joint: BVH joint 'Spine1' is not in" in message
    assert str(renamed) in message


def test_a_map_that_does_not_fit_the_robot_names_the_joints_and_writes_nothing(tmp_path):
    content = yaml.safe_load(MAP.read_text())
    content['joints']['tail_joint'] = content['joints'].pop('head_yaw_joint')
    map_path = tmp_path / 'map.yaml'
    map_path.write_text(yaml.safe_dump(content, sort_keys=False))
    clips = write_waves(tmp_path / 'clips', 1)
    with pytest.raises(RetargetError, match=r"no entry for robot joints \['head_yaw_joint'\]"
                       r".*joints the robot does not have \['tail_joint'\]"):
        import_clips(clips, config=config(tmp_path, map_path=map_path))
    assert not (tmp_path / 'demos').exists()
    # without --model the map's joints are the robot's
    result, = import_clips(clips, config=config(tmp_path, map_path=map_path, robot=None)).results
    assert result.status == IMPORTED and 'tail_joint' in read_bag(result.episode)[
        '/mocap/joint_command'][0][1].name


def test_limits_from_a_urdf_for_the_maps_joints(tmp_path):
    urdf = ROOT / 'il_policy_node' / 'robots' / f'{MODEL}.urdf'
    clip, = write_waves(tmp_path / 'clips', 1)
    result, = import_clips([clip], config=config(tmp_path, robot=urdf_robot(urdf))).results
    assert result.status == IMPORTED and not result.clamped
    custom = bag_metadata(result.episode)['custom_data']
    assert custom['mocap_robot'] == f'urdf {urdf}'
    assert json.loads(custom['mocap_joints']) == list(load_retarget_map(MAP).joints)
    stump = tmp_path / 'stump.urdf'
    stump.write_text(urdf.read_text().replace('name="head_yaw_joint"', 'name="neck_joint"'))
    with pytest.raises(ConfigError, match=r"joints \['head_yaw_joint'\] are not movable "
                       'joints of .*stump.urdf'):
        urdf_robot(stump)

def test_a_bad_map_is_an_error_naming_the_file(tmp_path):
    map_path = tmp_path / 'map.yaml'
    map_path.write_text('rate_hz: 50\njoints: {q: {bvh_joint: Hips, axis: w}}\n')
    with pytest.raises(RetargetError, match=r"map\.yaml: joints\.q: unknown axis 'w'"):
        import_clips(write_waves(tmp_path / 'clips', 1), config=config(tmp_path,
                                                                       map_path=map_path))
    with pytest.raises(ConfigError, match='--command-topic'):
        import_clips([], config=config(tmp_path, command_topic='joint command'))


def test_a_failure_while_writing_leaves_no_bag(tmp_path, monkeypatch):
    clips = write_waves(tmp_path / 'clips', 2)
    original = importer._BagWriter._messages

    def broken(self, motion, stamps):
        for k, item in enumerate(original(self, motion, stamps)):
            if k == 50:
                raise OSError('disk gone')
            yield item

    monkeypatch.setattr(importer._BagWriter, '_messages', broken)
    report = import_clips(clips, config=config(tmp_path))
    assert [r.status for r in report.results] == [FAILED, FAILED]
    assert 'disk gone' in report.results[0].message
    session = tmp_path / 'demos' / 'mocap'
    assert episodes(session) == [] and Session(session).read_index() == []


def test_clips_already_in_the_session_are_skipped_unless_reimport(tmp_path):
    clips = write_waves(tmp_path / 'clips', 2)
    assert import_clips(clips[:1], config=config(tmp_path)).ok
    again = import_clips(clips, config=config(tmp_path))
    assert [r.status for r in again.results] == [SKIPPED, IMPORTED] and again.ok
    assert 'episode_0001' in again.results[0].message
    forced = import_clips(clips[:1], config=config(tmp_path, reimport=True))
    assert forced.results[0].episode.name == 'episode_0003'


# -- command line ---------------------------------------------------------------------------
def test_the_command_line_end_to_end(tmp_path):
    clips = write_waves(tmp_path / 'clips', 2)
    bad, line = write_bad(tmp_path / 'clips')
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    env.pop('IL_POLICY_DEBUG', None)
    result = subprocess.run(
        [sys.executable, '-m', 'il_policy_node.cli', 'mocap', 'import', *map(str, clips),
         str(bad), '--retarget', str(MAP), '-o', str(tmp_path / 'out'), '--model', MODEL,
         '--session', 'waves', '--task', 'wave', '--start-time', '1'],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f'il-policy: error: {bad}:{line}:' in result.stderr
    assert '2 of 3 clip(s) imported' in result.stdout and '1 failed' in result.stdout
    assert f'imported {clips[0]} -> {tmp_path}/out/waves/episode_0001: 101 samples' \
        in result.stdout
    assert episodes(tmp_path / 'out' / 'waves') == ['episode_0001', 'episode_0002']
    custom = bag_metadata(tmp_path / 'out' / 'waves' / 'episode_0002')['custom_data']
    assert custom['task'] == 'wave' and custom['mocap_start_time_ns'] == '1000000000'


def test_the_importer_imports_no_ros_module():
    code = ('import sys, il_policy_node.mocap.importer\n'
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rclpy'"
            " or m.split('.')[0].endswith('_msgs')))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert out.strip() == '[]'
