"""demo_recorder over DDS: publishers in their own processes, bags read back by two readers.

Every published message carries a sequence number (test.support.seq_publisher); a bag is right
when each topic holds exactly the published numbers, in order, once, for rosbags' reader and
for the independent mcap (or sqlite3 + rclpy) reader alike.
"""
from __future__ import annotations

import json
import signal
from datetime import datetime
from pathlib import Path

import pytest

from test.support.bags import data_files, metadata, read_mcap, read_rosbags, read_sqlite
from test.support.graph import wait_until
from test.support.recorder import (
    JOINT_STATE,
    JOINT_TRAJECTORY,
    Recorder,
    publish,
    recorder_params,
    start_recorder,
    wait_report,
)

Expected = dict[str, list[int]]            # topic -> sequence numbers the bag must hold


def record(rec: Recorder, bursts: dict[str, tuple[int, int]],
           before: Expected | None = None) -> Expected:
    """Publish ``count`` messages from ``first_seq`` per topic into the episode in progress.

    ``bursts`` maps topic -> (count, first_seq); /traj carries JointTrajectory, the others
    JointState; ``before`` is what the episode already holds. Returns when the recorder has
    received them all, with what the episode must now hold.
    """
    publishers = {}
    for topic, (count, first) in bursts.items():
        kind = 'joint_trajectory' if topic == '/traj' else 'joint_state'
        publishers[topic] = publish(rec.graph, topic, count, '--type', kind, first_seq=first,
                                    name=f'pub{topic.replace("/", "_")}')
    for topic, process in publishers.items():
        report = wait_report(process)
        assert report['published'] == bursts[topic][0] and report['acked'], report
    expected = {topic: list(seqs) for topic, seqs in (before or {}).items()}
    for topic, (count, first) in bursts.items():
        expected.setdefault(topic, []).extend(range(first, first + count))
    rec.wait_received({topic: len(expected[topic]) for topic in bursts})
    return expected


def start_ok(rec: Recorder, index: int) -> Path:
    answer = rec.start()
    assert answer.success, answer.message
    path = rec.episode_dir(index)
    assert path.name in answer.message, answer.message
    return path


def check_bag(bag: Path, expected: Expected, *, storage: str = 'mcap',
              compression: str = '') -> dict:
    """The closed bag holds exactly ``expected`` for every reader; returns its custom_data."""
    assert (bag / 'metadata.yaml').exists(), sorted(p.name for p in bag.iterdir())
    assert not (bag / 'RECORDING').exists(), 'RECORDING marker left on a closed episode'
    nonempty = {topic: seqs for topic, seqs in expected.items() if seqs}
    assert read_rosbags(bag) == nonempty
    if storage == 'mcap':
        files = data_files(bag, '.mcap')
        assert files and files[0].name == f'{bag.name}.mcap', files
        seqs, compressions = {}, set()
        for path in files:
            file_seqs, file_compressions = read_mcap(path)
            compressions |= file_compressions
            for topic, numbers in file_seqs.items():
                seqs.setdefault(topic, []).extend(numbers)
        assert seqs == nonempty
        assert compressions == {compression}, compressions
    else:
        files = data_files(bag, '.db3')
        assert files and files[0].name == f'{bag.name}.db3', files
        seqs = {}
        for path in files:
            for topic, numbers in read_sqlite(path).items():
                seqs.setdefault(topic, []).extend(numbers)
        assert seqs == nonempty
    info = metadata(bag)
    assert info['version'] == 9 and info['storage_identifier'] == storage
    assert info['message_count'] == sum(len(s) for s in expected.values())
    counted = {t['topic_metadata']['name']: t['message_count']
               for t in info['topics_with_message_count']}
    assert {t: n for t, n in counted.items() if n} == {t: len(s) for t, s in nonempty.items()}
    custom = info['custom_data']
    assert all(isinstance(v, str) for v in custom.values()), custom
    counts = json.loads(custom['message_counts'])
    assert {t: n for t, n in counts.items() if n} == {t: len(s) for t, s in nonempty.items()}
    assert all(n == 0 for n in json.loads(custom['lost_counts']).values()), custom
    assert custom['recorder'].startswith('il_policy_node demo_recorder'), custom
    start = datetime.fromisoformat(custom['start_wall_time'])
    stop = datetime.fromisoformat(custom['stop_wall_time'])
    assert start.utcoffset() is not None and start <= stop, custom
    return custom


