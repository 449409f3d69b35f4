"""Training: windows, the fitted processor, config, learning, determinism, resume, run dir, DDP."""
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

import il_policy_node.pipeline.training.loop as loop_module
from il_policy_node.errors import ConfigError, DatasetError, PipelineError
from il_policy_node.pipeline.dataset.format import load_dataset
from il_policy_node.pipeline.export import export_run
from il_policy_node.pipeline.training.config import TrainConfig
from il_policy_node.pipeline.training.loop import train
from il_policy_node.pipeline.training.run_dir import load_checkpoint, load_run, read_metrics
from il_policy_node.pipeline.training.windows import fit_processor, load_windows, window_indices
from il_policy_node.policies.processor import ProcessorLayout
from il_policy_node.runtime.artifact import load_policy
from il_policy_node.sim.demonstrator import min_jerk_profile
from test.support.datasets import JOINTS, sinusoid_dataset, write_arrays

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return sinusoid_dataset(tmp_path_factory.mktemp('data') / 'ds')


SMALL_MLP = [64, 64]
DROPOUT_1 = {'hidden': SMALL_MLP, 'dropout': 0.1}
DROPOUT_2 = {'hidden': SMALL_MLP, 'dropout': 0.2}
FAST = dict(mlp={'hidden': SMALL_MLP}, history=2, horizon=3, batch_size=64, epochs=6, patience=0,
            device='cpu', seed=3)


def _windows(path, history, horizon):
    return load_windows(load_dataset(path), history=history, horizon=horizon)


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


def _row_dataset(path, lengths=(4, 3), extra=()):
    """Frame of row r: positions (r, 100 + r), velocities (200 + r, 300 + r); action (2r, 10-r)."""
    rows = np.arange(sum(lengths), dtype=np.float32)
    obs = np.stack([rows, 100 + rows, 200 + rows, 300 + rows], axis=1)
    actions = np.stack([2 * rows, 10 - rows], axis=1)
    return write_arrays(path, obs, actions, lengths=lengths, val=(1,), joints=('a', 'b')), \
        obs, actions


def test_batches_gather_history_and_chunk_by_row(tmp_path):
    path, _, _ = _row_dataset(tmp_path / 'ds')
    data = _windows(path, 3, 2)
    assert data.splits['train'].tolist() == [0, 1, 2, 3]
    assert data.splits['val'].tolist() == [4, 5, 6]
    x, y = data.batch(torch.tensor([1, 4, 6]))
    assert x.shape == (3, 12) and y.shape == (3, 2, 2)
    # Row 1: frames 0, 0, 1 (oldest first, field-major in a frame); chunk rows 1, 2.
    assert x[0].tolist() == [0, 100, 200, 300, 0, 100, 200, 300, 1, 101, 201, 301]
    assert y[0].tolist() == [[2, 9], [4, 8]]
    # Row 4 starts episode 1: history padded with row 4, never row 3.
    assert x[1].reshape(3, 4)[:, 0].tolist() == [4, 4, 4]
    # Row 6 ends the dataset: chunk repeats row 6.
    assert y[2].tolist() == [[12, 4], [12, 4]]


def test_the_processor_is_fitted_to_the_train_split(tmp_path):
    path, obs, actions = _row_dataset(tmp_path / 'ds')
    dataset = load_dataset(path)
    data = load_windows(dataset, history=2, horizon=2)
    spec = dataset.observation_spec(2)
    plain = fit_processor(dataset, data, ProcessorLayout.plan(spec, ('a', 'b')))
    train_rows = obs[:4]                              # episode 0 is the train split
    np.testing.assert_allclose(plain.obs_mean.numpy(), train_rows.mean(0))
    # each block's columns (one field's joints) at least 0.1 x the block's largest std
    std = np.asarray(dataset.manifest['stats']['observation']['std'])
    for _, _, start, joints in spec.blocks():
        block = slice(start, start + len(joints))
        np.testing.assert_allclose(plain.obs_std.numpy()[block],
                                   np.maximum(std[block], 0.1 * std[block].max()), rtol=1e-6)
    np.testing.assert_allclose(plain.action_mean.numpy(), [3.0, 8.5])   # (0+2+4+6)/4, ...
    relative = fit_processor(dataset, data, ProcessorLayout.plan(spec, ('a', 'b'),
                                                                 relative_actions=True))
    # chunks of rows 0..3 (horizon 2, clamped at row 3) minus the row's own positions
    differences = np.array([[actions[min(r + h, 3)] - obs[r, :2] for h in range(2)]
                            for r in range(4)]).reshape(-1, 2)
    assert differences[:2].tolist() == [[0, -90], [2, -91]]
    np.testing.assert_allclose(relative.action_mean.numpy(), differences.mean(0), rtol=1e-6)
    np.testing.assert_allclose(relative.action_std.numpy(), differences.std(0), rtol=1e-5)
    assert relative.reference.tolist() == [0, 1]       # the positions (of the newest frame)


