"""Training: window index arithmetic, config, learning, determinism, resume, run dir, DDP."""
import csv
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import il_policy_node.core.train as train_module
from il_policy_node.core.train import ConfigError, TrainConfig, load_run, read_metrics, train
from il_policy_node.core.training_data import DatasetError, load_windows, window_indices
from test.support.training_data import JOINTS, write_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('data') / 'ds')


FAST = dict(hidden=(64, 64), history=2, horizon=3, batch_size=64, epochs=6, patience=0,
            device='cpu', seed=3)


def test_window_indices_clamp_inside_each_episode():
    starts, lengths, k, horizon = [0, 3, 8], [3, 5, 2], 3, 2
    hist, chunk = window_indices(np.array(starts), np.array(lengths), k, horizon)
    want_hist, want_chunk = [], []
    for s, n in zip(starts, lengths):
        for t in range(s, s + n):
            want_hist.append([max(t - k + 1 + i, s) for i in range(k)])
            want_chunk.append([min(t + i, s + n - 1) for i in range(horizon)])
    assert hist.tolist() == want_hist
    assert chunk.tolist() == want_chunk
    assert hist.tolist()[3] == [3, 3, 3]  # first row of episode 1: padded with itself
    assert chunk.tolist()[7] == [7, 7]  # last row of episode 1: repeated, never row 8


def test_batches_gather_history_and_chunk_by_row(tmp_path):
    lengths = (4, 3)
    n = sum(lengths)
    rows = np.arange(n, dtype=np.float32)
    # Frame of row r: positions (r, 100 + r), velocities (200 + r, 300 + r); action (r, -r).
    obs = np.stack([rows, 100 + rows, 200 + rows, 300 + rows], axis=1)
    actions = np.stack([rows, -rows], axis=1)
    path = write_dataset(tmp_path / 'ds', lengths=lengths, val=(1,), obs=obs, actions=actions)
    data, info = load_windows(path, history=3, horizon=2, normalize=False)
    assert info.frame_size == 4 and info.action_size == 2
    assert data.splits['train'].tolist() == [0, 1, 2, 3]
    assert data.splits['val'].tolist() == [4, 5, 6]
    x, y = data.batch(torch.tensor([1, 4, 6]))
    assert x.shape == (3, 12) and y.shape == (3, 4)
    # Row 1: frames 0, 0, 1 (oldest first, field-major in a frame); chunk rows 1, 2.
    assert x[0].tolist() == [0, 100, 200, 300, 0, 100, 200, 300, 1, 101, 201, 301]
    assert y[0].tolist() == [1, -1, 2, -2]
    # Row 4 starts episode 1: history padded with row 4, never row 3.
    assert x[1].reshape(3, 4)[:, 0].tolist() == [4, 4, 4]
    # Row 6 ends the dataset: chunk repeats row 6.
    assert y[2].tolist() == [6, -6, 6, -6]
    normalized, _ = load_windows(path, history=1, horizon=1)
    obs_n, _ = normalized.batch(normalized.splits['train'])
    assert np.allclose(obs_n.mean(0).numpy(), 0, atol=1e-5)


def test_dataset_errors_say_what_is_wrong(tmp_path):
    path = write_dataset(tmp_path / 'ds', lengths=(3, 3), val=(1,),
                         obs=np.zeros((6, 4)), actions=np.zeros((6, 2)),
                         episode=[0, 0, 1, 1, 1, 1])
    with pytest.raises(DatasetError, match='episode array disagrees'):
        load_windows(path, history=1, horizon=1)
    with pytest.raises(DatasetError, match='not a dataset directory'):
        load_windows(tmp_path, history=1, horizon=1)


