"""BVH clips -> demonstration bags in the recorder's layout (``il-policy mocap import``).

Each clip is read (:func:`~il_policy_node.mocap.bvh.load_bvh`), retargeted onto the robot's
joints with a map (:func:`~il_policy_node.mocap.retarget.retarget`) and written as one episode
of a session, exactly as the demo recorder writes them (``recording/``: folders
``episode_0001`` ..., ``episodes.jsonl``, a ``RECORDING`` marker until the bag is closed with
its metadata), so the dataset builder takes these bags like recorded ones:

- ``/mocap/joint_command`` (``sensor_msgs/msg/JointState``): the retargeted joints at the map's
  ``rate_hz``: name, position (rad, clamped to the limits), velocity (rad/s), no effort;
  ``header.frame_id`` empty.
- ``/mocap/end_effectors/<name>`` (``geometry_msgs/msg/PointStamped``), one per end effector of
  the map: the human's point in metres, robot axes, ``header.frame_id`` = the map's
  ``relative_to`` BVH joint.
- Time: sample i is at ``start + i / rate_hz``, both as ``header.stamp`` and as the bag time.
  ``start`` is the BVH file's modification time unless given: the same file imports to the same
  stamps, and clips keep the order they were captured in. (Never zero: the dataset builder
  refuses zero header stamps.)
- ``custom_data`` (recording/metadata.py ``EpisodeMetadata``): the recorder's keys (task,
  operator, success, episode_index, start/stop wall time, stop_reason ``end_of_clip``,
  lost_counts, recorder, message_counts) and the ``mocap_*`` keys of ``MocapClip``: source
  file and its sha256, retarget map and its fingerprint, clip name, frame rate, frame count and
  duration, target rate, robot, joints, topics, clamped joints.

A clip that cannot be read or retargeted is reported (the message names the file, and the line
or the joint) and the others are still imported; a bag is either closed with its metadata or
deleted, never left looking complete. ROS-free: messages are serialized with rosbags.
"""
from __future__ import annotations

import importlib.metadata
import logging
import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from rosbags.typesys import Stores, get_typestore

from il_policy_node.errors import ConfigError, IlPolicyError, MocapError, RecordingError
from il_policy_node.mocap.bvh import BvhClip, load_bvh
from il_policy_node.mocap.retarget import (
    RetargetedMotion,
    RetargetMap,
    check_robot,
    load_retarget_map,
    retarget,
)
from il_policy_node.mocap.topics import COMMAND_TOPIC, END_EFFECTOR_NAMESPACE, IMPORT_SESSION
from il_policy_node.recording.definitions import MessageDefinitions
from il_policy_node.recording.metadata import EpisodeMetadata, MocapClip, is_closed_episode
from il_policy_node.recording.session import Session, check_output_dir
from il_policy_node.recording.writer import (
    COMPRESSION,
    COMPRESSIONS,
    STORAGE,
    STORAGES,
    EpisodeWriter,
    TopicInfo,
)
from il_policy_node.runtime.robot import RobotJoints

LOG = logging.getLogger(__name__)

JOINT_STATE = 'sensor_msgs/msg/JointState'
POINT_STAMPED = 'geometry_msgs/msg/PointStamped'
STOP_REASON = 'end_of_clip'
_TOKEN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


