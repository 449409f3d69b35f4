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
from il_policy_node.mocap.methods import IkMethod, IkSettings, MapMethod, Retargeted
from il_policy_node.mocap.quality import summary_line, write_report
from il_policy_node.mocap.retarget import RetargetedMotion
from il_policy_node.mocap.topics import (
    COMMAND_TOPIC,
    END_EFFECTOR_NAMESPACE,
    IMPORT_SESSION,
    ROOT_POSE_TOPIC,
)
from il_policy_node.recording.definitions import MessageDefinitions
from il_policy_node.recording.metadata import (
    EpisodeMetadata,
    MocapClip,
    is_closed_episode,
    recorder_name,
)
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
POSE_STAMPED = 'geometry_msgs/msg/PoseStamped'
STOP_REASON = 'end_of_clip'
_TOKEN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


# -- configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportConfig:
    """What ``il-policy mocap import`` was asked to do, validated by :meth:`checked`."""

    output_dir: Path
    map_path: Path | None = None              # the angle map; or
    ik: IkSettings | None = None              # inverse kinematics onto a sim model
    session: str = IMPORT_SESSION
    task: str = ''
    operator: str = ''
    robot: RobotJoints | None = None          # None: the map's joints, no limits
    command_topic: str = COMMAND_TOPIC
    end_effector_namespace: str = END_EFFECTOR_NAMESPACE
    root_pose_topic: str = ROOT_POSE_TOPIC
    start_time_s: float | None = None         # None: each file's modification time
    storage: str = STORAGE
    compression: str = COMPRESSION
    strict: bool = False                      # stop at the first bad clip; reject clips
                                              # over the quality thresholds (IK)
    reimport: bool = False                    # import clips the session already holds

    @property
    def session_dir(self) -> Path:
        return self.output_dir / self.session

    def checked(self) -> 'ImportConfig':
        """This config, or ConfigError naming the bad option."""
        if (self.map_path is None) == (self.ik is None):
            raise ConfigError('give either a retarget map or inverse kinematics (a model)')
        if not self.session or '/' in self.session or self.session in ('.', '..'):
            raise ConfigError(f'--session must be a folder name, got {self.session!r}')
        for option, topic in (('--command-topic', self.command_topic),
                              ('--end-effector-namespace', self.end_effector_namespace),
                              ('--root-pose-topic', self.root_pose_topic)):
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
IMPORTED, FAILED, SKIPPED, REJECTED = 'imported', 'failed', 'skipped', 'rejected'


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
    quality: str = ''                         # the quality report's line (IK)

    def describe(self) -> str:
        """One line, one for the quality report (IK), and one per clamped joint."""
        if self.status in (FAILED, SKIPPED, REJECTED):
            return f'{self.status} {self.source}: {self.message}'
        lines = [f'imported {self.source} -> {self.episode}: {self.samples} samples at '
                 f'{self.rate_hz:g} Hz ({self.duration_s:.2f} s)'
                 + ('' if self.clamped else ', nothing clamped')]
        if self.quality:
            lines.append(f'  quality: {self.quality}')
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
        return self.count(FAILED) == self.count(REJECTED) == 0 and \
            len(self.results) == self.files


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
    method = MapMethod(config.map_path, config.robot) if config.map_path is not None \
        else IkMethod(config.ik)
    topics = _topics(config, method)
    clips = find_clips(paths)
    if not clips:
        raise MocapError(f'no BVH files in {[str(p) for p in paths]}')
    check_output_dir(config.session_dir, 0.0)
    session = Session(config.session_dir)
    writer = _BagWriter(config, method, topics)
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


def _topics(config: ImportConfig, method: MapMethod | IkMethod) -> dict[str, str]:
    """Topic -> message type: the command, one per end effector, the root pose (IK)."""
    topics = {config.command_topic: JOINT_STATE}
    for name in method.end_effectors:
        if not _TOKEN.match(name):
            raise MocapError(f'{method.source}: end_effectors.{name}: the name must be a '
                             'topic name token (letters, digits and _)')
        topic = end_effector_topic(config.end_effector_namespace, name)
        if topic in topics:
            raise MocapError(f'{method.source}: end_effectors.{name}: its topic {topic} '
                             'is the command topic')
        topics[topic] = POINT_STAMPED
    if method.has_root:
        if config.root_pose_topic in topics:
            raise ConfigError(f'--root-pose-topic {config.root_pose_topic} is taken by '
                              'another topic of the import')
        topics[config.root_pose_topic] = POSE_STAMPED
    return topics


