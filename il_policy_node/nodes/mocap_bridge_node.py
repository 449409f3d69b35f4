"""mocap_bridge: plays BVH clips as a live retargeted joint stream, like a mocap suit.

The recorder and the robot see what a motion-capture suit streaming through a retargeting
system would send. For each file of ``files``, one after the other (again and again with
``loop``):
  1. reads the clip (il_policy_node.mocap.stream.ClipSource) and retargets it onto the
     robot's joints: ``retarget: map`` with the map ``retarget_map`` (the joints and limits
     of the sim model ``model``, or ``joint_names`` with ``position_lower_limits``/
     ``position_upper_limits``), or ``retarget: ik``, inverse kinematics onto the sim model
     ``model`` (il_policy_node.mocap.ik; ``skeleton``: auto, a preset or a skeleton file;
     ``floating_root``), frame by frame as the frames come;
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
     each end effector (the map's: metres, robot axes, frame_id = its ``relative_to`` BVH
     joint; with IK the robot's head, hands and feet, frame_id pelvis, or world with
     floating_root); with drive_robot, each sample as a one-point JointTrajectory (time_from_start
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
files, retarget, retarget_map, skeleton, floating_root, model, joint_names,
position_lower_limits, position_upper_limits, loop, follow, follow_timeout_s, rate_scale,
publish_rate_hz, publish_end_effectors, drive_robot, settle_s, recorder, service_timeout_s,
min_subscribers, wait_for_subscribers_s.

Errors name the file and its line, or the map entry: a file that cannot be read or retargeted
is logged and skipped, the next one is played. Joints clamped to the limits are logged and
reported on ``~/clip``. The clips are timed by mocap/schedule.py's ClipScheduler and driven by
recording/driver.py's EpisodeDriver. After the last clip (without loop) the node logs a
summary, the messages it published are delivered, and the process exits with code 0, or 1
when no clip could be played; a bad map or bad parameters end it at once with code 1; as for
demonstrator, a recorder service or a robot that is missing after service_timeout_s ends it
with code 1 and an error naming it. Ctrl-C ends it at once.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time

from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from il_policy_node.errors import ConfigError
from il_policy_node.mocap.retarget import package_map
from il_policy_node.mocap.schedule import ClipScheduler, DueSample, Playback
from il_policy_node.recording.driver import EpisodeDriver, Finished, Preparation
from il_policy_node.ros.conversions import JointStateMessage, TrajectoryMessages, duration_msg
from il_policy_node.ros.params import ParamSpec, declare_and_read, default_of
from il_policy_node.ros.qos import COMMAND_QOS
from il_policy_node.ros.recorder_client import RecorderEpisodes, drive
from il_policy_node.ros.spin import spin_node
from il_policy_node.runtime.robot import RobotJoints


def _p(name: str):
    """The default of a Playback field: the parameter's default."""
    return default_of(Playback, name)