# -- configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportConfig:
    """What ``il-policy mocap import`` was asked to do, validated by :meth:`checked`."""

    map_path: Path
    output_dir: Path
    session: str = IMPORT_SESSION
    task: str = ''
    operator: str = ''
    robot: RobotJoints | None = None          # None: the map's joints, no limits
    command_topic: str = COMMAND_TOPIC
    end_effector_namespace: str = END_EFFECTOR_NAMESPACE
    start_time_s: float | None = None         # None: each file's modification time
    storage: str = STORAGE
    compression: str = COMPRESSION
    strict: bool = False                      # stop at the first bad clip
    reimport: bool = False                    # import clips the session already holds

    @property
    def session_dir(self) -> Path:
        return self.output_dir / self.session

    def checked(self) -> 'ImportConfig':
        """This config, or ConfigError naming the bad option."""
        if not self.session or '/' in self.session or self.session in ('.', '..'):
            raise ConfigError(f'--session must be a folder name, got {self.session!r}')
        for option, topic in (('--command-topic', self.command_topic),
                              ('--end-effector-namespace', self.end_effector_namespace)):
            if not _is_topic(topic):
                raise ConfigError(f'{option} {topic!r} is not an absolute ROS topic name '
                                  '(/word/word, letters, digits and _)')
        if self.start_time_s is not None and not (0 < self.start_time_s < 2 ** 63 / 1e9):
            raise ConfigError(f'--start-time must be > 0 (Unix time, s), got '
                              f'{self.start_time_s}')
        if self.storage not in STORAGES:
            raise ConfigError(f'storage must be one of {sorted(STORAGES)}, got '
                              f'{self.storage!r}')
        if self.compression not in COMPRESSIONS:
            raise ConfigError(f'compression must be one of {list(COMPRESSIONS)}, got '
                              f'{self.compression!r}')
        return self


def _is_topic(name: str) -> bool:
    return name.startswith('/') and all(_TOKEN.match(t) for t in name[1:].split('/'))


def end_effector_topic(namespace: str, name: str) -> str:
    return f'{namespace.rstrip("/")}/{name}'


# -- results --------------------------------------------------------------------------------
IMPORTED, FAILED, SKIPPED = 'imported', 'failed', 'skipped'


@dataclass
class ClipResult:
    """What happened to one file: imported (``episode``), failed or skipped (``message``)."""

    source: Path
    status: str
    message: str = ''
    episode: Path | None = None
    samples: int = 0
    rate_hz: float = 0.0
    duration_s: float = 0.0
    clamped: dict[str, dict[str, float]] = field(default_factory=dict)

    def describe(self) -> str:
        """One line, and one more per clamped joint."""
        if self.status == FAILED:
            return f'failed {self.source}: {self.message}'
        if self.status == SKIPPED:
            return f'skipped {self.source}: {self.message}'
        lines = [f'imported {self.source} -> {self.episode}: {self.samples} samples at '
                 f'{self.rate_hz:g} Hz ({self.duration_s:.2f} s)'
                 + ('' if self.clamped else ', nothing clamped')]
        lines += [f'  clamped {joint}: {c["frames"]} frames, worst {c["worst_excess_rad"]:.4f} '
                  'rad beyond the limit' for joint, c in self.clamped.items()]
        return '\n'.join(lines)


@dataclass
class ImportReport:
    session_dir: Path
    results: list[ClipResult]
    files: int                                # files asked for (some not tried under strict)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> bool:
        return self.count(FAILED) == 0 and len(self.results) == self.files


# -- the import -----------------------------------------------------------------------------
def find_clips(paths: Sequence[str | Path]) -> list[Path]:
    """The files as given; folders are searched for ``*.bvh`` (recursively, sorted)."""
    clips: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            clips.extend(sorted(p for p in path.rglob('*') if p.suffix.lower() == '.bvh'
                                and p.is_file()))
        else:
            clips.append(path)
    return clips


def import_clips(paths: Sequence[str | Path], *, config: ImportConfig, progress: bool = False,
                 on_result: Callable[[ClipResult], None] | None = None) -> ImportReport:
    """Import BVH files (or folders of them) as episodes of ``config.session_dir``.

    A bad map, a map that does not fit the robot or an unwritable output folder raise (nothing
    is written). A bad clip becomes a FAILED result and the others go on (``config.strict``:
    the import stops there). ``on_result`` sees each result as it comes (e.g. to print it);
    ``progress`` shows a tqdm bar on stderr when there are several files.
    """
    config = config.checked()
    mapping = load_retarget_map(config.map_path)
    robot = config.robot or RobotJoints.unlimited(tuple(mapping.joints), 'map')
    check_robot(mapping, robot.joint_names)
    topics = _topics(config, mapping)
    clips = find_clips(paths)
    if not clips:
        raise MocapError(f'no BVH files in {[str(p) for p in paths]}')
    check_output_dir(config.session_dir, 0.0)
    session = Session(config.session_dir)
    writer = _BagWriter(config, mapping, robot, topics)
    report = ImportReport(config.session_dir, [], len(clips))
    from tqdm import tqdm
    for path in tqdm(clips, unit='clip', desc='mocap import',
                     disable=not progress or len(clips) < 2):
        result = writer.import_clip(path, session)
        report.results.append(result)
        if result.status == FAILED:
            LOG.info('%s', result.message)
        if on_result is not None:
            on_result(result)
        if result.status == FAILED and config.strict:
            break
    return report


