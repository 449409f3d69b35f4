"""Export of a run (round trip, the node's loader path) and open-loop evaluation (RMSE)."""
import json

import numpy as np
import pytest
import torch

from il_policy_node.errors import ConfigError, PipelineError
from il_policy_node.pipeline.dataset.format import load_dataset
from il_policy_node.pipeline.evaluate import evaluate_open_loop
from il_policy_node.pipeline.export import export_run
from il_policy_node.pipeline.training.run_dir import load_run
from il_policy_node.pipeline.training.windows import window_indices
from il_policy_node.runtime.artifact import load_policy
from il_policy_node.runtime.chunks import ChunkOptions
from il_policy_node.runtime.controller import Mode, PolicyController
from il_policy_node.runtime.controller_config import ControllerConfig
from il_policy_node.runtime.policy_runtime import PolicyRuntime
from test.support.datasets import (
    JOINTS,
    OFFSETS,
    RATE_HZ,
    offset_dataset,
    position_picker,
    random_mlp,
    sinusoids,
    write_run,
)


@pytest.fixture
def dataset(tmp_path):
    return offset_dataset(tmp_path / 'dataset')


def _exported(tmp_path, dataset, *, history=2, horizon=3):
    run = write_run(tmp_path / 'run', dataset, random_mlp(history, horizon), history=history,
                    horizon=horizon, mlp={'hidden': [16]})
    return load_run(run), export_run(run, tmp_path / 'out' / 'policy.pt')


