"""il-policy dataset import-lerobot: LeRobotDataset v3.0 folder -> dataset directory."""
from __future__ import annotations

import argparse

from il_policy_node.cli.common import EXIT_OK, existing

HELP = 'LeRobotDataset v3.0 folder -> dataset directory'
DESCRIPTION = '''\
Read a local LeRobotDataset v3.0 folder (download one with `huggingface-cli download
--repo-type dataset NAME --local-dir DIR`) into a dataset directory that train, export, eval
and policy_node use.

--state (default observation.state) becomes the robot's joint positions, named by the
feature's names; observation.velocity with the same names its velocities; every further
numeric observation.* feature a further input (observation.a.b -> topic /a/b, names b_<joint>
-> joints <joint>), which policy_node subscribes as a JointState topic; --action (default
action) the actions. A feature without names gets positional names (noted); image and video
features, and anything that is not an observation, are skipped (noted). Without a validation
split in meta/info.json, --val-fraction of the episodes are chosen by --seed.

Reads:  DIR/meta/info.json, meta/episodes/*/*.parquet, data/*/*.parquet.
Writes: DATASET_DIR (manifest.json + data.npz), atomically. A bad folder fails with one line
        naming the file and the field.'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('folder', metavar='DIR', help='LeRobotDataset v3.0 folder')
    parser.add_argument('-o', '--output', required=True, metavar='DATASET_DIR',
                        help='dataset directory to write')
    parser.add_argument('--state', default='observation.state', metavar='FEATURE',
                        help='the feature of joint positions (default: observation.state)')
    parser.add_argument('--action', default='action', metavar='FEATURE',
                        help='the feature of actions (default: action)')
    parser.add_argument('--val-fraction', type=float, default=0.2, metavar='F',
                        help='validation episodes when the folder has no split (default: 0.2)')
    parser.add_argument('--seed', type=int, default=0, help='seed of that choice (default: 0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace DATASET_DIR if it exists (otherwise an error)')


def main(args: argparse.Namespace) -> int:
    from il_policy_node.pipeline.lerobot.reader import import_lerobot
    report = import_lerobot(existing(args.folder, 'LeRobot dataset folder'), args.output,
                            state=args.state, action=args.action,
                            val_fraction=args.val_fraction, seed=args.seed,
                            overwrite=args.overwrite)
    for note in report.notes:
        print(f'note: {note}')
    used = ', '.join(f'{key} -> {what}' for key, what in report.features.items())
    print(f'wrote {report.output_dir}: {report.episodes} episode(s), {report.frames} frames '
          f'({used})')
    return EXIT_OK