def check_entry(entry: dict, index: int, expected: Expected, *, success: bool, reason: str,
                storage: str = 'mcap', task: str = '', operator: str = '') -> None:
    """One line of episodes.jsonl."""
    assert entry['index'] == index and entry['path'] == f'episode_{index:04d}', entry
    assert entry['success'] is success and entry['stop_reason'] == reason, entry
    assert entry['task'] == task and entry['operator'] == operator, entry
    assert entry['storage'] == storage, entry
    assert {t: n for t, n in entry['message_counts'].items() if n} == \
        {t: len(s) for t, s in expected.items() if s}, entry
    assert all(n == 0 for n in entry['lost_counts'].values()), entry
    assert entry['duration_s'] >= 0.0 and entry['start_wall_time'] <= entry['stop_wall_time']


@pytest.mark.parametrize('executor', ['single', 'events'])
def test_episodes_back_to_back_hold_exactly_their_own_messages(recorder_graph, tmp_path,
                                                               executor):
    rec = start_recorder(recorder_graph, recorder_params(
        tmp_path / 'demos', task='stack cups', operator='ada', executor=executor))
    first = start_ok(rec, 1)
    assert (first / 'RECORDING').exists()
    again = rec.start()
    assert not again.success and again.message, 'a second start while recording'
    expected_1 = record(rec, {'/js': (300, 0), '/traj': (100, 0)})
    assert rec.stop(True).success
    second = start_ok(rec, 2)
    expected_2 = record(rec, {'/js': (200, 1000), '/traj': (60, 1000)})
    assert rec.stop(False).success
    assert not rec.stop(True).success, 'stop while idle succeeded'

    custom_1 = check_bag(first, expected_1)
    custom_2 = check_bag(second, expected_2)
    for custom, index, success in ((custom_1, 1, 'true'), (custom_2, 2, 'false')):
        assert custom['task'] == 'stack cups' and custom['operator'] == 'ada', custom
        assert custom['success'] == success and custom['episode_index'] == str(index), custom
        assert custom['stop_reason'] == 'service', custom
    assert custom_1['stop_wall_time'] <= custom_2['start_wall_time']
    entries = rec.episodes()
    assert len(entries) == 2, entries
    check_entry(entries[0], 1, expected_1, success=True, reason='service',
                task='stack cups', operator='ada')
    check_entry(entries[1], 2, expected_2, success=False, reason='service',
                task='stack cups', operator='ada')


def test_a_discarded_episode_leaves_nothing_behind(recorder_graph, tmp_path):
    rec = start_recorder(recorder_graph, recorder_params(tmp_path / 'demos'))
    discarded = start_ok(rec, 1)
    record(rec, {'/js': (150, 0)})
    answer = rec.discard()
    assert answer.success, answer.message
    assert wait_until(lambda: not discarded.exists(), 10.0), sorted(discarded.iterdir())
    assert not rec.stop(True).success, 'stop after discard succeeded'
    assert not rec.discard().success, 'discard while idle succeeded'
    assert rec.episodes() == []
    # The next episode (its index may reuse the discarded one) holds only its own messages.
    answer = rec.start()
    assert answer.success, answer.message
    kept = [p for p in rec.session_dir.iterdir() if p.name.startswith('episode_')]
    assert len(kept) == 1 and kept[0].name in answer.message, (kept, answer.message)
    expected = record(rec, {'/js': (100, 500)})
    assert rec.stop(True).success
    check_bag(kept[0], expected)
    entries = rec.episodes()
    assert len(entries) == 1 and entries[0]['path'] == kept[0].name, entries
    check_entry(entries[0], int(kept[0].name[-4:]), expected, success=True, reason='service')


@pytest.mark.parametrize('executor', ['single', 'events'])
def test_max_episode_duration_stops_the_episode_by_itself(recorder_graph, tmp_path, executor):
    rec = start_recorder(recorder_graph, recorder_params(
        tmp_path / 'demos', topics=['/js'], topic_types=[JOINT_STATE],
        max_episode_duration_s=1.5, executor=executor))
    source = recorder_graph.seq_publisher('/js', '--duration', '30', '--rate-hz', '200',
                                          name='pub_js')
    assert wait_until(lambda: '"matched"' in source.log(), 30.0), source.log()
    bag = start_ok(rec, 1)
    assert wait_until(lambda: rec.episodes(), 20.0), 'the episode did not stop by itself'
    assert not rec.stop(True).success, 'stop after the automatic stop succeeded'
    [entry] = rec.episodes()
    assert entry['stop_reason'] == 'max_duration' and entry['success'] is False, entry
    seqs = read_rosbags(bag)['/js']
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), 'gaps or duplicates'
    assert entry['message_counts'] == {'/js': len(seqs)}, entry
    custom = check_bag(bag, {'/js': seqs})
    assert custom['stop_reason'] == 'max_duration' and custom['success'] == 'false', custom


