"""One episode bag written through rosbags on its own thread, flushed to disk on a period.

Callers (a ROS executor) only enqueue serialized messages, so they never wait for the disk.
A ``RECORDING`` marker sits in the folder until the bag is closed with its metadata. The
writer thread ends the current MCAP chunk (sqlite3: commits) whenever it holds messages older
than the flush period, so a process killed mid-episode loses at most that much of every
topic; ``il-policy bag recover`` salvages the complete chunks (recording/recover.py).
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from rosbags.interfaces import Qos
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

from il_policy_node.errors import RecordingError
from il_policy_node.files import fsync_tree
from il_policy_node.formats import BAG_VERSION, RECORDING_MARKER
from il_policy_node.recording.metadata import EpisodeMetadata

LOG = logging.getLogger(__name__)

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
COMPRESSIONS = ('none', 'zstd')
STORAGE, COMPRESSION = 'mcap', 'none'          # what episodes are written as by default


@dataclass(frozen=True)
class FlushPolicy:
    """When the writer thread makes what it holds durable against a crash of the process.

    MCAP keeps messages in memory until a chunk is closed (rosbags closes one per MiB); every
    ``period_s`` the open chunk is closed and written (sqlite3: the transaction is committed).
    Shorter periods mean smaller chunks (a little more index per message).
    """

    period_s: float = 0.5


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
    writes metadata.yaml with the episode's metadata, syncs the files and removes the marker;
    ``discard`` removes the folder. A write error ends writing (``error`` says why); ``close``
    then raises and leaves the folder marked partial. Every storage call happens on the
    writer thread (sqlite3 connections belong to the thread that made them).
    """

    def __init__(self, path: Path, *, storage: str = STORAGE, compression: str = COMPRESSION,
                 flush: FlushPolicy = FlushPolicy(),
                 started: EpisodeMetadata = EpisodeMetadata()) -> None:
        """Open the bag (its folder and RECORDING marker exist on return).

        ``started``: what is known of the episode at its start, kept in the marker for a
        recovery after a crash.
        """
        if storage not in STORAGES or compression not in COMPRESSIONS:
            raise RecordingError(f'unknown storage {storage!r} or compression {compression!r}')
        self.path = Path(path)
        self.storage = storage
        self._compression = compression
        self._flush_period_s = flush.period_s
        self._started = started
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

    def close(self, metadata: EpisodeMetadata) -> dict[str, int]:
        """Finish the bag; return the messages written per topic (also ``message_counts``)."""
        self._finish(lambda: self._close(metadata))
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
        (self.path / RECORDING_MARKER).write_text(self._started.to_marker(), encoding='utf-8')

    def _add(self, info: TopicInfo) -> None:
        self._connections[info.topic] = self._writer.add_connection(
            info.topic, info.msgtype, msgdef=info.msgdef, rihs01=info.rihs01,
            offered_qos_profiles=list(info.offered_qos))
        self.counts.setdefault(info.topic, 0)

    def _close(self, metadata: EpisodeMetadata) -> None:
        if self.error is not None:
            self._abort()
            return
        custom = replace(metadata, message_counts=dict(self.counts)).to_custom_data()
        for key, value in custom.items():
            self._writer.set_custom_data(key, value)
        self._writer.close()
        fsync_tree(self.path)
        (self.path / RECORDING_MARKER).unlink()

    def _flush(self) -> None:
        """Make every message written so far durable against a crash of this process."""
        storage = self._writer.storage
        if self.storage == 'mcap':
            if storage.chunk.bio.tell() == 0:
                return
            storage.close_chunk()
            storage.bio.flush()
        else:
            storage.conn.commit()

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
        period, clock = self._flush_period_s, time.monotonic
        due = None                        # when the oldest message not yet flushed must be
        while True:
            try:
                item = get(timeout=None if due is None else max(due - clock(), 0.0))
            except queue.Empty:
                item = None
            try:
                if due is not None and (item is None or clock() >= due):
                    due = None
                    if self.error is None:
                        self._flush()
                if item is None:
                    continue
                if type(item) is tuple:
                    if item[0] is _LAST:
                        item[1]()
                        return
                    if self.error is None:
                        topic, timestamp, data = item
                        write(connections[topic], timestamp, data)
                        counts[topic] += 1
                        if due is None:
                            due = clock() + period
                elif self.error is None:
                    item()
            except Exception as exc:
                self._fail(exc)
                if type(item) is tuple and item[0] is _LAST:
                    self._abort()
                    return
