"""Behavioral-cloning training: TrainConfig, train() writing a run directory, load_run().

Single process by default; under ``torchrun`` (RANK / WORLD_SIZE in the environment) it joins
the process group (gloo on CPU, nccl on CUDA) and trains a DistributedDataParallel model:
every step takes one global batch of ``batch_size`` rows from a permutation that depends only
on (seed, epoch), each rank takes every world_size-th row of it, and the loss is scaled so
that DDP's gradient average equals the gradient of the global-batch mean. So N ranks give the
same updates as one process (up to float summation order). Only rank 0 writes the run dir.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from il_policy_node.core.dataset import PipelineError
from il_policy_node.core.models import SelectColumns, seed_mlp
from il_policy_node.core.observation import ObservationSpec
from il_policy_node.core.training_data import (
    DatasetInfo,
    WindowedData,
    load_windows,
    state_position_columns,
)

_log = logging.getLogger(__name__)

CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.csv'
METRICS_COLUMNS = ('epoch', 'train_loss', 'val_loss', 'lr', 'seconds')
LAST, BEST = 'last.pt', 'best.pt'
LR_SCHEDULES = ('none', 'cosine', 'step')
DEVICES = ('cpu', 'cuda', 'auto')
EVAL_BATCH = 16384
# Keys that may differ between a run and its --resume (everything else must match).
RESUMABLE_CHANGES = ('epochs', 'patience')


class ConfigError(ValueError):
    """A bad train.yaml value; the message names the key."""


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (config/train.yaml documents each key)."""

    hidden: tuple[int, ...] = (256, 256)
    dropout: float = 0.0
    history: int = 1
    horizon: int = 1
    batch_size: int = 256
    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    obs_noise_std: float = 0.0
    relative_actions: bool = False
    relative_inputs: bool = False
    absolute_positions: bool = True
    lr_schedule: str = 'none'
    lr_step_epochs: int = 30
    lr_gamma: float = 0.1
    lr_min: float = 0.0
    patience: int = 10
    seed: int = 0
    device: str = 'auto'

    def __post_init__(self) -> None:
        hidden = self.hidden
        if isinstance(hidden, (int, str)) or not all(
                isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
            raise ConfigError(f'hidden must be a list of positive integers, got {hidden!r}')
        object.__setattr__(self, 'hidden', tuple(hidden))
        for key, low in (('history', 1), ('horizon', 1), ('batch_size', 1), ('epochs', 1),
                         ('lr_step_epochs', 1), ('patience', 0), ('seed', 0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f'{key} must be an integer >= {low}, got {value!r}')
        for key in ('dropout', 'lr', 'weight_decay', 'obs_noise_std', 'lr_gamma', 'lr_min'):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ConfigError(f'{key} must be a number, got {value!r}')
            object.__setattr__(self, key, float(value))
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f'dropout must be in [0, 1), got {self.dropout}')
        if self.lr <= 0:
            raise ConfigError(f'lr must be > 0, got {self.lr}')
        if self.weight_decay < 0 or self.lr_min < 0 or self.lr_gamma <= 0 or \
                self.obs_noise_std < 0:
            bad = next(k for k in ('weight_decay', 'lr_min', 'lr_gamma', 'obs_noise_std')
                       if getattr(self, k) < 0 or (k == 'lr_gamma' and self.lr_gamma <= 0))
            raise ConfigError(f'{bad} must be {"> 0" if bad == "lr_gamma" else ">= 0"}, '
                              f'got {getattr(self, bad)}')
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f'lr_schedule must be one of {list(LR_SCHEDULES)}, '
                              f'got {self.lr_schedule!r}')
        if self.device not in DEVICES:
            raise ConfigError(f'device must be one of {list(DEVICES)}, got {self.device!r}')
        for key in ('relative_actions', 'relative_inputs', 'absolute_positions'):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f'{key} must be true or false, got {getattr(self, key)!r}')
        if not self.absolute_positions and not self.relative_actions:
            raise ConfigError('absolute_positions: false needs relative_actions: true (the '
                              'targets are then built on the observed positions)')

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> 'TrainConfig':
        """Build from plain values (missing keys take defaults); unknown keys are refused."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f'unknown key(s) {unknown} in train config; known: {sorted(known)}')
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> 'TrainConfig':
        """Read a train.yaml (flat mapping of the keys above)."""
        import yaml
        try:
            data = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f'{path} is not valid YAML: {exc}') from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f'{path} must hold a mapping of keys, got {type(data).__name__}')
        try:
            return cls.from_mapping(data)
        except ConfigError as exc:
            raise ConfigError(f'{path}: {exc}') from None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data['hidden'] = list(self.hidden)
        return data


@dataclass(frozen=True)
class RunResult:
    """What train() did: the run directory, per-epoch metrics and the best epoch."""

    run_dir: Path
    epochs: int
    best_epoch: int
    best_val_loss: float
    final_train_loss: float
    final_val_loss: float
    stopped_early: bool
    metrics: tuple[dict[str, float], ...]


@dataclass(frozen=True)
class RunInfo:
    """A trained run as export needs it: config, dataset joints and statistics, shapes."""

    run_dir: Path
    checkpoint: Path
    config: TrainConfig
    dataset: DatasetInfo
    dataset_path: str
    epoch: int
    val_loss: float

    @property
    def history(self) -> int:
        return self.config.history

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def obs_size(self) -> int:
        return self.config.history * self.dataset.frame_size

    @property
    def action_size(self) -> int:
        """Joints per action (the model outputs ``horizon * action_size`` values)."""
        return self.dataset.action_size

    @property
    def observation_spec(self) -> ObservationSpec:
        return self.dataset.observation_spec(self.config.history)

    @property
    def obs_mean(self) -> np.ndarray:
        """Observation mean tiled over the history (``obs_size`` values)."""
        return np.tile(self.dataset.obs_mean, self.config.history)

    @property
    def obs_std(self) -> np.ndarray:
        return np.tile(self.dataset.obs_std, self.config.history)

    @property
    def action_mean(self) -> np.ndarray:
        """Action mean per joint (of the differences, with relative actions)."""
        return self.dataset.action_mean

    @property
    def reference_columns(self) -> tuple[int, ...]:
        """Newest-frame position columns added to the outputs (relative actions), or ()."""
        newest = (self.config.history - 1) * self.dataset.frame_size
        return tuple(newest + c for c in self.dataset.relative_to)

    @property
    def input_differences(self) -> tuple[tuple[int, int], ...]:
        """(column, subtracted column) pairs of every history frame (relative inputs), or ()."""
        frame = self.dataset.frame_size
        return tuple((k * frame + c, k * frame + p) for k in range(self.config.history)
                     for c, p in self.dataset.input_differences)

    @property
    def action_std(self) -> np.ndarray:
        return self.dataset.action_std


def model_input_columns(config: TrainConfig, info: DatasetInfo) -> np.ndarray | None:
    """The observation columns the network sees; None = all.

    Without absolute positions: all but the observed positions of every history frame (they
    still enter through relative actions and relative inputs).
    """
    if config.absolute_positions:
        return None
    frame = info.frame_size
    positions = {k * frame + c for k in range(config.history)
                 for c in state_position_columns(info).values()}
    columns = np.array([c for c in range(config.history * frame) if c not in positions])
    if columns.size == 0:
        raise ConfigError(f'absolute_positions: false leaves the model no input: '
                          f'{info.path} observes only positions (observe velocity or a '
                          f'further input such as a goal)')
    return columns


def build_model(config: TrainConfig, info: DatasetInfo) -> nn.Module:
    """The policy network of a run: seed_mlp on normalized data, ``[B, k*F] -> [B, H*A]``.

    SelectColumns first when it sees only some columns (model_input_columns).
    """
    chunk = config.horizon * info.action_size
    columns = model_input_columns(config, info)
    if columns is None:
        return seed_mlp(config.history * info.frame_size, chunk, config.hidden,
                        dropout=config.dropout)
    return nn.Sequential(SelectColumns(columns.tolist()),
                         seed_mlp(len(columns), chunk, config.hidden, dropout=config.dropout))


def checkpoint_file(name: str) -> str:
    """The checkpoint file of ``best`` (lowest validation loss) or ``last`` (final epoch)."""
    files = {'best': BEST, 'last': LAST}
    if name not in files:
        raise ValueError(f'checkpoint must be one of {sorted(files)}, got {name!r}')
    return files[name]


def load_run(run_dir: str | Path, *, checkpoint: str = BEST,
             map_location: str | torch.device = 'cpu') -> tuple[nn.Module, RunInfo]:
    """Rebuild the model of a run directory from a checkpoint (best.pt by default), in eval mode.

    Returns the model (normalized data in and out) and a RunInfo with what export needs.
    """
    run_dir = Path(run_dir)
    path = run_dir / 'checkpoints' / checkpoint
    if not run_dir.is_dir():
        raise PipelineError(f'{run_dir}: no such run directory')
    if not (run_dir / CONFIG_FILE).is_file():
        raise PipelineError(f'{run_dir}: not a run directory ({CONFIG_FILE} is missing)')
    if not path.is_file():
        raise PipelineError(f'{path}: no such checkpoint (has training finished an epoch?)')
    run_config = json.loads((run_dir / CONFIG_FILE).read_text())
    config = TrainConfig.from_mapping(run_config['train'])
    state = torch.load(path, map_location=map_location, weights_only=False)
    info = DatasetInfo.from_dict(state['dataset_info'])
    model = build_model(config, info)
    model.load_state_dict(state['model'])
    model.eval()
    return model, RunInfo(run_dir=run_dir, checkpoint=path, config=config, dataset=info,
                          dataset_path=run_config['dataset'], epoch=int(state['epoch']),
                          val_loss=float(state.get('val_loss', math.nan)))


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device('cpu')
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value


def _setup(device_name: str) -> _Dist:
    """Pick the device; join the torchrun process group when launched by torchrun."""
    if device_name == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('device is cuda but torch.cuda.is_available() is False')
    use_cuda = device_name == 'cuda' or (device_name == 'auto' and torch.cuda.is_available())
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if 'RANK' not in os.environ or world <= 1:
        return _Dist(device=torch.device('cuda' if use_cuda else 'cpu'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = torch.device('cpu')
    if use_cuda:
        device = torch.device('cuda', local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group('nccl' if use_cuda else 'gloo')
    return _Dist(rank=dist.get_rank(), world=dist.get_world_size(), device=device,
                 owns_group=owns)


def _scheduler(config: TrainConfig,
               optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    if config.lr_schedule == 'cosine':
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs, eta_min=config.lr_min)
    if config.lr_schedule == 'step':
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=config.lr_step_epochs, gamma=config.lr_gamma)
    return None


def _epoch_order(rows: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled training rows of an epoch: a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return rows[torch.randperm(rows.shape[0], generator=generator).to(rows.device)]


def _evaluate(model: nn.Module, data: WindowedData, rows: torch.Tensor, ctx: _Dist) -> float:
    """Mean squared error (normalized units) over ``rows``, summed across ranks."""
    local = rows[ctx.rank::ctx.world]
    total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    model.eval()
    with torch.no_grad():
        for start in range(0, local.shape[0], EVAL_BATCH):
            obs, act = data.batch(local[start:start + EVAL_BATCH])
            total[0] += torch.sum((model(obs) - act) ** 2, dtype=torch.float64)
    model.train()
    total[1] = local.shape[0] * data.chunk_size
    ctx.all_sum(total)
    return float(total[0] / total[1]) if total[1] > 0 else math.nan


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f'.{path.name}.tmp')
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    tmp = path.with_name(f'.{path.name}.tmp')
    with open(tmp, 'w', newline='') as stream:
        writer = csv.DictWriter(stream, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(row[k]) if isinstance(row[k], float) else row[k]
                             for k in METRICS_COLUMNS})
    os.replace(tmp, path)


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


def _summary_writer(log_dir: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time; metrics.csv has the same data
        _log.warning('tensorboard is not installed: no TensorBoard logs in %s', log_dir)
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def _check_resume(saved: Mapping[str, Any], config: TrainConfig, fingerprint: str) -> None:
    ours = config.to_dict()
    changed = sorted(k for k in ours if k not in RESUMABLE_CHANGES
                     and saved['train'].get(k) != ours[k])
    if changed:
        raise ConfigError(f'cannot resume: {changed} differ from the run being resumed')
    if saved.get('dataset_fingerprint') != fingerprint:
        raise ConfigError('cannot resume: the dataset fingerprint differs from the one of the run')


def train(dataset_dir: str | Path, *, config: TrainConfig, run_dir: str | Path,
          resume: bool = False, progress: bool = True) -> RunResult:
    """Train the policy on a dataset directory; write RUN_DIR (see the pipeline contract).

    ``resume`` continues from ``RUN_DIR/checkpoints/last.pt`` and gives the same result as an
    uninterrupted run. Without it, a run directory that already holds checkpoints is refused.
    Under torchrun every rank calls this with the same arguments; rank 0 writes the files.
    """
    ctx = _setup(config.device)
    try:
        return _train(Path(dataset_dir), config, Path(run_dir), resume, progress, ctx)
    finally:
        if ctx.owns_group:
            dist.destroy_process_group()


def _train(dataset_dir: Path, config: TrainConfig, run_dir: Path, resume: bool,
           progress: bool, ctx: _Dist) -> RunResult:
    data, info = load_windows(dataset_dir, history=config.history, horizon=config.horizon,
                              relative=config.relative_actions,
                              relative_inputs=config.relative_inputs)
    data = data.to(ctx.device)
    train_rows, val_rows = data.splits['train'], data.splits['val']
    if train_rows.shape[0] == 0:
        raise ValueError(f'{dataset_dir} has no training rows')
    if val_rows.shape[0] == 0:
        _log.warning('%s has no validation rows: best.pt and early stopping use the train loss',
                     dataset_dir)

    inputs = model_input_columns(config, info)
    ckpt_dir = run_dir / 'checkpoints'
    run_config = {
        'train': config.to_dict(), 'dataset': str(dataset_dir.resolve()),
        'dataset_fingerprint': info.fingerprint,
        'model': {'kind': 'mlp', 'hidden': list(config.hidden), 'dropout': config.dropout,
                  'history': config.history, 'horizon': config.horizon,
                  'obs_size': data.obs_size, 'action_size': data.chunk_size,
                  'input_columns': None if inputs is None else inputs.tolist()},
        'seed': config.seed}
    state = None
    if resume:
        if not (ckpt_dir / LAST).is_file():
            raise FileNotFoundError(f'{ckpt_dir / LAST} not found: nothing to resume')
        _check_resume(json.loads((run_dir / CONFIG_FILE).read_text()), config, info.fingerprint)
        state = torch.load(ckpt_dir / LAST, map_location=ctx.device, weights_only=False)
    elif (ckpt_dir / LAST).exists():
        raise FileExistsError(f'{run_dir} already holds a run: pass resume=True or choose '
                              f'another directory')
    if ctx.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / f'.{CONFIG_FILE}.tmp'  # other ranks may be reading it on --resume
        tmp.write_text(json.dumps(run_config, indent=2) + '\n')
        os.replace(tmp, run_dir / CONFIG_FILE)

    torch.manual_seed(config.seed)
    model = build_model(config, info).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    scheduler = _scheduler(config, optimizer)
    metrics: list[dict[str, float]] = []
    start_epoch, best_val, best_epoch, bad_epochs = 0, math.inf, 0, 0
    if state is not None:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        if scheduler is not None:
            scheduler.load_state_dict(state['scheduler'])
        start_epoch, best_val = int(state['epoch']), float(state['best_val'])
        best_epoch, bad_epochs = int(state['best_epoch']), int(state['bad_epochs'])
        torch.set_rng_state(state['rng']['torch'].cpu())
        if ctx.device.type == 'cuda' and state['rng'].get('cuda') is not None:
            torch.cuda.set_rng_state(state['rng']['cuda'].cpu(), ctx.device)
        metrics = [dict(m) for m in state['metrics']]
    net: nn.Module = model
    if ctx.world > 1:
        net = DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == 'cuda' else None)

    writer = _summary_writer(run_dir / 'tensorboard', start_epoch + 1 if resume else None) \
        if ctx.main else None
    n_train, batch, world, rank = train_rows.shape[0], config.batch_size, ctx.world, ctx.rank
    steps_per_epoch = -(-n_train // batch)
    stopped = config.patience > 0 and bad_epochs >= config.patience
    bar = tqdm(total=steps_per_epoch * config.epochs, initial=steps_per_epoch * start_epoch,
               disable=not (progress and ctx.main), unit='batch', desc='train', leave=True)
    net.train()
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            if stopped:
                break
            began = time.perf_counter()
            lr = optimizer.param_groups[0]['lr']
            order = _epoch_order(train_rows, config.seed, epoch)
            sq_sum = torch.zeros((), device=ctx.device)
            for start in range(0, n_train, batch):
                global_rows = order[start:start + batch]
                # Gradient of the global-batch mean: DDP averages over ranks, hence * world.
                scale = world / (global_rows.shape[0] * data.chunk_size)
                obs, act = data.batch(global_rows[rank::world])
                if config.obs_noise_std:
                    obs = obs + config.obs_noise_std * torch.randn_like(obs)
                squared = F.mse_loss(net(obs), act, reduction='sum')
                optimizer.zero_grad(set_to_none=True)
                (squared * scale).backward()
                optimizer.step()
                sq_sum += squared.detach()
                bar.update()
            if scheduler is not None:
                scheduler.step()
            train_loss = float(ctx.all_sum(sq_sum.double()) / (n_train * data.chunk_size))
            val_loss = _evaluate(model, data, val_rows, ctx)
            watched = val_loss if val_rows.shape[0] else train_loss
            improved = watched < best_val
            if improved:
                best_val, best_epoch, bad_epochs = watched, epoch, 0
            else:
                bad_epochs += 1
            stopped = config.patience > 0 and bad_epochs >= config.patience
            row = {'epoch': epoch, 'train_loss': train_loss, 'val_loss': val_loss, 'lr': lr,
                   'seconds': time.perf_counter() - began}
            metrics.append(row)
            bar.set_postfix(train=f'{train_loss:.4g}', val=f'{val_loss:.4g}')
            _log.info('epoch %d: train %.6g val %.6g lr %.3g', epoch, train_loss, val_loss, lr)
            if ctx.main:
                checkpoint = {
                    'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                    'scheduler': None if scheduler is None else scheduler.state_dict(),
                    'epoch': epoch, 'best_val': best_val, 'best_epoch': best_epoch,
                    'bad_epochs': bad_epochs, 'val_loss': val_loss,
                    'rng': {'torch': torch.get_rng_state(),
                            'cuda': torch.cuda.get_rng_state(ctx.device)
                            if ctx.device.type == 'cuda' else None},
                    'metrics': metrics, 'dataset_info': info.to_dict(), 'config': run_config}
                if improved:
                    _atomic_save(checkpoint, ckpt_dir / BEST)
                _atomic_save(checkpoint, ckpt_dir / LAST)
                _write_metrics(run_dir / METRICS_FILE, metrics)
                if writer is not None:
                    writer.add_scalar('loss/train', train_loss, epoch)
                    writer.add_scalar('loss/val', val_loss, epoch)
                    writer.add_scalar('lr', lr, epoch)
                    writer.flush()
        if stopped:
            _log.info('early stop: no improvement for %d epochs (best epoch %d)',
                      config.patience, best_epoch)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if ctx.main:
        _write_metrics(run_dir / METRICS_FILE, metrics)
        plot_losses(metrics, run_dir / 'loss.png')
    if ctx.world > 1:
        # Every rank returns once the run directory is complete, and no rank tears the group
        # down while a peer still talks to it (gloo aborts on a connection closed mid-use).
        dist.barrier()
    last = metrics[-1] if metrics else {'train_loss': math.nan, 'val_loss': math.nan}
    return RunResult(run_dir=run_dir, epochs=len(metrics), best_epoch=best_epoch,
                     best_val_loss=best_val, final_train_loss=last['train_loss'],
                     final_val_loss=last['val_loss'], stopped_early=stopped,
                     metrics=tuple(metrics))