PARAMETERS = (
    ParamSpec('files', Parameter.Type.STRING_ARRAY,
              'BVH files, played one after the other.'),
    ParamSpec('retarget', 'map', 'map: the angle map retarget_map; ik: inverse kinematics onto '
                                 'model.'),
    ParamSpec('retarget_map', '', "Retarget map (YAML); '' = config/retarget/<model>.yaml of "
                                  'the package.'),
    ParamSpec('skeleton', 'auto', 'retarget ik: skeleton preset, skeleton file, or auto.'),
    ParamSpec('floating_root', False, 'retarget ik: the pelvis follows the clip.'),
    ParamSpec('model', 'humanoid_upper', "Sim model whose joints and limits are the robot's "
                                         "(unless joint_names is set); '' = none."),
    ParamSpec('joint_names', Parameter.Type.STRING_ARRAY,
              "The robot's joints in message order; empty = the model's."),
    ParamSpec('position_lower_limits', Parameter.Type.DOUBLE_ARRAY,
              'With joint_names: lower position limits (rad); empty = none.'),
    ParamSpec('position_upper_limits', Parameter.Type.DOUBLE_ARRAY,
              'With joint_names: upper position limits (rad); empty = none.'),
    ParamSpec('loop', _p('loop'), 'Play the files again and again.'),
    ParamSpec('follow', _p('follow'), 'Follow the last file as it is written (tail -f).'),
    ParamSpec('follow_timeout_s', _p('follow_timeout_s'),
              'A followed file ends this long after its last new frame.',
              float_range=(0.05, 86400.0)),
    ParamSpec('rate_scale', _p('rate_scale'), 'Playback speed (2.0 = twice as fast).',
              float_range=(0.01, 100.0)),
    ParamSpec('publish_rate_hz', _p('publish_rate_hz'),
              "Publish rate; 0 = the clip's frame rate times rate_scale (every frame once).",
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
IDLE_PERIOD_S = 0.01      # tick period outside streaming
# Reliable with a deep history, so a burst after a stall reaches a slow subscriber whole.
MOCAP_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
CLIP_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)   # every clip, latched
_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
_LEVELS = {logging.INFO: 'info', logging.WARNING: 'warn', logging.ERROR: 'error'}


def retarget_method(params: dict):
    """The retargeting of the parameters: the map onto the robot's joints, or IK."""
    from il_policy_node.mocap.methods import IkMethod, IkSettings, MapMethod  # MuJoCo, mink
    if params['retarget'] not in ('map', 'ik'):
        raise ConfigError(f"parameter retarget must be map or ik, got {params['retarget']!r}")
    if params['retarget'] == 'ik':
        if not params['model'] or params['joint_names']:
            raise ConfigError('retarget ik needs model (a sim model) and no joint_names')
        from il_policy_node.mocap.ik import IkOptions
        return IkMethod(IkSettings(model=params['model'], skeleton=params['skeleton'],
                                   options=IkOptions(floating_root=params['floating_root'])))
    return MapMethod(params['retarget_map'] or package_map(params['model']),
                     robot_joints(params))


def robot_joints(params: dict) -> RobotJoints:
    """The robot's joints and limits: joint_names (+ limits) or the sim model's."""
    if params['joint_names']:
        return RobotJoints.resolve(params['joint_names'], lower=params['position_lower_limits'],
                                   upper=params['position_upper_limits'], require=())
    if not params['model']:
        raise ConfigError("give the robot's joints: model or joint_names")
    from il_policy_node.robots.models import robot_joints as model_joints  # MuJoCo: only here
    return model_joints(params['model'])


class MocapBridgeNode(Node):
    """Plays the clips one after the other, on a timer at the publish rate."""

    def __init__(self, node_name: str = 'mocap_bridge', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        params = declare_and_read(self, PARAMETERS)
        files = [str(f) for f in params['files']]
        if not files:
            raise ConfigError('parameter files is empty: give the BVH files to play')
        self.method = retarget_method(params)
        self.joint_names = self.method.robot.joint_names
        self.drive_robot = bool(params['drive_robot'])
        self.settle_s = float(params['settle_s'])
        self.min_subscribers = int(params['min_subscribers'])
        self.wait_for_subscribers_s = float(params['wait_for_subscribers_s'])
        playback = Playback(
            loop=bool(params['loop']), follow=bool(params['follow']),
            follow_timeout_s=float(params['follow_timeout_s']),
            rate_scale=float(params['rate_scale']),
            publish_rate_hz=float(params['publish_rate_hz']))
        self.clips = ClipScheduler(files, self.method.frame_values, playback=playback,
                                   report=self._report)

        self._command = JointStateMessage(self.joint_names, velocities=True)
        self._command_pub = self.create_publisher(JointState, COMMAND_TOPIC, MOCAP_QOS)
        self._effector_pubs = {}
        if params['publish_end_effectors']:
            for name, frame in self.method.end_effectors.items():
                if not _NAME.match(name):
                    raise ConfigError(f'{self.method.source}: end_effectors.{name}: not '
                                      'usable in a topic name (letters, digits, _)')
                publisher = self.create_publisher(
                    PointStamped, f'{END_EFFECTOR_NAMESPACE}/{name}', MOCAP_QOS)
                point = PointStamped()
                point.header.frame_id = frame
                self._effector_pubs[name] = (publisher, point)
        self._robot_pub = self.create_publisher(JointTrajectory, CONTROLLER_TOPIC,
                                                COMMAND_QOS) if self.drive_robot else None
        self._clip_pub = self.create_publisher(String, '~/clip', CLIP_QOS)
        self._recorder = RecorderEpisodes(self, str(params['recorder']),
                                          service_timeout_s=float(params['service_timeout_s']),
                                          robot=self._robot_pub)
        self._began = time.monotonic()
        self._subscriber_deadline = self._began + self.wait_for_subscribers_s
        self._trajectories: TrajectoryMessages | None = None
        self._published = 0                # samples of this clip
        self.finished = Future()
        self._driver = EpisodeDriver(self, self._recorder)
        rate = f'{self.clips.publish_rate_hz:g} Hz' if self.clips.publish_rate_hz \
            else 'clip rate'
        self.get_logger().info(
            f'{len(files)} files, retargeting {self.method.source}, {len(self.joint_names)} '
            f'joints, {rate} x {self.clips.rate_scale:g}, loop {self.clips.loop}, '
            f'follow {self.clips.follow}, recorder {self._recorder.namespace or "(none)"}, '
            f'drive_robot {self.drive_robot}')
        self._timer = self.create_timer(IDLE_PERIOD_S, self._tick)

    @property
    def played(self) -> list[str]:
        return self.clips.played

    def _tick(self) -> None:
        drive(self, self._driver, self._timer, self.finished)

    def _report(self, level: int, message: str) -> None:
        getattr(self.get_logger(), _LEVELS.get(level, 'info'))(message)

    def _set_period(self, period_s: float) -> None:
        self._timer.timer_period_ns = int(round(period_s * 1e9))
        self._timer.reset()

    # -- the player (recording/driver.py Player) -------------------------------------------
    def listeners_ready(self, now: float) -> bool:
        """Whether the recorder and min_subscribers listeners subscribe the joint stream.

        The recorder subscribes once it sees the publisher; a recorder that does not record
        this topic is its operator's choice.
        """
        topic = self._command_pub.topic_name
        unheard = self._recorder.enabled and not self._recorder.subscribes(topic)
        count = self._command_pub.get_subscription_count()
        few = count < self.min_subscribers
        if (unheard and not self._recorder.timed_out(now)) or \
                (few and now < self._subscriber_deadline):
            return False
        if unheard:
            self.get_logger().warn(f'the recorder does not subscribe {topic}: is it in its '
                                   'topics?')
        if few:
            self.get_logger().warn(f'{count} subscribers of {topic} after '
                                   f'{self.wait_for_subscribers_s:g} s (min_subscribers '
                                   f'{self.min_subscribers}); playing anyway')
        return True

    def next_episode(self, now: float) -> bool:
        self._published = 0
        return self.clips.open_next()

    def poll(self, now: float) -> None:
        self.clips.poll()

    def prepare(self, now: float) -> Preparation:
        if self.clips.source is None:
            return Preparation.SKIPPED
        return Preparation.READY if self.clips.ready else Preparation.WAIT

    def move_to_start(self, now: float) -> float:
        clips = self.clips
        source = clips.source
        period = 1.0 / (source.retargeter.rate_hz * clips.rate_scale)
        self._set_period(period)
        if self._robot_pub is not None:
            self._trajectories = TrajectoryMessages(self.joint_names, period, velocities=False)
        self._publish_clip_info()
        info = source.info()
        what = (f'{info["frames"]} frames' if info['complete'] else 'followed') + \
            f' at {info["frame_rate_hz"]:g} Hz'
        self.get_logger().info(
            f'clip {clips.index + 1}/{len(clips.files)}'
            f'{f" (round {clips.round + 1})" if clips.loop else ""}: {source.path} ({what}, '
            f'{info["duration_s"]:.2f} s), {1.0 / period:g} samples/s')
        if info['complete']:
            self._log_clamped(info)
        if self._robot_pub is None:
            return 0.0
        point = JointTrajectoryPoint(positions=[float(p) for p in clips.first_pose],
                                     time_from_start=duration_msg(self.settle_s))
        self._robot_pub.publish(JointTrajectory(joint_names=list(self.joint_names),
                                                points=[point]))
        return self.settle_s

    def begin(self, now: float) -> None:
        self.clips.start(self.get_clock().now().nanoseconds)

    def stream(self, now: float) -> bool:
        """Publish every sample that is due; True at the end of the clip."""
        clips = self.clips
        for sample in clips.due(time.monotonic(), lambda: self.get_clock().now().nanoseconds):
            self._publish(sample)
        if not clips.finished:
            return False
        self._end_clip()
        return True

    def success(self) -> bool:
        return not self.clips.error

    def summary(self) -> Finished:
        played, message = self.clips.summary()
        if not played:
            return Finished(1, message)
        return Finished(0, f'done: {message}, {time.monotonic() - self._began:.1f} s in all')

    # -- publishing ----------------------------------------------------------------------
    def _publish(self, sample: DueSample) -> None:
        batch, row = sample.batch, sample.row
        stamp = Time(nanoseconds=sample.stamp_ns,
                     clock_type=self.get_clock().clock_type).to_msg()
        msg = self._command.msg
        msg.header.stamp = stamp
        self._command.positions[:] = batch.positions[row]
        self._command.velocities[:] = batch.velocities[row] * self.clips.rate_scale
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

    def _publish_clip_info(self) -> None:
        clips = self.clips
        info = clips.source.info()
        info.update(index=clips.index, round=clips.round, rate_scale=clips.rate_scale,
                    publish_rate_hz=clips.source.retargeter.rate_hz * clips.rate_scale,
                    joint_names=list(self.joint_names))
        self._clip_pub.publish(String(data=json.dumps(info)))

    def _log_clamped(self, info: dict) -> None:
        if info['clamped']:
            joints = ', '.join(f'{name} ({c["frames"]} samples, up to '
                               f'{c["worst_excess_rad"]:.3g} rad)'
                               for name, c in info['clamped'].items())
            self.get_logger().warn(f'{info["file"]}: clamped to the limits: {joints}')

    def _end_clip(self) -> None:
        clips = self.clips
        source = clips.source
        if source.follow:
            self._publish_clip_info()
            self._log_clamped(source.info())
        info = clips.end_clip()
        self.get_logger().info(f'clip {source.path} played: {self._published} samples, '
                               f'{info["frames"]} frames, {info["duration_s"]:.2f} s'
                               + (f' (ended early: {clips.error})' if clips.error else ''))
        self._set_period(IDLE_PERIOD_S)


def main(args=None) -> None:
    sys.exit(spin_node(MocapBridgeNode, args))


if __name__ == '__main__':
    main()