class _BagWriter:
    """Reads, retargets and writes one clip at a time into a session."""

    def __init__(self, config: ImportConfig, method: MapMethod | IkMethod,
                 topics: dict[str, str]) -> None:
        self.config = config
        self.method = method
        self.robot = method.robot
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
            fingerprint = self.method.fingerprint(clip)
            earlier = None if self.config.reimport else _already_imported(
                session, clip.sha256, fingerprint)
            if earlier is not None:
                return ClipResult(source, SKIPPED, f'already imported as {earlier} (same file '
                                  'content and retargeting; --reimport to import it again)')
            result = self.method.retarget(clip)
            _check_motion(source, result.motion)
            if result.report is not None and result.report['problems'] and self.config.strict:
                return ClipResult(source, REJECTED, 'over the quality thresholds (--strict): '
                                  + '; '.join(result.report['problems']),
                                  quality=summary_line(result.report))
            start_ns = self._start_ns(source)
            return self._write(source, clip, result, fingerprint, start_ns, session)
        except (IlPolicyError, OSError) as exc:   # BvhError, RetargetError, RecordingError
            message = ' '.join(str(exc).split()) or type(exc).__name__
            if str(source) not in message and str(path) not in message:
                message = f'{source}: {message}'
            return ClipResult(source, FAILED, message)

    def _start_ns(self, source: Path) -> int:
        if self.config.start_time_s is not None:
            return int(round(self.config.start_time_s * 1e9))
        return max(1, source.stat().st_mtime_ns)

    def _write(self, source: Path, clip: BvhClip, result: Retargeted, fingerprint: str,
               start_ns: int, session: Session) -> ClipResult:
        motion = result.motion
        index = session.next_index()
        stamps = start_ns + np.round(motion.times * 1e9).astype(np.int64)
        writer = EpisodeWriter(session.episode_path(index), storage=self.config.storage,
                               compression=self.config.compression)
        try:
            for info in self.infos:
                writer.add_topic(info)
            for topic, stamp, data in self._messages(result, stamps):
                writer.write(topic, stamp, data)
        except BaseException:
            writer.discard()
            raise
        clamped = {name: {'frames': c.frames, 'worst_excess_rad': c.worst_excess}
                   for name, c in motion.clamped.items()}
        duration = float(motion.times[-1])
        start = datetime.fromtimestamp(start_ns / 1e9, timezone.utc)
        stop = datetime.fromtimestamp(int(stamps[-1]) / 1e9, timezone.utc)
        ee_topics = {name: {'topic': end_effector_topic(self.config.end_effector_namespace,
                                                        name), 'frame_id': frame}
                     for name, frame in self.method.end_effectors.items()}
        mocap = MocapClip(
            source_file=str(source), source_sha256=clip.sha256, clip=source.stem,
            clip_frame_rate_hz=1.0 / clip.frame_time, clip_frames=clip.num_frames,
            clip_duration_s=(clip.num_frames - 1) * clip.frame_time,
            retarget_map=self.method.source, retarget_map_sha256=fingerprint,
            rate_hz=motion.rate_hz,
            samples=len(motion.times), start_time_ns=start_ns, robot=self.robot.source,
            joints=tuple(motion.joint_names), command_topic=self.config.command_topic,
            end_effectors=ee_topics, clamped=clamped)
        metadata = EpisodeMetadata(
            task=self.config.task, operator=self.config.operator, success=True,
            episode_index=index, start_wall_time=start.isoformat(),
            stop_wall_time=stop.isoformat(), stop_reason=STOP_REASON,
            recorder=recorder_name('mocap import'), mocap=mocap)
        try:
            counts = writer.close(metadata)
        except RecordingError:
            shutil.rmtree(writer.path, ignore_errors=True)   # partial: never left behind
            raise
        quality = ''
        if result.report is not None:
            write_report(result.report, writer.path, result.ik)
            quality = summary_line(result.report)
        session.add_to_index(replace(metadata, message_counts=counts).index_entry(
            writer.path.name, duration_s=duration, storage=self.config.storage))
        return ClipResult(source, IMPORTED, episode=writer.path, samples=len(motion.times),
                          rate_hz=motion.rate_hz, duration_s=duration, clamped=clamped,
                          quality=quality)

    def _messages(self, result: Retargeted, stamps: np.ndarray):
        """(topic, bag time, CDR bytes) in time order: command, end effectors, root pose."""
        motion = result.motion
        types, serialize = self.types, self.serialize
        Time, Header = types['builtin_interfaces/msg/Time'], types['std_msgs/msg/Header']
        JointState = types[JOINT_STATE]
        PointStamped, Point = types[POINT_STAMPED], types['geometry_msgs/msg/Point']
        names = list(motion.joint_names)
        empty = np.zeros(0, dtype=np.float64)
        PoseStamped, Pose = types[POSE_STAMPED], types['geometry_msgs/msg/Pose']
        Quaternion = types['geometry_msgs/msg/Quaternion']
        effectors = [(end_effector_topic(self.config.end_effector_namespace, name), frame,
                      motion.end_effectors[name])
                     for name, frame in self.method.end_effectors.items()]
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
            if result.root_poses is not None:
                x, y, z, qw, qx, qy, qz = (float(v) for v in result.root_poses[i])
                message = PoseStamped(header=Header(stamp=time, frame_id='world'), pose=Pose(
                    position=Point(x=x, y=y, z=z),
                    orientation=Quaternion(x=qx, y=qy, z=qz, w=qw)))
                yield self.config.root_pose_topic, stamp, bytes(serialize(message,
                                                                          POSE_STAMPED))


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

