"""il-policy dataset build: bags -> dataset directory."""
from __future__ import annotations

import argparse

from il_policy_node.cli.common import EXIT_OK, existing, positive_int

HELP = 'bags -> dataset directory'
DESCRIPTION = '''\
Read rosbag2 bags (our recorder's episodes or plain `ros2 bag record` bags: MCAP or sqlite3,
zstd-compressed or not, split or not; bare .mcap/.db3 files too), align observations and
actions on a grid at the control rate, split episodes into train/validation by seed and
compute normalization statistics over the train split.

Reads:  each BAG_OR_DIR (a bag directory with metadata.yaml, a bare .mcap or .db3 file, or a
        folder of bags) and the dataset config (YAML, see config/dataset.yaml: topics, joints,
        fields, action source, rate, timestamps, gap tolerance, validation fraction, seed).
Writes: DATASET_DIR/manifest.json and DATASET_DIR/data.npz, atomically (never half a
        dataset). A bad bag is reported by name with the reason and skipped; the build fails
        only when nothing usable remains, or on any bad bag with --strict. A partial episode
        (its recorder was killed) is reported; `il-policy bag recover` salvages it.'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bags', nargs='+', metavar='BAG_OR_DIR', help='bags or folders of bags')
    parser.add_argument('--config', required=True, metavar='DATASET_YAML',
                        help='dataset config (YAML)')
    parser.add_argument('-o', '--output', required=True, metavar='DATASET_DIR',
                        help='dataset directory to write')
    parser.add_argument('--workers', type=positive_int, default=1, metavar='N',
                        help='processes reading bags in parallel (default: 1)')
    parser.add_argument('--strict', action='store_true',
                        help='fail (exit 1, nothing written) if any bag is bad')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace DATASET_DIR if it exists (otherwise an error)')


def main(args: argparse.Namespace) -> int:
    from il_policy_node.pipeline.dataset.build import build_dataset
    from il_policy_node.pipeline.dataset.config import DatasetConfig
    for bag in args.bags:
        existing(bag, 'bag or directory')
    config = DatasetConfig.from_yaml(existing(args.config, 'config file'))
    report = build_dataset(args.bags, config=config, output_dir=args.output,
                           workers=args.workers, strict=args.strict,
                           progress=not args.quiet, overwrite=args.overwrite)
    print(f'wrote {report.output_dir}: {report.episodes} episode(s), {report.rows} rows from '
          f'{report.bags} bag(s), {report.messages} messages in {report.seconds:.1f} s')
    for entry in report.skipped:
        print(f'skipped {entry["bag"]}: {entry["reason"]}')
    return EXIT_OK
