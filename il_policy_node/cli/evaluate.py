"""il-policy eval: open-loop evaluation of policy.pt on a dataset."""
from __future__ import annotations

import argparse
import json

from il_policy_node.cli.common import EXIT_OK
from il_policy_node.files import atomic_write
from il_policy_node.runtime.chunks import ChunkExecution, ChunkOptions

HELP = 'open-loop evaluation of policy.pt on a dataset'
DESCRIPTION = '''\
Run the exported policy open loop on the validation episodes, as policy_node would (same
observation history padding, same action-chunk execution), feeding it the recorded
observations, and compare its targets with the demonstrated actions.

Reads:  the policy file (checked against its .sha256) and the dataset directory.
Writes: a table of per-joint RMSE (radians and degrees) on stdout; with --plots DIR, PNG plots
        of predicted vs demonstrated trajectories (one per episode) and rmse.png; with
        --json FILE, the figures as JSON.'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ChunkOptions()
    parser.add_argument('--model', required=True, metavar='POLICY_PT', help='policy file')
    parser.add_argument('--dataset', required=True, metavar='DIR', help='dataset directory')
    parser.add_argument('--plots', default=None, metavar='DIR', help='write PNG plots here')
    parser.add_argument('--json', default=None, metavar='FILE', help='write results as JSON')
    parser.add_argument('--split', default='val', choices=('val', 'train'),
                        help='which episodes (default: val)')
    parser.add_argument('--execution', default=defaults.execution.value,
                        choices=[e.value for e in ChunkExecution],
                        help="action-chunk execution, as policy_node's chunk_execution "
                             '(default: %(default)s)')
    parser.add_argument('--ensemble-decay', type=float, default=defaults.ensemble_decay,
                        metavar='K', help='temporal ensembling weight decay (default: '
                                          '%(default)s)')


def main(args: argparse.Namespace) -> int:
    from il_policy_node.pipeline.evaluate import evaluate_open_loop
    result = evaluate_open_loop(
        args.model, args.dataset, plots_dir=args.plots, split=args.split,
        chunks=ChunkOptions(execution=args.execution, ensemble_decay=args.ensemble_decay))
    print(result.table())
    for path in result.plots:
        print(f'wrote {path}')
    if args.json:
        atomic_write(args.json, json.dumps(result.to_dict(), indent=2) + '\n')
        print(f'wrote {args.json}')
    return EXIT_OK
