"""demonstrator: a scripted stand-in for a human demonstrator, driving the robot and a recorder.

Like an operator with a pedal, for each episode of il_policy_node.sim.demonstrator:
  1. moves the robot to the episode's start pose (one JointTrajectory point at settle_s on
     ``joint_trajectory_controller/joint_trajectory``, after the episode's approach poses if
     it has any: the detour's way point) and waits settle_s (+ a margin);
  2. calls ``<recorder>/start_episode`` (std_srvs/Trigger; a refusal is retried until
     service_timeout_s);
  3. streams the demonstration at command_rate_hz: sensor_msgs/JointState on
     ``demo/joint_command`` (positions, velocities, stamp = now) and, with drive_robot, a
     one-point JointTrajectory (positions, time_from_start = 1 / command_rate_hz) to the
     controller, as a teleop follower is driven (plus the episode's perturbation when
     drive_noise_rad > 0); for ``reach`` the goal being reached as JointState on
     ``demo/goal`` (reliable, transient local: also published once before recording; it
     changes within an episode when reaches_per_episode > 1);
  4. calls ``<recorder>/stop_episode`` (std_srvs/SetBool, data = true).
``~/episode`` (std_msgs/String, JSON; reliable, transient local) tells what each episode is,
at its start. recorder:='' runs without a recorder.

Before the first episode it waits for the recorder's services, for a subscriber of the
controller topic (drive_robot) and for the recorder to subscribe demo/joint_command (and
demo/goal; only a warning after service_timeout_s). The episodes are driven by
recording/driver.py's EpisodeDriver; after the last one the node logs a summary, completes
its ``finished`` future and the process exits with code 0; a service that is missing, refuses
or does not answer within service_timeout_s, or no robot on the controller topic, ends it with
code 1 and an error naming the service or topic. Ctrl-C ends it at once (code 0; the
recorder's episode in progress, if any, is left open).
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from il_policy_node.errors import ConfigError
from il_policy_node.recording.driver import EpisodeDriver, Finished, Preparation
from il_policy_node.ros.conversions import JointStateMessage, TrajectoryMessages, duration_msg
from il_policy_node.ros.params import ParamSpec, declare_and_read, default_of
from il_policy_node.ros.qos import COMMAND_QOS, LATCHED_QOS
from il_policy_node.ros.recorder_client import RecorderEpisodes, drive
from il_policy_node.ros.spin import spin_node
from il_policy_node.sim.demonstrator import (
    ARM6_HOME,
    ARM6_JOINTS,
    ARM6_LOWER,
    ARM6_UPPER,
    GOAL_TASKS,
    DemonstratorConfig,
    Episode,
    Task,
    make_episode,
)


def _d(name: str):
    """The core's default of a DemonstratorConfig field (as written, before expansion)."""
    return default_of(DemonstratorConfig, name)


