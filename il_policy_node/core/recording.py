"""Demonstration recording without ROS: one rosbag2 bag per episode, episodes in a session.

- ``RecorderConfig``: the recorder's parameters, validated once.
- ``EpisodeWriter``: one bag written through rosbags on its own thread; callers only enqueue
  serialized messages, so a ROS executor never waits for the disk. A ``RECORDING`` marker
  sits in the folder until the bag is closed with its metadata.
- ``Session``: episode folders (``episode_0001`` ...), the next index, ``episodes.jsonl``.
- ``MessageDefinitions``: message definition text and RIHS01 hash of a type, from rosbags'
  Jazzy typestore or the ``.msg`` files of installed packages.
- ``recording_qos`` / ``qos_compatible``: the subscription QoS from the publishers' offers,
  as ``ros2 bag record`` decides it.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype

LOG = logging.getLogger(__name__)

BAG_VERSION = 9                      # metadata.yaml version written by Jazzy's rosbag2
MARKER = 'RECORDING'                 # present while an episode is open: a partial episode
INDEX_FILE = 'episodes.jsonl'
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
COMPRESSIONS = ('none', 'zstd')
STOP_REASONS = ('service', 'keyboard', 'max_duration', 'shutdown')
RECORDING_DEPTH = 2000               # subscription history: ~1 s at 2 kHz before DDS drops
_EPISODE_DIR = re.compile(r'^episode_(\d{4,})$')
_INFINITE = QosTime(sec=9223372036, nsec=854775807)   # RMW_DURATION_INFINITE


class RecordingError(RuntimeError):
    """A problem that refuses a parameter or an episode; the message names it."""


# -- configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class RecorderConfig:
    """The recorder's parameters, validated; topic names resolved."""

    output_dir: Path
    session: str
    topics: tuple[str, ...]
    topic_types: tuple[str, ...]         # one per topic; '' = discover from the graph
    required_topics: tuple[str, ...]
    required_timeout_s: float
    storage: str
    compression: str
    max_episode_duration_s: float
    task: str
    operator: str
    keyboard: bool
    min_free_disk_mb: float

    @property
    def session_dir(self) -> Path:
        return self.output_dir / self.session

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *,
                        resolve: Callable[[str], str] = str,
                        now: datetime | None = None) -> 'RecorderConfig':
        """Validate plain parameter values (``resolve`` maps a topic to its full name)."""
        topics = tuple(_resolve_all(params.get('topics') or (), resolve, 'topics'))
        if not topics:
            raise RecordingError('parameter topics is empty: list the topics to record')
        duplicates = sorted({t for t in topics if topics.count(t) > 1})
        if duplicates:
            raise RecordingError(f'parameter topics lists {duplicates} more than once')
        types = tuple(params.get('topic_types') or ('',) * len(topics))
        if len(types) != len(topics):
            raise RecordingError(f'parameter topic_types has {len(types)} entries, topics has '
                                 f"{len(topics)} (use '' to discover a type)")
        for topic, msgtype in zip(topics, types):
            if msgtype and not _is_msgtype(msgtype):
                raise RecordingError(f'parameter topic_types: {msgtype!r} (for {topic}) is not '
                                     'of the form pkg/msg/Type')
        required = tuple(_resolve_all(params.get('required_topics') or (), resolve,
                                      'required_topics'))
        unknown = [t for t in required if t not in topics]
        if unknown:
            raise RecordingError(f'parameter required_topics: {unknown} are not in topics')
        storage = str(params.get('storage', 'mcap'))
        if storage not in STORAGES:
            raise RecordingError(f'parameter storage must be one of {sorted(STORAGES)}, got '
                                 f'{storage!r}')
        compression = str(params.get('compression', 'none'))
        if compression not in COMPRESSIONS:
            raise RecordingError(f'parameter compression must be one of {list(COMPRESSIONS)}, '
                                 f'got {compression!r}')
        session = str(params.get('session') or '') or \
            (now or datetime.now()).strftime('session_%Y%m%d_%H%M%S')
        if '/' in session or session in ('.', '..'):
            raise RecordingError(f'parameter session must be a folder name, got {session!r}')
        output_dir = str(params.get('output_dir') or '')
        if not output_dir:
            raise RecordingError('parameter output_dir is empty')
        return cls(
            output_dir=Path(os.path.expanduser(output_dir)), session=session, topics=topics,
            topic_types=types, required_topics=required,
            required_timeout_s=_non_negative(params, 'required_timeout_s', 2.0),
            storage=storage, compression=compression,
            max_episode_duration_s=_non_negative(params, 'max_episode_duration_s', 0.0),
            task=str(params.get('task') or ''), operator=str(params.get('operator') or ''),
            keyboard=bool(params.get('keyboard', False)),
            min_free_disk_mb=_non_negative(params, 'min_free_disk_mb', 200.0))


def _resolve_all(topics: Sequence[str], resolve: Callable[[str], str], name: str) -> list[str]:
    resolved = []
    for topic in topics:
        try:
            resolved.append(resolve(str(topic)))
        except Exception as exc:   # rclpy raises its own name validation exceptions
            raise RecordingError(f'parameter {name}: invalid topic {topic!r}: {exc}') from None
    return resolved


