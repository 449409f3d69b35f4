"""il-policy dataset info: describe a dataset directory or bags."""
from __future__ import annotations

import argparse

from il_policy_node.cli.common import EXIT_OK, existing

HELP = 'describe a dataset or bags'
DESCRIPTION = '''\
Describe a dataset directory or bags: episodes, durations, rates, gaps, joint ranges.

Reads:  DATASET_OR_BAGS (a dataset directory, bags, or folders of bags; bags are read with
        --config's topic, timestamps and gap tolerance, or the defaults).
Writes: nothing, unless --plot DIR is given: PNG plots per joint into DIR. Fails (exit 1, the
        reasons on stderr) when no input is usable.'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('inputs', nargs='+', metavar='DATASET_OR_BAGS',
                        help='a dataset directory, or bags / folders of bags')
    parser.add_argument('--plot', metavar='DIR', help='write PNG plots per joint into DIR')
    parser.add_argument('--config', metavar='DATASET_YAML',
                        help='dataset config used to read bags (topic, timestamps, gap '
                             'tolerance)')


def main(args: argparse.Namespace) -> int:
    from il_policy_node.pipeline.dataset.config import DatasetConfig
    from il_policy_node.pipeline.dataset.info import dataset_info, format_info
    for path in args.inputs:
        existing(path, 'dataset, bag or directory')
    config = DatasetConfig.from_yaml(existing(args.config, 'config file')) \
        if args.config else None
    inputs = args.inputs[0] if len(args.inputs) == 1 else args.inputs
    info = dataset_info(inputs, plot=args.plot is not None, plot_dir=args.plot, config=config)
    print(format_info(info))
    return EXIT_OK
