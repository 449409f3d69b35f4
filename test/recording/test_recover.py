"""The writer's flush policy and the recovery of partial episodes, with writers killed for real."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from il_policy_node.errors import RecordingError
from il_policy_node.pipeline.bags import bag_metadata
from il_policy_node.recording.metadata import EpisodeMetadata, is_closed_episode
from il_policy_node.recording.recover import recover_episode
from il_policy_node.recording.session import Session

STORE = get_typestore(Stores.ROS2_JAZZY)

# Writes 1000 numbered messages stamped 1 ms apart, waits until the writer thread took them
# all, then a further `hold` seconds (the flush period passes, or not), and prints 'written'.
KILLED = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {test_dir!r})
    from test_writer import topic_info, joint_state, JOINT_STATE
    from il_policy_node.recording.metadata import EpisodeMetadata
    from il_policy_node.recording.writer import EpisodeWriter, FlushPolicy
    storage, period, hold = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    writer = EpisodeWriter(Path(sys.argv[1]), storage=storage, flush=FlushPolicy(period),
                           started=EpisodeMetadata(task='wave', episode_index=1))
    writer.add_topic(topic_info('/joint_states', JOINT_STATE))
    for seq in range(1000):
        writer.write('/joint_states', 1_000_000_000 + seq * 1_000_000, joint_state(seq))
    while writer.pending:
        time.sleep(0.01)
    time.sleep(hold)
    print('written', flush=True)
    time.sleep(60)
''')


def _killed_writer(folder, storage='mcap', period=0.2, hold=0.6):
    script = KILLED.format(test_dir=os.path.dirname(__file__))
    child = subprocess.Popen([sys.executable, '-c', script, str(folder), storage, str(period),
                              str(hold)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'written'
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return folder


def _seqs(bag):
    with Reader(bag) as reader:
        return [int(STORE.deserialize_cdr(raw, c.msgtype).header.frame_id)
                for c, _, raw in reader.messages()]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_what_waited_a_flush_period_is_recovered_whole(tmp_path, storage):
    # 1000 messages (1 MiB chunks would hold more): only the time-based flush writes them
    episode = _killed_writer(tmp_path / 'episode_0001', storage)
    assert not is_closed_episode(episode)
    recovery = recover_episode(episode)
    assert recovery.messages == {'/joint_states': 1000}
    assert recovery.duration_s == pytest.approx(0.999)
    assert _seqs(episode) == list(range(1000))
    metadata = EpisodeMetadata.from_custom_data(bag_metadata(episode)['custom_data'])
    assert metadata.partial and metadata.task == 'wave' and metadata.episode_index == 1
    assert is_closed_episode(episode)
    assert recovery.damaged.is_file() and recovery.damaged.name.endswith('.partial')
    [entry] = Session(tmp_path).read_index()
    assert entry['partial'] and entry['stop_reason'] == 'recovered'


def test_without_the_time_based_flush_nothing_would_have_reached_the_disk(tmp_path):
    # a period longer than the wait: the chunk is still open when the process dies
    episode = _killed_writer(tmp_path / 'episode_0001', period=30.0, hold=0.3)
    with pytest.raises(RecordingError, match='nothing to recover: no complete chunk'):
        recover_episode(episode)
    assert (episode / 'RECORDING').exists()          # left as it was


def test_only_partial_episodes_are_recovered(tmp_path):
    with pytest.raises(RecordingError, match='not a partial episode'):
        recover_episode(tmp_path)
    folder = tmp_path / 'episode_0002'
    folder.mkdir()
    (folder / 'RECORDING').write_text('')
    (folder / 'episode_0002.mcap').write_bytes(b'')
    with pytest.raises(RecordingError, match='nothing to recover'):
        recover_episode(folder)
    assert sorted(p.name for p in folder.iterdir()) == ['RECORDING', 'episode_0002.mcap']