def test_config_file_and_errors_name_the_key(tmp_path):
    shipped = TrainConfig.from_file(ROOT / 'config' / 'train.yaml')
    assert shipped.hidden == (256, 256) and shipped.lr == 1e-3 and shipped.batch_size == 256
    path = tmp_path / 'train.yaml'
    path.write_text('hidden: [32]\nlr_schedule: cosine\nepochs: 3\n')
    config = TrainConfig.from_file(path)
    assert config.hidden == (32,) and config.lr_schedule == 'cosine' and config.epochs == 3
    for text, key in (('lr_schedule: linear', 'lr_schedule'), ('batch_size: 0', 'batch_size'),
                      ('hiden: [3]', 'hiden'), ('dropout: 1.5', 'dropout'),
                      ('device: tpu', 'device'), ('hidden: 256', 'hidden'),
                      ('lr: -1', 'lr'), ('history: 1.5', 'history')):
        path.write_text(text + '\n')
        with pytest.raises(ConfigError, match=key):
            TrainConfig.from_file(path)


def test_training_lowers_validation_loss_20x(dataset, tmp_path):
    config = TrainConfig(**{**FAST, 'epochs': 15, 'lr_schedule': 'cosine'})
    result = train(dataset, config=config, run_dir=tmp_path / 'run', progress=False)
    data, _ = load_windows(dataset, history=2, horizon=3)
    _, act = data.batch(data.splits['val'])
    predict_the_mean = float((act ** 2).mean())  # ~1: MSE of the mean in normalized units
    assert result.epochs == 15
    assert result.best_val_loss < predict_the_mean / 20
    assert result.metrics[-1]['val_loss'] < result.metrics[0]['val_loss']


def _strip_seconds(metrics):
    return [{k: v for k, v in row.items() if k != 'seconds'} for row in metrics]


def _weights(run_dir, name='last.pt'):
    return torch.load(Path(run_dir) / 'checkpoints' / name, weights_only=False)['model']


def test_same_seed_same_metrics_and_weights(dataset, tmp_path):
    config = TrainConfig(**{**FAST, 'epochs': 3, 'dropout': 0.1})
    first = train(dataset, config=config, run_dir=tmp_path / 'a', progress=False)
    second = train(dataset, config=config, run_dir=tmp_path / 'b', progress=False)
    assert _strip_seconds(first.metrics) == _strip_seconds(second.metrics)
    for key, value in _weights(tmp_path / 'a').items():
        assert torch.equal(value, _weights(tmp_path / 'b')[key])
    other = train(dataset, config=TrainConfig(**{**FAST, 'epochs': 3, 'dropout': 0.1,
                                                 'seed': 4}),
                  run_dir=tmp_path / 'c', progress=False)
    assert _strip_seconds(other.metrics) != _strip_seconds(first.metrics)


def test_resume_after_interruption_equals_uninterrupted(dataset, tmp_path, monkeypatch):
    config = TrainConfig(**{**FAST, 'dropout': 0.2, 'lr_schedule': 'cosine'})
    full = train(dataset, config=config, run_dir=tmp_path / 'full', progress=False)

    saves = []
    real_save = train_module._atomic_save

    def crash_after_third_epoch(obj, path):
        real_save(obj, path)
        saves.append(path.name)
        if saves.count('last.pt') == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, '_atomic_save', crash_after_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, config=config, run_dir=tmp_path / 'cut', progress=False)
    monkeypatch.setattr(train_module, '_atomic_save', real_save)
    with pytest.raises(FileExistsError, match='resume'):
        train(dataset, config=config, run_dir=tmp_path / 'cut', progress=False)
    with pytest.raises(ConfigError, match='lr'):
        train(dataset, config=TrainConfig(**{**FAST, 'dropout': 0.2, 'lr': 0.01,
                                             'lr_schedule': 'cosine'}),
              run_dir=tmp_path / 'cut', resume=True, progress=False)
    resumed = train(dataset, config=config, run_dir=tmp_path / 'cut', resume=True,
                    progress=False)
    assert _strip_seconds(resumed.metrics) == _strip_seconds(full.metrics)
    assert [r['epoch'] for r in read_metrics(tmp_path / 'cut')] == list(range(1, 7))
    for key, value in _weights(tmp_path / 'full').items():
        torch.testing.assert_close(_weights(tmp_path / 'cut')[key], value, rtol=0, atol=1e-6)


