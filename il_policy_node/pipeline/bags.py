"""Finding and reading rosbag2 bags with rosbags: the dataset builder's input.

First-class input: bag folders with metadata.yaml (our recorder's episodes, ``ros2 bag record``:
MCAP or sqlite3, zstd-compressed, split), and bare ``.mcap`` / ``.db3`` files without one (the
mcap CLI and Foxglove write those): a folder of bare files is one bag per file. Type names are
read in either spelling (``sensor_msgs/msg/JointState`` or ``sensor_msgs/JointState``).
Nothing here imports rclpy.
"""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

from il_policy_node.errors import BagError
from il_policy_node.formats import BAG_METADATA_FILE, BAG_STORAGE_SUFFIXES, RECORDING_MARKER
from il_policy_node.pipeline.bag_decoding import (
    JOINT_STATE,
    JointSeries,
    JointStateDecoder,
    TrajectoryDecoder,
)


# -- finding bags ---------------------------------------------------------------------------
def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Bags under ``paths``: bag folders, partial episodes, bare .mcap/.db3 files.

    A folder with metadata.yaml or a RECORDING marker is one bag (a partial one is returned
    so that it is reported); any other folder gives each bare storage file in it, then what
    its subfolders hold (sorted).
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise BagError(f'{path} does not exist')
        found.extend(_walk(path))
    return found


def _walk(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix in BAG_STORAGE_SUFFIXES else []
    if (path / BAG_METADATA_FILE).is_file() or (path / RECORDING_MARKER).exists():
        return [path]
    entries = sorted(path.iterdir())
    if any(e.is_file() and e.name.endswith(('.mcap.zstd', '.db3.zstd')) for e in entries):
        return [path]                      # file-compressed storage without its metadata
    bare = [e for e in entries if e.is_file() and e.suffix in BAG_STORAGE_SUFFIXES]
    return bare + [bag for entry in entries if entry.is_dir() for bag in _walk(entry)]


def bag_name(path: Path) -> str:
    """A bag's name: its folder, or a bare file's stem."""
    return path.stem if path.is_file() else path.name


def bag_metadata(path: Path) -> dict[str, Any]:
    """The rosbag2_bagfile_information of a bag folder ({} for a bare storage file).

    BagError names the file when metadata.yaml is not YAML or not shaped like rosbag2's.
    """
    meta = path / BAG_METADATA_FILE
    if not path.is_dir():
        return {}
    if not meta.is_file():
        raise BagError('no metadata.yaml: an unfinished or damaged bag')
    try:
        data = yaml.safe_load(meta.read_text(encoding='utf-8'))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BagError(f'{meta}: not valid YAML ({" ".join(str(exc).split())})') from None
    info = data.get('rosbag2_bagfile_information') if isinstance(data, dict) else None
    if not isinstance(info, dict):
        raise BagError(f'{meta}: not a rosbag2 metadata file (expected a mapping with '
                       f'rosbag2_bagfile_information, got {_shape(data)})')
    custom = info.get('custom_data')
    if custom is not None and not isinstance(custom, dict):
        raise BagError(f'{meta}: custom_data must be a mapping, got {_shape(custom)}')
    return info


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return 'a mapping without it'
    return 'nothing' if value is None else f'a {type(value).__name__}'


def bag_fingerprint(path: Path, sample_bytes: int = 1 << 16) -> str:
    """16 hex chars: sha256 of metadata.yaml and of each data file's size, head and tail.

    Sampled rather than hashed whole, so fingerprinting never costs a second pass over the bag.
    """
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if file.name == RECORDING_MARKER:
            continue
        size = file.stat().st_size
        digest.update(f'{file.name}\0{size}\0'.encode())
        with open(file, 'rb') as stream:
            if file.name == BAG_METADATA_FILE or size <= 2 * sample_bytes:
                digest.update(stream.read())
            else:
                digest.update(stream.read(sample_bytes))
                stream.seek(size - sample_bytes)
                digest.update(stream.read(sample_bytes))
    return digest.hexdigest()[:16]


def message_type(name: str) -> str:
    """``pkg/msg/Type`` for ``pkg/msg/Type`` or the short ``pkg/Type``."""
    parts = name.split('/')
    return f'{parts[0]}/msg/{parts[1]}' if len(parts) == 2 else name


# -- reading --------------------------------------------------------------------------------
class _StorageFile:
    """A bare storage file read like a bag folder (connections, messages)."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self.connections = storage.connections

    def messages(self, connections: list) -> Iterator[tuple[Any, int, bytes]]:
        return self._storage.messages(connections)


@contextlib.contextmanager
def open_bag(path: Path) -> Iterator[Any]:
    """A reader of a bag folder or a bare storage file: ``connections``, ``messages(...)``."""
    if path.is_dir():
        with Reader(path) as reader:
            yield reader
        return
    storage = (McapReader if path.suffix == '.mcap' else Sqlite3Reader)(path)
    storage.open()
    try:
        yield _StorageFile(storage)
    finally:
        storage.close()


def read_topics(path: Path, topics: dict[str, tuple[str, ...]]) -> dict[str, JointSeries]:
    """Read ``{topic: accepted types}`` from a bag: one JointSeries per topic.

    BagError names a missing topic, a wrong type, or a bag rosbags cannot read.
    """
    decoders: dict[int, JointStateDecoder | TrajectoryDecoder] = {}
    by_topic: dict[str, JointStateDecoder | TrajectoryDecoder] = {}
    try:
        with open_bag(path) as reader:
            available = {c.topic: message_type(c.msgtype) for c in reader.connections}
            for topic, accepted in topics.items():
                if topic not in available:
                    raise BagError(f'topic {topic} is not in the bag (topics: '
                                   f'{sorted(available)})')
                if available[topic] not in accepted:
                    raise BagError(f'topic {topic} has type {available[topic]}, expected '
                                   f'{" or ".join(accepted)}')
                decoder = JointStateDecoder(topic) if available[topic] == JOINT_STATE \
                    else TrajectoryDecoder(topic)
                by_topic[topic] = decoder
            wanted = [c for c in reader.connections if c.topic in by_topic]
            for connection in wanted:
                decoders[connection.id] = by_topic[connection.topic]
            for connection, timestamp, data in reader.messages(connections=wanted):
                decoders[connection.id].add(timestamp, data)
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f'unreadable bag: {type(exc).__name__}: {exc}') from None
    return {topic: decoder.finish() for topic, decoder in by_topic.items()}
