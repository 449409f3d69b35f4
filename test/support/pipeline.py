"""Dataset and run directories written directly in the pipeline contract's format, for tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from il_policy_node.core.dataset import load_dataset
from il_policy_node.core.models import seed_mlp
from il_policy_node.core.train import TrainConfig
from il_policy_node.core.training_data import DatasetInfo

JOINTS = ['j1', 'j2']
FIELDS = ['position', 'velocity']
RATE_HZ = 50.0
OFFSETS = np.array([0.1, -0.2])


def trajectory(t: np.ndarray, episode: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities [T, 2] of one known episode."""
    phase = 0.7 * episode
    w = np.array([2.0, 3.0])
    q = np.array([0.2, -0.1]) + np.array([0.5, 0.3]) * np.sin(w * t[:, None] + phase)
    v = np.array([0.5, 0.3]) * w * np.cos(w * t[:, None] + phase)
    return q, v


def write_dataset(path: Path, *, episodes: int = 4, rows: int = 60, val: Sequence[int] = (3,),
                  identity_stats: bool = False, joints: Sequence[str] = JOINTS) -> Path:
    """Actions = position + OFFSETS (so a model that outputs the position has RMSE |OFFSETS|)."""
    path.mkdir(parents=True)
    obs, act, episode, time, entries = [], [], [], [], []
    for e in range(episodes):
        t = np.arange(rows) / RATE_HZ
        q, v = trajectory(t, e)
        obs.append(np.hstack([q, v]))
        act.append(q + OFFSETS)
        episode.append(np.full(rows, e, np.int32))
        time.append(t)
        entries.append({'name': f'episode_{e:04d}', 'bag': f'bags/episode_{e:04d}',
                        'bag_fingerprint': f'{e:016x}', 'split': 'val' if e in val else 'train',
                        'start': e * rows, 'length': rows, 'duration_s': (rows - 1) / RATE_HZ,
                        'success': True, 'task': 'wave', 'segment': 0})
    arrays = {'observations': np.vstack(obs).astype(np.float32),
              'actions': np.vstack(act).astype(np.float32),
              'episode': np.concatenate(episode), 'time': np.concatenate(time)}
    train = np.concatenate([np.arange(e * rows, (e + 1) * rows) for e in range(episodes)
                            if e not in val])
    if identity_stats:
        stats = {'observation': {'mean': [0.0] * 4, 'std': [1.0] * 4},
                 'action': {'mean': [0.0] * 2, 'std': [1.0] * 2}}
    else:
        stats = {key: {'mean': arrays[name][train].mean(0).tolist(),
                       'std': arrays[name][train].std(0).tolist()}
                 for key, name in (('observation', 'observations'), ('action', 'actions'))}
    manifest = {
        'format_version': 1, 'created': '2026-01-01T00:00:00Z', 'control_rate_hz': RATE_HZ,
        'config': {}, 'observation': {'topic': '/joint_states', 'joints': list(joints),
                                      'fields': FIELDS},
        'action': {'joints': list(joints), 'source': 'future_state', 'topic': None,
                   'future_steps': 1},
        'timestamps': 'header', 'fingerprint': 'abcdef0123456789', 'stats': stats,
        'episodes': entries, 'skipped': [], 'splits': {'seed': 0, 'val_fraction': 0.25}}
    np.savez(path / 'data.npz', **arrays)
    (path / 'manifest.json').write_text(json.dumps(manifest, indent=2))
    return path


def write_run(path: Path, dataset: Path, model: torch.nn.Module, *, history: int, horizon: int,
              hidden: Sequence[int]) -> Path:
    """A run directory as train() writes it, with ``model``'s weights in checkpoints/best.pt."""
    (path / 'checkpoints').mkdir(parents=True)
    config = TrainConfig(hidden=tuple(hidden), history=history, horizon=horizon, epochs=1)
    data = load_dataset(dataset)
    info = DatasetInfo.from_manifest(dataset, data.manifest)
    run_config = {'train': config.to_dict(), 'dataset': str(dataset.resolve()),
                  'dataset_fingerprint': info.fingerprint,
                  'model': {'kind': 'mlp', 'hidden': list(hidden), 'dropout': 0.0,
                            'history': history, 'horizon': horizon,
                            'obs_size': history * info.frame_size,
                            'action_size': horizon * info.action_size},
                  'seed': config.seed}
    (path / 'config.json').write_text(json.dumps(run_config, indent=2))
    torch.save({'model': model.state_dict(), 'optimizer': {}, 'scheduler': None, 'epoch': 1,
                'best_val': 0.0, 'best_epoch': 1, 'bad_epochs': 0, 'val_loss': 0.0,
                'rng': None, 'metrics': [], 'dataset_info': info.to_dict(),
                'config': run_config}, path / 'checkpoints' / 'best.pt')
    return path


def random_mlp(history: int, horizon: int, hidden: Sequence[int] = (16,),
               seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    frame = len(FIELDS) * len(JOINTS)
    return seed_mlp(history * frame, horizon * len(JOINTS), hidden).eval()


def position_picker(history: int, frame_index: int) -> torch.nn.Module:
    """A hand-set linear model (seed_mlp with no hidden layer): the positions of one frame."""
    frame = len(FIELDS) * len(JOINTS)
    model = seed_mlp(history * frame, len(JOINTS), ())
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
        for j in range(len(JOINTS)):
            model[0].weight[j, frame_index * frame + j] = 1.0
    return model.eval()