def test_run_directory_contents_and_load_run(dataset, tmp_path):
    config = TrainConfig(**{**FAST, 'epochs': 3})
    run_dir = tmp_path / 'run'
    result = train(dataset, config=config, run_dir=run_dir, progress=False)
    run_config = json.loads((run_dir / 'config.json').read_text())
    assert run_config['train'] == config.to_dict()
    assert run_config['dataset_fingerprint'] == '0123456789abcdef'
    assert run_config['seed'] == 3
    assert run_config['model'] == {'kind': 'mlp', 'hidden': [64, 64], 'dropout': 0.0,
                                   'history': 2, 'horizon': 3, 'obs_size': 8,
                                   'action_size': 6, 'input_columns': None}
    with open(run_dir / 'metrics.csv', newline='') as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ['epoch', 'train_loss', 'val_loss', 'lr', 'seconds']
    assert [int(r['epoch']) for r in rows] == [1, 2, 3]
    assert (run_dir / 'loss.png').read_bytes()[:4] == b'\x89PNG'
    assert {p.name for p in (run_dir / 'checkpoints').iterdir()} == {'last.pt', 'best.pt'}
    assert any(p.name.startswith('events.out.tfevents')
               for p in (run_dir / 'tensorboard').iterdir())

    model, info = load_run(run_dir)
    assert info.epoch == result.best_epoch and info.history == 2 and info.horizon == 3
    assert info.obs_mean.shape == (8,) and info.action_mean.shape == (2,)
    assert info.observation_spec.size == 8
    assert info.dataset.action_joints == tuple(JOINTS)
    data, _ = load_windows(dataset, history=2, horizon=3)
    obs, act = data.batch(data.splits['val'])
    with torch.no_grad():
        val_loss = float(((model(obs) - act) ** 2).mean())
    assert val_loss == pytest.approx(result.best_val_loss, rel=1e-5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_torchrun_two_ranks_match_one_process(dataset, tmp_path):
    config = dict(FAST, epochs=3, batch_size=50)  # an odd last batch: 640 train rows
    script = tmp_path / 'run_ddp.py'
    script.write_text(textwrap.dedent(f'''
        import json, sys
        import il_policy_node.core.train as core
        from il_policy_node.core.training_data import WindowedData
        seen, real_batch, real_setup = [], WindowedData.batch, core._setup

        def counting_batch(self, rows):
            seen.append(int(rows.shape[0]))
            return real_batch(self, rows)

        def recording_setup(device):
            ctx = core._setup_seen = real_setup(device)
            return ctx

        WindowedData.batch, core._setup = counting_batch, recording_setup
        core.train(sys.argv[1], config=core.TrainConfig(**{config!r}), run_dir=sys.argv[2],
                   progress=False)
        ctx = core._setup_seen
        with open(f'{{sys.argv[3]}}.{{ctx.rank}}', 'w') as stream:
            json.dump({{'world': ctx.world, 'rows': seen}}, stream)
    '''))
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', GLOO_SOCKET_IFNAME='lo',
               OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--nnodes=1',
         '--master_addr=127.0.0.1', f'--master_port={_free_port()}', str(script),
         str(dataset), str(tmp_path / 'ddp'), str(tmp_path / 'seen')],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f'seen.{r}').read_text()) for r in (0, 1)]
    assert [r['world'] for r in ranks] == [2, 2]
    # Each step, each rank takes half of the global batch of 50 (val batches come after).
    steps = -(-640 // 50)
    assert ranks[0]['rows'][:steps] == [25] * (steps - 1) + [20]
    assert ranks[1]['rows'][:steps] == [25] * (steps - 1) + [20]
    single = train(dataset, config=TrainConfig(**config), run_dir=tmp_path / 'one',
                   progress=False)
    ddp_metrics = read_metrics(tmp_path / 'ddp')
    assert len(ddp_metrics) == 3
    for ours, theirs in zip(single.metrics, ddp_metrics):
        assert theirs['val_loss'] == pytest.approx(ours['val_loss'], rel=1e-4)
        assert theirs['train_loss'] == pytest.approx(ours['train_loss'], rel=1e-4)
    for key, value in _weights(tmp_path / 'one').items():
        torch.testing.assert_close(_weights(tmp_path / 'ddp')[key], value, rtol=1e-4,
                                   atol=1e-5)


def test_early_stopping_on_validation_loss(dataset, tmp_path):
    # After epoch 1 the step schedule drops lr to 1e-15: the weights stop changing, so the
    # validation loss never improves again and patience 2 stops the run after epoch 3.
    config = TrainConfig(**{**FAST, 'epochs': 10, 'patience': 2, 'lr_schedule': 'step',
                            'lr_step_epochs': 1, 'lr_gamma': 1e-12})
    result = train(dataset, config=config, run_dir=tmp_path / 'run', progress=True)
    assert (result.epochs, result.best_epoch, result.stopped_early) == (3, 1, True)
    again = train(dataset, config=config, run_dir=tmp_path / 'run', resume=True,
                  progress=False)
    assert again.epochs == 3 and again.stopped_early


def test_exported_run_reproduces_the_model_on_raw_data(dataset, tmp_path):
    from il_policy_node.core.artifact import load_policy
    from il_policy_node.core.export import export_policy

    run_dir = tmp_path / 'run'
    train(dataset, config=TrainConfig(**{**FAST, 'epochs': 2}), run_dir=run_dir,
          progress=False)
    model, info = load_run(run_dir)
    raw, _ = load_windows(dataset, history=info.history, horizon=info.horizon, normalize=False)
    obs, act = raw.batch(raw.splits['val'])
    path = export_policy(model, tmp_path / 'policy.pt', joint_names=info.dataset.action_joints,
                         observation=info.observation_spec, action_horizon=info.horizon,
                         control_rate_hz=info.dataset.control_rate_hz,
                         obs_mean=info.obs_mean, obs_std=info.obs_std,
                         action_mean=info.action_mean, action_std=info.action_std,
                         dataset_fingerprint=info.dataset.fingerprint,
                         check_inputs=obs[:64].numpy())
    policy = load_policy(path)
    with torch.no_grad():
        normalized = (obs - torch.as_tensor(info.obs_mean)) / torch.as_tensor(info.obs_std)
        want = model(normalized).reshape(-1, info.horizon, info.action_size) \
            * torch.as_tensor(info.action_std) + torch.as_tensor(info.action_mean)
        got = policy.module(obs)
    assert policy.metadata.observation.history == 2 and policy.metadata.action_horizon == 3
    torch.testing.assert_close(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)


def test_relative_actions_are_differences_to_the_rows_own_positions(tmp_path):
    lengths = (4, 3)
    rows = np.arange(sum(lengths), dtype=np.float32)
    # positions (r, 100 + r), velocities (200 + r, 300 + r); action of row r: (2 r, 10 - r)
    obs = np.stack([rows, 100 + rows, 200 + rows, 300 + rows], axis=1)
    actions = np.stack([2 * rows, 10 - rows], axis=1)
    path = write_dataset(tmp_path / 'ds', lengths=lengths, val=(1,), obs=obs, actions=actions)
    raw, info = load_windows(path, history=2, horizon=2, normalize=False, relative=True)
    assert info.relative_to == (0, 1)
    _, y = raw.batch(torch.tensor([1]))
    # chunk rows 1, 2 minus row 1's positions (1, 101)
    assert y[0].tolist() == [2 - 1, 9 - 101, 4 - 1, 8 - 101]
    # statistics of those differences over the training chunks (rows 0..3, horizon 2)
    diffs = np.array([[actions[min(r + h, 3)] - obs[r, :2] for h in range(2)]
                      for r in range(4)]).reshape(-1, 2)
    np.testing.assert_allclose(info.action_mean, diffs.mean(0), rtol=1e-6)
    np.testing.assert_allclose(info.action_std, diffs.std(0), rtol=1e-6)
    normalized, _ = load_windows(path, history=2, horizon=2, relative=True)
    _, y_n = normalized.batch(torch.tensor([1]))
    expected = (y[0].numpy().reshape(2, 2) - info.action_mean) / info.action_std
    np.testing.assert_allclose(y_n[0].numpy(), expected.reshape(-1), rtol=1e-5, atol=1e-5)


def test_relative_actions_need_observed_positions_of_the_action_joints(tmp_path):
    path = write_dataset(tmp_path / 'ds', joints=('a', 'b'))
    manifest = json.loads((path / 'manifest.json').read_text())
    manifest['action']['joints'] = ['b', 'c']
    (path / 'manifest.json').write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"\['c'\] are not observed"):
        load_windows(path, history=1, horizon=1, relative=True)