def test_export_round_trip_metadata_and_outputs(tmp_path, dataset):
    run, path = _exported(tmp_path, dataset, history=2, horizon=3)
    assert path.with_name('policy.pt.sha256').is_file()
    policy = load_policy(path)
    meta = policy.metadata
    assert meta.joint_names == tuple(JOINTS)
    assert meta.observation.joints == tuple(JOINTS)
    assert [f.value for f in meta.observation.fields] == ['position', 'velocity']
    assert meta.observation.history == 2 and meta.action_horizon == 3
    assert meta.control_rate_hz == RATE_HZ
    assert meta.dataset_fingerprint == '0123456789abcdef'
    data = load_dataset(dataset)
    index, _ = window_indices([0], [60], 2, 1)
    obs = torch.from_numpy(data.observations[index].reshape(60, -1).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(policy.module(obs).numpy(), run.policy(obs).numpy(),
                                   atol=1e-5)


def test_export_check_inputs_pad_with_the_first_frame():
    observations = np.arange(10, dtype=np.float32)[:, None]
    index, _ = window_indices([2], [5], 3, 1)
    np.testing.assert_array_equal(observations[index].reshape(5, -1),
                                  [[2, 2, 2], [2, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]])


def test_exported_policy_loads_in_the_policy_node_loader(tmp_path, dataset):
    _, path = _exported(tmp_path, dataset, history=2, horizon=3)
    params = {'model_path': str(path), 'joint_names': ['j0', *JOINTS],
              'control_rate_hz': RATE_HZ, 'state_timeout_s': 0.1, 'ramp_in_s': 0.0,
              'position_lower_limits': [-2.0] * 3, 'position_upper_limits': [2.0] * 3,
              'max_velocity_rad_s': [10.0]}
    config = ControllerConfig.from_parameters(params)
    controller = PolicyController(config, PolicyRuntime(load_policy(config.model_path)))
    controller.activate()
    tick_ns = int(1e9 / RATE_HZ)
    for k in range(5):
        controller.on_joint_state(['j2', 'j0', 'j1'], np.array([0.1, 0.0, -0.1]),
                                  np.zeros(3), k * tick_ns)
        command = controller.tick(k * tick_ns)
    assert command is not None and np.isfinite(command.positions).all()
    assert controller.mode is Mode.RUNNING
    assert command.positions[0] == 0.0  # a controller joint the policy does not drive

    with pytest.raises(ConfigError, match='trained at'):
        PolicyController(ControllerConfig.from_parameters({**params, 'control_rate_hz': 100.0}),
                         PolicyRuntime(load_policy(path)))


@pytest.mark.parametrize('frame_index', [0, 2])
def test_eval_rmse_of_a_hand_set_model_is_analytic(tmp_path, frame_index):
    """Actions are position + OFFSETS; the model returns the position of one history frame."""
    history = 3
    dataset = offset_dataset(tmp_path / 'dataset', val=(1, 3), identity_stats=True)
    run = write_run(tmp_path / 'run', dataset, position_picker(history, frame_index),
                    history=history, horizon=1, mlp={'hidden': []})
    path = export_run(run, tmp_path / 'policy.pt')
    result = evaluate_open_loop(path, dataset, plots_dir=tmp_path / 'plots')

    lag = history - 1 - frame_index  # frames between the one the model reads and the newest
    squared = []
    for e in (1, 3):
        q, _ = sinusoids(np.arange(60) / RATE_HZ, e)
        q = q.astype(np.float32).astype(np.float64)
        predicted = q[np.clip(np.arange(60) - lag, 0, None)]
        demonstrated = (q + OFFSETS).astype(np.float32)
        squared.append((predicted - demonstrated) ** 2)
    expected = np.sqrt(np.concatenate(squared).mean(axis=0))
    if lag == 0:
        np.testing.assert_allclose(expected, np.abs(OFFSETS), atol=1e-6)
    np.testing.assert_allclose(result.rmse, expected, atol=1e-5)
    assert result.joints == list(JOINTS) and result.rows == 120
    assert result.episodes == ['episode_0001', 'episode_0003']
    assert sorted(p.name for p in result.plots) == ['episode_episode_0001.png',
                                                    'episode_episode_0003.png', 'rmse.png']
    assert all(p.stat().st_size > 1000 for p in result.plots)
    table = result.table()
    assert 'j1' in table and f'{expected[0]:.5f}' in table


def test_eval_maps_joints_by_name(tmp_path):
    """A dataset listing the joints in another order gives the same RMSE per joint."""
    dataset = offset_dataset(tmp_path / 'dataset', identity_stats=True)
    run = write_run(tmp_path / 'run', dataset, position_picker(1, 0), history=1, horizon=1,
                    mlp={'hidden': []})
    path = export_run(run, tmp_path / 'policy.pt')
    swapped = tmp_path / 'swapped'
    swapped.mkdir()
    manifest = json.loads((dataset / 'manifest.json').read_text())
    manifest['observation']['joints'] = manifest['action']['joints'] = ['j2', 'j1']
    (swapped / 'manifest.json').write_text(json.dumps(manifest))
    with np.load(dataset / 'data.npz') as data:
        arrays = dict(data)
    arrays['observations'] = arrays['observations'][:, [1, 0, 3, 2]]
    arrays['actions'] = arrays['actions'][:, [1, 0]]
    np.savez(swapped / 'data.npz', **arrays)
    a = evaluate_open_loop(path, dataset)
    b = evaluate_open_loop(path, swapped)
    np.testing.assert_allclose(b.rmse, a.rmse, atol=1e-6)
    np.testing.assert_allclose(a.rmse, np.abs(OFFSETS), atol=1e-5)


def test_eval_with_action_chunks_runs_through_the_runtime(tmp_path, dataset):
    _, path = _exported(tmp_path, dataset, history=2, horizon=3)
    for execution in ('ensemble', 'chunk'):
        result = evaluate_open_loop(path, dataset, chunks=ChunkOptions(execution=execution))
        assert result.rmse.shape == (2,) and np.isfinite(result.rmse).all()


def test_errors_name_the_problem(tmp_path, dataset):
    with pytest.raises(PipelineError, match='no such run directory'):
        export_run(tmp_path / 'missing', tmp_path / 'policy.pt')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(PipelineError, match='config.json is missing'):
        export_run(tmp_path / 'empty', tmp_path / 'policy.pt')
    with pytest.raises(PipelineError, match='manifest.json is missing'):
        load_dataset(tmp_path / 'empty')
    run = write_run(tmp_path / 'run', dataset, random_mlp(2, 1), history=2, horizon=1,
                    mlp={'hidden': [16]})
    (run / 'checkpoints' / 'best.pt').unlink()
    with pytest.raises(PipelineError, match='best.pt'):
        export_run(run, tmp_path / 'policy.pt')
    assert not (tmp_path / 'policy.pt').exists()

    _, path = _exported(tmp_path / 'b', dataset, history=2, horizon=1)
    other = offset_dataset(tmp_path / 'other', joints=['a1', 'a2'])
    with pytest.raises(PipelineError,
                       match=r"no position of joint\(s\) \['j1', 'j2'\] in the robot"):
        evaluate_open_loop(path, other)