def test_processed_rows_batch_as_the_processor_does_on_raw_batches(tmp_path):
    path, _ = _goal_dataset(tmp_path / 'ds')
    dataset = load_dataset(path)
    data = load_windows(dataset, history=2, horizon=3)
    layout = ProcessorLayout.plan(dataset.observation_spec(2), ('a', 'b'),
                                  relative_actions=True, relative_inputs=True,
                                  absolute_positions=False)
    processor = fit_processor(dataset, data, layout)
    rows = torch.tensor([0, 1, 39, 40, 150])
    obs, chunk = data.batch(rows)
    inputs, targets = data.processed(processor).batch(rows)
    torch.testing.assert_close(inputs, processor.encode(obs))
    torch.testing.assert_close(targets, processor.targets(chunk, obs))
    assert inputs.shape == (5, 6) and targets.shape == (5, 6)


def test_dataset_errors_say_what_is_wrong(tmp_path):
    path, _, _ = _row_dataset(tmp_path / 'ds')
    with np.load(path / 'data.npz') as data:
        arrays = dict(data)
    arrays['episode'] = np.array([0, 0, 1, 1, 1, 1, 1], np.int32)
    np.savez(path / 'data.npz', **arrays)
    with pytest.raises(DatasetError, match='episode array disagrees'):
        load_dataset(path)
    with pytest.raises(DatasetError, match='not a dataset directory'):
        load_dataset(tmp_path)


def test_config_file_and_errors_name_the_key(tmp_path):
    shipped = TrainConfig.from_file(ROOT / 'config' / 'train.yaml')
    assert shipped.model == 'mlp' and shipped.mlp == {'hidden': [256, 256], 'dropout': 0.0}
    assert shipped.lr == 1e-3 and shipped.batch_size == 256
    assert shipped.act['d_model'] == 64 and shipped.diffusion['inference_steps'] == 10
    path = tmp_path / 'train.yaml'
    path.write_text('model: act\nmlp: {hidden: [32]}\nact: {heads: 2}\nlr_schedule: cosine\n'
                    'epochs: 3\n')
    config = TrainConfig.from_file(path)
    assert config.mlp['hidden'] == [32] and config.lr_schedule == 'cosine' and config.epochs == 3
    assert config.network_options()['heads'] == 2 and config.network_options()['d_model'] == 64
    for text, key in (('lr_schedule: linear', 'lr_schedule'), ('batch_size: 0', 'batch_size'),
                      ('hiden: [3]', 'hiden'), ('mlp: {dropout: 1.5}', 'mlp.dropout'),
                      ('device: tpu', 'device'), ('mlp: {hidden: 256}', 'mlp.hidden'),
                      ('hidden: [32]', 'keys of the mlp family now'),
                      ('model: rnn', 'model must be one of'), ('act: {d_model: 30}', 'act.heads'),
                      ('diffusion: {inference_steps: 0}', 'diffusion.inference_steps'),
                      ('act: {depth: 3}', 'act.depth'), ('act: 3', 'act must be a mapping'),
                      ('lr: -1', 'lr'), ('history: 1.5', 'history'),
                      ('ema_decay: 1.0', 'ema_decay'), ('ema_decay: -0.1', 'ema_decay'),
                      ('ema_decay: true', 'ema_decay'),
                      ('state_noise_rad: -0.1', 'state_noise_rad')):
        path.write_text(text + '\n')
        with pytest.raises(ConfigError, match=key):
            TrainConfig.from_file(path)


