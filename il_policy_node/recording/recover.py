"""Salvage a partial episode (a recorder killed mid-episode) into a closed, readable bag.

The recorder's writer flushes at least every ``FlushPolicy.period_s`` (MCAP: a closed chunk;
sqlite3: a committed transaction), so after a crash the episode's file holds every message
up to the last flush, then maybe the start of a chunk that never closed. ``recover_episode``
reads the complete part (MCAP with the mcap package's stream reader, which needs no summary;
sqlite3 with rosbags' reader), writes it as a new bag with rosbags, whose metadata says it is
partial (``partial: true``, ``stop_reason: recovered``, the labels the recorder knew when the
episode started), keeps the damaged file beside it (``<name>.partial``), and adds the episode
to the session's index. Nothing that was on disk is lost.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from mcap.exceptions import McapError
from mcap.records import Channel, Chunk, Message, Schema
from mcap.stream_reader import StreamReader, breakup_chunk
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.metadata import parse_qos
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

from il_policy_node.errors import RecordingError
from il_policy_node.files import fsync_directory, fsync_tree
from il_policy_node.formats import BAG_VERSION, RECORDING_MARKER
from il_policy_node.recording.definitions import MessageDefinitions
from il_policy_node.recording.metadata import EpisodeMetadata, partial_reason
from il_policy_node.recording.session import Session
from il_policy_node.recording.writer import STORAGES

STOP_REASON = 'recovered'
DAMAGED_SUFFIX = '.partial'


@dataclass(frozen=True)
class Recovery:
    """What was salvaged from one partial episode."""

    path: Path
    messages: dict[str, int]          # per topic
    duration_s: float                 # from the first to the last message salvaged
    damaged: Path                     # the original file, kept

    def describe(self) -> str:
        total = sum(self.messages.values())
        return (f'recovered {self.path}: {total} messages over {self.duration_s:.2f} s '
                f'({", ".join(f"{t} {n}" for t, n in sorted(self.messages.items()))}); the '
                f'damaged file is kept as {self.damaged.name}')


@dataclass(frozen=True)
class _Topic:
    topic: str
    msgtype: str
    qos: str


def _msgtype(name: str) -> str:
    parts = name.split('/')
    return f'{parts[0]}/msg/{parts[1]}' if len(parts) == 2 else name


def _mcap_messages(path: Path) -> Iterator[tuple[_Topic, int, bytes]]:
    """(topic, log time, data) of every complete chunk, in file order, up to the damage."""
    schemas: dict[int, Schema] = {}
    channels: dict[int, _Topic] = {}
    with open(path, 'rb') as stream:
        records = StreamReader(stream, emit_chunks=True).records
        while True:
            try:
                record = next(records)
                inner = breakup_chunk(record) if isinstance(record, Chunk) else [record]
            except StopIteration:
                return
            except (McapError, Exception):   # any damage (truncated, garbled): the salvage ends
                return
            for item in inner:
                if isinstance(item, Schema):
                    schemas[item.id] = item
                elif isinstance(item, Channel):
                    schema = schemas.get(item.schema_id)
                    channels[item.id] = _Topic(
                        item.topic, _msgtype(schema.name if schema else ''),
                        item.metadata.get('offered_qos_profiles', ''))
                elif isinstance(item, Message) and item.channel_id in channels:
                    yield channels[item.channel_id], item.log_time, item.data


def _sqlite_messages(path: Path) -> Iterator[tuple[_Topic, int, bytes]]:
    """(topic, bag time, data) of every committed message."""
    reader = Sqlite3Reader(path)
    reader.open()
    try:
        topics = {c.id: _Topic(c.topic, _msgtype(c.msgtype), '') for c in reader.connections}
        for connection, timestamp, data in reader.messages(reader.connections):
            yield topics[connection.id], timestamp, data
    finally:
        reader.close()


def _storage_file(folder: Path) -> tuple[Path, str]:
    for storage, suffix in (('mcap', '.mcap'), ('sqlite3', '.db3')):
        files = sorted(folder.glob(f'*{suffix}'))
        if len(files) == 1:
            return files[0], storage
    raise RecordingError(f'{folder}: no single .mcap or .db3 file to recover')


def recover_episode(folder: str | Path) -> Recovery:
    """Make the partial episode ``folder`` a closed bag of what reached its disk (module doc).

    RecordingError when it is not a partial episode or nothing complete is in its file.
    """
    folder = Path(folder).absolute()
    if not folder.is_dir() or partial_reason(folder) is None:
        raise RecordingError(f'{folder}: not a partial episode (no {RECORDING_MARKER} marker)')
    source, storage = _storage_file(folder)
    started = EpisodeMetadata.from_marker(folder / RECORDING_MARKER)
    work = Path(tempfile.mkdtemp(prefix=f'.{folder.name}.recover-', dir=folder.parent))
    try:
        bag = work / folder.name
        counts, first, last = _copy(source, storage, bag, started)
        if not counts:
            raise RecordingError(f'{source}: nothing to recover: no complete '
                                 f'{"chunk" if storage == "mcap" else "transaction"} reached '
                                 'the disk')
        damaged = bag / (source.name + DAMAGED_SUFFIX)
        shutil.copyfile(source, damaged)
        fsync_tree(bag)
        old = work / 'old'
        folder.rename(old)
        bag.rename(folder)
        fsync_directory(folder.parent)
    except BaseException:
        if not folder.exists() and (work / 'old').exists():
            (work / 'old').rename(folder)
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    metadata = _recovered(started, counts, last)
    if metadata.episode_index is not None:
        Session(folder.parent).add_to_index(metadata.index_entry(
            folder.name, duration_s=(last - first) / 1e9, storage=storage))
    return Recovery(folder, counts, (last - first) / 1e9, folder / damaged.name)


def _recovered(started: EpisodeMetadata, counts: dict[str, int], last_ns: int
               ) -> EpisodeMetadata:
    return replace(started, partial=True, stop_reason=STOP_REASON, message_counts=counts,
                   stop_wall_time=datetime.fromtimestamp(last_ns / 1e9, timezone.utc).isoformat())


def _copy(source: Path, storage: str, bag: Path, started: EpisodeMetadata
          ) -> tuple[dict[str, int], int, int]:
    """Write the salvageable messages of ``source`` into a new bag; (counts, first, last ns)."""
    messages = _mcap_messages(source) if storage == 'mcap' else _sqlite_messages(source)
    definitions = MessageDefinitions()
    writer = Writer(bag, version=BAG_VERSION, storage_plugin=STORAGES[storage])
    writer.open()
    connections: dict[_Topic, object] = {}
    counts: dict[str, int] = {}
    first = last = 0
    try:
        for topic, timestamp, data in messages:
            if topic not in connections:
                msgdef, rihs01 = definitions.lookup(topic.msgtype)
                connections[topic] = writer.add_connection(
                    topic.topic, topic.msgtype, msgdef=msgdef, rihs01=rihs01,
                    offered_qos_profiles=parse_qos(topic.qos) if topic.qos else ())
                counts[topic.topic] = 0
            writer.write(connections[topic], timestamp, data)
            counts[topic.topic] += 1
            first = timestamp if not first else min(first, timestamp)
            last = max(last, timestamp)
        for key, value in _recovered(started, counts, last).to_custom_data().items():
            writer.set_custom_data(key, value)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return counts, first, last