def test_start_is_refused_while_a_required_topic_is_missing_or_silent(recorder_graph, tmp_path):
    rec = start_recorder(recorder_graph, recorder_params(
        tmp_path / 'demos', topics=['/js', '/heartbeat'],
        topic_types=[JOINT_STATE, JOINT_STATE], required_topics=['/heartbeat'],
        required_timeout_s=1.0))
    answer = rec.start()
    assert not answer.success and '/heartbeat' in answer.message, answer.message
    silent = recorder_graph.seq_publisher('/heartbeat', '--count', '0', '--linger', '60',
                                          name='silent')
    assert wait_until(lambda: '"matched"' in silent.log(), 30.0), silent.log()
    assert rec.rx.wait_for_diagnostic('publishers /heartbeat', lambda n: n == '1', 10.0), \
        rec.rx.diagnostics[-1:]
    answer = rec.start()
    assert not answer.success and '/heartbeat' in answer.message, answer.message
    assert not any(rec.session_dir.glob('episode_*')) and rec.episodes() == []
    # A heartbeat that speaks: starting is accepted (once a message arrived).
    recorder_graph.seq_publisher('/heartbeat', '--duration', '60', '--rate-hz', '50',
                                 '--first-seq', '10000', name='heartbeat')
    answers = []

    def started() -> bool:
        answers.append(rec.start())
        return answers[-1].success
    assert wait_until(started, 20.0, 0.3), [a.message for a in answers[-3:]]
    assert all('/heartbeat' in a.message for a in answers[:-1]), [a.message for a in answers]
    assert rec.stop(True).success
    assert [p.name for p in rec.session_dir.glob('episode_*')] == ['episode_0001']


@pytest.mark.parametrize('signal_name, executor', [('SIGTERM', 'single'), ('SIGINT', 'single'),
                                                   ('SIGINT', 'events')])
def test_a_signal_mid_episode_closes_the_bag_with_everything_received(recorder_graph, tmp_path,
                                                                      signal_name, executor):
    rec = start_recorder(recorder_graph, recorder_params(tmp_path / 'demos', task='pour',
                                                         executor=executor))
    bag = start_ok(rec, 1)
    expected = record(rec, {'/js': (400, 0), '/traj': (100, 0)})
    rec.process.popen.send_signal(getattr(signal, signal_name))
    assert rec.process.popen.wait(timeout=30.0) == 0, rec.process.log()
    custom = check_bag(bag, expected)
    assert custom['stop_reason'] == 'shutdown' and custom['task'] == 'pour', custom
    [entry] = rec.episodes()
    check_entry(entry, 1, expected, success=entry['success'], reason='shutdown', task='pour')


def test_sigkill_mid_episode_keeps_earlier_episodes_and_flags_the_partial_one(
        recorder_graph, tmp_path):
    params = recorder_params(tmp_path / 'demos')
    rec = start_recorder(recorder_graph, params)
    whole = start_ok(rec, 1)
    expected = record(rec, {'/js': (200, 0), '/traj': (50, 0)})
    assert rec.stop(True).success
    partial = start_ok(rec, 2)
    record(rec, {'/js': (200, 1000)})
    rec.process.popen.kill()
    rec.process.popen.wait(timeout=10.0)
    check_bag(whole, expected)
    assert partial.is_dir(), 'the partial episode folder vanished'
    assert (partial / 'RECORDING').exists() or not (partial / 'metadata.yaml').exists(), \
        sorted(p.name for p in partial.iterdir())
    [entry] = rec.episodes()
    check_entry(entry, 1, expected, success=True, reason='service')
    # A new recorder resumes the session after the highest existing episode (the partial one).
    rec = start_recorder(recorder_graph, params, name='recorder_resumed')
    third = start_ok(rec, 3)
    expected_3 = record(rec, {'/traj': (80, 3000)})
    assert rec.stop(True).success
    check_bag(third, expected_3)
    assert [e['index'] for e in rec.episodes()] == [1, 3]
    check_bag(whole, expected)                          # untouched by the new recorder


@pytest.mark.parametrize('storage,compression', [('sqlite3', 'none'), ('mcap', 'zstd')])
def test_storage_and_compression_options_read_back(recorder_graph, tmp_path, storage,
                                                   compression):
    rec = start_recorder(recorder_graph, recorder_params(
        tmp_path / 'demos', storage=storage, compression=compression))
    bag = start_ok(rec, 1)
    expected = record(rec, {'/js': (250, 0), '/traj': (80, 0)})
    assert rec.stop(True).success
    check_bag(bag, expected, storage=storage,
              compression='zstd' if compression == 'zstd' else '')
    [entry] = rec.episodes()
    check_entry(entry, 1, expected, success=True, reason='service', storage=storage)


