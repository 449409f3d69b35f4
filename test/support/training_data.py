"""Dataset directories in the pipeline contract format, written directly for training tests."""
import json
from pathlib import Path

import numpy as np

RATE = 50.0
JOINTS = ('a', 'b')


def write_dataset(path: Path, *, lengths=(80,) * 10, val=(2, 7), obs=None, actions=None,
                  episode=None, joints=JOINTS, extra=(),
                  fields=('position', 'velocity')) -> Path:
    """Write a contract dataset (train-split stats); default: two joints on sinusoids.

    Without ``obs``/``actions``: per episode, joint a = sin, joint b = 0.5 cos at its own
    frequency and phase; observations = positions then velocities (the observed ``fields``);
    action = next position.
    ``extra``: the manifest's further observed topics (their columns must be in ``obs``).
    """
    path.mkdir(parents=True, exist_ok=True)
    starts = np.cumsum((0,) + tuple(lengths))[:-1]
    if obs is None:
        pos, vel, act = [], [], []
        for e, n in enumerate(lengths):
            t = np.arange(n + 1) / RATE
            freq, phase = 0.5 + 0.1 * e, 0.7 * e
            q = np.stack([np.sin(2 * np.pi * freq * t + phase),
                          0.5 * np.cos(2 * np.pi * freq * t + 2 * phase)], axis=1)
            dq = np.gradient(q, 1 / RATE, axis=0)
            pos.append(q[:-1])
            vel.append(dq[:-1])
            act.append(q[1:])
        blocks = {'position': np.concatenate(pos), 'velocity': np.concatenate(vel)}
        obs = np.concatenate([blocks[f] for f in fields], axis=1)
        actions = np.concatenate(act)
    obs, actions = np.asarray(obs, np.float32), np.asarray(actions, np.float32)
    if episode is None:
        episode = np.repeat(np.arange(len(lengths)), lengths)
    splits = ['val' if e in val else 'train' for e in range(len(lengths))]
    train_rows = np.concatenate([np.arange(s, s + n) for s, n, sp in
                                 zip(starts, lengths, splits) if sp == 'train'])
    stats = {'observation': {'mean': obs[train_rows].mean(0).tolist(),
                             'std': obs[train_rows].std(0).tolist()},
             'action': {'mean': actions[train_rows].mean(0).tolist(),
                        'std': actions[train_rows].std(0).tolist()}}
    manifest = {
        'format_version': 1, 'created': '2026-01-01T00:00:00Z', 'control_rate_hz': RATE,
        'config': {}, 'observation': {'topic': '/joint_states', 'joints': list(joints),
                                      'fields': list(fields),
                                      'extra': list(extra)},
        'action': {'joints': list(joints), 'source': 'future_state', 'topic': None,
                   'future_steps': 1},
        'timestamps': 'header', 'fingerprint': '0123456789abcdef', 'stats': stats,
        'episodes': [{'name': f'ep{e}', 'bag': f'bag{e}', 'bag_fingerprint': 'x',
                      'split': splits[e], 'start': int(s), 'length': int(n),
                      'duration_s': n / RATE, 'success': True, 'task': None, 'segment': 0}
                     for e, (s, n) in enumerate(zip(starts, lengths))],
        'skipped': [], 'splits': {'seed': 0, 'val_fraction': 0.2}}
    (path / 'manifest.json').write_text(json.dumps(manifest))
    time = np.concatenate([np.arange(n) / RATE for n in lengths])
    np.savez(path / 'data.npz', observations=obs, actions=actions,
             episode=np.asarray(episode, np.int32), time=time)
    return path
