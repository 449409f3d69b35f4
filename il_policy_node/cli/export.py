"""il-policy export: run directory -> policy.pt for policy_node."""
from __future__ import annotations

import argparse

from il_policy_node.cli.common import EXIT_OK

HELP = 'run directory -> policy.pt (or policy.onnx) for policy_node'
DESCRIPTION = '''\
Export a run's checkpoint (the best by validation loss unless --checkpoint last) as the
policy artifact that policy_node loads: TorchScript (or ONNX, --format onnx) with the run's
processor (normalization, relative actions and inputs) inside and metadata (joints,
observation spec, history, action horizon, control rate, dataset fingerprint, inference
cost). Before writing, the exported module is compared with the eager one on validation
observations (max abs diff <= 1e-5). policy_node and eval pick the backend by the suffix.

Reads:  RUN_DIR/config.json, RUN_DIR/checkpoints/best.pt (or last.pt; loaded as tensors and
        plain values only), the run's dataset (--dataset when it has moved).
Writes: the policy file and its sha256 sidecar (<policy>.sha256), atomically; an ONNX file
        carries the metadata in its metadata_props.'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('run_dir', metavar='RUN_DIR', help='run directory written by train')
    parser.add_argument('-o', '--output', required=True, metavar='POLICY_PT',
                        help='policy file to write (policy.pt; policy.onnx for ONNX)')
    parser.add_argument('--format', choices=('torchscript', 'onnx'), default=None,
                        help='artifact backend (default: onnx when POLICY ends in .onnx, else '
                             'torchscript)')
    parser.add_argument('--dataset', default=None, metavar='DIR',
                        help="the run's dataset directory, if not where config.json says")
    parser.add_argument('--checkpoint', choices=('best', 'last'), default='best',
                        help='best: lowest validation loss; last: the final epoch (when the '
                             'validation loss does not predict closed-loop behaviour)')


def main(args: argparse.Namespace) -> int:
    from il_policy_node.pipeline.export import export_run
    path = export_run(args.run_dir, args.output, dataset_dir=args.dataset,
                      checkpoint=args.checkpoint, backend=args.format)
    print(f'wrote {path} and {path.name}.sha256')
    return EXIT_OK
