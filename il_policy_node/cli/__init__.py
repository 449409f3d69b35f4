"""il-policy: the offline pipeline on the command line: bags, dataset, train, export, eval.

Each verb is one module with ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and
``main(args) -> exit status``; a verb imports the pipeline when it runs, so `il-policy --help`
imports neither torch nor rclpy. No ROS is needed.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from types import ModuleType
from typing import Sequence

from il_policy_node.cli import (
    bag_recover,
    dataset_build,
    dataset_export_lerobot,
    dataset_import_lerobot,
    dataset_info,
    evaluate,
    export,
    mocap_import,
    train,
)
from il_policy_node.cli.common import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    PROG,
    Formatter,
)
from il_policy_node.errors import IlPolicyError

DESCRIPTION = '''\
Behavioral cloning for ROS 2 robots, offline part: turn recorded demonstration bags into a
dataset, train a policy, export it as the policy.pt that policy_node runs, and evaluate it.

  il-policy dataset build bags/ --config config/dataset.yaml -o data/pick
  il-policy dataset info data/pick --plot plots/data
  il-policy train --dataset data/pick --config config/train.yaml -o runs/pick
  il-policy export runs/pick -o policy.pt
  il-policy eval --model policy.pt --dataset data/pick --plots plots/eval

Run `il-policy COMMAND --help` for what each step reads and writes. No ROS installation is
needed. Set IL_POLICY_DEBUG=1 (or give --debug) to see tracebacks.'''

# (group, its help, its description, verbs); group None: a top-level command
COMMANDS: tuple[tuple[str | None, str, str, dict[str, ModuleType]], ...] = (
    ('dataset', 'build a dataset from bags, describe one, or convert from/to LeRobot',
     'Datasets: `dataset build` turns bags into a dataset directory, `dataset info` describes '
     'a dataset or bags, `dataset export-lerobot` and `dataset import-lerobot` convert to and '
     'from LeRobotDataset v3.0.',
     {'build': dataset_build, 'info': dataset_info, 'export-lerobot': dataset_export_lerobot,
      'import-lerobot': dataset_import_lerobot}),
    (None, '', '', {'train': train, 'export': export, 'eval': evaluate}),
    ('bag', 'repair bags', 'Bags: `bag recover` salvages episodes a killed recorder left.',
     {'recover': bag_recover}),
    ('mocap', 'import motion capture clips as demonstration bags',
     'Motion capture: `mocap import` retargets BVH clips onto the robot and writes them as '
     'demonstration bags.', {'import': mocap_import}),
)


def _add_verbs(subparsers, verbs: dict[str, ModuleType]) -> None:
    for name, module in verbs.items():
        parser = subparsers.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                                       epilog=EXIT_CODES, formatter_class=Formatter)
        module.add_arguments(parser)
        parser.set_defaults(handler=module.main)


def build_parser() -> argparse.ArgumentParser:
    """The il-policy argument parser (every verb of COMMANDS)."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EXIT_CODES,
                                     formatter_class=Formatter)
    parser.add_argument('-v', '--verbose', action='store_true', help='log progress (INFO)')
    parser.add_argument('-q', '--quiet', action='store_true',
                        help='no progress bars, only results, warnings and errors')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of a failure (also IL_POLICY_DEBUG=1)')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for group, help_text, description, verbs in COMMANDS:
        if group is None:
            _add_verbs(commands, verbs)
            continue
        grouped = commands.add_parser(group, help=help_text, description=description,
                                      epilog=EXIT_CODES, formatter_class=Formatter)
        _add_verbs(grouped.add_subparsers(dest='verb', metavar='VERB', required=True), verbs)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f'{exc.filename}: {exc.strerror}'
    return ' '.join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the il-policy console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get('IL_POLICY_DEBUG', '') not in ('', '0')
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s: %(message)s', stream=sys.stderr)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as exc:
        if debug:
            raise
        print(f'{PROG}: error: this step needs the Python package {exc.name!r}, which is not '
              'installed', file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (IlPolicyError, OSError) as exc:
        if debug:
            raise
        print(f'{PROG}: error: {_one_line(exc)}', file=sys.stderr)
        return EXIT_FAILED
