"""The run directory: config.json, checkpoints, metrics.csv, loss.png (and tensorboard/).

A checkpoint holds only tensors and plain values (dicts, lists, numbers, strings) and is read
with ``torch.load(weights_only=True)``: a run folder from someone else cannot run code here.
It carries the run's description (the policy's processor and network, the dataset's spec), so
the policy is rebuilt from the checkpoint alone.
"""
from __future__ import annotations

import csv
import json
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from il_policy_node.errors import CheckpointError, PipelineError
from il_policy_node.files import atomic_file
from il_policy_node.formats import (
    CHECKPOINT_FILES,
    CHECKPOINT_FORMAT_VERSION,
    CHECKPOINTS_DIR,
    METRICS_FILE,
    RUN_CONFIG_FILE,
)
from il_policy_node.pipeline.training.config import TrainConfig
from il_policy_node.policies.networks import build_network
from il_policy_node.policies.processor import Policy, Processor
from il_policy_node.runtime.observation import ObservationSpec

METRICS_COLUMNS = ('epoch', 'train_loss', 'val_loss', 'lr', 'seconds')
# what every checkpoint holds, and the type of each
CHECKPOINT_KEYS = {'format_version': int, 'policy': dict, 'optimizer': dict, 'epoch': int,
                   'best_val': float, 'best_epoch': int, 'bad_epochs': int, 'val_loss': float,
                   'rng': dict, 'metrics': list, 'run': dict}


