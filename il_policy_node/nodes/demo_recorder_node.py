"""demo_recorder: records human demonstrations, one rosbag2 bag per episode.

Topics listed in ``topics`` are subscribed raw (serialized) once a publisher appears, with QoS
adapted to the publishers as ``ros2 bag record`` does, and written unchanged by a writer thread
(il_policy_node/recording/writer.py). Types are given in ``topic_types`` or discovered from
the graph. What reached the writer is on disk within ``flush_period_s``: a crash of the process
loses at most about that much of the episode (``il-policy bag recover`` salvages the rest).
Services (std_srvs):
  ~/start_episode    Trigger   refused with a message naming the problem
  ~/stop_episode     SetBool   data = success label
  ~/discard_episode  Trigger   deletes the episode in progress
  pub /diagnostics   diagnostic_msgs/DiagnosticArray at 1 Hz
"""
from __future__ import annotations

import collections
import importlib
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import ROSClock
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosbags.interfaces import QosDurability
from std_srvs.srv import SetBool, Trigger

from il_policy_node.errors import IlPolicyError, RecordingError
from il_policy_node.recording.config import RecorderConfig, default
from il_policy_node.recording.definitions import MessageDefinitions
from il_policy_node.recording.metadata import EpisodeMetadata, recorder_name
from il_policy_node.recording.qos import qos_compatible, recording_qos
from il_policy_node.recording.recorded import OpenEpisode, RecordedTopic, recorder_status
from il_policy_node.recording.session import Session, check_output_dir, free_disk_mb
from il_policy_node.recording.writer import EpisodeWriter, TopicInfo
from il_policy_node.ros.bag_qos import offered_qos, subscription_qos
from il_policy_node.ros.diagnostics import node_status
from il_policy_node.ros.keyboard import KeyReader
from il_policy_node.ros.params import ParamSpec, declare_all, read_all
from il_policy_node.ros.qos import MONITOR_QOS
from il_policy_node.ros.spin import spin_node

try:  # Jazzy and later
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError

PARAMETERS = (
    ParamSpec('output_dir', '~/il_demos', 'Root folder of the sessions (~ is expanded).'),
    ParamSpec('session', '', "Session folder; '' = session_YYYYmmdd_HHMMSS; existing = resume."),
    ParamSpec('topics', Parameter.Type.STRING_ARRAY, 'Topics to record.'),
    ParamSpec('topic_types', Parameter.Type.STRING_ARRAY,
              "One per topic: pkg/msg/Type or '' (discover from the graph); empty = discover."),
    ParamSpec('required_topics', Parameter.Type.STRING_ARRAY,
              'Topics that must have a publisher and fresh messages to start an episode.'),
    ParamSpec('required_timeout_s', default('required_timeout_s'),
              'A required topic is silent after this long.', float_range=(0.0, 3600.0)),
    ParamSpec('storage', default('storage'), 'Bag storage: mcap or sqlite3.'),
    ParamSpec('compression', default('compression'),
              'none, or zstd (MCAP chunks; sqlite3: per message).'),
    ParamSpec('max_episode_duration_s', default('max_episode_duration_s'),
              'An episode stops by itself after this (0 = never).', float_range=(0.0, 86400.0)),
    ParamSpec('task', default('task'), 'Task label written into every episode.'),
    ParamSpec('operator', default('operator'), 'Operator name written into every episode.'),
    ParamSpec('keyboard', default('keyboard'), 'Keys in a terminal: space start/stop, f stop '
                                               'as failure, d discard.'),
    ParamSpec('min_free_disk_mb', default('min_free_disk_mb'),
              'Starting an episode is refused below this free space.', float_range=(0.0, 1e9)),
    ParamSpec('executor', default('executor'),
              "single: rclpy's SingleThreadedExecutor; events: rclpy's EventsExecutor "
              '(experimental in Jazzy, far less CPU at high rates; not in Humble).'),
    ParamSpec('flush_period_s', default('flush_period_s'),
              'What reached the writer is on disk within this time (MCAP: the chunk is '
              'closed; sqlite3: committed): the most a crash loses.', float_range=(0.01, 60.0)),
)
GRAPH_PERIOD_S = 0.25
DIAGNOSTICS_PERIOD_S = 1.0
DRAIN_AT_SHUTDOWN_S = 1.0