def _topics(config: ImportConfig, mapping: RetargetMap) -> dict[str, str]:
    """Topic -> message type: the command topic, then one per end effector."""
    topics = {config.command_topic: JOINT_STATE}
    for ee in mapping.end_effectors:
        if not _TOKEN.match(ee.name):
            raise MocapError(f'{mapping.source}: end_effectors.{ee.name}: the name must be a '
                             'topic name token (letters, digits and _)')
        topic = end_effector_topic(config.end_effector_namespace, ee.name)
        if topic in topics:
            raise MocapError(f'{mapping.source}: end_effectors.{ee.name}: its topic {topic} '
                             'is the command topic')
        topics[topic] = POINT_STAMPED
    return topics


class _BagWriter:
    """Reads, retargets and writes one clip at a time into a session."""

    def __init__(self, config: ImportConfig, mapping: RetargetMap, robot: RobotJoints,
                 topics: dict[str, str]) -> None:
        self.config = config
        self.mapping = mapping
        self.robot = robot
        self.topics = topics
        definitions = MessageDefinitions()
        self.infos = [TopicInfo(topic, msgtype, *definitions.lookup(msgtype))
                      for topic, msgtype in topics.items()]
        store = get_typestore(Stores.ROS2_JAZZY)
        self.serialize = store.serialize_cdr
        self.types = store.types

    def import_clip(self, path: Path, session: Session) -> ClipResult:
        source = path.absolute()
        try:
            clip = load_bvh(source)
            earlier = None if self.config.reimport else _already_imported(
                session, clip.sha256, self.mapping.sha256)
            if earlier is not None:
                return ClipResult(source, SKIPPED, f'already imported as {earlier} (same file '
                                  'content and map; --reimport to import it again)')
            motion = retarget(clip, self.mapping, joint_names=self.robot.joint_names,
                              lower=self.robot.lower, upper=self.robot.upper)
            _check_motion(source, motion)
            start_ns = self._start_ns(source)
            return self._write(source, clip, motion, start_ns, session)
        except (IlPolicyError, OSError) as exc:   # BvhError, RetargetError, RecordingError
            message = ' '.join(str(exc).split()) or type(exc).__name__
            if str(source) not in message and str(path) not in message:
                message = f'{source}: {message}'
            return ClipResult(source, FAILED, message)

    def _start_ns(self, source: Path) -> int:
        if self.config.start_time_s is not None:
            return int(round(self.config.start_time_s * 1e9))
        return max(1, source.stat().st_mtime_ns)

    def _write(self, source: Path, clip: BvhClip, motion: RetargetedMotion, start_ns: int,
               session: Session) -> ClipResult:
        index = session.next_index()
        stamps = start_ns + np.round(motion.times * 1e9).astype(np.int64)
        writer = EpisodeWriter(session.episode_path(index), storage=self.config.storage,
                               compression=self.config.compression)
        try:
            for info in self.infos:
                writer.add_topic(info)
            for topic, stamp, data in self._messages(motion, stamps):
                writer.write(topic, stamp, data)
        except BaseException:
            writer.discard()
            raise
        clamped = {name: {'frames': c.frames, 'worst_excess_rad': c.worst_excess}
                   for name, c in motion.clamped.items()}
        duration = float(motion.times[-1])
        start = datetime.fromtimestamp(start_ns / 1e9, timezone.utc)
        stop = datetime.fromtimestamp(int(stamps[-1]) / 1e9, timezone.utc)
        ee_topics = {ee.name: {'topic': end_effector_topic(self.config.end_effector_namespace,
                                                           ee.name),
                               'frame_id': ee.relative_to}
                     for ee in self.mapping.end_effectors}
        mocap = MocapClip(
            source_file=str(source), source_sha256=clip.sha256, clip=source.stem,
            clip_frame_rate_hz=1.0 / clip.frame_time, clip_frames=clip.num_frames,
            clip_duration_s=(clip.num_frames - 1) * clip.frame_time,
            retarget_map=str(Path(self.mapping.source).absolute()),
            retarget_map_sha256=self.mapping.sha256, rate_hz=motion.rate_hz,
            samples=len(motion.times), start_time_ns=start_ns, robot=self.robot.source,
            joints=tuple(motion.joint_names), command_topic=self.config.command_topic,
            end_effectors=ee_topics, clamped=clamped)
        metadata = EpisodeMetadata(
            task=self.config.task, operator=self.config.operator, success=True,
            episode_index=index, start_wall_time=start.isoformat(),
            stop_wall_time=stop.isoformat(), stop_reason=STOP_REASON,
            recorder=f'il_policy_node mocap import {_version()}', mocap=mocap)
        try:
            counts = writer.close(metadata)
        except RecordingError:
            shutil.rmtree(writer.path, ignore_errors=True)   # partial: never left behind
            raise
        session.add_to_index(replace(metadata, message_counts=counts).index_entry(
            writer.path.name, duration_s=duration, storage=self.config.storage))
        return ClipResult(source, IMPORTED, episode=writer.path, samples=len(motion.times),
                          rate_hz=motion.rate_hz, duration_s=duration, clamped=clamped)

    def _messages(self, motion: RetargetedMotion, stamps: np.ndarray):
        """(topic, bag time, CDR bytes) in time order: the command, then each end effector."""
        types, serialize = self.types, self.serialize
        Time, Header = types['builtin_interfaces/msg/Time'], types['std_msgs/msg/Header']
        JointState = types[JOINT_STATE]
        PointStamped, Point = types[POINT_STAMPED], types['geometry_msgs/msg/Point']
        names = list(motion.joint_names)
        empty = np.zeros(0, dtype=np.float64)
        effectors = [(end_effector_topic(self.config.end_effector_namespace, ee.name),
                      ee.relative_to, motion.end_effectors[ee.name])
                     for ee in self.mapping.end_effectors]
        for i, stamp in enumerate(stamps.tolist()):
            time = Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
            message = JointState(header=Header(stamp=time, frame_id=''), name=names,
                                 position=np.ascontiguousarray(motion.positions[i]),
                                 velocity=np.ascontiguousarray(motion.velocities[i]),
                                 effort=empty)
            yield self.config.command_topic, stamp, bytes(serialize(message, JOINT_STATE))
            for topic, frame, points in effectors:
                x, y, z = (float(v) for v in points[i])
                message = PointStamped(header=Header(stamp=time, frame_id=frame),
                                       point=Point(x=x, y=y, z=z))
                yield topic, stamp, bytes(serialize(message, POINT_STAMPED))


