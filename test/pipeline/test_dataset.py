"""Dataset builder on bags written here with rosbags: known signals in, the analytic dataset."""
import json
import re
import shutil

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.typesys import Stores, get_typestore

from il_policy_node.errors import ConfigError, DatasetError
from il_policy_node.formats import RECORDING_MARKER as MARKER
from il_policy_node.pipeline.bag_decoding import (
    JointStateDecoder,
    deserialize_lenient,
    parse_joint_state_layout,
)
from il_policy_node.pipeline.dataset import align, format as dataset_format
from il_policy_node.pipeline.dataset.build import build_dataset
from il_policy_node.pipeline.dataset.config import DatasetConfig
from il_policy_node.pipeline.dataset.format import load_dataset
from il_policy_node.pipeline.dataset.info import dataset_info

STORE = get_typestore(Stores.ROS2_JAZZY)
JOINT_STATE = 'sensor_msgs/msg/JointState'
TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
JOINTS = ['shoulder', 'elbow', 'wrist']
T0_NS = 1_700_000_000_000_000_000
RATE = 100.0          # recorded JointState rate (Hz)
LATENCY_S = 0.003     # receive time = header stamp + latency (+ a varying part)


def q(t):
    """Joint positions: linear ramps (exact under linear interpolation), [len(t), 3]."""
    t = np.asarray(t, float)[:, None]
    return np.array([0.1, -0.2, 0.3]) + np.array([0.5, -1.0, 2.0]) * t


def qd(t):
    return np.tile([0.5, -1.0, 2.0], (len(np.asarray(t)), 1)).astype(float)


def cmd(t):
    t = np.asarray(t, float)[:, None]
    return np.array([1.0, 2.0, 3.0]) - np.array([0.3, 0.2, 0.1]) * t