class DemoRecorderNode(Node):
    """Subscribes to the demonstration topics and writes episodes on request."""

    def __init__(self, **kwargs) -> None:
        super().__init__('demo_recorder', **kwargs)
        errors = declare_all(self, PARAMETERS)
        self._config: RecorderConfig | None = None
        self._config_error = '; '.join(errors)
        if not errors:
            try:
                self._config = RecorderConfig.from_parameters(
                    read_all(self, PARAMETERS), resolve=self._resolve)
            except IlPolicyError as exc:
                self._config_error = str(exc)
        self._topics: dict[str, RecordedTopic] = {}
        self._bag_time_ns = time.time_ns
        self.executor_kind = self._config.executor if self._config else 'single'
        self._episode: OpenEpisode | None = None
        self._session: Session | None = None
        self._definitions = MessageDefinitions()
        self._keys: collections.deque[str] = collections.deque()
        self._key_reader: KeyReader | None = None
        self._window_start = time.monotonic()
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', MONITOR_QOS)
        self.create_service(Trigger, '~/start_episode', self._on_start)
        self.create_service(SetBool, '~/stop_episode', self._on_stop)
        self.create_service(Trigger, '~/discard_episode', self._on_discard)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        if self._config is None:
            self.get_logger().error(f'not recording, fix the parameters: {self._config_error}')
            return
        config = self._config
        self._session = Session(config.session_dir)
        self._topics = {name: RecordedTopic(name, msgtype)
                        for name, msgtype in zip(config.topics, config.topic_types)}
        self._report_session_at_start()
        self._poll_graph()
        self.create_timer(GRAPH_PERIOD_S, self._poll_graph)
        if config.keyboard:
            self._start_keyboard()
        self.get_logger().info(
            f'ready: session {config.session_dir}, topics {list(config.topics)}, '
            f'{config.storage} (compression {config.compression}); call ~/start_episode')

    def _resolve(self, topic: str) -> str:
        return self.resolve_topic_name(topic)

    def _report_session_at_start(self) -> None:
        """Say early what would refuse an episode; nothing is created before the first one."""
        config = self._config
        free = free_disk_mb(config.session_dir)
        if free < config.min_free_disk_mb:
            self.get_logger().error(f'only {free:.0f} MB free for {config.session_dir} '
                                    f'(min_free_disk_mb {config.min_free_disk_mb:g}): '
                                    'episodes will be refused')
        partial = self._session.partial_episodes()
        if partial:
            self.get_logger().warn(
                f'partial episodes in this session (recorder stopped without closing them): '
                f'{[p.name for p in partial]}')

    # -- episode control -----------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._episode is not None

    def start_episode(self) -> tuple[bool, str]:
        """Open the next episode; (False, why) when it cannot start."""
        config = self._config
        if config is None:
            return False, f'bad parameters: {self._config_error}'
        if self._episode is not None:
            return False, f'already recording {self._episode.writer.path}'
        try:
            check_output_dir(config.session_dir, config.min_free_disk_mb)
            self._check_required_topics()
            index = self._session.next_index()
            started = EpisodeMetadata(
                task=config.task, operator=config.operator, episode_index=index,
                start_wall_time=datetime.now(timezone.utc).isoformat(),
                recorder=recorder_name('demo_recorder'))
            writer = EpisodeWriter(self._session.episode_path(index), storage=config.storage,
                                   compression=config.compression, flush=config.flush,
                                   started=started)
        except RecordingError as exc:
            return False, str(exc)
        self._episode = OpenEpisode(started, writer, time.monotonic())
        for topic in self._topics.values():
            topic.lost = 0
            topic.publishers_lost = False
            topic.in_episode = False
            if topic.info is not None and not topic.error:
                self._add_to_episode(topic)
        if config.max_episode_duration_s > 0:
            self._episode.timer = self.create_timer(config.max_episode_duration_s,
                                                    self._on_max_duration)
        self.get_logger().info(f'recording episode {index}: {writer.path}')
        return True, str(writer.path)

    def stop_episode(self, success: bool, reason: str) -> tuple[bool, str]:
        """Close the episode with its metadata and add it to episodes.jsonl."""
        episode = self._end_episode()
        if episode is None:
            return False, 'not recording'
        duration = time.monotonic() - episode.start_monotonic
        metadata = replace(
            episode.metadata, success=success, stop_reason=reason,
            stop_wall_time=datetime.now(timezone.utc).isoformat(),
            lost_counts={t.name: t.lost for t in self._topics.values() if t.in_episode})
        path = episode.writer.path
        try:
            counts = episode.writer.close(metadata)
        except RecordingError as exc:
            self.get_logger().error(str(exc))
            return False, str(exc)
        self._session.add_to_index(replace(metadata, message_counts=counts).index_entry(
            path.name, duration_s=duration, storage=self._config.storage))
        message = (f'episode {episode.index} saved ({"success" if success else "failure"}, '
                   f'{reason}, {duration:.1f} s): {path} {counts}')
        self.get_logger().info(message)
        return True, message

    def discard_episode(self) -> tuple[bool, str]:
        episode = self._end_episode()
        if episode is None:
            return False, 'not recording'
        episode.writer.discard()
        self.get_logger().info(f'episode {episode.index} discarded: {episode.writer.path}')
        return True, f'discarded {episode.writer.path}'

    def _end_episode(self) -> OpenEpisode | None:
        episode, self._episode = self._episode, None
        if episode is not None and episode.timer is not None:
            self.destroy_timer(episode.timer)
        return episode

    def _check_required_topics(self) -> None:
        now = time.monotonic()
        timeout = self._config.required_timeout_s
        for name in self._config.required_topics:
            topic = self._topics[name]
            if topic.error:
                raise RecordingError(f'required topic {name}: {topic.error}')
            if self.count_publishers(name) == 0:
                raise RecordingError(f'required topic {name} has no publisher')
            if topic.last_received is None or now - topic.last_received > timeout:
                raise RecordingError(f'required topic {name}: no message in the last '
                                     f'{timeout:g} s')

    def _add_to_episode(self, topic: RecordedTopic) -> None:
        writer = self._episode.writer
        writer.add_topic(topic.info)
        topic.in_episode = True
        if topic.latched is not None:
            # A latched message (robot_description) received before the episode belongs in
            # every episode, as if it had just arrived.
            writer.write(topic.name, self._bag_time_ns(), topic.latched)

    def _on_max_duration(self) -> None:
        if self._episode is not None:
            self.get_logger().info('max_episode_duration_s reached')
            self.stop_episode(False, 'max_duration')

    def close_for_shutdown(self, executor: Executor) -> None:
        """On SIGINT/SIGTERM: take the messages already received, then close the episode."""
        if self._episode is not None:
            deadline = time.monotonic() + DRAIN_AT_SHUTDOWN_S
            while time.monotonic() < deadline:
                before = sum(t.received for t in self._topics.values())
                executor.spin_once(timeout_sec=0.05)
                if sum(t.received for t in self._topics.values()) == before:
                    break
            self.stop_episode(False, 'shutdown')

    def destroy_node(self) -> None:
        if self._key_reader is not None:
            self._key_reader.stop()
            self._key_reader = None
        if self._episode is not None:
            self.stop_episode(False, 'shutdown')
        super().destroy_node()

    # -- services and keys ---------------------------------------------------------------
    def _on_start(self, request: Trigger.Request, response: Trigger.Response):
        response.success, response.message = self.start_episode()
        if not response.success:
            self.get_logger().warn(f'start_episode refused: {response.message}')
        return response

    def _on_stop(self, request: SetBool.Request, response: SetBool.Response):
        response.success, response.message = self.stop_episode(bool(request.data), 'service')
        return response

    def _on_discard(self, request: Trigger.Request, response: Trigger.Response):
        response.success, response.message = self.discard_episode()
        return response

    def _start_keyboard(self) -> None:
        if not KeyReader.available():
            self.get_logger().warn('keyboard:=true but stdin is not a terminal: use the '
                                   'services')
            return
        guard = self.create_guard_condition(self._on_keys)

        def on_key(key: str) -> None:   # keyboard thread: hand over to the executor
            self._keys.append(key)
            guard.trigger()
        self._key_reader = KeyReader(on_key)
        self._key_reader.start()
        self.get_logger().info('keyboard: space = start/stop (success), f = stop as failure, '
                               'd = discard')

    def _on_keys(self) -> None:
        while self._keys:
            key = self._keys.popleft()
            if key == ' ':
                ok, message = self.stop_episode(True, 'keyboard') if self.recording \
                    else self.start_episode()
            elif key in 'fF' and self.recording:
                ok, message = self.stop_episode(False, 'keyboard')
            elif key in 'dD' and self.recording:
                ok, message = self.discard_episode()
            else:
                continue
            if not ok:
                self.get_logger().warn(message)

    # -- subscriptions -------------------------------------------------------------------
    def _poll_graph(self) -> None:
        self._choose_bag_clock()
        for topic in self._topics.values():
            if not topic.error:
                self._update_topic(topic)

    def _update_topic(self, topic: RecordedTopic) -> None:
        infos = self.get_publishers_info_by_topic(topic.name)
        had_publishers, topic.publishers = topic.publishers, len(infos)
        if self._episode is not None and had_publishers and not infos and \
                not topic.publishers_lost:
            topic.publishers_lost = True
            self.get_logger().warn(f'{topic.name} lost its publishers during the episode; '
                                   'recording goes on')
        types = sorted({info.topic_type for info in infos})
        if topic.msgtype and types and types != [topic.msgtype]:
            self._fail(topic, f'type of {topic.name} changed from {topic.msgtype} to '
                              f'{", ".join(t for t in types if t != topic.msgtype)}; '
                              'it is no longer recorded')
            return
        if not types:
            return
        if not topic.msgtype:
            if len(types) > 1:
                self._fail(topic, f'{topic.name} is published with several types {types}; '
                                  'it is not recorded')
                return
            topic.msgtype = types[0]
        offers = [offered_qos(info.qos_profile) for info in infos]
        if topic.subscription is None or \
                not all(qos_compatible(topic.qos, offer) for offer in offers):
            self._subscribe(topic, offers)

    def _subscribe(self, topic: RecordedTopic, offers: list) -> None:
        try:
            if topic.info is None:
                package, _, name = topic.msgtype.split('/')
                msg_class = getattr(importlib.import_module(f'{package}.msg'), name)
                msgdef, rihs01 = self._definitions.lookup(topic.msgtype)
                topic.info = TopicInfo(topic.name, topic.msgtype, msgdef, rihs01,
                                       tuple(offers))
                topic.msg_class = msg_class
        except (ImportError, AttributeError, ValueError, RecordingError) as exc:
            self._fail(topic, f'{topic.name} ({topic.msgtype}) cannot be recorded: {exc}')
            return
        if topic.subscription is not None:
            self.destroy_subscription(topic.subscription)
            self.get_logger().info(f'{topic.name}: a new publisher needs weaker QoS; '
                                   'subscribing again')
        topic.qos = recording_qos(offers)
        topic.latching = topic.qos.durability == QosDurability.TRANSIENT_LOCAL
        profile = subscription_qos(topic.qos)

        def on_message(data: bytes, topic: RecordedTopic = topic) -> None:
            self._on_message(topic, data)

        def on_lost(info, topic: RecordedTopic = topic) -> None:
            if self._episode is not None:
                topic.lost += info.total_count_change

        try:
            topic.subscription = self.create_subscription(
                topic.msg_class, topic.name, on_message, profile, raw=True,
                event_callbacks=SubscriptionEventCallbacks(message_lost=on_lost))
        except UnsupportedEventTypeError:
            self.get_logger().warn('this middleware reports no lost messages; lost counts '
                                   'stay 0')
            topic.subscription = self.create_subscription(
                topic.msg_class, topic.name, on_message, profile, raw=True)
        self.get_logger().info(
            f'subscribed to {topic.name} ({topic.msgtype}, {topic.qos.reliability.name.lower()}'
            f', {topic.qos.durability.name.lower()})')
        if self._episode is not None and not topic.in_episode:
            self._add_to_episode(topic)

    def _fail(self, topic: RecordedTopic, error: str) -> None:
        topic.error = error
        if topic.subscription is not None:
            self.destroy_subscription(topic.subscription)
            topic.subscription = None
        self.get_logger().error(error)

    def _choose_bag_clock(self) -> None:
        """Stamp messages with the node's clock: time.time_ns() unless /clock is active.

        Without use_sim_time the node's clock is the system time: the same value as
        clock.now(), at a fraction of its cost per message.
        """
        clock = self.get_clock()
        sim = isinstance(clock, ROSClock) and clock.ros_time_is_active
        self._bag_time_ns = (lambda: clock.now().nanoseconds) if sim else time.time_ns

    def _on_message(self, topic: RecordedTopic, data: bytes) -> None:
        topic.received += 1
        topic.window_received += 1
        topic.last_received = time.monotonic()
        episode = self._episode
        if episode is not None and topic.in_episode:
            episode.writer.write(topic.name, self._bag_time_ns(), data)
        if topic.latching:
            topic.latched = data

    # -- monitoring ----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        elapsed, self._window_start = now - self._window_start, now
        level, message, values = recorder_status(
            self._topics.values(), self._episode, now=now, elapsed_s=elapsed,
            free_disk_mb=free_disk_mb(self._config.session_dir) if self._config else -1.0,
            config_error=None if self._config else self._config_error)
        self._diag_pub.publish(node_status(self, level=level, message=message, values=values))

def main(args=None) -> None:
    # Ctrl-C / SIGTERM close the episode in progress (bag and metadata complete) before exit.
    sys.exit(spin_node(DemoRecorderNode, args,
                       before_shutdown=DemoRecorderNode.close_for_shutdown))


if __name__ == '__main__':
    main()