PARAMETERS = (
    ParamSpec('task', 'wave', "Task to demonstrate: 'wave', 'reach' or 'detour'."),
    ParamSpec('joint_names', list(ARM6_JOINTS), 'Joints of the controller, in the order of '
                                                'every per-joint parameter.'),
    ParamSpec('position_lower_limits', list(ARM6_LOWER), 'Lower position limits (rad).'),
    ParamSpec('position_upper_limits', list(ARM6_UPPER), 'Upper position limits (rad).'),
    ParamSpec('home_positions', list(ARM6_HOME), 'Home pose; start poses are drawn around it.'),
    ParamSpec('limit_margin_rad', _d('limit_margin_rad'),
              'Poses stay this far inside the limits.', float_range=(0.0, 10.0)),
    ParamSpec('start_range_rad', _d('start_range_rad'),
              'Start pose uniform in home +- this (one value or one per joint).'),
    ParamSpec('wave_period_s', _d('wave_period_s'), 'Nominal period of the wave.',
              float_range=(0.01, 1000.0)),
    ParamSpec('wave_cycles', _d('wave_cycles'), 'Wave cycles after the entry.',
              int_range=(0, 100000)),
    ParamSpec('wave_center', Parameter.Type.DOUBLE_ARRAY, 'Center of the wave; empty = home.'),
    ParamSpec('wave_amplitudes_rad', _d('wave_amplitudes_rad'), 'Wave amplitude per joint.'),
    ParamSpec('wave_phases_rad', _d('wave_phases_rad'), 'Wave phase per joint.'),
    ParamSpec('wave_period_jitter', _d('wave_period_jitter'),
              'Period uniform in nominal * (1 +- this).', float_range=(0.0, 0.99)),
    ParamSpec('wave_amplitude_jitter', _d('wave_amplitude_jitter'),
              'Amplitude scale uniform in 1 +- this.', float_range=(0.0, 0.99)),
    ParamSpec('wave_entry_s', _d('wave_entry_s'),
              'Minimum-jerk blend from the start pose onto the wave.',
              float_range=(0.01, 1000.0)),
    ParamSpec('reach_goal_lower', _d('reach_goal_lower'),
              'Reach goals: lower corner of their box; empty = limits.'),
    ParamSpec('reach_goal_upper', _d('reach_goal_upper'),
              'Reach goals: upper corner of their box; empty = limits.'),
    ParamSpec('reach_base_s', _d('reach_base_s'), 'Reach duration = base + distance / speed.',
              float_range=(0.0, 1000.0)),
    ParamSpec('reach_speed_rad_s', _d('reach_speed_rad_s'),
              'Joint-space (Euclidean) speed of the reach duration.', float_range=(0.001, 100.0)),
    ParamSpec('reach_duration_jitter', _d('reach_duration_jitter'),
              'Reach duration times uniform 1 +- this.', float_range=(0.0, 0.99)),
    ParamSpec('reach_hold_s', _d('reach_hold_s'), 'Hold at the goal after the reach.',
              float_range=(0.0, 1000.0)),
    ParamSpec('reaches_per_episode', _d('reaches_per_episode'),
              'Reach: goals per episode (with a reach to a new start pose between them).',
              int_range=(1, 1000)),
    ParamSpec('drive_noise_rad', _d('drive_noise_rad'),
              'Std of the smooth noise added to what the robot is sent (not to the recorded '
              'command); 0 = none.', float_range=(0.0, 1.0)),
    ParamSpec('drive_noise_hz', _d('drive_noise_hz'), 'Highest frequency of that noise.',
              float_range=(0.11, 100.0)),
    ParamSpec('seed', 0, 'Episode i is reproducible from (task, seed, i, task parameters).'),
    ParamSpec('episodes', 10, 'Number of episodes to demonstrate.', int_range=(1, 1000000)),
    ParamSpec('command_rate_hz', 100.0, 'Rate of demo/joint_command and of the robot commands.',
              float_range=(1.0, 10000.0)),
    ParamSpec('settle_s', 1.5, 'Move to the start pose in this time before recording.',
              float_range=(0.01, 1000.0)),
    ParamSpec('recorder', 'demo_recorder',
              "Service namespace of demo_recorder; '' = do not call a recorder."),
    ParamSpec('drive_robot', True, 'Command the robot (controller topic) while demonstrating.'),
    ParamSpec('service_timeout_s', 10.0, 'Wait this long for a service, an answer or an '
                                         'accepted start.', float_range=(0.1, 3600.0)),
)
CONTROLLER_TOPIC = 'joint_trajectory_controller/joint_trajectory'
EPISODE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)   # every episode, latched


def config_from_parameters(params: dict) -> DemonstratorConfig:
    """The core's config from the node's parameter values (raises ConfigError)."""
    return DemonstratorConfig(
        joint_names=tuple(params['joint_names']),
        lower_limits=tuple(params['position_lower_limits']),
        upper_limits=tuple(params['position_upper_limits']),
        home=tuple(params['home_positions']),
        limit_margin_rad=float(params['limit_margin_rad']),
        start_range_rad=tuple(params['start_range_rad']),
        wave_period_s=float(params['wave_period_s']),
        wave_cycles=int(params['wave_cycles']),
        wave_center=tuple(params['wave_center']),
        wave_amplitudes_rad=tuple(params['wave_amplitudes_rad']),
        wave_phases_rad=tuple(params['wave_phases_rad']),
        wave_period_jitter=float(params['wave_period_jitter']),
        wave_amplitude_jitter=float(params['wave_amplitude_jitter']),
        wave_entry_s=float(params['wave_entry_s']),
        reach_goal_lower=tuple(params['reach_goal_lower']),
        reach_goal_upper=tuple(params['reach_goal_upper']),
        reach_base_s=float(params['reach_base_s']),
        reach_speed_rad_s=float(params['reach_speed_rad_s']),
        reach_duration_jitter=float(params['reach_duration_jitter']),
        reach_hold_s=float(params['reach_hold_s']),
        reaches_per_episode=int(params['reaches_per_episode']),
        drive_noise_rad=float(params['drive_noise_rad']),
        drive_noise_hz=float(params['drive_noise_hz']))


