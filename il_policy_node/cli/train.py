"""il-policy train: dataset -> run directory."""
from __future__ import annotations

import argparse
import dataclasses
import os

from il_policy_node.cli.common import EXIT_OK, existing

HELP = 'dataset -> run directory (behavioral cloning)'
DESCRIPTION = '''\
Train the BC policy (default: the seed MLP obs -> 256 -> 256 -> action, Adam, MSE on
normalized data) with early stopping on the validation loss. The policy's processor
(normalization, relative actions and inputs) is fitted to the train split when training
starts and travels in every checkpoint.

Reads:  the dataset directory and the train config (YAML, see config/train.yaml: model,
        history, horizon, optimizer, schedule, batch size, epochs).
Writes: RUN_DIR/config.json, metrics.csv, tensorboard/, loss.png and checkpoints/last.pt,
        best.pt (tensors and plain values only). --resume continues from
        checkpoints/last.pt. For several GPUs or machines run the same command under
        torchrun.'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataset', required=True, metavar='DIR', help='dataset directory')
    parser.add_argument('--config', required=True, metavar='TRAIN_YAML',
                        help='training config (YAML)')
    parser.add_argument('-o', '--output', required=True, metavar='RUN_DIR',
                        help='run directory to write')
    parser.add_argument('--seed', type=int, default=None, metavar='N',
                        help="random seed (default: the config's); same seed, same result")
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in RUN_DIR from its last checkpoint')
    parser.add_argument('--device', default=None, choices=('cpu', 'cuda', 'auto'),
                        help="torch device (default: the config's; auto = cuda when available)")


def main(args: argparse.Namespace) -> int:
    from il_policy_node.pipeline.training.config import TrainConfig
    from il_policy_node.pipeline.training.loop import train
    existing(args.dataset, 'dataset directory')
    config = TrainConfig.from_file(existing(args.config, 'config file'))
    overrides = {key: value for key, value in (('seed', args.seed), ('device', args.device))
                 if value is not None}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    result = train(args.dataset, config=config, run_dir=args.output, resume=args.resume,
                   progress=not args.quiet)
    if os.environ.get('RANK', '0') != '0':  # under torchrun, rank 0 reports
        return EXIT_OK
    print(f'{result.run_dir}: {result.epochs} epochs, best epoch {result.best_epoch} '
          f'(val loss {result.best_val_loss:.6g})'
          + (', stopped early' if result.stopped_early else ''))
    return EXIT_OK
