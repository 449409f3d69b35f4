"""LeRobotDataset v3.0 out and in: the round trip, the files LeRobot itself wrote, bad folders."""
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from il_policy_node.errors import DatasetError
from il_policy_node.pipeline.dataset.build import fingerprint
from il_policy_node.pipeline.dataset.format import load_dataset
from il_policy_node.pipeline.evaluate import evaluate_open_loop
from il_policy_node.pipeline.export import export_run
from il_policy_node.pipeline.lerobot.layout import format_ranges, parse_ranges
from il_policy_node.pipeline.lerobot.reader import import_lerobot
from il_policy_node.pipeline.lerobot.writer import export_lerobot
from il_policy_node.pipeline.training.config import TrainConfig
from il_policy_node.pipeline.training.loop import train
from il_policy_node.runtime.artifact import load_policy
from test.cli.test_cli import il_policy
from test.support.datasets import RATE_HZ, sinusoids, write_arrays
from test.support.shared import LEROBOT, shared_path

GOAL = {'topic': '/demo/goal', 'joints': ['j1', 'j2'], 'fields': ['position', 'velocity']}
LENGTHS = (30, 25, 40, 35, 20)


@pytest.fixture
def ours(tmp_path):
    """Positions, velocities and a goal input (positions and velocities); val 1 and 3."""
    obs, actions = [], []
    for e, n in enumerate(LENGTHS):
        q, v = sinusoids(np.arange(n + 1) / RATE_HZ, e)
        goal = np.tile([0.3 * e, -0.1 * e], (n, 1))
        obs.append(np.hstack([q[:-1], v[:-1], goal, np.zeros_like(goal) + e]))
        actions.append(q[1:])
    return write_arrays(tmp_path / 'ours', np.concatenate(obs), np.concatenate(actions),
                        lengths=LENGTHS, val=(1, 3), extra=[GOAL])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file())


def test_round_trip_gives_identical_arrays_splits_and_names(tmp_path, ours):
    export_lerobot(ours, tmp_path / 'lerobot')
    import_lerobot(tmp_path / 'lerobot', tmp_path / 'back')
    before, after = load_dataset(ours), load_dataset(tmp_path / 'back')
    for key, values in before.arrays.items():
        assert after.arrays[key].dtype == values.dtype and np.array_equal(after.arrays[key],
                                                                          values), key
    assert [e['split'] for e in after.manifest['episodes']] == \
        [e['split'] for e in before.manifest['episodes']] == \
        ['train', 'val', 'train', 'val', 'train']
    assert after.action_joints == before.action_joints
    assert after.observation_spec() == before.observation_spec()
    assert after.fingerprint == fingerprint(before.arrays)
    for block in ('observation', 'action'):
        for name in ('mean', 'std'):
            np.testing.assert_allclose(after.manifest['stats'][block][name],
                                       before.manifest['stats'][block][name], rtol=1e-6)
    assert after.control_rate_hz == before.control_rate_hz


def test_the_features_and_splits_lerobot_sees(tmp_path, ours):
    export_lerobot(ours, tmp_path / 'lerobot', task='wave the arm')
    info = json.loads((tmp_path / 'lerobot/meta/info.json').read_text())
    features = info['features']
    assert list(features)[:5] == ['observation.state', 'observation.velocity',
                                  'observation.demo.goal', 'observation.demo.goal_velocity',
                                  'action']
    assert features['observation.state']['names'] == ['j1', 'j2']
    assert features['observation.demo.goal']['names'] == ['goal_j1', 'goal_j2']
    assert features['observation.demo.goal_velocity']['names'] == \
        ['goal_velocity_j1', 'goal_velocity_j2']
    assert info['splits'] == {'train': '0:1,2:3,4:5', 'val': '1:2,3:4'}
    assert info['total_frames'] == sum(LENGTHS) and info['total_episodes'] == len(LENGTHS)
    tasks = pq.read_table(tmp_path / 'lerobot/meta/tasks.parquet')
    assert tasks.column('__index_level_0__').to_pylist() == ['wave the arm']
    data = pq.read_table(tmp_path / 'lerobot/data/chunk-000/file-000.parquet')
    assert data.column('frame_index').to_pylist()[:3] == [0, 1, 2]
    assert data.column('index').to_pylist() == list(range(sum(LENGTHS)))
    np.testing.assert_allclose(data.column('timestamp').to_numpy()[LENGTHS[0] + 5], 5 / RATE_HZ)


def test_split_ranges_round_trip():
    for indices in ([0, 1, 2], [1, 3, 4, 5, 9], [7]):
        assert parse_ranges(format_ranges(indices)) == indices
    assert format_ranges([0, 1, 2, 3]) == '0:4'


