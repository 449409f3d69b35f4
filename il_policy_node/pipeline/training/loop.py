"""Behavioral-cloning training: ``train()`` writes a run directory (see run_dir.py).

Single process by default; under ``torchrun`` (RANK / WORLD_SIZE in the environment) it joins
the process group (gloo on CPU, nccl on CUDA) and trains a DistributedDataParallel network:
every step takes one global batch of ``batch_size`` rows from a permutation that depends only
on (seed, epoch), each rank takes every world_size-th row of it, and the loss is scaled so
that DDP's gradient average equals the gradient of the global-batch mean. So N ranks give the
same updates as one process (up to float summation order). Only rank 0 writes the run dir.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from il_policy_node.errors import ConfigError, PipelineError
from il_policy_node.formats import (
    CHECKPOINTS_DIR,
    LOSS_PLOT_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
)
from il_policy_node.pipeline.dataset.format import Dataset, load_dataset
from il_policy_node.pipeline.training.config import RESUMABLE_CHANGES, TrainConfig
from il_policy_node.pipeline.training.run_dir import (
    RunDescription,
    checkpoint_path,
    load_checkpoint,
    plot_losses,
    read_run_config,
    save_checkpoint,
    write_metrics,
    write_run_config,
)
from il_policy_node.pipeline.training.windows import fit_processor, load_windows
from il_policy_node.policies.networks import TrainingObjective, build_network
from il_policy_node.policies.processor import Policy, ProcessorLayout

_log = logging.getLogger(__name__)

EVAL_BATCH = 16384


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


def train(dataset_dir: str | Path, *, config: TrainConfig, run_dir: str | Path,
          resume: bool = False, progress: bool = True) -> RunResult:
    """Train the policy on a dataset directory; write RUN_DIR (see the pipeline contract).

    ``resume`` continues from ``RUN_DIR/checkpoints/last.pt`` and gives the same result as an
    uninterrupted run. Without it, a run directory that already holds checkpoints is refused.
    Under torchrun every rank calls this with the same arguments; rank 0 writes the files.
    """
    ctx = _setup(config.device)
    try:
        trainer = _Trainer(Path(dataset_dir), config, Path(run_dir), ctx)
        state = trainer.restore() if resume else trainer.check_new()
        trainer.start(state)
        return trainer.run(progress)
    finally:
        if ctx.owns_group:
            dist.destroy_process_group()


def describe_run(dataset: Dataset, config: TrainConfig, layout: ProcessorLayout,
                 processor_description: Mapping[str, Any]) -> RunDescription:
    """The run's description: the policy's processor and network, the data it sees."""
    network = {'family': config.model, 'input_size': layout.input_size,
               'output_size': config.horizon * len(dataset.action_joints),
               'history': config.history, 'horizon': config.horizon,
               'action_size': len(dataset.action_joints), 'options': config.network_options()}
    return RunDescription(
        train=config, dataset=str(Path(dataset.path).resolve()),
        dataset_fingerprint=dataset.fingerprint,
        observation=dataset.observation_spec(config.history),
        action_joints=tuple(dataset.action_joints), control_rate_hz=dataset.control_rate_hz,
        processor=processor_description, network=network)


class _Trainer:
    """One training run: data and policy, its epochs, its checkpoints and metrics."""

    def __init__(self, dataset_dir: Path, config: TrainConfig, run_dir: Path,
                 ctx: _Dist) -> None:
        self.config, self.run_dir, self.ctx = config, run_dir, ctx
        dataset = load_dataset(dataset_dir)
        spec = dataset.observation_spec(config.history)
        try:
            layout = ProcessorLayout.plan(spec, dataset.action_joints,
                                          **config.layout_options())
        except ConfigError as exc:
            raise ConfigError(f'{dataset_dir}: {exc}') from None
        positions = list(spec.position_columns().values())
        if config.state_noise_rad and not positions:
            raise ConfigError(f'{dataset_dir}: state_noise_rad needs observed joint positions')
        data = load_windows(dataset, history=config.history, horizon=config.horizon)
        if data.splits['val'].shape[0] == 0:
            _log.warning('%s has no validation rows: best.pt and early stopping use the train '
                         'loss', dataset_dir)
        processor = fit_processor(dataset, data, layout)
        self.description = describe_run(dataset, config, layout, processor.describe())
        torch.manual_seed(config.seed)
        self.policy = Policy(processor, build_network(self.description.network)).to(ctx.device)
        self.data = data.to(ctx.device).processed(self.policy.processor)
        self.state_shifts = self.policy.processor.state_shifts(positions) \
            if config.state_noise_rad else None
        self.last = checkpoint_path(run_dir, 'last')

    # -- starting ------------------------------------------------------------------------
    def check_new(self) -> None:
        if self.last.exists():
            raise PipelineError(f'{self.run_dir} already holds a run: pass --resume or choose '
                                'another directory')
        return None

    def restore(self) -> dict[str, Any]:
        """The last checkpoint, after checking the run may be resumed with this config."""
        if not self.last.is_file():
            raise PipelineError(f'{self.last} not found: nothing to resume')
        saved = read_run_config(self.run_dir)
        ours = self.config.to_dict()
        changed = sorted(k for k in ours if k not in RESUMABLE_CHANGES
                         and saved.get('train', {}).get(k) != ours[k])
        if changed:
            raise ConfigError(f'cannot resume: {changed} differ from the run being resumed')
        if saved.get('dataset_fingerprint') != self.description.dataset_fingerprint:
            raise ConfigError('cannot resume: the dataset fingerprint differs from the one of '
                              'the run')
        return load_checkpoint(self.last, self.ctx.device)

    def start(self, state: dict[str, Any] | None) -> None:
        """Optimizer, schedule and counters: fresh, or as ``state`` left them."""
        config, ctx = self.config, self.ctx
        self.optimizer = torch.optim.Adam(self.policy.network.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay)
        self.scheduler = _scheduler(config, self.optimizer)
        self.metrics: list[dict[str, float]] = []
        self.epoch, self.best_val, self.best_epoch, self.bad_epochs = 0, math.inf, 0, 0
        self.resumed = state is not None
        self.ema = _averaged(self.policy.network, config.ema_decay)
        if state is not None:
            self.policy.load_state_dict(state['policy' if self.ema is None else
                                              'trained_policy'])
            if self.ema is not None:            # the average is the exported network
                self.ema.module.load_state_dict({k.removeprefix('network.'): v for k, v in
                                                 state['policy'].items()
                                                 if k.startswith('network.')})
                self.ema.n_averaged.fill_(int(state['ema_updates']))
            self.optimizer.load_state_dict(state['optimizer'])
            if self.scheduler is not None and state.get('scheduler') is not None:
                self.scheduler.load_state_dict(state['scheduler'])
            self.epoch, self.best_val = int(state['epoch']), float(state['best_val'])
            self.best_epoch, self.bad_epochs = int(state['best_epoch']), int(state['bad_epochs'])
            torch.set_rng_state(state['rng']['torch'].cpu())
            if ctx.device.type == 'cuda' and state['rng'].get('cuda') is not None:
                torch.cuda.set_rng_state(state['rng']['cuda'].cpu(), ctx.device)
            self.metrics = [dict(m) for m in state['metrics']]
        if ctx.main:
            (self.run_dir / CHECKPOINTS_DIR).mkdir(parents=True, exist_ok=True)
            write_run_config(self.run_dir, self.description)
        self.objective: nn.Module = TrainingObjective(self.policy.network)
        if ctx.world > 1:
            self.objective = DistributedDataParallel(
                self.objective,
                device_ids=[ctx.device.index] if ctx.device.type == 'cuda' else None)

    # -- the epochs ----------------------------------------------------------------------
    def run(self, progress: bool) -> RunResult:
        config, ctx = self.config, self.ctx
        steps = -(-self.data.splits['train'].shape[0] // config.batch_size)
        stopped = config.patience > 0 and self.bad_epochs >= config.patience
        writer = _summary_writer(self.run_dir / TENSORBOARD_DIR,
                                 self.epoch + 1 if self.resumed else None) if ctx.main else None
        bar = tqdm(total=steps * config.epochs, initial=steps * self.epoch,
                   disable=not (progress and ctx.main), unit='batch', desc='train', leave=True)
        try:
            while not stopped and self.epoch < config.epochs:
                self.epoch += 1
                row = self._epoch(bar)
                stopped = config.patience > 0 and self.bad_epochs >= config.patience
                bar.set_postfix(train=f'{row["train_loss"]:.4g}', val=f'{row["val_loss"]:.4g}')
                if ctx.main:
                    self._save(row, writer)
            if stopped:
                _log.info('early stop: no improvement for %d epochs (best epoch %d)',
                          config.patience, self.best_epoch)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        if ctx.main:
            write_metrics(self.run_dir / METRICS_FILE, self.metrics)
            plot_losses(self.metrics, self.run_dir / LOSS_PLOT_FILE)
        if ctx.world > 1:
            # Every rank returns once the run directory is complete, and no rank tears the group
            # down while a peer still talks to it (gloo aborts on a connection closed mid-use).
            dist.barrier()
        last = self.metrics[-1] if self.metrics else {'train_loss': math.nan,
                                                      'val_loss': math.nan}
        return RunResult(run_dir=self.run_dir, epochs=len(self.metrics),
                         best_epoch=self.best_epoch, best_val_loss=self.best_val,
                         final_train_loss=last['train_loss'], final_val_loss=last['val_loss'],
                         stopped_early=stopped, metrics=tuple(self.metrics))

    def _state_noise(self, inputs: torch.Tensor,
                     targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch seen from observed positions moved by Gaussian noise (state_noise_rad)."""
        into_inputs, into_targets = self.state_shifts
        noise = self.config.state_noise_rad * torch.randn(
            inputs.shape[0], into_inputs.shape[0], device=inputs.device, dtype=inputs.dtype)
        return inputs + noise @ into_inputs, targets + noise @ into_targets

    def _epoch(self, bar: tqdm) -> dict[str, float]:
        """One pass over the training rows, then the validation loss; the metrics row."""
        config, ctx, data = self.config, self.ctx, self.data
        objective, optimizer = self.objective, self.optimizer
        began = time.perf_counter()
        lr = optimizer.param_groups[0]['lr']
        train_rows, val_rows = data.splits['train'], data.splits['val']
        order = _epoch_order(train_rows, config.seed, self.epoch)
        n_train, batch, world, rank = train_rows.shape[0], config.batch_size, ctx.world, ctx.rank
        loss_sum = torch.zeros((), device=ctx.device)
        objective.train()
        for start in range(0, n_train, batch):
            global_rows = order[start:start + batch]
            # Gradient of the global-batch mean: DDP averages over ranks, hence * world.
            scale = world / (global_rows.shape[0] * data.chunk_size)
            inputs, targets = data.batch(global_rows[rank::world])
            if config.obs_noise_std:
                inputs = inputs + config.obs_noise_std * torch.randn_like(inputs)
            if self.state_shifts is not None:
                inputs, targets = self._state_noise(inputs, targets)
            loss = objective(inputs, targets)
            optimizer.zero_grad(set_to_none=True)
            (loss * scale).backward()
            optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.policy.network)
            loss_sum += loss.detach()
            bar.update()
        if self.scheduler is not None:
            self.scheduler.step()
        train_loss = float(ctx.all_sum(loss_sum.double()) / (n_train * data.chunk_size))
        val_loss = self._validation_loss(val_rows)
        watched = val_loss if val_rows.shape[0] else train_loss
        self.improved = watched < self.best_val
        if self.improved:
            self.best_val, self.best_epoch, self.bad_epochs = watched, self.epoch, 0
        else:
            self.bad_epochs += 1
        row = {'epoch': self.epoch, 'train_loss': train_loss, 'val_loss': val_loss, 'lr': lr,
               'seconds': time.perf_counter() - began}
        self.metrics.append(row)
        _log.info('epoch %d: train %.6g val %.6g lr %.3g', self.epoch, train_loss, val_loss, lr)
        return row

    def _validation_loss(self, rows: torch.Tensor) -> float:
        """Mean squared error (normalized units) over ``rows``, summed across ranks."""
        ctx, data = self.ctx, self.data
        local = rows[ctx.rank::ctx.world]
        total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
        network = self.policy.network if self.ema is None else self.ema.module
        network.eval()
        with torch.no_grad():
            for start in range(0, local.shape[0], EVAL_BATCH):
                inputs, targets = data.batch(local[start:start + EVAL_BATCH])
                error = network(inputs) - targets
                total[0] += torch.sum(error ** 2, dtype=torch.float64)
        total[1] = local.shape[0] * data.chunk_size
        ctx.all_sum(total)
        return float(total[0] / total[1]) if total[1] > 0 else math.nan

    def _save(self, row: dict[str, float], writer: Any) -> None:
        """The checkpoints (best when it improved, always last), metrics.csv, TensorBoard."""
        ctx = self.ctx
        trained = self.policy.state_dict()
        state = {
            'policy': self._exported_weights(trained), 'optimizer': self.optimizer.state_dict(),
            'scheduler': None if self.scheduler is None else self.scheduler.state_dict(),
            'epoch': self.epoch, 'best_val': self.best_val, 'best_epoch': self.best_epoch,
            'bad_epochs': self.bad_epochs, 'val_loss': row['val_loss'],
            'rng': {'torch': torch.get_rng_state(),
                    'cuda': torch.cuda.get_rng_state(ctx.device)
                    if ctx.device.type == 'cuda' else None},
            'metrics': self.metrics, 'run': self.description.to_dict()}
        if self.ema is not None:
            state['trained_policy'], state['ema_updates'] = trained, int(self.ema.n_averaged)
        if self.improved:
            save_checkpoint(state, checkpoint_path(self.run_dir, 'best'))
        save_checkpoint(state, self.last)
        write_metrics(self.run_dir / METRICS_FILE, self.metrics)
        if writer is not None:
            writer.add_scalar('loss/train', row['train_loss'], self.epoch)
            writer.add_scalar('loss/val', row['val_loss'], self.epoch)
            writer.add_scalar('lr', row['lr'], self.epoch)
            writer.flush()

    def _exported_weights(self, trained: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``trained`` (the policy's state dict) as export reads it (ema: the average's net)."""
        if self.ema is None:
            return trained
        return {**trained, **{f'network.{k}': v for k, v in self.ema.module.state_dict().items()}}


def _averaged(network: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``network`` (None for decay 0), with a warm-up."""
    if decay <= 0:
        return None

    def average(mean: torch.Tensor, current: torch.Tensor, updates: torch.Tensor
                ) -> torch.Tensor:
        step_decay = torch.clamp((1.0 + updates) / (10.0 + updates), max=decay)
        return mean + (1.0 - step_decay) * (current - mean)

    return AveragedModel(network, avg_fn=average)


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


def _summary_writer(log_dir: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time; metrics.csv has the same data
        _log.warning('tensorboard is not installed: no TensorBoard logs in %s', log_dir)
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