def _non_negative(params: Mapping[str, Any], name: str, default: float) -> float:
    value = float(params.get(name, default))
    if not value >= 0.0 or value == float('inf'):
        raise RecordingError(f'parameter {name} must be finite and >= 0, got {value}')
    return value


def _is_msgtype(name: str) -> bool:
    parts = name.split('/')
    return len(parts) == 3 and parts[1] == 'msg' and all(parts)


# -- QoS ------------------------------------------------------------------------------------
def recording_qos(offered: Sequence[Qos], depth: int = RECORDING_DEPTH) -> Qos:
    """Reliable if every publisher is, transient local if every one is; a deep history."""
    reliable = bool(offered) and all(q.reliability == QosReliability.RELIABLE for q in offered)
    latched = bool(offered) and all(q.durability == QosDurability.TRANSIENT_LOCAL
                                    for q in offered)
    return Qos(
        history=QosHistory.KEEP_LAST, depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        deadline=_INFINITE, lifespan=_INFINITE, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_INFINITE, avoid_ros_namespace_conventions=False)


def qos_compatible(requested: Qos, offered: Qos) -> bool:
    """Whether a publisher with ``offered`` QoS can deliver to a ``requested`` subscription."""
    if requested.reliability == QosReliability.RELIABLE and \
            offered.reliability == QosReliability.BEST_EFFORT:
        return False
    return not (requested.durability == QosDurability.TRANSIENT_LOCAL
                and offered.durability == QosDurability.VOLATILE)


# -- disk -----------------------------------------------------------------------------------
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


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f'.{path.name}.tmp')
    with open(tmp, 'w', encoding='utf-8') as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)


