"""Episode bags, sessions, message definitions and QoS decisions, with real bags on disk."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime

import numpy as np
import pytest
import yaml
from mcap.exceptions import EndOfFile
from mcap.reader import make_reader
from mcap.records import Message as McapMessage
from mcap.stream_reader import StreamReader
from mcap_ros2.decoder import DecoderFactory
from rosbags.interfaces import Qos, QosDurability, QosReliability
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from il_policy_node.errors import ConfigError, RecordingError
from il_policy_node.formats import RECORDING_MARKER as MARKER
from il_policy_node.recording.config import RecorderConfig
from il_policy_node.recording.definitions import MessageDefinitions
from il_policy_node.recording.metadata import EpisodeMetadata, is_closed_episode
from il_policy_node.recording.qos import qos_compatible, recording_qos
from il_policy_node.recording.session import Session, check_output_dir
from il_policy_node.recording.writer import EpisodeWriter, TopicInfo

STORE = get_typestore(Stores.ROS2_JAZZY)
JOINT_STATE = 'sensor_msgs/msg/JointState'
STRING = 'std_msgs/msg/String'
JOINTS = [f'joint_{i}' for i in range(30)]


def joint_state(seq: int) -> bytes:
    msg_class = STORE.types[JOINT_STATE]
    header = STORE.types['std_msgs/msg/Header'](
        stamp=STORE.types['builtin_interfaces/msg/Time'](sec=0, nanosec=0), frame_id=str(seq))
    msg = msg_class(header=header, name=JOINTS, position=np.full(30, float(seq)),
                    velocity=np.zeros(30), effort=np.zeros(0))
    return bytes(STORE.serialize_cdr(msg, JOINT_STATE))


def topic_info(topic: str, msgtype: str, offers=()) -> TopicInfo:
    return TopicInfo(topic, msgtype, *MessageDefinitions().lookup(msgtype), tuple(offers))


def offer(reliability=QosReliability.RELIABLE, durability=QosDurability.VOLATILE) -> Qos:
    return recording_qos([])._replace(reliability=reliability, durability=durability, depth=10)


def write_episode(path, n, *, storage='mcap', compression='none', metadata=None):
    writer = EpisodeWriter(path, storage=storage, compression=compression)
    writer.add_topic(topic_info('/joint_states', JOINT_STATE, [offer()]))
    writer.add_topic(topic_info('/robot_description', STRING,
                                [offer(durability=QosDurability.TRANSIENT_LOCAL)]))
    writer.write('/robot_description', 1, bytes(STORE.serialize_cdr(
        STORE.types[STRING](data='<robot/>'), STRING)))
    for seq in range(n):
        writer.write('/joint_states', 1000 + seq, joint_state(seq))
    return writer.close(metadata or EpisodeMetadata(task='wave'))


def rosbags_seqs(bag) -> dict:
    seqs: dict = {}
    with Reader(bag) as reader:
        for connection, _, raw in reader.messages():
            msg = STORE.deserialize_cdr(raw, connection.msgtype)
            value = msg.data if connection.msgtype == STRING else int(msg.header.frame_id)
            seqs.setdefault(connection.topic, []).append(value)
    return seqs


def mcap_seqs(mcap_file) -> dict:
    seqs: dict = {}
    with open(mcap_file, 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for _, channel, _, msg in reader.iter_decoded_messages():
            value = msg.data if channel.topic == '/robot_description' \
                else int(msg.header.frame_id)
            seqs.setdefault(channel.topic, []).append(value)
    return seqs


# -- EpisodeWriter --------------------------------------------------------------------------
@pytest.mark.parametrize('storage,compression', [('mcap', 'none'), ('mcap', 'zstd'),
                                                 ('sqlite3', 'none'), ('sqlite3', 'zstd')])
def test_episode_bag_reads_back_with_rosbags(tmp_path, storage, compression):
    bag = tmp_path / 'episode_0001'
    counts = write_episode(bag, 500, storage=storage, compression=compression)
    assert counts == {'/joint_states': 500, '/robot_description': 1}
    suffix = '.mcap' if storage == 'mcap' else '.db3'
    assert sorted(p.name for p in bag.iterdir()) == sorted(['metadata.yaml',
                                                            f'episode_0001{suffix}'])
    assert is_closed_episode(bag)
    assert rosbags_seqs(bag) == {'/joint_states': list(range(500)),
                                 '/robot_description': ['<robot/>']}
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == 9 and info['storage_identifier'] == storage
    assert info['custom_data']['task'] == 'wave'
    assert json.loads(info['custom_data']['message_counts']) == counts
    assert info['compression_mode'] == ('message' if (storage, compression) == ('sqlite3',
                                                                                 'zstd') else '')
    topics = {t['topic_metadata']['name']: t['topic_metadata']
              for t in info['topics_with_message_count']}
    latched = topics['/robot_description']['offered_qos_profiles'][0]
    assert latched['durability'] == 'transient_local'
    assert topics['/joint_states']['type_description_hash'].startswith('RIHS01_')


@pytest.mark.parametrize('compression', ['none', 'zstd'])
def test_mcap_episode_reads_back_with_the_mcap_reader(tmp_path, compression):
    bag = tmp_path / 'episode_0001'
    write_episode(bag, 3000, compression=compression)
    mcap_file = bag / 'episode_0001.mcap'
    assert mcap_seqs(mcap_file) == {'/joint_states': list(range(3000)),
                                    '/robot_description': ['<robot/>']}
    with open(mcap_file, 'rb') as stream:
        summary = make_reader(stream).get_summary()
    chunk_compression = {c.compression for c in summary.chunk_indexes}
    assert chunk_compression == ({'zstd'} if compression == 'zstd' else {''})


def test_discard_removes_the_episode(tmp_path):
    writer = EpisodeWriter(tmp_path / 'episode_0001')
    writer.add_topic(topic_info('/joint_states', JOINT_STATE))
    writer.write('/joint_states', 1, joint_state(0))
    assert (tmp_path / 'episode_0001' / MARKER).exists()
    writer.discard()
    assert not (tmp_path / 'episode_0001').exists()
    with pytest.raises(RecordingError, match='already closed'):
        writer.close(EpisodeMetadata())


def test_an_existing_or_unwritable_folder_is_refused(tmp_path):
    write_episode(tmp_path / 'episode_0001', 1)
    with pytest.raises(RecordingError, match='exists already'):
        EpisodeWriter(tmp_path / 'episode_0001')
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(RecordingError, match='cannot create the episode bag'):
        EpisodeWriter(blocker / 'episode_0001')
    with pytest.raises(RecordingError, match='not writable'):
        check_output_dir(blocker / 'session', 0.0)
    with pytest.raises(RecordingError, match='disk full'):
        check_output_dir(tmp_path / 'session', 1e12)
    assert check_output_dir(tmp_path / 'session', 0.0) > 0


def test_a_write_error_leaves_a_partial_episode(tmp_path):
    writer = EpisodeWriter(tmp_path / 'episode_0001')
    writer.write('/never_added', 1, b'')
    with pytest.raises(RecordingError, match='is partial'):
        writer.close(EpisodeMetadata())
    assert writer.error and not is_closed_episode(tmp_path / 'episode_0001')


KILLED_WRITER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {test_dir!r})
    from test_writer import write_episode, topic_info, joint_state, JOINT_STATE
    from il_policy_node.recording.writer import EpisodeWriter
    session = Path(sys.argv[1])
    write_episode(session / 'episode_0001', 200)
    writer = EpisodeWriter(session / 'episode_0002')
    writer.add_topic(topic_info('/joint_states', JOINT_STATE))
    for seq in range(20000):
        writer.write('/joint_states', 1000 + seq, joint_state(seq))
    while writer.pending:
        time.sleep(0.01)
    print('written', flush=True)
    time.sleep(60)
''')


def test_a_killed_writer_leaves_earlier_episodes_whole_and_the_last_one_partial(tmp_path):
    script = KILLED_WRITER.format(test_dir=os.path.dirname(__file__))
    child = subprocess.Popen([sys.executable, '-c', script, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'written'
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    session = Session(tmp_path)
    assert session.partial_episodes() == [tmp_path / 'episode_0002']
    assert rosbags_seqs(tmp_path / 'episode_0001')['/joint_states'] == list(range(200))
    partial = tmp_path / 'episode_0002'
    assert (partial / MARKER).exists() and not (partial / 'metadata.yaml').exists()
    # The MCAP chunks completed before the kill are on disk: a stream reader recovers them.
    recovered = []
    with open(partial / 'episode_0002.mcap', 'rb') as stream:
        try:
            for record in StreamReader(stream).records:
                if isinstance(record, McapMessage):
                    msg = STORE.deserialize_cdr(record.data, JOINT_STATE)
                    recovered.append(int(msg.header.frame_id))
        except EndOfFile:  # the file ends without its summary
            pass
    assert len(recovered) > 1000 and recovered == list(range(len(recovered)))
    assert session.next_index() == 3


# -- Session --------------------------------------------------------------------------------
def test_session_numbers_episodes_and_resumes(tmp_path):
    session = Session(tmp_path / 'session_a')
    assert session.next_index() == 1 and session.read_index() == []
    for index in (1, 2, 7):
        session.episode_path(index).mkdir(parents=True)
    (session.root / 'episode_x').mkdir()
    (session.root / 'notes.txt').write_text('')
    assert session.episode_indices() == [1, 2, 7]
    assert session.next_index() == 8
    assert session.episode_path(8).name == 'episode_0008'
    assert Session(tmp_path / 'session_a').next_index() == 8   # resumed


def test_episodes_index_is_rewritten_whole(tmp_path):
    session = Session(tmp_path)
    session.add_to_index({'index': 2, 'success': True})
    session.add_to_index({'index': 1, 'success': False})
    session.add_to_index({'index': 2, 'success': False})
    assert session.read_index() == [{'index': 1, 'success': False},
                                    {'index': 2, 'success': False}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['episodes.jsonl']


# -- message definitions --------------------------------------------------------------------
def test_definitions_of_jazzy_types_come_from_the_typestore():
    msgdef, rihs01 = MessageDefinitions(share_dirs=[]).lookup(JOINT_STATE)
    assert msgdef.startswith('std_msgs/Header header')
    assert rihs01 == STORE.hash_rihs01(JOINT_STATE)


def test_definitions_of_other_types_come_from_msg_files(tmp_path):
    msg_dir = tmp_path / 'share' / 'demo_msgs' / 'msg'
    msg_dir.mkdir(parents=True)
    (msg_dir / 'Grasp.msg').write_text('std_msgs/Header header\ndemo_msgs/Finger[] fingers\n')
    (msg_dir / 'Finger.msg').write_text('string name\nfloat64 closure\n')
    definitions = MessageDefinitions(share_dirs=[tmp_path / 'share'])
    msgdef, rihs01 = definitions.lookup('demo_msgs/msg/Grasp')
    assert 'MSG: demo_msgs/Finger' in msgdef and rihs01.startswith('RIHS01_')
    with pytest.raises(RecordingError, match='no definition of demo_msgs/msg/Missing'):
        definitions.lookup('demo_msgs/msg/Missing')


# -- QoS ------------------------------------------------------------------------------------
def test_qos_follows_the_publishers():
    reliable, best_effort = offer(), offer(reliability=QosReliability.BEST_EFFORT)
    latched = offer(durability=QosDurability.TRANSIENT_LOCAL)
    assert recording_qos([reliable, latched]).reliability == QosReliability.RELIABLE
    assert recording_qos([reliable, best_effort]).reliability == QosReliability.BEST_EFFORT
    assert recording_qos([latched]).durability == QosDurability.TRANSIENT_LOCAL
    assert recording_qos([latched, reliable]).durability == QosDurability.VOLATILE
    assert recording_qos([]).reliability == QosReliability.BEST_EFFORT
    assert recording_qos([reliable]).depth >= 1000
    assert qos_compatible(recording_qos([reliable]), reliable)
    assert not qos_compatible(recording_qos([reliable]), best_effort)
    assert not qos_compatible(recording_qos([latched]), reliable)
    assert qos_compatible(recording_qos([reliable, best_effort]), best_effort)


# -- configuration --------------------------------------------------------------------------
PARAMS = {'output_dir': '~/il_demos', 'session': '', 'topics': ['joint_states', '/cmd'],
          'topic_types': [], 'required_topics': ['joint_states'], 'storage': 'mcap',
          'compression': 'none', 'required_timeout_s': 2.0, 'max_episode_duration_s': 0.0,
          'task': 'wave', 'operator': 'ana', 'keyboard': False, 'min_free_disk_mb': 200.0}


def test_config_resolves_topics_and_names_the_session():
    config = RecorderConfig.from_parameters(PARAMS, resolve=lambda t: '/' + t.lstrip('/'),
                                            now=datetime(2025, 3, 4, 5, 6, 7))
    assert config.topics == ('/joint_states', '/cmd') and config.topic_types == ('', '')
    assert config.required_topics == ('/joint_states',)
    assert config.session == 'session_20250304_050607'
    assert config.session_dir == config.output_dir / 'session_20250304_050607'
    assert '~' not in str(config.output_dir)


@pytest.mark.parametrize('override,match', [
    ({'topics': []}, 'topics is empty'),
    ({'topics': ['/a', '/a']}, 'more than once'),
    ({'topic_types': ['sensor_msgs/msg/JointState']}, 'topic_types has 1 entries'),
    ({'topic_types': ['JointState', '']}, 'pkg/msg/Type'),
    ({'required_topics': ['/other']}, 'not in topics'),
    ({'storage': 'rosbag'}, 'storage must be'),
    ({'compression': 'lz4'}, 'compression must be'),
    ({'session': '../x'}, 'folder name'),
    ({'required_timeout_s': float('nan')}, 'required_timeout_s'),
])
def test_config_errors_name_the_parameter(override, match):
    with pytest.raises(ConfigError, match=match):
        RecorderConfig.from_parameters({**PARAMS, **override})
