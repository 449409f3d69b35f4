"""Training throughput of `il-policy train` vs a bare PyTorch loop, on CPU, batch 256.

The seed MLP (60 -> 256 -> 256 -> 30: 30 joints, positions and velocities, k = H = 1) with
Adam lr 1e-3 and MSE. A synthetic dataset in the contract format is written to a temporary
directory. The floor is a bare loop over the same rows normalized once in advance by the run's
processor (one randperm per pass, index, forward, backward, step), timed before and after our
run (their mean is the floor). Ours is pipeline/training train() on that dataset (which also
puts the rows through the processor once, then gathers batches), sized to take about half of
--seconds:
samples_per_s counts the training rows of every epoch over the epochs' own time (training steps
and the validation pass, as in metrics.csv); samples_per_s_end_to_end over the whole train()
call (loading, checkpoints, TensorBoard, loss plot). Progress goes to stderr; the last stdout
line is one JSON object. Usage: ``python bench/train.py --seconds 30``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from il_policy_node.pipeline.dataset.format import load_dataset, write_dataset
from il_policy_node.pipeline.training.config import TrainConfig
from il_policy_node.pipeline.training.loop import train
from il_policy_node.pipeline.training.windows import fit_processor, load_windows
from il_policy_node.policies.mlp import seed_mlp
from il_policy_node.policies.processor import ProcessorLayout
from il_policy_node.policies.statistics import Statistics

JOINTS = 30
BATCH = 256
EPOCHS = 3
VAL_EVERY = 10  # one episode in ten is validation
GOAL = 0.9


def synthetic_dataset(path: Path, rows: int) -> Path:
    """A 30-joint dataset of sinusoids in episodes of 500 rows; action = next position."""
    length = 500
    episodes = max(2, -(-rows // length))
    rng = np.random.default_rng(0)
    t = np.arange(length + 1)[:, None] / 100.0
    pos, vel, act = [], [], []
    for _ in range(episodes):
        q = np.sin(2 * np.pi * rng.uniform(0.2, 1.0, JOINTS) * t + rng.uniform(0, 6, JOINTS))
        pos.append(q[:-1])
        vel.append(np.gradient(q, 0.01, axis=0)[:-1])
        act.append(q[1:])
    obs = np.concatenate([np.concatenate(pos), np.concatenate(vel)], axis=1).astype(np.float32)
    actions = np.concatenate(act).astype(np.float32)
    splits = ['val' if e % VAL_EVERY == 0 else 'train' for e in range(episodes)]
    train_rows = np.concatenate([np.arange(e * length, (e + 1) * length)
                                 for e in range(episodes) if splits[e] == 'train'])
    joints = [f'joint_{j:02d}' for j in range(JOINTS)]
    manifest = {
        'created': '2026-01-01T00:00:00Z', 'control_rate_hz': 100.0, 'config': {},
        'observation': {'topic': '/joint_states', 'joints': joints,
                        'fields': ['position', 'velocity'], 'extra': []},
        'action': {'joints': joints, 'source': 'future_state', 'topic': None,
                   'future_steps': 1},
        'timestamps': 'header', 'fingerprint': '0123456789abcdef',
        'stats': {'observation': Statistics.of(obs[train_rows]).to_dict(),
                  'action': Statistics.of(actions[train_rows]).to_dict()},
        'episodes': [{'name': f'episode_{e:04d}', 'bag': '', 'bag_fingerprint': '',
                      'split': splits[e], 'start': e * length, 'length': length,
                      'duration_s': (length - 1) / 100.0, 'success': True, 'task': None,
                      'segment': 0} for e in range(episodes)],
        'skipped': [], 'splits': {'seed': 0, 'val_fraction': 1 / VAL_EVERY}}
    arrays = {'observations': obs, 'actions': actions,
              'episode': np.repeat(np.arange(episodes), length).astype(np.int32),
              'time': np.tile(np.arange(length) / 100.0, episodes)}
    return write_dataset(path, manifest, arrays)


def normalized_rows(path: Path) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The training rows as the network sees them (inputs, targets), normalized once."""
    dataset = load_dataset(path)
    data = load_windows(dataset, history=1, horizon=1)
    processor = fit_processor(dataset, data, ProcessorLayout.plan(
        dataset.observation_spec(), dataset.action_joints))
    obs, chunk = data.batch(data.splits['train'])
    return processor.encode(obs), processor.targets(chunk, obs), int(obs.shape[0])


def floor_loop(obs: torch.Tensor, act: torch.Tensor, seconds: float) -> float:
    """Samples/s of a bare PyTorch loop over in-memory tensors with the same model/optimizer."""
    torch.manual_seed(0)
    model = seed_mlp(obs.shape[1], act.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, samples, began = obs.shape[0], 0, None
    while True:
        perm = torch.randperm(n)
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            loss = F.mse_loss(model(obs[idx]), act[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if began is None:  # the first step warms up
                began = time.perf_counter()
                continue
            samples += idx.shape[0]
            if time.perf_counter() - began >= seconds:
                return samples / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=30.0, help='total measuring time')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix='bench_train_') as tmp:
        tmp = Path(tmp)
        probe, probe_targets, _ = normalized_rows(synthetic_dataset(tmp / 'probe', 20_000))
        rate = floor_loop(probe, probe_targets, min(2.0, args.seconds / 10))
        train_rows = max(BATCH * 4, int(rate * args.seconds / 2 / EPOCHS))
        dataset = synthetic_dataset(tmp / 'ds', int(train_rows * VAL_EVERY / (VAL_EVERY - 1)))
        obs, act, n_train = normalized_rows(dataset)   # the floor's tensors: the same rows
        floor_before = floor_loop(obs, act, args.seconds / 4)
        print(f'floor: {floor_before:.0f} samples/s', file=sys.stderr)
        config = TrainConfig(batch_size=BATCH, epochs=EPOCHS, patience=0, device='cpu')
        began = time.perf_counter()
        result = train(dataset, config=config, run_dir=tmp / 'run', progress=True)
        end_to_end = time.perf_counter() - began
        epoch_seconds = sum(row['seconds'] for row in result.metrics)
        ours = n_train * EPOCHS / epoch_seconds
        print(f'ours: {ours:.0f} samples/s', file=sys.stderr)

        floor_after = floor_loop(obs, act, args.seconds / 4)
    floor = (floor_before + floor_after) / 2
    print(json.dumps({
        'batch_size': BATCH, 'model': '60-256-256-30 seed MLP, Adam 1e-3, MSE',
        'threads': torch.get_num_threads(), 'train_rows': n_train, 'epochs': EPOCHS,
        'samples_per_s': round(ours, 1),
        'samples_per_s_end_to_end': round(n_train * EPOCHS / end_to_end, 1),
        'floor_samples_per_s': round(floor, 1),
        'floor_samples_per_s_before_after': [round(floor_before, 1), round(floor_after, 1)],
        'ratio': round(ours / floor, 3), 'goal': f'>= {GOAL} x floor',
        'goal_met': ours >= GOAL * floor}))


if __name__ == '__main__':
    main()