def _fsync_tree(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_file():
            with open(entry, 'rb') as stream:
                os.fsync(stream.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- session --------------------------------------------------------------------------------
class Session:
    """The episode folders of one session and its ``episodes.jsonl`` index.

    The next index follows the highest folder present, so a resumed session continues and the
    index of a discarded episode (its folder deleted) is used again.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

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
        """Folders left by a recorder that died: a RECORDING marker or no metadata.yaml."""
        return [path for path in map(self.episode_path, self.episode_indices())
                if is_partial_episode(path)]

    def read_index(self) -> list[dict]:
        if not self.index_path.is_file():
            return []
        lines = self.index_path.read_text(encoding='utf-8').splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def add_to_index(self, entry: Mapping[str, Any]) -> None:
        """Append one episode: the whole file is rewritten (temp file + os.replace)."""
        entries = [e for e in self.read_index() if e.get('index') != entry['index']]
        entries.append(dict(entry))
        entries.sort(key=lambda e: e['index'])
        _write_atomically(self.index_path,
                          ''.join(json.dumps(e, sort_keys=True) + '\n' for e in entries))


def is_partial_episode(path: Path) -> bool:
    """An episode folder whose bag was never closed (the recorder was killed)."""
    return (path / MARKER).exists() or not (path / 'metadata.yaml').is_file()


# -- message definitions --------------------------------------------------------------------
def default_share_dirs() -> list[Path]:
    """``share`` folders of the ament prefixes, then of this Python environment."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    return [Path(p) / 'share' for p in [*prefixes, sys.prefix]]


class MessageDefinitions:
    """Definition text (ros2msg) and RIHS01 hash of message types, as rosbag2 stores them."""

    def __init__(self, share_dirs: Sequence[Path] | None = None) -> None:
        self._store = get_typestore(Stores.ROS2_JAZZY)
        self._share_dirs = [Path(p) for p in (share_dirs if share_dirs is not None
                                               else default_share_dirs())]

    def lookup(self, msgtype: str) -> tuple[str, str]:
        """(msgdef, rihs01) of ``pkg/msg/Type``; RecordingError when it cannot be found."""
        if msgtype not in self._store.fielddefs:
            types: dict = {}
            self._collect(msgtype, types)
            self._store.register(types)
        msgdef, _ = self._store.generate_msgdef(msgtype, ros_version=2)
        return msgdef, self._store.hash_rihs01(msgtype)

    def _collect(self, msgtype: str, types: dict) -> None:
        if msgtype in types or msgtype in self._store.fielddefs:
            return
        package, _, name = msgtype.split('/')
        for share in self._share_dirs:
            path = share / package / 'msg' / f'{name}.msg'
            if path.is_file():
                break
        else:
            raise RecordingError(f'no definition of {msgtype}: not in the Jazzy typestore and '
                                 f'no {package}/msg/{name}.msg under {self._share_dirs}')
        found = get_types_from_msg(path.read_text(encoding='utf-8'), msgtype)
        types.update(found)
        for _, fields in found.values():
            for _, (kind, spec) in fields:
                while kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
                    kind, spec = spec[0]
                if kind == Nodetype.NAME:
                    self._collect(spec, types)


# -- one episode ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TopicInfo:
    """What a bag connection needs to know about a topic."""

    topic: str
    msgtype: str
    msgdef: str
    rihs01: str
    offered_qos: tuple[Qos, ...] = ()


_LAST = object()   # queue item: (_LAST, the final operation)


class EpisodeWriter:
    """One bag, written by its own thread fed by a queue; ``write`` never touches the disk.

    The bag folder and its RECORDING marker exist once the constructor returns (an existing
    folder or an unwritable disk raise RecordingError there). ``close`` drains the queue,
    writes metadata.yaml with ``custom_data``, syncs the files and removes the marker;
    ``discard`` removes the folder. A write error ends writing (``error`` says why); ``close``
    then raises and leaves the folder marked partial. Every storage call happens on the
    writer thread (sqlite3 connections belong to the thread that made them).
    """

    def __init__(self, path: Path, *, storage: str = 'mcap', compression: str = 'none') -> None:
        if storage not in STORAGES or compression not in COMPRESSIONS:
            raise RecordingError(f'unknown storage {storage!r} or compression {compression!r}')
        self.path = Path(path)
        self.storage = storage
        self._compression = compression
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._connections: dict[str, Any] = {}
        self._writer: Writer | None = None
        self.counts: dict[str, int] = {}
        self.error: str | None = None
        self._done = False
        opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(opened,), daemon=True,
                                        name=f'bag {self.path.name}')
        self._thread.start()
        opened.wait()
        if self._writer is None:
            self._thread.join()
            raise RecordingError(f'cannot create the episode bag {self.path}: {self.error}')

    # -- called from one thread (the executor) ---------------------------------------------
    def add_topic(self, info: TopicInfo) -> None:
        """Add a connection; messages of the topic may be written right after."""
        self._queue.put(lambda: self._add(info))

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        self._queue.put((topic, timestamp_ns, data))

    @property
    def pending(self) -> int:
        """Messages (and operations) waiting for the writer thread."""
        return self._queue.qsize()

    def bytes_on_disk(self) -> int:
        try:
            return sum(entry.stat().st_size for entry in os.scandir(self.path)
                       if entry.is_file())
        except OSError:
            return 0

    def close(self, custom_data: Mapping[str, str]) -> dict[str, int]:
        """Finish the bag; return the messages written per topic (also ``message_counts``)."""
        self._finish(lambda: self._close(custom_data))
        if self.error is not None:
            raise RecordingError(f'episode {self.path} is partial: {self.error}')
        return dict(self.counts)

    def discard(self) -> None:
        """Stop writing and delete the episode folder."""
        self._finish(self._abort)
        shutil.rmtree(self.path, ignore_errors=True)

    def _finish(self, last: Callable[[], None]) -> None:
        if self._done:
            raise RecordingError(f'episode {self.path} was already closed')
        self._done = True
        self._queue.put((_LAST, last))
        self._thread.join()

    # -- the writer thread -----------------------------------------------------------------
    def _open(self) -> None:
        writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[self.storage])
        if self._compression == 'zstd':
            # MCAP: zstd chunk compression (storage mode); sqlite3: per-message zstd.
            mode = CompressionMode.STORAGE if self.storage == 'mcap' else CompressionMode.MESSAGE
            writer.set_compression(mode, CompressionFormat.ZSTD)
        writer.open()
        self._writer = writer
        (self.path / MARKER).write_text('bag not closed: a partial episode while this file '
                                        'is here\n')

    def _add(self, info: TopicInfo) -> None:
        self._connections[info.topic] = self._writer.add_connection(
            info.topic, info.msgtype, msgdef=info.msgdef, rihs01=info.rihs01,
            offered_qos_profiles=list(info.offered_qos))
        self.counts.setdefault(info.topic, 0)

    def _close(self, custom_data: Mapping[str, str]) -> None:
        if self.error is not None:
            self._abort()
            return
        data = {**custom_data, 'message_counts': json.dumps(self.counts, sort_keys=True)}
        for key, value in data.items():
            self._writer.set_custom_data(key, value)
        self._writer.close()
        _fsync_tree(self.path)
        (self.path / MARKER).unlink()

    def _abort(self) -> None:
        try:
            self._writer.abort()
        except Exception as exc:  # the storage may already be broken (disk full)
            LOG.warning('aborting %s: %s', self.path, exc)

    def _fail(self, exc: Exception) -> None:
        self.error = f'{type(exc).__name__}: {exc}'
        LOG.error('episode %s: %s', self.path, self.error)

    def _run(self, opened: threading.Event) -> None:
        try:
            self._open()
        except Exception as exc:
            self._writer = None
            self.error = f'{type(exc).__name__}: {exc}'
            return
        finally:
            opened.set()
        get, write = self._queue.get, self._writer.write
        connections, counts = self._connections, self.counts
        while True:
            item = get()
            try:
                if type(item) is tuple:
                    if item[0] is _LAST:
                        item[1]()
                        return
                    if self.error is None:
                        topic, timestamp, data = item
                        write(connections[topic], timestamp, data)
                        counts[topic] += 1
                elif self.error is None:
                    item()
            except Exception as exc:
                self._fail(exc)
                if type(item) is tuple and item[0] is _LAST:
                    self._abort()
                    return