def test_the_folder_lerobot_wrote_imports_with_its_true_values(tmp_path):
    folder = shared_path(LEROBOT / 'arm6_waves')
    truth = json.loads((LEROBOT / 'arm6_waves.truth.json').read_text())
    report = import_lerobot(folder, tmp_path / 'arm6')
    data = load_dataset(tmp_path / 'arm6')
    assert data.action_joints == truth['joints']
    spec = data.observation_spec()
    assert spec.joints == tuple(truth['joints']) and [f.value for f in spec.fields] == \
        ['position']
    assert [(e.topic, e.joints) for e in spec.extra] == [('/goal', tuple(truth['joints']))]
    assert data.control_rate_hz == truth['fps']
    assert [e['task'] for e in data.manifest['episodes']] == \
        [e['task'] for e in truth['episodes']]
    assert any('no validation split' in n for n in report.notes)
    row = 0
    for episode, e in zip(truth['episodes'], data.manifest['episodes']):
        n = episode['frames']
        assert (e['start'], e['length']) == (row, n)
        t = np.arange(n + 1) / truth['fps']
        q = np.array(episode['amp']) * np.sin(2 * np.pi * np.array(episode['freq']) * t[:, None]
                                              + np.array(episode['phase']))
        np.testing.assert_allclose(data.observations[row:row + n, :6], q[:-1], atol=1e-6)
        np.testing.assert_allclose(data.observations[row:row + n, 6:],
                                   np.tile(episode['goal'], (n, 1)), atol=1e-7)
        np.testing.assert_allclose(data.actions[row:row + n], q[1:], atol=1e-6)
        np.testing.assert_array_equal(data.time[row:row + n], t[:-1])
        row += n
    assert row == len(data.observations)


def _schema(path: Path) -> tuple[pa.Schema, list[bytes]]:
    schema = pq.read_schema(path)
    return schema.remove_metadata(), sorted((schema.metadata or {}).keys())


def test_what_we_export_is_laid_out_as_lerobot_writes(tmp_path):
    """Their folder -> ours -> our export: the same files, schemas, column types and keys."""
    theirs = shared_path(LEROBOT / 'arm6_waves')
    import_lerobot(theirs, tmp_path / 'arm6')
    export_lerobot(tmp_path / 'arm6', tmp_path / 'mine', robot_type='arm6')
    mine = tmp_path / 'mine'
    assert _files(mine) == _files(theirs)
    for name in _files(theirs):
        if name.endswith('.parquet'):
            (their_schema, their_keys), (my_schema, my_keys) = _schema(theirs / name), \
                _schema(mine / name)
            assert my_schema.equals(their_schema), (name, my_schema, their_schema)
            assert my_keys == their_keys, name
            assert pq.ParquetFile(mine / name).metadata.num_row_groups == \
                pq.ParquetFile(theirs / name).metadata.num_row_groups, name
    hf = [json.loads(pq.read_schema(root / 'data/chunk-000/file-000.parquet')
                     .metadata[b'huggingface']) for root in (theirs, mine)]
    assert hf[1]['info'] == hf[0]['info'] and hf[1].keys() == hf[0].keys()
    their_info, my_info = (json.loads((root / 'meta/info.json').read_text())
                           for root in (theirs, mine))
    assert list(my_info) == list(their_info)
    assert my_info['features'] == their_info['features']
    for key in their_info:
        assert type(my_info[key]) is type(their_info[key]), key
    their_stats, my_stats = (json.loads((root / 'meta/stats.json').read_text())
                             for root in (theirs, mine))
    assert sorted(my_stats) == sorted(their_stats)
    for key, stats in their_stats.items():
        assert list(my_stats[key]) == list(stats), key
        assert my_stats[key]['count'] == stats['count']
        for name in ('min', 'max'):
            np.testing.assert_allclose(my_stats[key][name], stats[name], atol=1e-6)
        # LeRobot accumulates in float32 (a constant goal gets a std of 0.002): ours in float64
        np.testing.assert_allclose(my_stats[key]['mean'], stats['mean'], atol=1e-5)


def test_files_split_by_size_and_read_back(tmp_path, ours):
    report = export_lerobot(ours, tmp_path / 'lerobot', data_files_size_mb=0.001)
    assert report.data_files > 1
    episodes = pq.read_table(tmp_path / 'lerobot/meta/episodes/chunk-000/file-000.parquet')
    files = episodes.column('data/file_index').to_pylist()
    assert files == sorted(files) and len(set(files)) == report.data_files
    assert len(list((tmp_path / 'lerobot/data/chunk-000').glob('file-*.parquet'))) == \
        report.data_files
    import_lerobot(tmp_path / 'lerobot', tmp_path / 'back')
    assert np.array_equal(load_dataset(tmp_path / 'back').observations,
                          load_dataset(ours).observations)


def _copy(tmp_path, ours) -> Path:
    export_lerobot(ours, tmp_path / 'good')
    bad = tmp_path / 'bad'
    shutil.copytree(tmp_path / 'good', bad)
    return bad


def _edit_info(folder: Path, change) -> None:
    path = folder / 'meta/info.json'
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def _drop_column(path: Path, column: str) -> None:
    table = pq.read_table(path)
    pq.write_table(table.drop_columns([column]), path)