def test_training_lowers_validation_loss_20x(dataset, tmp_path):
    config = TrainConfig(**{**FAST, 'epochs': 15, 'lr_schedule': 'cosine'})
    result = train(dataset, config=config, run_dir=tmp_path / 'run', progress=False)
    run = load_run(tmp_path / 'run')
    data = _windows(dataset, 2, 3)
    obs, chunk = data.batch(data.splits['val'])
    predict_the_mean = float((run.policy.processor.targets(chunk, obs) ** 2).mean())   # ~1
    assert result.epochs == 15
    assert result.best_val_loss < predict_the_mean / 20
    assert result.metrics[-1]['val_loss'] < result.metrics[0]['val_loss']


def _strip_seconds(metrics):
    return [{k: v for k, v in row.items() if k != 'seconds'} for row in metrics]


def _weights(run_dir, name='last.pt'):
    return load_checkpoint(Path(run_dir) / 'checkpoints' / name)['policy']


def test_same_seed_same_metrics_and_weights(dataset, tmp_path):
    config = TrainConfig(**{**FAST, 'epochs': 3, 'mlp': DROPOUT_1})
    first = train(dataset, config=config, run_dir=tmp_path / 'a', progress=False)
    second = train(dataset, config=config, run_dir=tmp_path / 'b', progress=False)
    assert _strip_seconds(first.metrics) == _strip_seconds(second.metrics)
    for key, value in _weights(tmp_path / 'a').items():
        assert torch.equal(value, _weights(tmp_path / 'b')[key])
    other = train(dataset, config=TrainConfig(**{**FAST, 'epochs': 3, 'mlp': DROPOUT_1,
                                                 'seed': 4}),
                  run_dir=tmp_path / 'c', progress=False)
    assert _strip_seconds(other.metrics) != _strip_seconds(first.metrics)


def _train_interrupted(dataset, config, run_dir, monkeypatch, *, epochs):
    """Train until ``epochs`` last.pt checkpoints are written, then stop as Ctrl-C would."""
    saves = []
    real_save = loop_module.save_checkpoint

    def crash_after_epochs(state, path):
        real_save(state, path)
        saves.append(path.name)
        if saves.count('last.pt') == epochs:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, 'save_checkpoint', crash_after_epochs)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, config=config, run_dir=run_dir, progress=False)
    monkeypatch.setattr(loop_module, 'save_checkpoint', real_save)


def test_resume_after_interruption_equals_uninterrupted(dataset, tmp_path, monkeypatch):
    config = TrainConfig(**{**FAST, 'mlp': DROPOUT_2, 'lr_schedule': 'cosine'})
    full = train(dataset, config=config, run_dir=tmp_path / 'full', progress=False)

    _train_interrupted(dataset, config, tmp_path / 'cut', monkeypatch, epochs=3)
    with pytest.raises(PipelineError, match='resume'):
        train(dataset, config=config, run_dir=tmp_path / 'cut', progress=False)
    with pytest.raises(ConfigError, match='lr'):
        train(dataset, config=TrainConfig(**{**FAST, 'mlp': DROPOUT_2, 'lr': 0.01,
                                             'lr_schedule': 'cosine'}),
              run_dir=tmp_path / 'cut', resume=True, progress=False)
    resumed = train(dataset, config=config, run_dir=tmp_path / 'cut', resume=True,
                    progress=False)
    assert _strip_seconds(resumed.metrics) == _strip_seconds(full.metrics)
    assert [r['epoch'] for r in read_metrics(tmp_path / 'cut')] == list(range(1, 7))
    for key, value in _weights(tmp_path / 'full').items():
        torch.testing.assert_close(_weights(tmp_path / 'cut')[key], value, rtol=0, atol=1e-6)


