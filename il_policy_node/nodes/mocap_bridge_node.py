"""mocap_bridge: plays BVH clips as a live retargeted joint stream, like a mocap suit.

The recorder and the robot see what a motion-capture suit streaming through a retargeting
system would send. For each file of ``files``, one after the other (again and again with
``loop``):
  1. reads the clip (il_policy_node.mocap.stream.ClipSource) and retargets it onto the
     robot's joints with the map ``retarget_map``: the joints and limits of the sim model
     ``model``, or ``joint_names`` with ``position_lower_limits``/``position_upper_limits``;
  2. publishes what it is on ``~/clip`` (std_msgs/String, JSON; reliable, transient local,
     the last 100 kept): file, follow, complete, frame_rate_hz, frames, duration_s, rate_hz
     (samples per clip second), publish_rate_hz, rate_scale, samples, file_sha256,
     retarget_map, map_sha256, joint_names, clamped ({joint: {frames, worst_excess_rad}}),
     index (in ``files``), round; a followed file's again at its end (complete: true);
  3. with drive_robot, sends the robot to the clip's first pose (one JointTrajectory point at
     settle_s on ``joint_trajectory_controller/joint_trajectory``) and waits settle_s;
  4. calls ``<recorder>/start_episode`` (std_srvs/Trigger; a refusal is retried until
     service_timeout_s), so that each clip becomes one episode;
  5. streams the clip at its own frame rate times ``rate_scale`` (or resampled to
     ``publish_rate_hz``): sensor_msgs/JointState on ``mocap/joint_command`` (name, position
     within the limits, velocity in rad/s of wall-clock time, header.stamp = the sample's
     due time, i.e. now up to timer jitter and evenly spaced after a stall) and, with
     publish_end_effectors, geometry_msgs/PointStamped on ``mocap/end_effectors/<name>`` for
     each end effector of the map (metres, robot axes, frame_id = the map's ``relative_to``
     BVH joint); with drive_robot, each sample as a one-point JointTrajectory (time_from_start
     = one publish period) to the controller, as a teleop follower is driven;
  6. calls ``<recorder>/stop_episode`` (std_srvs/SetBool, data = true; false when a followed
     file turned out malformed part-way).
Every frame is published once, in order: a late tick publishes the samples that became due.
Before the first clip the node waits for the recorder's services and for the recorder to
subscribe ``mocap/joint_command`` (only a warning after service_timeout_s), for the robot
(drive_robot), and up to wait_for_subscribers_s for min_subscribers subscribers of
``mocap/joint_command``.

follow: the last file is followed like ``tail -f``: it may not exist yet, its header may not
be written yet, ``Frames:`` is not checked (write 0), and frames appended are retargeted and
streamed as they come (one frame behind the writer, two when resampled: a velocity needs the
next frame). The clip ends when follow_timeout_s passes without a new frame. When the writer
is slower than the clip's rate the stream waits for it and then goes on at the clip's rate;
frames written during the settle move and the recorder's start are streamed after them at
the clip's rate (a constant delay, no burst).

Parameters (PARAMETERS below; documented with their defaults in config/mocap_bridge.yaml):
files, retarget_map, model, joint_names, position_lower_limits, position_upper_limits, loop,
follow, follow_timeout_s, rate_scale, publish_rate_hz, publish_end_effectors, drive_robot,
settle_s, recorder, service_timeout_s, min_subscribers, wait_for_subscribers_s.

Errors name the file and its line, or the map entry: a file that cannot be read or retargeted
is logged and skipped, the next one is played. Joints clamped to the limits are logged and
reported on ``~/clip``. After the last clip (without loop) the node logs a summary and the
process exits with code 0, or 1 when no clip could be played; a bad map or bad parameters end
it at once with code 1; as for demonstrator, a recorder service or a robot that is missing
after service_timeout_s ends it with code 1 and an error naming it. Ctrl-C ends it at once.
"""
from __future__ import annotations