def _set_length(path: Path, episode: int, length: int) -> None:
    table = pq.read_table(path)
    lengths = table.column('length').to_pylist()
    lengths[episode] = length
    index = table.column_names.index('length')
    pq.write_table(table.set_column(index, 'length', pa.array(lengths, pa.int64())), path)


@pytest.mark.parametrize('damage, message', [
    (lambda f: (f / 'meta/info.json').unlink(), 'meta/info.json: missing'),
    (lambda f: _edit_info(f, lambda i: i.update(codebase_version='v2.1')),
     "meta/info.json: codebase_version 'v2.1' is not supported"),
    (lambda f: _drop_column(f / 'data/chunk-000/file-000.parquet', 'observation.demo.goal'),
     "data/chunk-000/file-000.parquet: column 'observation.demo.goal' is missing"),
    (lambda f: _set_length(f / 'meta/episodes/chunk-000/file-000.parquet', 2, 39),
     'meta/episodes: episode 2 has length 39, the data files hold 40 rows of it'),
    (lambda f: _edit_info(f, lambda i: i['features'].pop('observation.state')),
     "meta/info.json: features has no 'observation.state'"),
    (lambda f: _edit_info(f, lambda i: i.update(total_frames=3)),
     'meta/info.json: total_frames is 3, the data files hold 150 rows'),
    (lambda f: _edit_info(f, lambda i: i['splits'].update(val='1:x')),
     "meta/info.json: splits.val '1:x' is not"),
    (lambda f: (f / 'meta/info.json').write_text('{"codebase'), 'meta/info.json: not valid JSON'),
], ids=['no-info', 'version', 'missing-column', 'length', 'no-state', 'total-frames',
        'bad-split', 'bad-json'])
def test_bad_folders_fail_in_one_line_naming_file_and_field(tmp_path, ours, damage, message):
    bad = _copy(tmp_path, ours)
    damage(bad)
    with pytest.raises(DatasetError, match=None) as caught:
        import_lerobot(bad, tmp_path / 'out')
    assert message in str(caught.value) and str(bad) in str(caught.value)
    assert not (tmp_path / 'out').exists()
    result = il_policy('dataset', 'import-lerobot', bad, '-o', tmp_path / 'out')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.count('\n') == 1 and message in result.stderr


def test_images_and_unnamed_features_are_noted(tmp_path, ours):
    folder = _copy(tmp_path, ours)

    def add(info):
        info['features']['observation.images.top'] = {'dtype': 'video', 'shape': [48, 64, 3],
                                                      'names': ['height', 'width', 'channels']}
        info['features']['observation.state']['names'] = None
        info['features']['action']['names'] = None
    _edit_info(folder, add)
    report = import_lerobot(folder, tmp_path / 'back')
    data = load_dataset(tmp_path / 'back')
    assert data.observation_spec().joints == ('state_0', 'state_1')
    assert data.action_joints == ['action_0', 'action_1']
    assert any('observation.images.top: skipped' in n for n in report.notes)
    assert any('observation.state has no names' in n for n in report.notes)
    # the velocities no longer share the state's names: they come in as an input of their own
    assert [e.topic for e in data.observation_spec().extra] == ['/velocity', '/demo/goal']


def test_cli_round_trip(tmp_path, ours):
    out = il_policy('dataset', 'export-lerobot', ours, '-o', tmp_path / 'lr', '--repo-id',
                    'me/waves', check=True)
    assert '5 episode(s), 150 frames in 1 data file(s)' in out.stdout
    assert 'LeRobot' in (tmp_path / 'lr/README.md').read_text()
    back = il_policy('dataset', 'import-lerobot', tmp_path / 'lr', '-o', tmp_path / 'back',
                     check=True)
    assert 'observation.demo.goal -> input /demo/goal position' in back.stdout
    assert np.array_equal(load_dataset(tmp_path / 'back').actions, load_dataset(ours).actions)
    again = il_policy('dataset', 'export-lerobot', ours, '-o', tmp_path / 'lr')
    assert again.returncode == 1 and 'exists' in again.stderr


def test_a_lerobot_dataset_trains_exports_and_evaluates(tmp_path):
    """LeRobot's own folder -> train -> policy.pt that the runtime loads -> open-loop eval."""
    import_lerobot(shared_path(LEROBOT / 'arm6_waves'), tmp_path / 'arm6')
    config = TrainConfig(mlp={'hidden': [32]}, history=2, horizon=3, batch_size=64, epochs=2,
                         patience=0, device='cpu', seed=0)
    train(tmp_path / 'arm6', config=config, run_dir=tmp_path / 'run', progress=False)
    export_run(tmp_path / 'run', tmp_path / 'policy.pt')
    artifact = load_policy(tmp_path / 'policy.pt')
    assert artifact.metadata.observation.extra[0].topic == '/goal'
    assert artifact.metadata.joint_names == tuple(load_dataset(tmp_path / 'arm6').action_joints)
    result = evaluate_open_loop(tmp_path / 'policy.pt', tmp_path / 'arm6')
    assert np.isfinite(result.overall_rmse) and result.rmse.shape == (6,)