def test_ema_exports_the_averaged_weights_and_resumes_exactly(dataset, tmp_path, monkeypatch):
    """ema_decay: checkpoints hold the average (export reads it) and the trained weights."""
    config = TrainConfig(**{**FAST, 'epochs': 3, 'ema_decay': 0.9})
    snapshots = []
    real_step = torch.optim.Adam.step

    def step_and_record(optimizer, *args, **kwargs):
        result = real_step(optimizer, *args, **kwargs)
        snapshots.append([p.detach().clone() for p in optimizer.param_groups[0]['params']])
        return result

    monkeypatch.setattr(torch.optim.Adam, 'step', step_and_record)
    train(dataset, config=config, run_dir=tmp_path / 'ema', progress=False)
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / 'ema' / 'checkpoints' / 'last.pt')
    names = [k for k in state['trained_policy'] if k.startswith('network.')]
    for name, trained in zip(names, snapshots[-1]):
        torch.testing.assert_close(state['trained_policy'][name], trained, rtol=0, atol=0)
    expected = [s.clone() for s in snapshots[0]]       # the first step copies, then averages
    for n, snapshot in enumerate(snapshots[1:], start=1):
        decay = min(0.9, (1 + n) / (10 + n))
        expected = [e + (1 - decay) * (s - e) for e, s in zip(expected, snapshot)]
    for name, value in zip(names, expected):
        torch.testing.assert_close(state['policy'][name], value, rtol=1e-5, atol=1e-6)
        assert not torch.equal(state['policy'][name], state['trained_policy'][name])
    policy = load_run(tmp_path / 'ema', checkpoint='last').policy
    for name, value in zip(names, expected):
        torch.testing.assert_close(policy.state_dict()[name], value, rtol=1e-5, atol=1e-6)

    _train_interrupted(dataset, config, tmp_path / 'cut', monkeypatch, epochs=2)
    train(dataset, config=config, run_dir=tmp_path / 'cut', resume=True, progress=False)
    resumed = load_checkpoint(tmp_path / 'cut' / 'checkpoints' / 'last.pt')
    for key in ('policy', 'trained_policy'):
        for name, value in state[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=0, atol=1e-6)