def _check_motion(source: Path, motion: RetargetedMotion) -> None:
    samples = len(motion.times)
    if samples < 2:
        raise MocapError(f'{source}: the clip gives {samples} sample at '
                               f'{motion.rate_hz:g} Hz; an episode needs at least 2 (a clip of '
                               f'at least {1.0 / motion.rate_hz:g} s)')
    for what, values in (('position', motion.positions), ('velocity', motion.velocities)):
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise MocapError(f'{source}: non-finite {what} of joint '
                             f'{motion.joint_names[col]} at t={motion.times[row]:.3f} s')
    for name, points in motion.end_effectors.items():
        if not np.isfinite(points).all():
            raise MocapError(f'{source}: non-finite position of end effector {name}')


def _already_imported(session: Session, source_sha256: str, map_sha256: str) -> str | None:
    """The episode folder holding this file retargeted with this map, if one is complete."""
    for entry in session.read_index():
        mocap = entry.get('mocap') or {}
        folder = session.root / str(entry.get('path'))
        if mocap.get('source_sha256') == source_sha256 and \
                mocap.get('retarget_map_sha256') == map_sha256 and is_closed_episode(folder):
            return str(folder)
    return None


def _version() -> str:
    try:
        return importlib.metadata.version('il_policy_node')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'