def test_an_unwritable_output_dir_is_refused_at_start_without_a_crash(recorder_graph,
                                                                       tmp_path):
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('a regular file: nothing can be created below it, even by root\n')
    rec = start_recorder(recorder_graph, recorder_params(blocker / 'demos'))
    for _ in range(2):
        answer = rec.start()
        assert not answer.success, answer.message
        assert str(blocker) in answer.message or 'writ' in answer.message.lower(), \
            answer.message
        assert rec.process.popen.poll() is None, rec.process.log()
    assert blocker.is_file() and rec.rx.diagnostic('state') in ('', 'idle')


def test_topic_types_discovered_from_the_graph_with_the_qos_of_their_publishers(
        recorder_graph, tmp_path):
    rec = start_recorder(recorder_graph, recorder_params(
        tmp_path / 'demos', topics=['/traj', 'discovered', '/best_effort', '/latched'],
        topic_types=[JOINT_TRAJECTORY, '', '', '']))
    # Latched (like robot_description): published once before the episode, kept for it.
    latched = publish(recorder_graph, '/latched', 1, '--transient-local', '--linger', '60',
                      first_seq=7, name='pub_latched')
    assert wait_report(latched)['acked']
    bag = start_ok(rec, 1)
    discovered = publish(recorder_graph, '/discovered', 200, '--type', 'joint_trajectory',
                         name='pub_discovered')
    best_effort = publish(recorder_graph, '/best_effort', 200, '--best-effort', rate_hz=200.0,
                          name='pub_best_effort')
    assert wait_report(discovered)['published'] == 200
    assert wait_report(best_effort)['published'] == 200
    rec.wait_received({'/discovered': 200, '/latched': 1})
    wait_until(lambda: rec.count('/best_effort') == 200, 5.0)  # best effort: may lose some
    assert rec.stop(True).success
    seqs = read_rosbags(bag)
    assert seqs['/discovered'] == list(range(200)) and seqs['/latched'] == [7], seqs.keys()
    lossy = seqs['/best_effort']
    assert lossy and lossy == sorted(set(lossy)) and set(lossy) <= set(range(200)), lossy
    assert read_mcap(data_files(bag, '.mcap')[0])[0] == seqs
    topics = {t['topic_metadata']['name']: t['topic_metadata']
              for t in metadata(bag)['topics_with_message_count']}
    assert topics['/discovered']['type'] == JOINT_TRAJECTORY
    assert topics['/best_effort']['type'] == topics['/latched']['type'] == JOINT_STATE
    offered = {name: topic['offered_qos_profiles'] for name, topic in topics.items()}
    assert [q['reliability'] for q in offered['/best_effort']] == ['best_effort'], offered
    assert [q['reliability'] for q in offered['/discovered']] == ['reliable'], offered
    assert [q['durability'] for q in offered['/latched']] == ['transient_local'], offered
    [entry] = rec.episodes()
    assert entry['message_counts']['/discovered'] == 200, entry
    assert entry['message_counts']['/best_effort'] == len(lossy), entry


@pytest.mark.parametrize('executor', ['single', 'events'])
def test_a_vanished_publisher_warns_and_a_changed_type_is_an_error_naming_the_topic(
        recorder_graph, tmp_path, executor):
    rec = start_recorder(recorder_graph, recorder_params(
        tmp_path / 'demos', topics=['/js', '/morph'], topic_types=[JOINT_STATE, ''],
        executor=executor))
    bag = start_ok(rec, 1)
    expected = record(rec, {'/js': (100, 0), '/morph': (50, 0)})   # then the publishers exit
    rx = rec.rx
    assert wait_until(lambda: rx.diagnostic('_level') == '1' and all(
        topic in rx.diagnostic('_message') for topic in expected),
        10.0), rx.diagnostics[-1:]
    expected = record(rec, {'/js': (100, 100)}, expected)           # recording goes on
    # /morph now comes as JointTrajectory: an error that names it; the rest is unaffected.
    recorder_graph.seq_publisher('/morph', '--type', 'joint_trajectory', '--subscribers', '0',
                                 '--count', '20', '--linger', '60', name='pub_morph')
    assert rx.wait_for_diagnostic('_level', lambda level: level == '2', 10.0), \
        rx.diagnostics[-1:]
    assert '/morph' in rx.diagnostic('_message'), rx.diagnostic('_message')
    expected = record(rec, {'/js': (50, 200)}, expected)
    assert rec.stop(True).success
    check_bag(bag, expected)