@dataclass(frozen=True)
class RunDescription:
    """What a run trains: the policy's parts and the data it sees (config.json, checkpoints)."""

    train: TrainConfig
    dataset: str                          # the dataset directory trained on
    dataset_fingerprint: str
    observation: ObservationSpec          # with the run's history
    action_joints: tuple[str, ...]
    control_rate_hz: float
    processor: Mapping[str, Any]          # Processor.describe()
    network: Mapping[str, Any]            # policies.networks description

    def to_dict(self) -> dict[str, Any]:
        return {'train': self.train.to_dict(), 'dataset': self.dataset,
                'dataset_fingerprint': self.dataset_fingerprint,
                'observation': self.observation.to_dict(),
                'action_joints': list(self.action_joints),
                'control_rate_hz': self.control_rate_hz, 'processor': dict(self.processor),
                'network': dict(self.network), 'seed': self.train.seed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'RunDescription':
        return cls(train=TrainConfig.from_mapping(data['train']), dataset=str(data['dataset']),
                   dataset_fingerprint=str(data['dataset_fingerprint']),
                   observation=ObservationSpec.from_dict(data['observation']),
                   action_joints=tuple(data['action_joints']),
                   control_rate_hz=float(data['control_rate_hz']),
                   processor=data['processor'], network=data['network'])

    def build_policy(self) -> Policy:
        """The untrained policy of this description (weights and statistics: a state dict)."""
        return Policy(Processor.from_description(self.processor), build_network(self.network))


def checkpoint_path(run_dir: Path, name: str) -> Path:
    """The checkpoint file of ``best`` (lowest validation loss) or ``last`` (final epoch)."""
    if name not in CHECKPOINT_FILES:
        raise PipelineError(f'checkpoint must be one of {sorted(CHECKPOINT_FILES)}, got '
                            f'{name!r}')
    return Path(run_dir) / CHECKPOINTS_DIR / CHECKPOINT_FILES[name]


def save_checkpoint(state: Mapping[str, Any], path: Path) -> None:
    """Write a checkpoint atomically (the dict of CHECKPOINT_KEYS)."""
    with atomic_file(path) as stream:
        torch.save({'format_version': CHECKPOINT_FORMAT_VERSION, **state}, stream)


def load_checkpoint(path: Path, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """A checkpoint's dict; CheckpointError names the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: no such checkpoint (has training finished an epoch?)')
    if path.stat().st_size == 0:
        raise CheckpointError(f'{path}: empty file (0 bytes), not a checkpoint')
    with open(path, 'rb') as stream:
        if stream.read(1) == b'\x80':
            raise CheckpointError(f'{path}: a Python pickle, not a checkpoint of il-policy '
                                  'train (a zip of tensors and plain values); refused, never '
                                  'unpickled')
    try:
        with warnings.catch_warnings():   # torch warns about pickles it then refuses anyway
            warnings.simplefilter('ignore', UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f'{path}: refused: it holds Python objects, not only tensors and plain values '
            '(checkpoints of il-policy train never do; it is not loaded)') from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        detail = ' '.join(str(exc).split()).split('. ')[0] or type(exc).__name__
        raise CheckpointError(f'{path}: truncated or not a torch checkpoint ({detail})') \
            from None
    if not isinstance(state, dict):
        raise CheckpointError(f'{path}: not a checkpoint of il-policy train (holds a '
                              f'{type(state).__name__}, not a dict)')
    if 'format_version' not in state and 'dataset_info' in state:
        raise CheckpointError(f'{path}: written by il_policy_node before the policy '
                              'processor (checkpoint format 1): train the run again')
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(f'{path}: not a checkpoint of il-policy train (missing '
                              f'{missing})')
    if state['format_version'] != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(f'{path}: checkpoint format {state["format_version"]!r}, this '
                              f'version reads {CHECKPOINT_FORMAT_VERSION}')
    wrong = [key for key, kind in CHECKPOINT_KEYS.items()
             if not isinstance(state[key], (int, float) if kind is float else kind)]
    if wrong:
        raise CheckpointError(f'{path}: not a checkpoint of il-policy train ({wrong} have the '
                              'wrong type)')
    return state


@dataclass(frozen=True)
class TrainedRun:
    """A run's policy at one checkpoint (eval mode), with its description."""

    run_dir: Path
    checkpoint: Path
    description: RunDescription
    policy: Policy
    epoch: int
    val_loss: float


def load_run(run_dir: str | Path, *, checkpoint: str = 'best',
             map_location: str | torch.device = 'cpu') -> TrainedRun:
    """The policy of a run directory at ``checkpoint`` (best or last), in eval mode."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PipelineError(f'{run_dir}: no such run directory')
    if not (run_dir / RUN_CONFIG_FILE).is_file():
        raise PipelineError(f'{run_dir}: not a run directory ({RUN_CONFIG_FILE} is missing)')
    path = checkpoint_path(run_dir, checkpoint)
    state = load_checkpoint(path, map_location)
    try:
        description = RunDescription.from_dict(state['run'])
        policy = description.build_policy()
        policy.load_state_dict(state['policy'])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        detail = ' '.join(str(exc).split())[:300]
        raise CheckpointError(f'{path}: the policy cannot be rebuilt from it '
                              f'({type(exc).__name__}: {detail})') from None
    policy.eval()
    return TrainedRun(run_dir=run_dir, checkpoint=path, description=description,
                      policy=policy, epoch=int(state['epoch']),
                      val_loss=float(state['val_loss']))


def write_run_config(run_dir: Path, description: RunDescription) -> None:
    with atomic_file(run_dir / RUN_CONFIG_FILE, 'w') as stream:
        stream.write(json.dumps(description.to_dict(), indent=2) + '\n')


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as exc:
        raise PipelineError(f'{path}: cannot be read ({exc})') from None
    if not isinstance(data, dict):
        raise PipelineError(f'{path}: not a JSON object')
    return data


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    with atomic_file(path, 'w') as stream:
        writer = csv.DictWriter(stream, fieldnames=METRICS_COLUMNS, lineterminator='\n')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(row[k]) if isinstance(row[k], float) else row[k]
                             for k in METRICS_COLUMNS})


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """Read metrics.csv of a run directory (epoch as int, the rest as float)."""
    with open(Path(run_dir) / METRICS_FILE, newline='') as stream:
        return [{k: int(v) if k == 'epoch' else float(v) for k, v in row.items()}
                for row in csv.DictReader(stream)]


def plot_losses(rows: list[dict[str, float]], path: str | Path) -> None:
    """Train and validation loss per epoch (log scale) as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [r['epoch'] for r in rows]
    ax.plot(epochs, [r['train_loss'] for r in rows], label='train')
    ax.plot(epochs, [r['val_loss'] for r in rows], label='validation')
    ax.set_xlabel('epoch')
    ax.set_ylabel('MSE (normalized)')
    if rows and all(r['train_loss'] > 0 and r['val_loss'] > 0 for r in rows):
        ax.set_yscale('log')
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