class DemonstratorNode(Node):
    """Performs the episodes, one after the other, on a timer at command_rate_hz."""

    def __init__(self, node_name: str = 'demonstrator', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        params = declare_and_read(self, PARAMETERS)
        try:
            self.task = Task(params['task'])
        except ValueError:
            raise ConfigError(f'parameter task must be one of {[t.value for t in Task]}, got '
                              f"{params['task']!r}") from None
        self.config = config_from_parameters(params)
        self.episodes = [make_episode(self.task, int(params['seed']), i, self.config)
                         for i in range(int(params['episodes']))]
        self.rate_hz = float(params['command_rate_hz'])
        self.settle_s = float(params['settle_s'])
        self.drive_robot = bool(params['drive_robot'])
        names = self.config.joint_names
        self._command = JointStateMessage(names, velocities=True)
        self._goal = JointStateMessage(names)
        self._trajectories = TrajectoryMessages(names, 1.0 / self.rate_hz, velocities=False)
        self._command_pub = self.create_publisher(JointState, 'demo/joint_command', 10)
        self._robot_pub = self.create_publisher(JointTrajectory, CONTROLLER_TOPIC, COMMAND_QOS)
        self._goal_pub = self.create_publisher(JointState, 'demo/goal', LATCHED_QOS) \
            if self.task in GOAL_TASKS else None
        self._episode_pub = self.create_publisher(String, '~/episode', EPISODE_QOS)
        self._recorder = RecorderEpisodes(
            self, str(params['recorder']), service_timeout_s=float(params['service_timeout_s']),
            robot=self._robot_pub if self.drive_robot else None)
        self._index = -1
        self._t0 = 0.0                    # start of the streamed episode (monotonic)
        self._began = time.monotonic()
        self.saved = self._recorder.saved   # the recorder's messages of the saved episodes
        self.finished = Future()
        self._driver = EpisodeDriver(self, self._recorder)
        self.get_logger().info(
            f'{len(self.episodes)} {self.task.value} episodes (seed {params["seed"]}), '
            f'{self.rate_hz:g} Hz, recorder {self._recorder.namespace or "(none)"}, '
            f'drive_robot {self.drive_robot}')
        self._timer = self.create_timer(1.0 / self.rate_hz, self._tick)

    @property
    def episode(self) -> Episode:
        return self.episodes[self._index]

    def _tick(self) -> None:
        drive(self, self._driver, self._timer, self.finished)

    # -- the player (recording/driver.py Player) -------------------------------------------
    def listeners_ready(self, now: float) -> bool:
        """Whether the recorder subscribes what it records (it does once it sees the publisher).

        Waited for until service_timeout_s; a recorder that does not record these topics is
        its operator's choice.
        """
        unheard = [pub.topic_name for pub in (self._command_pub, self._goal_pub)
                   if self._recorder.enabled and pub is not None and
                   pub.get_subscription_count() == 0]
        if unheard and not self._recorder.timed_out(now):
            return False
        if unheard:
            self.get_logger().warn(f'nobody subscribes {unheard}: are they in the '
                                   "recorder's topics?")
        return True

    def next_episode(self, now: float) -> bool:
        self._index += 1
        if self._index == len(self.episodes):
            return False
        episode = self.episode
        self._episode_pub.publish(String(data=json.dumps(episode.info())))
        if self._goal_pub is not None:
            self._goal.positions[:] = episode.goal
            self._publish_goal()
        return True

    def poll(self, now: float) -> None:
        pass

    def prepare(self, now: float) -> Preparation:
        return Preparation.READY

    def move_to_start(self, now: float) -> float:
        episode = self.episode
        if self.drive_robot:
            poses = ([] if episode.approach is None else list(episode.approach)) + \
                [episode.start]
            points = [JointTrajectoryPoint(positions=[float(p) for p in pose],
                                           time_from_start=duration_msg(
                                               self.settle_s * (i + 1) / len(poses)))
                      for i, pose in enumerate(poses)]
            self._robot_pub.publish(JointTrajectory(joint_names=list(episode.joint_names),
                                                    points=points))
        self.get_logger().info(f'episode {episode.index + 1}/{len(self.episodes)} '
                               f'({episode.task.value}, {episode.duration_s:.2f} s): '
                               f'moving to the start pose')
        return self.settle_s

    def begin(self, now: float) -> None:
        self._t0 = now

    def stream(self, now: float) -> bool:
        episode = self.episode
        t = min(now - self._t0, episode.duration_s)
        positions, velocities = episode.sample(t)
        msg = self._command.msg
        msg.header.stamp = self.get_clock().now().to_msg()
        self._command.positions[:] = positions
        self._command.velocities[:] = velocities
        self._command_pub.publish(msg)
        if self.drive_robot:
            sent = np.clip(positions + episode.perturbation(t), self.config.safe_lower,
                           self.config.safe_upper)
            self._robot_pub.publish(self._trajectories.fill(sent, None, hold=False))
        if self._goal_pub is not None:
            self._goal.positions[:] = episode.goal_at(t)
            self._publish_goal()
        return t >= episode.duration_s

    def success(self) -> bool:
        return True

    def summary(self) -> Finished:
        demonstrated = sum(e.duration_s for e in self.episodes)
        return Finished(0, f'done: {len(self.episodes)} {self.task.value} episodes '
                           f'({demonstrated:.1f} s demonstrated, '
                           f'{time.monotonic() - self._began:.1f} s in all), '
                           f'{len(self.saved)} saved by the recorder')

    def _publish_goal(self) -> None:
        self._goal.msg.header.stamp = self.get_clock().now().to_msg()
        self._goal_pub.publish(self._goal.msg)


def main(args=None) -> None:
    sys.exit(spin_node(DemonstratorNode, args))


if __name__ == '__main__':
    main()
