"""A recording session: its episode folders, the next index, and its episodes.jsonl index."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from il_policy_node.errors import RecordingError
from il_policy_node.files import atomic_write
from il_policy_node.formats import EPISODE_DIR_PATTERN, SESSION_INDEX_FILE
from il_policy_node.recording.metadata import is_closed_episode

_EPISODE_DIR = re.compile(EPISODE_DIR_PATTERN)


def free_disk_mb(path: Path) -> float:
    """Free space of the file system holding ``path`` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / 1e6


def check_output_dir(path: Path, min_free_mb: float) -> float:
    """Create ``path`` if needed, prove it writable and roomy; return the free MB."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix='.write_test_'):
            pass
    except OSError as exc:
        raise RecordingError(f'output folder {path} is not writable: {exc}') from None
    free = free_disk_mb(path)
    if free < min_free_mb:
        raise RecordingError(f'disk full: {free:.0f} MB free in {path}, min_free_disk_mb is '
                             f'{min_free_mb:g}')
    return free


class Session:
    """The episode folders of one session and its ``episodes.jsonl`` index.

    The next index follows the highest folder present, so a resumed session continues and the
    index of a discarded episode (its folder deleted) is used again.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def index_path(self) -> Path:
        return self.root / SESSION_INDEX_FILE

    def episode_indices(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for m in map(_EPISODE_DIR.match, os.listdir(self.root))
                      if m and (self.root / m.group(0)).is_dir())

    def next_index(self) -> int:
        return max(self.episode_indices(), default=0) + 1

    def episode_path(self, index: int) -> Path:
        return self.root / f'episode_{index:04d}'

    def partial_episodes(self) -> list[Path]:
        """Episode folders whose bag was never closed (the recorder or importer died)."""
        return [path for path in map(self.episode_path, self.episode_indices())
                if not is_closed_episode(path)]

    def read_index(self) -> list[dict]:
        if not self.index_path.is_file():
            return []
        lines = self.index_path.read_text(encoding='utf-8').splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def add_to_index(self, entry: Mapping[str, Any]) -> None:
        """Add or replace one episode's line: the whole file is rewritten atomically."""
        entries = [e for e in self.read_index() if e.get('index') != entry['index']]
        entries.append(dict(entry))
        entries.sort(key=lambda e: e['index'])
        atomic_write(self.index_path,
                     ''.join(json.dumps(e, sort_keys=True) + '\n' for e in entries))
