"""Dataset and run directories of known content, written through the pipeline's own writers."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from il_policy_node.pipeline.dataset.format import load_dataset, write_dataset
from il_policy_node.pipeline.training.config import TrainConfig
from il_policy_node.pipeline.training.loop import describe_run
from il_policy_node.pipeline.training.run_dir import (
    checkpoint_path,
    save_checkpoint,
    write_run_config,
)
from il_policy_node.pipeline.training.windows import fit_processor, load_windows
from il_policy_node.policies.mlp import seed_mlp
from il_policy_node.policies.processor import Policy, ProcessorLayout
from il_policy_node.policies.statistics import Statistics

RATE_HZ = 50.0
JOINTS = ('j1', 'j2')
FIELDS = ('position', 'velocity')
OFFSETS = np.array([0.1, -0.2])        # offset_dataset: action = position + OFFSETS


def write_arrays(path: Path, obs: np.ndarray, actions: np.ndarray, *,
                 lengths: Sequence[int], val: Sequence[int] = (), joints=JOINTS,
                 fields=FIELDS, extra: Sequence[dict] = (), identity_stats: bool = False,
                 fingerprint: str = '0123456789abcdef') -> Path:
    """A dataset of these rows (episode e: ``lengths[e]`` rows; ``val``: its episodes)."""
    obs, actions = np.asarray(obs, np.float32), np.asarray(actions, np.float32)
    starts = np.cumsum((0,) + tuple(lengths))[:-1]
    splits = ['val' if e in val else 'train' for e in range(len(lengths))]
    train = np.concatenate([np.arange(s, s + n) for s, n, split in zip(starts, lengths, splits)
                            if split == 'train'])
    if identity_stats:
        stats = {'observation': {'mean': [0.0] * obs.shape[1], 'std': [1.0] * obs.shape[1]},
                 'action': {'mean': [0.0] * actions.shape[1], 'std': [1.0] * actions.shape[1]}}
    else:
        stats = {'observation': Statistics.of(obs[train]).to_dict(),
                 'action': Statistics.of(actions[train]).to_dict()}
    manifest = {
        'created': '2026-01-01T00:00:00Z', 'control_rate_hz': RATE_HZ, 'config': {},
        'observation': {'topic': '/joint_states', 'joints': list(joints),
                        'fields': list(fields), 'extra': list(extra)},
        'action': {'joints': list(joints), 'source': 'future_state', 'topic': None,
                   'future_steps': 1},
        'timestamps': 'header', 'fingerprint': fingerprint, 'stats': stats,
        'episodes': [{'name': f'episode_{e:04d}', 'bag': f'bags/episode_{e:04d}',
                      'bag_fingerprint': f'{e:016x}', 'split': splits[e], 'start': int(s),
                      'length': int(n), 'duration_s': (n - 1) / RATE_HZ, 'success': True,
                      'task': 'wave', 'segment': 0}
                     for e, (s, n) in enumerate(zip(starts, lengths))],
        'skipped': [], 'splits': {'seed': 0, 'val_fraction': 0.2}}
    arrays = {'observations': obs, 'actions': actions,
              'episode': np.repeat(np.arange(len(lengths)), lengths).astype(np.int32),
              'time': np.concatenate([np.arange(n) / RATE_HZ for n in lengths])}
    return write_dataset(path, manifest, arrays)


def sinusoids(t: np.ndarray, episode: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities [T, 2] of a known episode (its own frequency and phase)."""
    phase = 0.7 * episode
    w = np.array([2.0, 3.0]) * (1.0 + 0.1 * episode)
    q = np.array([0.2, -0.1]) + np.array([0.5, 0.3]) * np.sin(w * t[:, None] + phase)
    v = np.array([0.5, 0.3]) * w * np.cos(w * t[:, None] + phase)
    return q, v


def sinusoid_dataset(path: Path, *, lengths: Sequence[int] = (80,) * 10,
                     val: Sequence[int] = (2, 7), fields=FIELDS, joints=JOINTS,
                     offsets: np.ndarray | None = None, identity_stats: bool = False) -> Path:
    """Episodes of sinusoids; observations = the ``fields`` of the positions, velocities.

    Action = the next position, or, with ``offsets``, the position + offsets (a model that
    outputs the position then has RMSE |offsets|).
    """
    blocks, actions = {'position': [], 'velocity': []}, []
    for e, n in enumerate(lengths):
        q, v = sinusoids(np.arange(n + 1) / RATE_HZ, e)
        blocks['position'].append(q[:-1])
        blocks['velocity'].append(v[:-1])
        actions.append(q[1:] if offsets is None else q[:-1] + offsets)
    obs = np.concatenate([np.concatenate(blocks[f]) for f in fields], axis=1)
    return write_arrays(path, obs, np.concatenate(actions), lengths=lengths, val=val,
                        joints=joints, fields=fields, identity_stats=identity_stats)


def offset_dataset(path: Path, *, episodes: int = 4, rows: int = 60, val: Sequence[int] = (3,),
                   identity_stats: bool = False, joints=JOINTS) -> Path:
    """Action = position + OFFSETS."""
    return sinusoid_dataset(path, lengths=(rows,) * episodes, val=val, joints=joints,
                            offsets=OFFSETS, identity_stats=identity_stats)


def write_run(path: Path, dataset: Path, network: torch.nn.Module, *, history: int,
              horizon: int, **options) -> Path:
    """A run directory as train() writes it, with ``network``'s weights in best.pt and last.pt.

    The processor is fitted to the dataset as train() fits it; ``options``: TrainConfig keys.
    """
    config = TrainConfig(history=history, horizon=horizon, epochs=1, **options)
    data = load_dataset(dataset)
    layout = ProcessorLayout.plan(data.observation_spec(history), data.action_joints,
                                  **config.layout_options())
    processor = fit_processor(data, load_windows(data, history=history, horizon=horizon),
                              layout)
    description = describe_run(data, config, layout, processor.describe())
    policy = Policy(processor, network)
    (path / 'checkpoints').mkdir(parents=True)
    write_run_config(path, description)
    state = {'policy': policy.state_dict(), 'optimizer': {}, 'scheduler': None, 'epoch': 1,
             'best_val': 0.0, 'best_epoch': 1, 'bad_epochs': 0, 'val_loss': 0.0,
             'rng': {}, 'metrics': [], 'run': description.to_dict()}
    for name in ('best', 'last'):
        save_checkpoint(state, checkpoint_path(path, name))
    return path


def random_mlp(history: int, horizon: int, hidden: Sequence[int] = (16,), seed: int = 0,
               frame: int = len(FIELDS) * len(JOINTS)) -> torch.nn.Module:
    torch.manual_seed(seed)
    return seed_mlp(history * frame, horizon * len(JOINTS), hidden).eval()


def position_picker(history: int, frame_index: int) -> torch.nn.Module:
    """A hand-set linear network (seed_mlp with no hidden layer): the positions of one frame.

    On a dataset with identity statistics the policy then outputs those positions.
    """
    frame = len(FIELDS) * len(JOINTS)
    network = seed_mlp(history * frame, len(JOINTS), ())
    with torch.no_grad():
        network[0].weight.zero_()
        network[0].bias.zero_()
        for j in range(len(JOINTS)):
            network[0].weight[j, frame_index * frame + j] = 1.0
    return network.eval()
