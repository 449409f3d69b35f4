"""Files that are either complete or absent: the one way this package publishes a file.

``atomic_file`` and ``atomic_directory`` write into a temporary name beside the target, sync the
data to disk, rename it into place and sync the folder, so a crash or a full disk never leaves
half a file (or half a dataset) under the target's name. ``file_sha256`` hashes in blocks.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator


def fsync_directory(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(folder: Path) -> None:
    """Sync every file in ``folder`` and its subfolders, then the folders themselves."""
    for entry in folder.iterdir():
        if entry.is_dir():
            fsync_tree(entry)
        elif entry.is_file():
            with open(entry, 'rb') as stream:
                os.fsync(stream.fileno())
    fsync_directory(folder)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = 'wb', *,
                permissions: int = 0o644) -> Iterator[IO]:
    """Write ``path`` through the yielded stream; it appears whole when the block ends.

    ``mode`` is ``'wb'`` or ``'w'`` (UTF-8 text). On an exception nothing is left behind and
    an existing file at ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(descriptor, mode, **({} if 'b' in mode else {'encoding': 'utf-8'})) \
                as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """``path`` holds exactly ``data`` (text is written as UTF-8), or is unchanged."""
    with atomic_file(path, 'w' if isinstance(data, str) else 'wb') as stream:
        stream.write(data)


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Fill the yielded temporary folder; it replaces ``path`` whole when the block ends.

    FileExistsError when ``path`` exists and ``overwrite`` is false (checked again at the end).
    An old ``path`` is removed only once the new one is in place.
    """
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(f'{path} exists')
    tmp = Path(tempfile.mkdtemp(prefix=f'.{path.name}.tmp-', dir=path.parent))
    try:
        yield tmp
        fsync_tree(tmp)
        os.chmod(tmp, 0o755)
        old = None
        if path.exists():
            if not overwrite:
                raise FileExistsError(f'{path} exists')
            old = Path(tempfile.mkdtemp(prefix=f'.{path.name}.old-', dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        fsync_directory(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