def test_run_directory_contents_and_load_run(dataset, tmp_path):
    config = TrainConfig(**{**FAST, 'epochs': 3})
    run_dir = tmp_path / 'run'
    result = train(dataset, config=config, run_dir=run_dir, progress=False)
    run_config = json.loads((run_dir / 'config.json').read_text())
    assert run_config['train'] == config.to_dict()
    assert run_config['dataset_fingerprint'] == '0123456789abcdef'
    assert run_config['seed'] == 3 and run_config['action_joints'] == list(JOINTS)
    assert run_config['network'] == {'family': 'mlp', 'input_size': 8, 'output_size': 6,
                                     'history': 2, 'horizon': 3, 'action_size': 2,
                                     'options': {'hidden': [64, 64], 'dropout': 0.0}}
    assert run_config['processor']['layout'] == {'frame_size': 4, 'history': 2,
                                                 'reference': [], 'differences': [],
                                                 'hidden': []}
    with open(run_dir / 'metrics.csv', newline='') as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ['epoch', 'train_loss', 'val_loss', 'lr', 'seconds']
    assert [int(r['epoch']) for r in rows] == [1, 2, 3]
    assert (run_dir / 'loss.png').read_bytes()[:4] == b'\x89PNG'
    assert {p.name for p in (run_dir / 'checkpoints').iterdir()} == {'last.pt', 'best.pt'}
    assert any(p.name.startswith('events.out.tfevents')
               for p in (run_dir / 'tensorboard').iterdir())

    run = load_run(run_dir)
    assert run.epoch == result.best_epoch and run.description.observation.size == 8
    assert run.description.action_joints == tuple(JOINTS)
    data = _windows(dataset, 2, 3)
    obs, chunk = data.batch(data.splits['val'])
    processor = run.policy.processor
    with torch.no_grad():
        error = run.policy.network(processor.encode(obs)) - processor.targets(chunk, obs)
    assert float((error ** 2).mean()) == pytest.approx(result.best_val_loss, rel=1e-5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_torchrun_two_ranks_match_one_process(dataset, tmp_path):
    config = dict(FAST, epochs=3, batch_size=50)  # an odd last batch: 640 train rows
    script = tmp_path / 'run_ddp.py'
    script.write_text(textwrap.dedent(f'''
        import json, sys
        import il_policy_node.pipeline.training.loop as loop
        from il_policy_node.pipeline.training.config import TrainConfig
        from il_policy_node.pipeline.training.windows import ProcessedWindows
        seen, real_batch, real_setup = [], ProcessedWindows.batch, loop._setup

        def counting_batch(self, rows):
            seen.append(int(rows.shape[0]))
            return real_batch(self, rows)

        def recording_setup(device):
            ctx = loop._setup_seen = real_setup(device)
            return ctx

        ProcessedWindows.batch, loop._setup = counting_batch, recording_setup
        loop.train(sys.argv[1], config=TrainConfig(**{config!r}), run_dir=sys.argv[2],
                   progress=False)
        ctx = loop._setup_seen
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


GOAL_B = {'topic': '/goal', 'joints': ['b'], 'fields': ['position']}


def _goal_dataset(path, lengths=(40,) * 5):
    """Positions a, b, velocities, and a goal of joint b at the end of each frame."""
    rng = np.random.default_rng(0)
    n = sum(lengths)
    obs = rng.normal(size=(n, 5)).astype(np.float32)
    obs[:, 4] = 3.0 + obs[:, 1] + 0.1 * rng.normal(size=n)   # goal b near position b + 3
    actions = obs[:, :2] + 0.1
    return write_arrays(path, obs, actions, lengths=lengths, val=(4,), joints=('a', 'b'),
                        extra=[GOAL_B]), obs


def _reach_and_hold_dataset(path, episodes=8, move=30, rows=100):
    """Joint b reaches its goal (minimum jerk over ``move`` rows) and holds it; a stays at 0."""
    rng = np.random.default_rng(1)
    obs, actions = [], []
    for _ in range(episodes):
        goal = rng.uniform(-1.0, 1.0)
        start = goal + rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
        s, _, _ = min_jerk_profile(np.arange(rows + 1) / move)
        b = start + (goal - start) * s
        obs.append(np.stack([np.zeros(rows), b[:-1], np.full(rows, goal)], axis=1))
        actions.append(np.stack([np.zeros(rows), b[1:]], axis=1))
    obs = np.concatenate(obs)
    return write_arrays(path, obs, np.concatenate(actions), lengths=(rows,) * episodes,
                        val=(episodes - 1,), joints=('a', 'b'), fields=('position',),
                        extra=[GOAL_B]), obs


def test_state_noise_teaches_the_way_back_to_a_held_goal_input_noise_stops_short(tmp_path):
    path, obs = _reach_and_hold_dataset(tmp_path / 'ds')
    spread = float((obs[:700, 2] - obs[:700, 1]).std())      # goal - position, train rows
    goals = torch.tensor([-0.5, 0.0, 0.5])
    corrections = {}
    for name, noise in (('state', {'state_noise_rad': 0.1}),
                        ('inputs', {'obs_noise_std': 0.1 / spread})):   # the same 0.1 rad
        config = TrainConfig(mlp={'hidden': SMALL_MLP}, batch_size=64, epochs=30, patience=0,
                             device='cpu', seed=3, relative_actions=True, relative_inputs=True,
                             absolute_positions=False, **noise)
        train(path, config=config, run_dir=tmp_path / name, progress=False)
        policy = load_run(tmp_path / name, checkpoint='last').policy
        short = goals - 0.1                                  # at rest 0.1 rad short of a goal
        with torch.no_grad():
            target = policy(torch.stack([torch.zeros(3), short, goals], 1))[:, 0, 1]
        corrections[name] = ((target - short) / 0.1).tolist()  # fraction of the error closed
    # a held goal seen from a moved pose: go back (the label moved with the pose)
    assert min(corrections['state']) > 0.8, corrections
    # noise on the inputs alone: the hold's label (stay) is learned for nearby errors too
    assert max(corrections['inputs']) < 0.3, corrections


@pytest.mark.parametrize('options', [
    {}, {'relative_actions': True}, {'relative_inputs': True},
    {'relative_actions': True, 'relative_inputs': True, 'absolute_positions': False},
    {'relative_actions': True, 'relative_inputs': True, 'state_noise_rad': 0.05},
], ids=['absolute', 'relative actions', 'relative inputs', 'no absolute positions',
        'state noise'])
def test_the_exported_policy_is_the_trained_one(tmp_path, options):
    path, _ = _goal_dataset(tmp_path / 'ds')
    run_dir = tmp_path / 'run'
    train(path, config=TrainConfig(**{**FAST, 'epochs': 2, **options}), run_dir=run_dir,
          progress=False)
    run = load_run(run_dir, checkpoint='last')
    policy = load_policy(export_run(run_dir, tmp_path / 'policy.pt', checkpoint='last'))
    data = _windows(path, 2, 3)
    obs, _ = data.batch(data.splits['val'])
    with torch.no_grad():
        torch.testing.assert_close(policy.module(obs), run.policy(obs), rtol=1e-5, atol=1e-5)
    assert policy.metadata.observation.history == 2 and policy.metadata.action_horizon == 3
    for key in ('relative_actions', 'relative_inputs', 'absolute_positions'):
        assert policy.metadata.extra[key] is TrainConfig(**options).layout_options()[key]


def test_relative_inputs_see_the_goal_minus_the_position_of_the_same_joint(tmp_path):
    path, obs = _goal_dataset(tmp_path / 'ds')
    dataset = load_dataset(path)
    layout = ProcessorLayout.plan(dataset.observation_spec(2), ('a', 'b'),
                                  relative_inputs=True)
    assert layout.differences == ((4, 1),)               # goal b minus position b
    processor = fit_processor(dataset, _windows(path, 2, 1), layout)
    assert processor.differenced.tolist() == [4] and processor.subtracted.tolist() == [1]
    difference = obs[:160, 4] - obs[:160, 1]             # episodes 0-3: the train split
    assert float(processor.obs_mean[4]) == pytest.approx(difference.mean(), rel=1e-5)
    assert float(processor.obs_std[4]) == pytest.approx(difference.std(), rel=1e-4)
    assert float(processor.obs_mean[0]) == pytest.approx(obs[:160, 0].mean(), abs=1e-6)


def test_layout_errors_name_what_the_observation_lacks(tmp_path):
    path = sinusoid_dataset(tmp_path / 'ds', joints=('a', 'b'))
    spec = load_dataset(path).observation_spec()
    with pytest.raises(ConfigError, match=r"\['c'\] are not observed"):
        ProcessorLayout.plan(spec, ('b', 'c'), relative_actions=True)
    with pytest.raises(ConfigError, match='relative_inputs needs a further observed topic'):
        train(path, config=TrainConfig(**{**FAST, 'relative_inputs': True}),
              run_dir=tmp_path / 'run', progress=False)
    assert not (tmp_path / 'run').exists()
    with pytest.raises(ConfigError, match='relative_inputs must be true or false'):
        TrainConfig(relative_inputs='yes')


def test_without_absolute_positions_the_policy_acts_the_same_wherever_the_arm_is(tmp_path):
    path, _ = _goal_dataset(tmp_path / 'ds')
    run_dir = tmp_path / 'run'
    config = TrainConfig(**{**FAST, 'epochs': 2, 'relative_actions': True,
                            'relative_inputs': True, 'absolute_positions': False})
    train(path, config=config, run_dir=run_dir, progress=False)
    run_config = json.loads((run_dir / 'config.json').read_text())
    # frames of 5 columns (position a, b, velocity a, b, goal b): positions unseen
    assert run_config['processor']['layout']['hidden'] == [0, 1]
    assert run_config['network']['input_size'] == 6
    policy = load_policy(export_run(run_dir, tmp_path / 'policy.pt', checkpoint='last'))
    data = _windows(path, 2, 3)
    obs, _ = data.batch(data.splits['val'])
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
    positions_only = sinusoid_dataset(tmp_path / 'ds', fields=('position',))
    with pytest.raises(ConfigError, match='leaves the network no input.*only positions'):
        train(positions_only, run_dir=tmp_path / 'run', progress=False, config=TrainConfig(
            **{**FAST, 'relative_actions': True, 'absolute_positions': False}))
    assert not (tmp_path / 'run').exists()


def test_export_takes_the_best_or_the_last_checkpoint(dataset, tmp_path):
    run_dir = tmp_path / 'run'
    train(dataset, config=TrainConfig(**{**FAST, 'epochs': 3}), run_dir=run_dir,
          progress=False)
    obs = torch.ones(1, 8)
    for name in ('best', 'last'):
        run = load_run(run_dir, checkpoint=name)
        policy = load_policy(export_run(run_dir, tmp_path / f'{name}.pt', checkpoint=name))
        assert policy.metadata.extra['epoch'] == run.epoch
        with torch.no_grad():
            torch.testing.assert_close(policy.module(obs), run.policy(obs), rtol=1e-5,
                                       atol=1e-5)
    with pytest.raises(PipelineError, match='checkpoint must be one of'):
        export_run(run_dir, tmp_path / 'x.pt', checkpoint='first')