import json
import re
import sys
import time
from collections import deque
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from il_policy_node.mocap.bvh import BvhError
from il_policy_node.mocap.retarget import (
    RetargetError,
    RetargetMap,
    check_robot,
    load_retarget_map,
)
from il_policy_node.mocap.stream import ClipSource, MotionSamples
from il_policy_node.ros.conversions import JointStateMessage, TrajectoryMessages, duration_msg
from il_policy_node.ros.params import ParamSpec, declare_and_read
from il_policy_node.ros.qos import COMMAND_QOS
from il_policy_node.ros.recorder_client import RecorderEpisodes, RecorderError
from il_policy_node.ros.spin import spin_node

PACKAGE = 'il_policy_node'
SOURCE_RETARGET_DIR = Path(__file__).resolve().parents[2] / 'config' / 'retarget'
PARAMETERS = (
    ParamSpec('files', Parameter.Type.STRING_ARRAY,
              'BVH files, played one after the other.'),
    ParamSpec('retarget_map', '', "Retarget map (YAML); '' = config/retarget/<model>.yaml of "
                                  'the package.'),
    ParamSpec('model', 'humanoid_upper', "Sim model whose joints and limits are the robot's "
                                         "(unless joint_names is set); '' = none."),
    ParamSpec('joint_names', Parameter.Type.STRING_ARRAY,
              "The robot's joints in message order; empty = the model's."),
    ParamSpec('position_lower_limits', Parameter.Type.DOUBLE_ARRAY,
              'With joint_names: lower position limits (rad); empty = none.'),
    ParamSpec('position_upper_limits', Parameter.Type.DOUBLE_ARRAY,
              'With joint_names: upper position limits (rad); empty = none.'),
    ParamSpec('loop', False, 'Play the files again and again.'),
    ParamSpec('follow', False, 'Follow the last file as it is written (tail -f).'),
    ParamSpec('follow_timeout_s', 5.0, 'A followed file ends this long after its last new '
                                       'frame.', float_range=(0.05, 86400.0)),
    ParamSpec('rate_scale', 1.0, 'Playback speed (2.0 = twice as fast).',
              float_range=(0.01, 100.0)),
    ParamSpec('publish_rate_hz', 0.0, "Publish rate; 0 = the clip's frame rate times "
                                      'rate_scale (every frame once).',
              float_range=(0.0, 2000.0)),
    ParamSpec('publish_end_effectors', True,
              "PointStamped on mocap/end_effectors/<name> for the map's end effectors."),
    ParamSpec('drive_robot', False, 'Also command the robot (controller topic) with each '
                                    'sample.'),
    ParamSpec('settle_s', 1.0, 'drive_robot: move to the first pose of a clip in this time.',
              float_range=(0.01, 1000.0)),
    ParamSpec('recorder', '', "Service namespace of demo_recorder (one episode per clip); '' = "
                              'none.'),
    ParamSpec('service_timeout_s', 10.0, 'Wait this long for a service, an answer, an '
                                         'accepted start or the robot.',
              float_range=(0.1, 3600.0)),
    ParamSpec('min_subscribers', 1, 'Before the first clip, wait for this many subscribers '
                                    'of mocap/joint_command (up to wait_for_subscribers_s).',
              int_range=(0, 1000)),
    ParamSpec('wait_for_subscribers_s', 5.0, 'How long to wait for min_subscribers; then play '
                                             'anyway.', float_range=(0.0, 3600.0)),
)
COMMAND_TOPIC = 'mocap/joint_command'
END_EFFECTOR_NAMESPACE = 'mocap/end_effectors'
CONTROLLER_TOPIC = 'joint_trajectory_controller/joint_trajectory'
SETTLE_MARGIN_S = 0.2
EARLY = 0.25              # of a period: a sample due this soon goes out on this tick
IDLE_PERIOD_S = 0.01      # tick period outside streaming
# Reliable with a deep history, so a burst after a stall reaches a slow subscriber whole.
MOCAP_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
CLIP_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)   # every clip, latched
_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
CLIP_ERRORS = (BvhError, RetargetError, OSError, ValueError)


