"""il-policy bag recover: partial episodes (a recorder killed mid-episode) -> closed bags."""
from __future__ import annotations

import argparse
import sys

from il_policy_node.cli.common import EXIT_FAILED, EXIT_OK, PROG, existing

HELP = 'salvage partial episodes into readable bags'
DESCRIPTION = '''\
Salvage episodes whose recorder was killed (a RECORDING marker in the episode folder): what
reached the disk (every complete MCAP chunk, or every committed sqlite3 transaction; the
recorder flushes at least every flush_period_s) becomes a closed rosbag2 bag in the same
folder, marked partial in its metadata (partial: true, stop_reason: recovered), and joins
the session's episodes.jsonl. The damaged file stays beside it as <file>.partial.

Reads:  each PATH: a partial episode folder, or a session (or any folder) searched for them.
Writes: each partial episode's folder, replaced whole once its new bag is complete, and the
        session's episodes.jsonl. An episode that cannot be salvaged is named with the reason
        and left as it was (exit 1).'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('paths', nargs='+', metavar='PATH',
                        help='partial episode folders, or folders searched for them')


def main(args: argparse.Namespace) -> int:
    from il_policy_node.errors import IlPolicyError
    from il_policy_node.formats import RECORDING_MARKER
    from il_policy_node.recording.recover import recover_episode
    episodes = []
    for path in (existing(p, 'folder') for p in args.paths):
        if (path / RECORDING_MARKER).exists():
            episodes.append(path)
        else:
            episodes += sorted(marker.parent for marker in path.rglob(RECORDING_MARKER))
    if not episodes:
        print(f'no partial episode in {", ".join(args.paths)}')
        return EXIT_OK
    failed = 0
    for folder in episodes:
        try:
            print(recover_episode(folder).describe())
        except IlPolicyError as exc:
            failed += 1
            print(f'{PROG}: error: {exc}', file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
