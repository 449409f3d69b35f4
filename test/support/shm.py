"""Stale Fast DDS shared-memory files of killed processes, removed before a test's graph.

Tests kill processes (SIGKILL included). A process killed while it holds a Fast DDS
shared-memory port's mutex (/dev/shm/sem.fastrtps_port*_mutex) leaves it locked, and a later
participant on that port can hang in its start-up (seen: demo_recorder silent for 30 s, its
log empty, late in a day of runs with 140 such files). A file that no live process maps is
nobody's (a segment's ``_el`` lock file goes with its segment): removing it lets the next
participant make a fresh one, as ``fastdds shm clean`` does (not in the Jazzy wheels).
"""
from __future__ import annotations

from pathlib import Path

SHM = Path('/dev/shm')
PREFIXES = ('fastrtps_', 'sem.fastrtps_')


def _in_use() -> set[str]:
    """/dev/shm files some live process maps or holds open."""
    found = set()
    for process in Path('/proc').glob('[0-9]*'):
        try:
            text = (process / 'maps').read_text()
            found.update(line.split(maxsplit=5)[-1] for line in text.splitlines()
                         if '/dev/shm/' in line)
            for fd in (process / 'fd').iterdir():
                target = str(fd.readlink())
                if target.startswith('/dev/shm/'):
                    found.add(target)
        except OSError:                      # the process ended, or is not ours to read
            continue
    return found


def remove_stale_fastdds_files() -> int:
    """Remove Fast DDS files of /dev/shm that no live process maps; how many went."""
    if not SHM.is_dir():
        return 0
    candidates = [p for p in SHM.iterdir() if p.name.startswith(PREFIXES)]
    if not candidates:
        return 0
    in_use = _in_use()
    removed = 0
    for path in candidates:
        owner = path.with_name(path.name.removesuffix('_el'))     # a segment's lock file
        if str(path) not in in_use and str(owner) not in in_use:
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    return removed
