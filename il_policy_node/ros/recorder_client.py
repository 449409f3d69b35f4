"""Start and stop demo_recorder's episodes from a node's timer, without blocking it.

RecorderEpisodes calls ``<recorder>/start_episode`` (std_srvs/Trigger; a refusal is retried
every RETRY_START_S until service_timeout_s) and ``<recorder>/stop_episode`` (std_srvs/SetBool)
and is polled on each tick for the answer. A recorder that is missing, refuses or does not
answer in time raises RecordingError, whose message names the service. With recorder '' there
is no recorder: every episode starts and stops at once. It is the ``Recorder`` of
recording/driver.py's EpisodeDriver.
"""
from __future__ import annotations

import time

from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.task import Future
from rclpy.timer import Timer
from std_srvs.srv import SetBool, Trigger

from il_policy_node.errors import RecordingError
from il_policy_node.recording.driver import EpisodeDriver

RETRY_START_S = 0.5


class RecorderEpisodes:
    """The episodes of one recorder, as a node that plays them sees them.

    Before the first episode poll ``ready``; then, per episode, ``request_start`` and poll
    ``poll_start`` until it is True, stream, ``request_stop`` and poll ``poll_stop`` until it
    is True. Calls on the node's logger; the node must be spun for answers to arrive.
    """

    def __init__(self, node: Node, recorder: str, *, service_timeout_s: float,
                 robot: Publisher | None = None) -> None:
        """Clients of the recorder's services (none when ``recorder`` is '').

        ``robot``: the controller topic's publisher, whose subscriber (the robot) must be
        there before the first episode (None: not driving a robot).
        """
        self._node = node
        self._robot = robot
        self.namespace = recorder.rstrip('/')
        self.service_timeout_s = service_timeout_s
        self._start = self._stop = None
        if self.namespace:
            self._start = node.create_client(Trigger, f'{self.namespace}/start_episode')
            self._stop = node.create_client(SetBool, f'{self.namespace}/stop_episode')
        self._deadline = time.monotonic() + service_timeout_s     # first: for the graph
        self._retry_at = 0.0
        self._future = None
        self.saved: list[str] = []        # the recorder's messages of the saved episodes

    @property
    def enabled(self) -> bool:
        """Whether there is a recorder to call."""
        return self._start is not None

    def timed_out(self, now: float) -> bool:
        """Whether service_timeout_s has passed since creation or the last request."""
        return now > self._deadline

    def ready(self, now: float) -> bool:
        """Whether the recorder's services and the robot (a subscriber of its topic) are there.

        Raises RecordingError naming what is missing once service_timeout_s has passed since
        the creation.
        """
        missing = [f'service {c.srv_name}' for c in (self._start, self._stop)
                   if c is not None and not c.service_is_ready()]
        robot = self._robot
        if robot is not None and robot.get_subscription_count() == 0:
            missing.append(f'a subscriber of {robot.topic_name} (the robot)')
        if missing and self.timed_out(now):
            raise RecordingError(f'{" and ".join(missing)} not available after '
                                f'{self.service_timeout_s:g} s')
        return not missing

    def subscribes(self, topic: str) -> bool:
        """Whether the recorder's node (named as its service namespace) subscribes ``topic``."""
        node = self._node
        name = node.resolve_service_name(self.namespace, only_expand=True)
        return any(f'{info.node_namespace.rstrip("/")}/{info.node_name}' == name
                   for info in node.get_subscriptions_info_by_topic(topic))

    def request_start(self, now: float) -> None:
        """Ask the recorder to start an episode (poll_start says when it has)."""
        self._deadline = now + self.service_timeout_s
        self._call_start()

    def _call_start(self) -> None:
        self._retry_at = float('inf')
        if self._start is not None:
            self._future = self._start.call_async(Trigger.Request())

    def poll_start(self, now: float) -> bool:
        """True once the episode is recording (at once without a recorder), False meanwhile.

        A refusal is retried every RETRY_START_S; RecordingError when the recorder still
        refuses, or has not answered, service_timeout_s after request_start.
        """
        if self._start is None:
            return True
        future, name = self._future, self._start.srv_name
        if future is not None and future.done():
            self._future = None
            response = future.result()
            if response is not None and response.success:
                self._node.get_logger().info(f'recording: {response.message}')
                return True
            why = response.message if response is not None else 'no response'
            if self.timed_out(now):
                raise RecordingError(f'{name} refused: {why}')
            self._node.get_logger().warn(f'{name} refused ({why}); retrying',
                                         throttle_duration_sec=2.0)
            self._retry_at = now + RETRY_START_S
        elif future is None and now >= self._retry_at:
            self._call_start()
        elif future is not None and self.timed_out(now):
            raise RecordingError(f'no answer from {name} within {self.service_timeout_s:g} s')
        return False

    def request_stop(self, now: float, success: bool = True) -> None:
        """Ask the recorder to end the episode, saved as a success or not (see poll_stop)."""
        self._deadline = now + self.service_timeout_s
        if self._stop is not None:
            self._future = self._stop.call_async(SetBool.Request(data=success))

    def poll_stop(self, now: float) -> bool:
        """True once the recorder has saved the episode (at once without one), False meanwhile.

        The recorder's message is logged and kept in ``saved``; RecordingError when it fails
        or has not answered service_timeout_s after request_stop.
        """
        if self._stop is None:
            return True
        future, name = self._future, self._stop.srv_name
        if future.done():
            self._future = None
            response = future.result()
            if response is None or not response.success:
                why = response.message if response is not None else 'no response'
                raise RecordingError(f'{name} failed: {why}')
            self.saved.append(response.message)
            self._node.get_logger().info(response.message)
            return True
        if self.timed_out(now):
            raise RecordingError(f'no answer from {name} within {self.service_timeout_s:g} s')
        return False


def drive(node: Node, driver: EpisodeDriver, timer: Timer, finished: Future) -> None:
    """One timer tick of a node's EpisodeDriver.

    At the end: log the result and complete ``finished`` (spin_node returns its exit code).
    """
    result = driver.step(time.monotonic())
    if result is not None and not finished.done():
        timer.cancel()
        log = node.get_logger().error if result.exit_code else node.get_logger().info
        log(result.message)
        finished.set_result(result)