class BridgeFinished(Exception):
    """Raised to end the spin; ``exit_code`` is the process's."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def default_retarget_map(model: str) -> Path:
    """config/retarget/<model>.yaml of the package; ValueError lists where it looked.

    Installed (the ament index, then this Python's prefix), else the source tree.
    """
    if not model:
        raise ValueError("retarget_map is needed when model is ''")
    relative = Path('config') / 'retarget' / f'{model}.yaml'
    candidates = []
    try:
        candidates.append(Path(get_package_share_directory(PACKAGE)) / relative)
    except (LookupError, OSError):         # not in the ament index, or no AMENT_PREFIX_PATH
        pass
    candidates += [Path(sys.prefix) / 'share' / PACKAGE / relative,
                   SOURCE_RETARGET_DIR / relative.name]
    for path in candidates:
        if path.is_file():
            return path
    raise ValueError(f'no retarget map for model {model!r} (looked for '
                     f'{", ".join(map(str, candidates))}); set retarget_map')


def robot_joints(params: dict) -> tuple[tuple[str, ...], list[float] | None,
                                        list[float] | None]:
    """(joint names, lower, upper limits or None) from joint_names or the sim model."""
    names = tuple(params['joint_names'])
    if names:
        limits = []
        for key in ('position_lower_limits', 'position_upper_limits'):
            values = [float(v) for v in params[key]]
            if values and len(values) != len(names):
                raise ValueError(f'{key} has {len(values)} values for {len(names)} joint_names')
            limits.append(values or None)
        return names, limits[0], limits[1]
    if not params['model']:
        raise ValueError("give the robot's joints: model or joint_names")
    # MuJoCo only when a model is used
    from il_policy_node.sim.models import model_info
    info = model_info(params['model'])
    return info.joint_names, list(info.lower_limits), list(info.upper_limits)


class MocapBridgeNode(Node):
    """Plays the clips one after the other, on a timer at the publish rate."""

    def __init__(self, node_name: str = 'mocap_bridge', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        try:
            self._configure(declare_and_read(self, PARAMETERS))
        except (ValueError, OSError) as exc:     # RetargetError, UnknownModelError included
            self.get_logger().error(str(exc))
            raise BridgeFinished(1, str(exc)) from None

    def _configure(self, params: dict) -> None:
        self.files = [str(f) for f in params['files']]
        if not self.files:
            raise ValueError('parameter files is empty: give the BVH files to play')
        self.loop, self.follow = bool(params['loop']), bool(params['follow'])
        if self.loop and self.follow:
            raise ValueError('loop and follow exclude each other')
        self.joint_names, self.lower, self.upper = robot_joints(params)
        map_path = params['retarget_map'] or default_retarget_map(params['model'])
        self.mapping: RetargetMap = load_retarget_map(map_path)
        check_robot(self.mapping, self.joint_names)
        self.follow_timeout_s = float(params['follow_timeout_s'])
        self.rate_scale = float(params['rate_scale'])
        self.publish_rate_hz = float(params['publish_rate_hz'])
        self.drive_robot = bool(params['drive_robot'])
        self.settle_s = float(params['settle_s'])
        self.service_timeout_s = float(params['service_timeout_s'])
        self.min_subscribers = int(params['min_subscribers'])
        self.wait_for_subscribers_s = float(params['wait_for_subscribers_s'])

        self._command = JointStateMessage(self.joint_names, velocities=True)
        self._command_pub = self.create_publisher(JointState, COMMAND_TOPIC, MOCAP_QOS)
        self._effector_pubs = {}
        if params['publish_end_effectors']:
            for ee in self.mapping.end_effectors:
                if not _NAME.match(ee.name):
                    raise ValueError(f'{self.mapping.source}: end_effectors.{ee.name}: not '
                                     'usable in a topic name (letters, digits, _)')
                publisher = self.create_publisher(
                    PointStamped, f'{END_EFFECTOR_NAMESPACE}/{ee.name}', MOCAP_QOS)
                point = PointStamped()
                point.header.frame_id = ee.relative_to
                self._effector_pubs[ee.name] = (publisher, point)
        self._robot_pub = self.create_publisher(JointTrajectory, CONTROLLER_TOPIC,
                                                COMMAND_QOS) if self.drive_robot else None
        self._clip_pub = self.create_publisher(String, '~/clip', CLIP_QOS)
        self._recorder = RecorderEpisodes(self, str(params['recorder']),
                                          service_timeout_s=self.service_timeout_s)

        self._state = 'wait_graph'
        self._began = time.monotonic()
        self._subscriber_deadline = self._began + self.wait_for_subscribers_s
        self._index, self._round = -1, 0
        self._played_in_round = 0
        self._source: ClipSource | None = None
        self._queue: deque[MotionSamples] = deque()
        self._cursor = 0                   # next row of self._queue[0]
        self._next = 0                     # index of the next sample to publish
        self._anchor = (0.0, 0, 0)         # (monotonic s, sample index, ROS time ns)
        self._period = IDLE_PERIOD_S       # wall-clock seconds per sample of this clip
        self._trajectories: TrajectoryMessages | None = None
        self._clip_error = ''
        self._published = 0                # samples of this clip
        self._until = 0.0                  # end of the settle move
        self.played: list[str] = []
        self.skipped: list[str] = []       # error messages
        self._played_s = 0.0
        rate = f'{self.publish_rate_hz:g} Hz' if self.publish_rate_hz else 'clip rate'
        self.get_logger().info(
            f'{len(self.files)} files, map {self.mapping.source}, {len(self.joint_names)} '
            f'joints, {rate} x {self.rate_scale:g}, loop {self.loop}, '
            f'follow {self.follow}, recorder {self._recorder.namespace or "(none)"}, '
            f'drive_robot {self.drive_robot}')
        self._timer = self.create_timer(IDLE_PERIOD_S, self._tick)

    # -- the player's loop ---------------------------------------------------------------------
    def _tick(self) -> None:
        try:
            self._step(time.monotonic())
        except RecorderError as exc:
            self._finish(1, str(exc))

    def _step(self, now: float) -> None:
        state = self._state
        if state == 'wait_graph':
            self._wait_for_graph(now)
            return
        if state == 'open':
            self._open_next(now)
            return
        if state in ('loading', 'settle', 'starting', 'streaming'):
            self._poll_source()
            now, state = time.monotonic(), self._state       # a whole clip takes a while
        if state == 'loading':
            if self._queue:
                self._begin_clip(now)
        elif state == 'settle':
            if now >= self._until:
                self._request_start(now)
        elif state == 'starting':
            self._check_start(now)
        elif state == 'streaming':
            self._stream(now)
        elif state == 'stopping':
            self._check_stop(now)

    def _wait_for_graph(self, now: float) -> None:
        """Before the first clip: the recorder's services, the robot and a listener."""
        if not self._recorder.ready(now, robot=self._robot_pub):
            return
        topic = self._command_pub.topic_name
        # The recorder subscribes once it sees the publisher; wait for it, but a recorder that
        # does not record this topic is its operator's choice.
        unheard = self._recorder.enabled and not self._recorder.subscribes(topic)
        count = self._command_pub.get_subscription_count()
        few = count < self.min_subscribers
        if (unheard and not self._recorder.timed_out(now)) or \
                (few and now < self._subscriber_deadline):
            return
        if unheard:
            self.get_logger().warn(f'the recorder does not subscribe {topic}: is it in its '
                                   'topics?')
        if few:
            self.get_logger().warn(f'{count} subscribers of {topic} after '
                                   f'{self.wait_for_subscribers_s:g} s (min_subscribers '
                                   f'{self.min_subscribers}); playing anyway')
        self._open_next(now)

    def _open_next(self, now: float) -> None:
        """Open the next file that can be read (or finish)."""
        while True:
            self._index += 1
            if self._index == len(self.files):
                if not self.loop or not self._played_in_round:
                    self._done()
                    return
                self._index, self._played_in_round = 0, 0
                self._round += 1
            path = self.files[self._index]
            follow = self.follow and self._index == len(self.files) - 1
            rate_hz = self.publish_rate_hz / self.rate_scale if self.publish_rate_hz else None
            try:
                self._source = ClipSource(
                    path, self.mapping, joint_names=self.joint_names, lower=self.lower,
                    upper=self.upper, rate_hz=rate_hz, follow=follow,
                    follow_timeout_s=self.follow_timeout_s)
            except CLIP_ERRORS as exc:
                self._skip(path, exc)
                continue
            self._queue.clear()
            self._cursor = self._next = self._published = 0
            self._clip_error = ''
            self._state = 'loading'          # the next tick polls the source
            if follow:
                self.get_logger().info(f'following {path} (ends {self.follow_timeout_s:g} s '
                                       'after its last new frame)')
            return

    def _poll_source(self) -> None:
        source = self._source
        if source is None or source.done:
            return
        try:
            samples = source.poll()
        except CLIP_ERRORS as exc:
            if self._state == 'loading':         # nothing published: skip it
                self._skip(str(source.path), exc)
                self._source = None
                self._state = 'open'
                return
            self._clip_error = str(exc)
            self.get_logger().error(f'{exc}; ending the clip')
            retargeter = source.retargeter
            samples = retargeter.finish() if not retargeter.finished else None
            source.done = True
        if samples is not None and len(samples):
            self._queue.append(samples)

    def _skip(self, path: str, exc: Exception) -> None:
        if isinstance(exc, OSError) and exc.strerror:
            message = f'{path}: {exc.strerror}'
        else:
            message = str(exc) if path in str(exc) else f'{path}: {exc}'
        self.skipped.append(message)
        self.get_logger().error(f'skipped: {message}')

    def _begin_clip(self, now: float) -> None:
        source = self._source
        rate_hz = source.retargeter.rate_hz
        self._period = 1.0 / (rate_hz * self.rate_scale)
        self._timer.timer_period_ns = int(round(self._period * 1e9))
        self._timer.reset()
        if self._robot_pub is not None:
            self._trajectories = TrajectoryMessages(self.joint_names, self._period,
                                                    velocities=False)
        self._publish_clip_info()
        info = source.info()
        what = (f'{info["frames"]} frames' if info['complete'] else 'followed') + \
            f' at {info["frame_rate_hz"]:g} Hz'
        self.get_logger().info(
            f'clip {self._index + 1}/{len(self.files)}'
            f'{f" (round {self._round + 1})" if self.loop else ""}: {source.path} ({what}, '
            f'{info["duration_s"]:.2f} s), {1.0 / self._period:g} samples/s')
        if info['complete']:
            self._log_clamped(info)
        if self._robot_pub is not None:
            first = self._queue[0].positions[0]
            point = JointTrajectoryPoint(positions=[float(p) for p in first],
                                         time_from_start=duration_msg(self.settle_s))
            self._robot_pub.publish(JointTrajectory(joint_names=list(self.joint_names),
                                                    points=[point]))
            self._state = 'settle'
            self._until = now + self.settle_s + SETTLE_MARGIN_S
        else:
            self._request_start(now)

    def _publish_clip_info(self) -> None:
        info = self._source.info()
        info.update(index=self._index, round=self._round, rate_scale=self.rate_scale,
                    publish_rate_hz=1.0 / self._period, joint_names=list(self.joint_names))
        self._clip_pub.publish(String(data=json.dumps(info)))

    def _log_clamped(self, info: dict) -> None:
        if info['clamped']:
            joints = ', '.join(f'{name} ({c["frames"]} samples, up to '
                               f'{c["worst_excess_rad"]:.3g} rad)'
                               for name, c in info['clamped'].items())
            self.get_logger().warn(f'{info["file"]}: clamped to the limits: {joints}')

    def _request_start(self, now: float) -> None:
        self._state = 'starting'
        self._recorder.request_start(now)
        self._check_start(now)             # without a recorder: streams at once

    def _check_start(self, now: float) -> None:
        if self._recorder.poll_start(now):
            self._begin_streaming(now)

    def _begin_streaming(self, now: float) -> None:
        self._state = 'streaming'
        self._set_anchor()
        self._stream(time.monotonic())

    def _set_anchor(self) -> None:
        """The next sample is due now; the ones after it one period apart."""
        self._anchor = (time.monotonic(), self._next, self.get_clock().now().nanoseconds)

    def _due(self, index: int) -> float:
        t0, i0, _ = self._anchor
        return t0 + (index - i0) * self._period

    def _stamp(self, index: int):
        """The due time of sample ``index`` on the node's clock."""
        _, i0, ros0 = self._anchor
        return Time(nanoseconds=ros0 + round((index - i0) * self._period * 1e9),
                    clock_type=self.get_clock().clock_type).to_msg()

    def _stream(self, now: float) -> None:
        """Publish every sample that is due; at the end of the clip, stop it."""
        while self._queue and self._due(self._next) <= now + EARLY * self._period:
            batch = self._queue[0]
            self._publish(batch, self._cursor, self._stamp(self._next))
            self._next += 1
            self._cursor += 1
            if self._cursor == len(batch):
                self._queue.popleft()
                self._cursor = 0
        if self._queue:
            return
        if self._source.done:
            self._end_clip(now)
        elif self._due(self._next) < now:      # the writer is late: wait for it, then go on
            self._set_anchor()

    def _publish(self, batch: MotionSamples, row: int, stamp) -> None:
        msg = self._command.msg
        msg.header.stamp = stamp
        self._command.positions[:] = batch.positions[row]
        self._command.velocities[:] = batch.velocities[row] * self.rate_scale
        self._command_pub.publish(msg)
        for name, (publisher, point) in self._effector_pubs.items():
            x, y, z = batch.end_effectors[name][row]
            point.header.stamp = stamp
            point.point.x, point.point.y, point.point.z = float(x), float(y), float(z)
            publisher.publish(point)
        if self._trajectories is not None:
            self._robot_pub.publish(self._trajectories.fill(batch.positions[row], None,
                                                            hold=False))
        self._published += 1

    def _end_clip(self, now: float) -> None:
        source = self._source
        info = source.info()
        if source.follow:
            self._publish_clip_info()
            self._log_clamped(info)
        self._played_s += info['duration_s']
        self.played.append(str(source.path))
        self._played_in_round += 1
        self.get_logger().info(f'clip {source.path} played: {self._published} samples, '
                               f'{info["frames"]} frames, {info["duration_s"]:.2f} s'
                               + (f' (ended early: {self._clip_error})'
                                  if self._clip_error else ''))
        self._timer.timer_period_ns = int(IDLE_PERIOD_S * 1e9)
        self._timer.reset()
        self._request_stop(now, success=not self._clip_error)

    def _request_stop(self, now: float, success: bool) -> None:
        self._state = 'stopping'
        self._recorder.request_stop(now, success=success)
        self._check_stop(now)              # without a recorder: the next clip at once

    def _check_stop(self, now: float) -> None:
        if self._recorder.poll_stop(now):
            self._open_next(now)

    def _done(self) -> None:
        skipped = f', {len(self.skipped)} skipped' if self.skipped else ''
        if not self.played:
            self._finish(1, f'no clip could be played ({len(self.files)} files{skipped})')
        else:
            self._finish(0, f'done: {len(self.played)} clips played ({self._played_s:.1f} s '
                            f'of motion, {time.monotonic() - self._began:.1f} s in all)'
                            f'{skipped}')

    def _finish(self, exit_code: int, message: str) -> None:
        """Log and end the spin (main turns this into the process's exit code)."""
        self._state = 'done'
        self._timer.cancel()
        if exit_code:
            self.get_logger().error(message)
        else:
            self.get_logger().info(message)
        raise BridgeFinished(exit_code, message)


def main(args=None) -> None:
    try:
        spin_node(MocapBridgeNode, args)
    except BridgeFinished as finished:
        # spin_node has destroyed the node and shut rclpy down on the way out.
        sys.exit(finished.exit_code)


if __name__ == '__main__':
    main()