def test_exported_relative_run_adds_the_newest_positions_back(dataset, tmp_path):
    from il_policy_node.core.artifact import load_policy
    from il_policy_node.core.evaluate import export_run

    run_dir = tmp_path / 'run'
    config = TrainConfig(**{**FAST, 'epochs': 2, 'relative_actions': True})
    train(dataset, config=config, run_dir=run_dir, progress=False)
    model, info = load_run(run_dir)
    assert info.reference_columns == (4, 5)     # history 2 x 4 features: the newest positions
    policy = load_policy(export_run(run_dir, tmp_path / 'policy.pt'))
    raw, _ = load_windows(dataset, history=2, horizon=3, normalize=False, relative=True)
    obs, _ = raw.batch(raw.splits['val'])
    with torch.no_grad():
        normalized = (obs - torch.as_tensor(info.obs_mean)) / torch.as_tensor(info.obs_std)
        difference = model(normalized).reshape(-1, 3, 2) * torch.as_tensor(info.action_std) \
            + torch.as_tensor(info.action_mean)
        want = difference + obs[:, 4:6].unsqueeze(1)
        got = policy.module(obs)
    torch.testing.assert_close(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    assert policy.metadata.extra['relative_actions'] is True


GOAL_B = {'topic': '/goal', 'joints': ['b'], 'fields': ['position']}


def _goal_dataset(path, lengths=(40,) * 5):
    """Positions a, b, velocities, and a goal of joint b at the end of each frame."""
    rng = np.random.default_rng(0)
    n = sum(lengths)
    obs = rng.normal(size=(n, 5)).astype(np.float32)
    obs[:, 4] = 3.0 + obs[:, 1] + 0.1 * rng.normal(size=n)   # goal b near position b + 3
    actions = obs[:, :2] + 0.1
    return write_dataset(path, lengths=lengths, val=(4,), obs=obs, actions=actions,
                         extra=[GOAL_B]), obs


def test_relative_inputs_see_the_goal_minus_the_position_of_the_same_joint(tmp_path):
    path, obs = _goal_dataset(tmp_path / 'ds')
    raw, info = load_windows(path, history=1, horizon=1, normalize=False, relative_inputs=True)
    assert info.input_differences == ((4, 1),)       # goal b minus position b
    x, _ = raw.batch(torch.arange(5))
    np.testing.assert_allclose(x[:, 4].numpy(), obs[:5, 4] - obs[:5, 1], rtol=1e-6)
    np.testing.assert_allclose(x[:, :4].numpy(), obs[:5, :4])      # the rest stays raw
    train_rows = slice(0, 160)                                     # episodes 0-3
    difference = obs[train_rows, 4] - obs[train_rows, 1]
    assert info.obs_mean[4] == pytest.approx(difference.mean(), rel=1e-5)
    assert info.obs_std[4] == pytest.approx(difference.std(), rel=1e-4)
    assert info.obs_mean[0] == pytest.approx(obs[train_rows, 0].mean(), abs=1e-6)


def test_relative_inputs_need_a_further_input_of_observed_joints(tmp_path):
    with pytest.raises(DatasetError, match='relative inputs need a further observed topic'):
        load_windows(write_dataset(tmp_path / 'ds'), history=1, horizon=1,
                     relative_inputs=True)
    with pytest.raises(ConfigError, match='relative_inputs must be true or false'):
        TrainConfig(relative_inputs='yes')


def test_exported_run_with_relative_inputs_subtracts_the_positions_itself(tmp_path):
    from il_policy_node.core.artifact import load_policy
    from il_policy_node.core.evaluate import export_run

    path, _ = _goal_dataset(tmp_path / 'ds')
    run_dir = tmp_path / 'run'
    config = TrainConfig(**{**FAST, 'epochs': 2, 'relative_inputs': True})
    train(path, config=config, run_dir=run_dir, progress=False)
    model, info = load_run(run_dir)
    assert info.input_differences == ((4, 1), (9, 6))    # both history frames
    policy = load_policy(export_run(run_dir, tmp_path / 'policy.pt', checkpoint='last'))
    raw, _ = load_windows(path, history=2, horizon=3, normalize=False)
    obs, _ = raw.batch(raw.splits['val'])
    inputs = obs.clone()
    inputs[:, [4, 9]] -= obs[:, [1, 6]]
    with torch.no_grad():
        normalized = (inputs - torch.as_tensor(info.obs_mean)) / torch.as_tensor(info.obs_std)
        want = model(normalized).reshape(-1, 3, 2) * torch.as_tensor(info.action_std) \
            + torch.as_tensor(info.action_mean)
        got = policy.module(obs)
    torch.testing.assert_close(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    assert policy.metadata.extra['relative_inputs'] is True


def test_without_absolute_positions_the_policy_acts_the_same_wherever_the_arm_is(tmp_path):
    from il_policy_node.core.artifact import load_policy
    from il_policy_node.core.evaluate import export_run

    path, _ = _goal_dataset(tmp_path / 'ds')
    run_dir = tmp_path / 'run'
    config = TrainConfig(**{**FAST, 'epochs': 2, 'relative_actions': True,
                            'relative_inputs': True, 'absolute_positions': False})
    train(path, config=config, run_dir=run_dir, progress=False)
    run_config = json.loads((run_dir / 'config.json').read_text())
    # frames of 5 columns (position a, b, velocity a, b, goal b): positions 0, 1, 5, 6 unseen
    assert run_config['model']['input_columns'] == [2, 3, 4, 7, 8, 9]
    policy = load_policy(export_run(run_dir, tmp_path / 'policy.pt', checkpoint='last'))
    raw, _ = load_windows(path, history=2, horizon=3, normalize=False)
    obs, _ = raw.batch(raw.splits['val'])
    shift = torch.tensor([0.7, -1.3])
    moved = obs.clone()
    moved[:, [0, 5]] += shift[0]            # position a, both frames
    moved[:, [1, 6, 4, 9]] += shift[1]      # position b and the goal of b, both frames
    with torch.no_grad():
        here, there = policy.module(obs), policy.module(moved)
    torch.testing.assert_close(there, here + shift, rtol=1e-5, atol=1e-5)
    with torch.no_grad():                   # and it does depend on the goal
        moved[:, [4, 9]] += 1.0
        assert not torch.allclose(policy.module(moved), there, atol=1e-3)


def test_absolute_positions_false_needs_relative_actions_and_another_input(tmp_path):
    with pytest.raises(ConfigError, match='absolute_positions: false needs relative_actions'):
        TrainConfig(absolute_positions=False)
    with pytest.raises(ConfigError, match='absolute_positions must be true or false'):
        TrainConfig(absolute_positions='no')
    positions_only = write_dataset(tmp_path / 'ds', fields=('position',))
    with pytest.raises(ConfigError, match='leaves the model no input.*observes only positions'):
        train(positions_only, run_dir=tmp_path / 'run', progress=False, config=TrainConfig(
            **{**FAST, 'relative_actions': True, 'absolute_positions': False}))
    assert not (tmp_path / 'run').exists()


def test_export_takes_the_best_or_the_last_checkpoint(dataset, tmp_path):
    from il_policy_node.core.artifact import load_policy
    from il_policy_node.core.evaluate import export_run

    run_dir = tmp_path / 'run'
    train(dataset, config=TrainConfig(**{**FAST, 'epochs': 3}), run_dir=run_dir,
          progress=False)
    obs = torch.ones(1, 8)
    outputs = {}
    for name in ('best', 'last'):
        model, info = load_run(run_dir, checkpoint=f'{name}.pt')
        policy = load_policy(export_run(run_dir, tmp_path / f'{name}.pt', checkpoint=name))
        with torch.no_grad():
            want = model((obs - torch.as_tensor(info.obs_mean)) / torch.as_tensor(info.obs_std))
            want = want.reshape(1, 3, 2) * torch.as_tensor(info.action_std) + \
                torch.as_tensor(info.action_mean)
            outputs[name] = policy.module(obs)
        torch.testing.assert_close(outputs[name], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='checkpoint must be one of'):
        export_run(run_dir, tmp_path / 'x.pt', checkpoint='first')