def header(t_ns):
    return STORE.types['std_msgs/msg/Header'](stamp=STORE.types['builtin_interfaces/msg/Time'](
        sec=int(t_ns // 1_000_000_000), nanosec=int(t_ns % 1_000_000_000)), frame_id='base')


def joint_state(t_ns, names, position, velocity):
    msg = STORE.types[JOINT_STATE](header=header(t_ns), name=list(names),
                                   position=np.asarray(position, float),
                                   velocity=np.asarray(velocity, float), effort=np.zeros(0))
    return bytes(STORE.serialize_cdr(msg, JOINT_STATE))


def trajectory(t_ns, names, positions):
    point = STORE.types['trajectory_msgs/msg/JointTrajectoryPoint'](
        positions=np.asarray(positions, float), velocities=np.zeros(0),
        accelerations=np.zeros(0), effort=np.zeros(0),
        time_from_start=STORE.types['builtin_interfaces/msg/Duration'](sec=0, nanosec=0))
    msg = STORE.types[TRAJECTORY](header=header(t_ns), joint_names=list(names), points=[point])
    return bytes(STORE.serialize_cdr(msg, TRAJECTORY))


def stamps(duration_s=2.0, rate=RATE, skip=None):
    t = np.arange(int(round(duration_s * rate)) + 1) / rate
    if skip:
        t = t[(t < skip[0]) | (t > skip[1])]
    return t


def receive(t):
    return t + LATENCY_S + 0.002 * np.sin(7.0 * t)


def write_bag(path, *, storage='mcap', compression=None, custom=None, t=None,
              command=None, messages=None, order=JOINTS, velocity=True, command_skip=None):
    """A bag like `ros2 bag record` writes: /joint_states (+ a command topic)."""
    t = stamps() if t is None else t
    writer = Writer(path, version=9, storage_plugin={'mcap': StoragePlugin.MCAP,
                                                     'sqlite3': StoragePlugin.SQLITE3}[storage])
    if compression:
        writer.set_compression(compression, CompressionFormat.ZSTD)
    for key, value in (custom or {}).items():
        writer.set_custom_data(key, value)
    writer.open()
    items = []
    if messages is None:
        js = writer.add_connection('/joint_states', JOINT_STATE, typestore=STORE)
        idx = [JOINTS.index(n) for n in order]
        for ti, pos, vel, rt in zip(t, q(t), qd(t), receive(t)):
            items.append((rt, js, joint_state(T0_NS + round(ti * 1e9), order, pos[idx],
                                              vel[idx] if velocity else [])))
    else:
        conns = {}
        for topic, msgtype, rt, data in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
            items.append((rt, conns[topic], data))
    if command:
        kind, names = command
        conn = writer.add_connection('/command', kind, typestore=STORE)
        tc = stamps(rate=50.0, skip=command_skip)
        idx = [JOINTS.index(n) for n in names]
        for ti, pos in zip(tc, cmd(tc)):
            stamp = T0_NS + round(ti * 1e9)
            data = trajectory(stamp, names, pos[idx]) if kind == TRAJECTORY else \
                joint_state(stamp, names, pos[idx], np.zeros(len(names)))
            items.append((ti + LATENCY_S, conn, data))
    items.sort(key=lambda item: item[0])
    for rt, conn, data in items:
        writer.write(conn, T0_NS + round(rt * 1e9), data)
    writer.close()
    return path


def config(**overrides):
    base = {'control_rate_hz': 30.0, 'min_episode_s': 0.2, 'split': {'val_fraction': 0.0}}
    for key, value in overrides.items():
        if isinstance(value, dict):
            base.setdefault(key, {}).update(value)
        else:
            base[key] = value
    return DatasetConfig.from_dict(base)


def build(tmp_path, bags, cfg=None, **kwargs):
    out = tmp_path / 'dataset'
    report = build_dataset([str(b) for b in bags], config=cfg or config(), output_dir=out,
                           progress=False, **kwargs)
    data = load_dataset(out)
    return report, data.manifest, data.arrays


def grid(rows):
    return np.arange(rows) / 30.0


# -- formats and alignment ------------------------------------------------------------------
@pytest.mark.parametrize('storage,compression', [
    ('mcap', None), ('mcap', CompressionMode.STORAGE), ('mcap', CompressionMode.FILE),
    ('sqlite3', None), ('sqlite3', CompressionMode.MESSAGE), ('sqlite3', CompressionMode.FILE)])
def test_future_state_dataset_equals_the_analytic_signal(tmp_path, storage, compression):
    bag = write_bag(tmp_path / 'bag', storage=storage, compression=compression)
    _, manifest, arrays = build(tmp_path, [bag], config(action={'future_steps': 2}))
    rows = 61 - 2                                     # 2 s at 30 Hz, the last 2 have no future
    t = grid(rows)
    np.testing.assert_allclose(arrays['time'], t)
    np.testing.assert_allclose(arrays['observations'], np.hstack([q(t), qd(t)]), atol=1e-6)
    np.testing.assert_allclose(arrays['actions'], q(t + 2 / 30.0), atol=1e-6)
    assert arrays['observations'].dtype == np.float32 and arrays['episode'].dtype == np.int32
    assert manifest['observation'] == {'topic': '/joint_states', 'joints': JOINTS,
                                       'fields': ['position', 'velocity'], 'extra': []}
    assert manifest['action'] == {'joints': JOINTS, 'source': 'future_state', 'topic': None,
                                  'future_steps': 2}
    (episode,) = manifest['episodes']
    assert episode['start'] == 0 and episode['length'] == rows and episode['segment'] == 0
    assert episode['split'] == 'train' and len(episode['bag_fingerprint']) == 16
    assert len(manifest['fingerprint']) == 16
    np.testing.assert_allclose(manifest['stats']['observation']['mean'],
                               arrays['observations'].mean(0), rtol=1e-5, atol=1e-6)


def test_split_bag_reads_as_one_episode(tmp_path):
    t = stamps()
    first = write_bag(tmp_path / 'a', t=t[t < 1.0])
    second = write_bag(tmp_path / 'b', t=t[t >= 1.0])
    meta = yaml.safe_load((first / 'metadata.yaml').read_text())
    info2 = yaml.safe_load((second / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    info = meta['rosbag2_bagfile_information']
    shutil.move(second / 'b.mcap', first / 'a_1.mcap')
    info2['files'][0]['path'] = 'a_1.mcap'
    info['relative_file_paths'].append('a_1.mcap')
    info['files'].extend(info2['files'])
    info['message_count'] += info2['message_count']
    info['topics_with_message_count'][0]['message_count'] += info2['message_count']
    info['duration']['nanoseconds'] += info2['duration']['nanoseconds'] + 10_000_000
    (first / 'metadata.yaml').write_text(yaml.safe_dump(meta))
    _, manifest, arrays = build(tmp_path, [first])
    t = grid(61 - 1)
    np.testing.assert_allclose(arrays['observations'][:, :3], q(t), atol=1e-6)
    np.testing.assert_allclose(arrays['actions'], q(t + 1 / 30.0), atol=1e-6)


def test_receive_time_uses_the_bag_timestamps(tmp_path):
    bag = write_bag(tmp_path / 'bag')
    _, _, arrays = build(tmp_path, [bag], config(timestamps='receive', observation={
        'fields': ['position']}))
    t = stamps()
    recv = receive(t) - receive(t)[0]
    rows = int(np.floor(recv[-1] * 30 + 1e-9)) + 1 - 1
    expected = np.stack([np.interp(grid(rows), recv, col) for col in q(t).T], axis=1)
    assert arrays['observations'].shape == (rows, 3)
    np.testing.assert_allclose(arrays['observations'], expected, atol=1e-6)
    # header stamps give the ramp itself: the latency is not in the data
    header_arrays = build(tmp_path / 'h', [bag])[2]
    np.testing.assert_allclose(header_arrays['observations'][:, :3], q(grid(60)), atol=1e-6)


def test_sinusoid_interpolation_error_is_small(tmp_path):
    t = stamps()
    freq = 0.5
    msgs = [('/joint_states', JOINT_STATE, ti,
             joint_state(T0_NS + round(ti * 1e9), ['a'], [np.sin(2 * np.pi * freq * ti)],
                         [2 * np.pi * freq * np.cos(2 * np.pi * freq * ti)])) for ti in t]
    bag = write_bag(tmp_path / 'bag', messages=msgs)
    _, _, arrays = build(tmp_path, [bag])
    tg = grid(len(arrays['time']) + 1)
    np.testing.assert_allclose(arrays['observations'][:, 0], np.sin(2 * np.pi * freq * tg[:-1]),
                               atol=1e-3)
    np.testing.assert_allclose(arrays['actions'][:, 0], np.sin(2 * np.pi * freq * tg[1:]),
                               atol=1e-3)


@pytest.mark.parametrize('kind', [TRAJECTORY, JOINT_STATE])
def test_command_actions_by_joint_name(tmp_path, kind):
    bag = write_bag(tmp_path / 'bag', command=(kind, ['wrist', 'shoulder', 'elbow']),
                    order=['elbow', 'wrist', 'shoulder'])
    cfg = config(action={'source': 'command', 'topic': '/command',
                         'joints': ['elbow', 'shoulder']},
                 observation={'joints': ['wrist', 'shoulder']})
    _, manifest, arrays = build(tmp_path, [bag], cfg)
    t = grid(61)
    np.testing.assert_allclose(arrays['observations'],
                               np.hstack([q(t)[:, [2, 0]], qd(t)[:, [2, 0]]]), atol=1e-6)
    np.testing.assert_allclose(arrays['actions'], cmd(t)[:, [1, 0]], atol=1e-6)
    assert manifest['action']['source'] == 'command' and manifest['action']['topic'] == '/command'


def goal(t):
    """A goal pose of two joints that moves linearly (exact under linear interpolation)."""
    t = np.asarray(t, float)[:, None]
    return np.array([0.7, -0.4]) + np.array([0.25, 0.5]) * t


def test_extra_observation_topic_is_aligned_into_each_frame(tmp_path):
    t = stamps()
    tg = stamps(rate=20.0)
    messages = [('/joint_states', JOINT_STATE, ti + LATENCY_S,
                 joint_state(T0_NS + round(ti * 1e9), JOINTS, pos, vel))
                for ti, pos, vel in zip(t, q(t), qd(t))]
    messages += [('/goal', JOINT_STATE, ti + LATENCY_S,
                  joint_state(T0_NS + round(ti * 1e9), ['wrist', 'elbow'], g, []))
                 for ti, g in zip(tg, goal(tg))]
    messages.sort(key=lambda m: m[2])
    bag = write_bag(tmp_path / 'bag', messages=messages)
    cfg = config(observation={'fields': ['position'],
                              'extra': [{'topic': '/goal', 'joints': ['elbow', 'wrist']}]})
    _, manifest, arrays = build(tmp_path, [bag], cfg)
    rows = 61 - 1       # 2 s at 30 Hz, the last row has no future state
    t = grid(rows)
    np.testing.assert_allclose(arrays['time'], t)
    np.testing.assert_allclose(arrays['observations'],
                               np.hstack([q(t), goal(t)[:, [1, 0]]]), atol=1e-6)
    assert manifest['observation']['extra'] == [
        {'topic': '/goal', 'joints': ['elbow', 'wrist'], 'fields': ['position']}]
    spec = load_dataset(tmp_path / 'dataset').observation_spec(history=2)
    assert spec.frame_size == 5 and spec.extra[0].topic == '/goal' and spec.size == 10


def test_missing_extra_topic_names_the_topic(tmp_path):
    bag = write_bag(tmp_path / 'bag')
    cfg = config(observation={'extra': [{'topic': '/goal'}]})
    with pytest.raises(DatasetError, match='/goal'):
        build(tmp_path, [bag], cfg)


@pytest.mark.parametrize('policy', ['split', 'drop'])
def test_gap_splits_or_drops_the_episode(tmp_path, policy):
    bag = write_bag(tmp_path / 'bag', t=stamps(skip=(0.8, 1.05)))
    good = write_bag(tmp_path / 'good')
    report, manifest, arrays = build(tmp_path, [bag, good],
                                     config(gaps={'policy': policy}))
    if policy == 'drop':
        assert [e['bag'] for e in manifest['episodes']] == [str(good)]
        (skip,) = manifest['skipped']
        assert skip['bag'] == str(bag) and skip['reason'].startswith('dropped: 1 gap')
        assert '0.270 s at t=0.790 s' in skip['reason']
        return
    first, second, third = manifest['episodes']
    assert (first['segment'], second['segment'], first['bag']) == (0, 1, str(bag))
    assert third['segment'] == 0 and third['name'] == 'good'
    assert first['length'] == 23           # 0 .. 0.79 s: 24 rows on the 30 Hz grid, minus k = 1
    rows0 = slice(first['start'], first['start'] + first['length'])
    rows1 = slice(second['start'], second['start'] + second['length'])
    np.testing.assert_allclose(arrays['observations'][rows0, :3], q(grid(23)), atol=1e-6)
    np.testing.assert_allclose(arrays['observations'][rows1, :3], q(1.06 + grid(
        second['length'])), atol=1e-6)
    np.testing.assert_allclose(arrays['time'][rows1], grid(second['length']))
    assert set(arrays['episode'][rows1]) == {1}
    assert manifest['skipped'] == []


def test_a_stall_on_several_topics_is_one_gap(tmp_path):
    # The whole graph stalls: the state and the command topic both miss ~0.25 s, shifted.
    bag = write_bag(tmp_path / 'bag', t=stamps(skip=(0.8, 1.05)), command_skip=(0.75, 1.0),
                    command=(JOINT_STATE, JOINTS))
    report, manifest, _ = build(tmp_path, [bag], config(action={'source': 'command',
                                                                'topic': '/command'}))
    first, second = manifest['episodes']
    assert (first['segment'], second['segment']) == (0, 1)
    assert manifest['skipped'] == []
    assert align._union([(3.0, 4.0), (0.5, 1.0), (0.9, 1.2), (1.2, 1.5)]) == \
        [(0.5, 1.5), (3.0, 4.0)]


def test_a_gap_that_begins_before_the_common_start_cuts_nothing_before_it(tmp_path):
    # The command topic starts early, pauses 0.2 s, then streams (a latched first message):
    # the common span starts at the state's first sample, inside the command's gap.
    bag = write_bag(tmp_path / 'bag', t=stamps()[stamps() >= 0.1],
                    command=(JOINT_STATE, JOINTS), command_skip=(0.01, 0.2))
    report, manifest, _ = build(tmp_path, [bag], config(action={'source': 'command',
                                                                'topic': '/command'}))
    (episode,) = manifest['episodes']
    assert manifest['skipped'] == [] and episode['segment'] == 0
    assert episode['duration_s'] == pytest.approx(2.0 - 0.2, abs=0.05)


def test_a_gap_that_runs_past_the_common_end_leaves_no_piece_after_it(tmp_path):
    # The state stops at 1.9 s while the command is stalled (1.8-1.95 s): nothing after the
    # gap is common to both topics, so the episode is the one piece before it.
    bag = write_bag(tmp_path / 'bag', t=stamps()[stamps() <= 1.9],
                    command=(JOINT_STATE, JOINTS), command_skip=(1.8, 1.95))
    cfg = config(action={'source': 'command', 'topic': '/command'})
    result = align.load_episode(str(bag), cfg)
    assert result.error is None and len(result.segments) == 1
    assert not [n for n in result.notes if 'left out' in n], result.notes
    report, manifest, _ = build(tmp_path, [bag], cfg)
    (episode,) = manifest['episodes']
    assert episode['duration_s'] == pytest.approx(1.8, abs=0.05)


# -- bad bags -------------------------------------------------------------------------------
def _bad_bags(tmp_path):
    bags = {}
    truncated = write_bag(tmp_path / 'truncated')
    data = truncated / 'truncated.mcap'
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    bags['truncated'] = (truncated, 'unreadable bag')
    msgs = [('/other', JOINT_STATE, 0.01, joint_state(T0_NS, JOINTS, [0, 0, 0], [0, 0, 0]))]
    bags['missing'] = (write_bag(tmp_path / 'missing', messages=msgs),
                       'topic /joint_states is not in the bag')
    text = STORE.types['std_msgs/msg/String'](data='x')
    msgs = [('/joint_states', 'std_msgs/msg/String', 0.01,
             bytes(STORE.serialize_cdr(text, 'std_msgs/msg/String')))]
    bags['wrong_type'] = (write_bag(tmp_path / 'wrong_type', messages=msgs),
                          'has type std_msgs/msg/String, expected sensor_msgs/msg/JointState')

    def series(stamps_s, values=None, names=JOINTS):
        out = []
        for i, ts in enumerate(stamps_s):
            pos = [0.1 * i] * len(names) if values is None else values[i]
            out.append(('/joint_states', JOINT_STATE, 0.01 * i,
                        joint_state(T0_NS + round(ts * 1e9), names, pos, [0.0] * len(names))))
        return out
    ts = list(np.arange(100) / 100)
    unsorted = ts[:50] + [ts[51], ts[50]] + ts[52:]
    bags['unsorted'] = (write_bag(tmp_path / 'unsorted', messages=series(unsorted)),
                        'unsorted header timestamps at message 51')
    bags['duplicate'] = (write_bag(tmp_path / 'duplicate', messages=series(ts[:50] + ts[49:99])),
                         'duplicate header timestamps at message 50')
    values = [[0.0, 0.0, 0.0]] * 100
    values[30] = [0.0, float('nan'), 0.0]
    bags['nan'] = (write_bag(tmp_path / 'nan', messages=series(ts, values)),
                   'NaN or infinite position in 1 values (first: message 30, joint elbow)')
    bags['duplicate_names'] = (write_bag(tmp_path / 'dup_names', messages=series(
        ts, names=['a', 'b', 'a'])), "duplicate joint names ['a']")
    partial = write_bag(tmp_path / 'partial', custom={'success': 'true'})
    (partial / MARKER).write_text('bag not closed')
    bags['partial'] = (partial, 'partial episode: RECORDING marker present')
    return bags


def test_each_bad_bag_is_named_and_skipped(tmp_path, caplog):
    bags = _bad_bags(tmp_path)
    good = write_bag(tmp_path / 'good')
    failed = write_bag(tmp_path / 'failed', custom={'success': 'false', 'task': 'wave'})
    report, manifest, _ = build(tmp_path, [b for b, _ in bags.values()] + [good, failed])
    reasons = {s['bag']: s['reason'] for s in manifest['skipped']}
    for name, (bag, expected) in bags.items():
        assert expected in reasons[str(bag)], name
    assert reasons[str(failed)] == 'left out: success=false'
    assert [e['bag'] for e in manifest['episodes']] == [str(good)]
    assert {e['bag'] for e in report.errors} == {str(b) for b, _ in bags.values()}
    assert 'skipping bag' in caplog.text
    with pytest.raises(DatasetError, match='strict'):
        build_dataset([str(bags['nan'][0]), str(good)], config=config(),
                      output_dir=tmp_path / 'strict', progress=False, strict=True)
    assert not (tmp_path / 'strict').exists()


def test_failed_episodes_are_kept_on_request_and_nothing_usable_fails(tmp_path):
    failed = write_bag(tmp_path / 'failed', custom={'success': 'false', 'task': 'wave'})
    with pytest.raises(DatasetError, match='no usable episode'):
        build_dataset([str(failed)], config=config(), output_dir=tmp_path / 'x', progress=False)
    _, manifest, _ = build(tmp_path, [failed], config(include_failed=True))
    assert manifest['episodes'][0]['success'] is False
    assert manifest['episodes'][0]['task'] == 'wave'


# -- output ---------------------------------------------------------------------------------
def test_output_is_atomic(tmp_path, monkeypatch):
    bag = write_bag(tmp_path / 'bag')

    def boom(*args, **kwargs):
        raise OSError('disk full')
    monkeypatch.setattr(dataset_format.np, 'savez', boom)
    with pytest.raises(OSError, match='disk full'):
        build_dataset([str(bag)], config=config(), output_dir=tmp_path / 'out', progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']


def test_split_is_by_bag_deterministic_and_stats_use_train(tmp_path):
    folder = tmp_path / 'session'
    for i in range(6):
        write_bag(folder / f'episode_{i:04d}', t=stamps(0.5 + 0.1 * i))

    def splits(seed, workers=1, name='d'):
        out = tmp_path / name
        build_dataset([str(folder)], config=config(split={'seed': seed, 'val_fraction': 0.34}),
                      output_dir=out, progress=False, workers=workers, overwrite=True)
        data = load_dataset(out)
        return data.manifest, data.arrays
    manifest, arrays = splits(3)
    again, again_arrays = splits(3, workers=2, name='d2')
    assert [e['split'] for e in manifest['episodes']] == [e['split'] for e in again['episodes']]
    assert manifest['fingerprint'] == again['fingerprint']
    assert [e['split'] for e in manifest['episodes']].count('val') == 2
    others = {tuple(e['split'] for e in splits(s)[0]['episodes']) for s in range(8)}
    assert len(others) > 1
    train = np.isin(arrays['episode'], [i for i, e in enumerate(manifest['episodes'])
                                        if e['split'] == 'train'])
    np.testing.assert_allclose(manifest['stats']['action']['mean'],
                               arrays['actions'][train].mean(0), rtol=1e-5)
    std = manifest['stats']['observation']['std']
    assert std[3:] == [1.0, 1.0, 1.0]                # constant velocities: std 1, not 0


def test_existing_output_is_refused(tmp_path):
    bag = write_bag(tmp_path / 'bag')
    (tmp_path / 'out').mkdir()
    with pytest.raises(DatasetError, match='exists'):
        build_dataset([str(bag)], config=config(), output_dir=tmp_path / 'out', progress=False)


# -- config, decoding, info -----------------------------------------------------------------
@pytest.mark.parametrize('data,key', [
    ({'control_rate_hz': 0}, 'control_rate_hz'), ({'timestamps': 'wall'}, 'timestamps'),
    ({'action': {'source': 'command'}}, 'action.topic'),
    ({'action': {'future_steps': 0}}, 'action.future_steps'),
    ({'gaps': {'polcy': 'split'}}, 'gaps.polcy'), ({'observation': {'fields': ['effort']}},
                                                   'observation.fields'),
    ({'split': {'val_fraction': 1.0}}, 'split.val_fraction'),
    ({'observation': {'joints': ['a', 'a']}}, 'observation.joints'),
    ({'observation': {'extra': [{'joints': ['a']}]}}, 'observation.extra[0].topic'),
    ({'observation': {'extra': [{'topic': '/joint_states'}]}}, 'observation.extra[0].topic'),
    ({'observation': {'extra': [{'topic': '/g', 'fields': ['effort']}]}},
     'observation.extra[0].fields'),
    ({'observation': {'extra': [{'topic': '/g', 'rate': 1}]}}, 'observation.extra[0].rate')])
def test_config_errors_name_the_key(data, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        DatasetConfig.from_dict(data)


def test_shipped_config_loads():
    from pathlib import Path
    cfg = DatasetConfig.from_yaml(Path(__file__).resolve().parents[2] / 'config' / 'dataset.yaml')
    assert cfg == DatasetConfig()


def test_bulk_decoder_matches_the_generic_decoder():
    decoder = JointStateDecoder('/j')
    names = [f'j{i}' for i in range(30)]
    rng = np.random.default_rng(0)
    expected = []
    for i in range(300):
        order = names[::-1] if i % 50 == 7 else names      # another layout: the generic path
        pos, vel = rng.normal(size=30), rng.normal(size=30)
        expected.append((pos, vel))
        idx = [names.index(n) for n in order]
        data = joint_state(i * 1000, order, pos[idx], vel[idx])
        decoder.add(i, data)
    series = decoder.finish()
    assert decoder.fallbacks == 6
    np.testing.assert_array_equal(series.position, [p for p, _ in expected])
    np.testing.assert_array_equal(series.velocity, [v for _, v in expected])
    np.testing.assert_array_equal(series.stamp_ns, np.arange(300) * 1000)


def test_dataset_info_and_plots(tmp_path):
    bag = write_bag(tmp_path / 'bag', t=stamps(skip=(0.8, 1.05)))
    info = dataset_info([bag])
    (episode,) = info['episodes']
    assert episode['gaps'] == [[pytest.approx(0.79), pytest.approx(0.27)]]
    assert info['joint_ranges']['elbow'] == [pytest.approx(-2.2), pytest.approx(-0.2)]
    report, _, _ = build(tmp_path, [bag])
    info = dataset_info(report.output_dir, plot=True)
    assert len(info['episodes']) == 2 and info['rows'] == report.rows
    assert sorted(p.rsplit('/', 1)[1] for p in info['plots']) == sorted(
        f'{j}.png' for j in JOINTS)
    assert json.loads((report.output_dir / 'manifest.json').read_text())['format_version'] == 1


def test_garbage_in_alignment_padding_keeps_the_bulk_path():
    """Serializers leave padding bytes uninitialized: they must not force the slow path."""
    names = ['a', 'bb', 'ccc', 'dddd', 'eeeee']       # string lengths that need padding
    first = joint_state(0, names, np.arange(5.0), np.zeros(5))
    layout = parse_joint_state_layout(first)
    checked = np.zeros(len(first), bool)
    for start, end in layout.check:
        checked[start:end] = True
    names_end = layout.check[-3][0]                     # the position array's length field
    padding = [i for i in range(layout.check[1][0], names_end) if not checked[i]]
    assert padding, 'the names should need padding'
    decoder = JointStateDecoder('/j')
    for i in range(100):
        data = bytearray(joint_state(i, names, np.arange(5.0) + i, np.zeros(5)))
        for p in padding:
            data[p] = (0xAB + i) % 256
        decoder.add(i, bytes(data))
    series = decoder.finish()
    assert decoder.fallbacks == 0
    np.testing.assert_array_equal(series.position, np.arange(5.0) + np.arange(100)[:, None])


def test_joint_states_with_serializer_slack_build_like_exact_ones(tmp_path):
    """Serializer slack (see below), bulk-decoded and generic (another joint order)."""
    t = stamps()
    slack = b'plemente\x00\x00\x00\x00'
    reverse = JOINTS[::-1]
    messages = []
    for i, (ti, pos, vel) in enumerate(zip(t, q(t), qd(t))):
        order = reverse if i % 7 == 3 else JOINTS
        idx = [JOINTS.index(n) for n in order]
        data = joint_state(T0_NS + round(ti * 1e9), order, pos[idx], vel[idx])
        messages.append(('/joint_states', JOINT_STATE, ti + LATENCY_S, data + slack * (i % 2)))
    bag = write_bag(tmp_path / 'bag', messages=messages)
    _, _, arrays = build(tmp_path, [bag])
    rows = grid(61 - 1)
    np.testing.assert_allclose(arrays['observations'], np.hstack([q(rows), qd(rows)]),
                               atol=1e-6)


def test_trajectory_with_serializer_slack_is_decoded(tmp_path):
    """Rclpy's serialize_message may leave bytes after the message; ROS readers ignore them."""
    data = trajectory(T0_NS, ['elbow', 'wrist'], [0.25, -0.5]) + b'plemente\x00\x00\x00\x00'
    with pytest.raises(Exception, match='size mismatch'):
        STORE.deserialize_cdr(data, TRAJECTORY)
    msg = deserialize_lenient(data, TRAJECTORY)
    assert list(msg.joint_names) == ['elbow', 'wrist']
    assert msg.points[0].positions.tolist() == [0.25, -0.5]


# -- bags from other writers ------------------------------------------------------------------
def _foreign_mcap(path, *, schema_name='sensor_msgs/JointState', duration_s=1.0):
    """A bare .mcap as mcap_ros2's writer (Foxglove, the mcap CLI) writes it: no metadata.yaml."""
    from mcap_ros2.writer import Writer as McapRos2Writer
    msgdef, _ = STORE.generate_msgdef(JOINT_STATE, ros_version=2)
    t = stamps(duration_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as stream:
        writer = McapRos2Writer(stream)
        schema = writer.register_msgdef(schema_name, msgdef)
        for ti, pos, vel in zip(t, q(t), qd(t)):
            ns = T0_NS + round(ti * 1e9)
            writer.write_message('/joint_states', schema, {
                'header': {'stamp': {'sec': ns // 10**9, 'nanosec': ns % 10**9},
                           'frame_id': 'base'},
                'name': JOINTS, 'position': pos.tolist(), 'velocity': vel.tolist(),
                'effort': []}, log_time=ns)
        writer.finish()
    return path


def test_bare_mcap_files_with_short_type_names_build_like_bags(tmp_path):
    folder = tmp_path / 'foxglove'
    for name in ('a.mcap', 'b.mcap'):
        _foreign_mcap(folder / name, duration_s=1.0 if name == 'a.mcap' else 1.5)
    report, manifest, arrays = build(tmp_path, [folder])
    assert [e['name'] for e in manifest['episodes']] == ['a', 'b']     # one bag per file
    assert report.errors == []
    rows = manifest['episodes'][0]['length']
    t = np.arange(rows) / 30.0
    np.testing.assert_allclose(arrays['observations'][:rows, :3], q(t), atol=1e-6)


def test_a_metadata_yaml_of_the_wrong_shape_is_named(tmp_path):
    bag = write_bag(tmp_path / 'bag')
    (bag / 'metadata.yaml').write_text('- just\n- a list\n')
    result = align.load_episode(str(bag), config())
    assert result.error == (f'{bag / "metadata.yaml"}: not a rosbag2 metadata file (expected a '
                            'mapping with rosbag2_bagfile_information, got a list)')
    (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: [1, 2\n')
    assert f'{bag / "metadata.yaml"}: not valid YAML' in align.load_episode(str(bag),
                                                                              config()).error


def test_dataset_info_fails_naming_each_bag_when_nothing_is_usable(tmp_path):
    truncated = write_bag(tmp_path / 'truncated')
    data = truncated / 'truncated.mcap'
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    (tmp_path / 'random.mcap').write_bytes(np.random.default_rng(0).bytes(4096))
    garbage = write_bag(tmp_path / 'garbage')
    (garbage / 'metadata.yaml').write_text('rosbag2_bagfile_information: 7\n')
    partial = write_bag(tmp_path / 'partial')
    (partial / MARKER).write_text('')
    with pytest.raises(DatasetError) as raised:
        dataset_info([tmp_path])
    message = str(raised.value)
    assert message.startswith('no usable bag in 4: ')
    for bag, reason in ((truncated, 'unreadable bag'), (tmp_path / 'random.mcap', 'unreadable'),
                        (garbage / 'metadata.yaml', 'not a rosbag2 metadata file'),
                        (partial, 'partial episode: RECORDING marker present')):
        assert f'{bag}: {reason}' in message, (bag, message)
    # a partial episode: the same reason as dataset build gives
    assert f'{partial}: {align.load_episode(str(partial), config()).error}' in message
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match='no bags found'):
        dataset_info([tmp_path / 'empty'])
