"""il-policy dataset export-lerobot: dataset directory -> LeRobotDataset v3.0 folder."""
from __future__ import annotations

import argparse

from il_policy_node.cli.common import EXIT_OK, existing

HELP = 'dataset directory -> LeRobotDataset v3.0 folder'
DESCRIPTION = '''\
Write a dataset as a LeRobotDataset v3.0 folder, laid out as the lerobot package writes it,
so that LeRobot trains on it (LeRobotDataset(REPO_ID, root=DIR)) or it is uploaded to the hub.

Features: observation.state (the joint positions; names = the joints), observation.velocity
(the velocities, when observed), each further input topic /a/b as observation.a.b (names
b_<joint>), action (names = the action joints), and timestamp, frame_index, episode_index,
index, task_index. The train/validation split goes into meta/info.json "splits" ("0:8"; a
split that is not one range is written as ranges joined by commas, "0:2,3:8").

Reads:  DATASET_DIR (manifest.json + data.npz).
Writes: DIR/meta/info.json, meta/stats.json, meta/tasks.parquet,
        meta/episodes/chunk-000/file-000.parquet, data/chunk-XXX/file-XXX.parquet (a new file
        every --file-size-mb), README.md with --repo-id; atomically (never half a folder).'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('dataset', metavar='DATASET_DIR', help='dataset directory')
    parser.add_argument('-o', '--output', required=True, metavar='DIR',
                        help='LeRobot dataset folder to write')
    parser.add_argument('--repo-id', default=None, metavar='NAME',
                        help='hub name (user/dataset): also write the dataset card README.md')
    parser.add_argument('--task', default=None, metavar='TEXT',
                        help="every episode's task (default: each episode's own task from its "
                             "bag, 'demonstration' where there is none)")
    parser.add_argument('--robot-type', default=None, metavar='NAME',
                        help='robot_type in meta/info.json (default: null)')
    parser.add_argument('--file-size-mb', type=float, default=100.0, metavar='MB',
                        help='start a new data file once one reaches this size (default: 100, '
                             "LeRobot's)")
    parser.add_argument('--overwrite', action='store_true',
                        help='replace DIR if it exists (otherwise an error)')


def main(args: argparse.Namespace) -> int:
    from il_policy_node.pipeline.lerobot.writer import export_lerobot
    report = export_lerobot(existing(args.dataset, 'dataset directory'), args.output,
                            task=args.task, repo_id=args.repo_id, robot_type=args.robot_type,
                            data_files_size_mb=args.file_size_mb, overwrite=args.overwrite,
                            progress=not args.quiet)
    print(f'wrote {report.output_dir}: {report.episodes} episode(s), {report.frames} frames in '
          f'{report.data_files} data file(s), tasks {report.tasks}')
    return EXIT_OK
