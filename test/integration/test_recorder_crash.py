"""A recorder killed mid-episode loses at most about its flush period; the rest is salvaged.

The real demo_recorder records a numbered 500 Hz JointState stream; it is SIGKILLed once it
has written 3 s of it; ``il-policy bag recover`` then makes the partial episode a readable bag
marked partial. Checked with rosbags and with the mcap package.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader

from il_policy_node.recording.metadata import EpisodeMetadata
from test.support.bags import data_files, metadata, read_mcap, read_rosbags
from test.support.graph import wait_until
from test.support.recorder import JOINT_STATE, recorder_params, start_recorder

ROOT = Path(__file__).resolve().parents[2]
RATE_HZ = 500.0
KILL_AFTER = 1500                  # messages written: 3 s at 500 Hz


def il_policy(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    return subprocess.run([sys.executable, '-m', 'il_policy_node.cli', *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize('joints', [6, 30])
def test_a_sigkill_loses_at_most_the_last_second_and_the_rest_is_recovered(
        recorder_graph, tmp_path, joints):
    rec = start_recorder(recorder_graph, recorder_params(
        tmp_path / 'demos', topics=['/js'], topic_types=[JOINT_STATE], task='wave',
        operator='ana'))
    started = rec.start()
    assert started.success, started.message
    episode = rec.episode_dir(1)
    publisher = recorder_graph.seq_publisher(
        '/js', '--duration', '30', '--rate-hz', str(RATE_HZ), '--joints', str(joints),
        name=f'publisher_{joints}')
    assert wait_until(lambda: rec.count('/js') >= KILL_AFTER, 30.0, 0.01), \
        (rec.count('/js'), rec.process.log(), publisher.log())
    written = rec.count('/js')
    killed_ns = time.time_ns()
    rec.process.popen.kill()
    rec.process.popen.wait(timeout=10.0)
    assert (episode / 'RECORDING').exists()

    result = il_policy('bag', 'recover', str(rec.session_dir))
    assert result.returncode == 0, result.stderr
    assert f'recovered {episode}' in result.stdout

    seqs = read_rosbags(episode)['/js']
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), 'a hole in the salvaged messages'
    recovered_s = (len(seqs) - 1) / RATE_HZ
    assert recovered_s >= 2.0, (len(seqs), written)
    with Reader(episode) as reader:
        last_ns = max(timestamp for _, timestamp, _ in reader.messages())
    lost_s = (killed_ns - last_ns) / 1e9        # what arrived in this last stretch is lost
    assert 0.0 < lost_s <= 1.0, (written, len(seqs), lost_s)
    mcap_seqs, _ = read_mcap(data_files(episode, '.mcap')[0])      # an independent reader
    assert mcap_seqs['/js'] == seqs
    info = EpisodeMetadata.from_custom_data(metadata(episode)['custom_data'])
    assert info.partial and info.stop_reason == 'recovered' and info.success is None
    assert (info.task, info.operator, info.episode_index) == ('wave', 'ana', 1)
    assert info.message_counts == {'/js': len(seqs)}
    assert (episode / f'{episode.name}.mcap.partial').is_file()
    [entry] = rec.episodes()
    assert entry['partial'] and entry['index'] == 1 and entry['message_counts'] == {
        '/js': len(seqs)}
    print(json.dumps({'joints': joints, 'written': written, 'recovered': len(seqs),
                      'lost_s': lost_s}))
