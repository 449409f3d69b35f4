"""The episode driver: what an operator with a pedal does, one episode after the other.

Shared by the demonstrator (scripted episodes) and mocap_bridge (BVH clips): wait for the
recorder, the robot and the listeners; then for every episode of the player: prepare it, move
the robot to its start pose and let it settle, start the recorder's episode, stream the
episode, stop the recorder's episode (success or not); at the end, a result (exit code and
summary). Pure: the node calls ``step(now)`` from its timer and, once ``result`` is set,
completes the future its ``main`` waits for; nothing raises out of a callback.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from il_policy_node.errors import RecordingError

SETTLE_MARGIN_S = 0.2          # waited beyond the settle move before the recorder starts


class Phase(str, Enum):
    WAITING = 'waiting'        # for the recorder's services, the robot, the listeners
    PREPARING = 'preparing'    # the next episode is made ready (a clip being read)
    SETTLING = 'settling'      # the robot moves to the episode's start pose
    STARTING = 'starting'      # the recorder was asked to start the episode
    STREAMING = 'streaming'
    STOPPING = 'stopping'      # the recorder was asked to stop the episode
    DONE = 'done'


class Preparation(str, Enum):
    READY = 'ready'            # the episode can start
    WAIT = 'wait'              # not yet (e.g. a followed file has no frame yet)
    SKIPPED = 'skipped'        # it cannot be played: go on with the next one


@dataclass(frozen=True)
class Finished:
    """How the run ended: the process's exit code and a summary (or the error)."""

    exit_code: int
    message: str


class Recorder(Protocol):
    """The recorder's start/stop calls, polled (ros/recorder_client.RecorderEpisodes)."""

    def ready(self, now: float) -> bool: ...
    def request_start(self, now: float) -> None: ...
    def poll_start(self, now: float) -> bool: ...
    def request_stop(self, now: float, success: bool = True) -> None: ...
    def poll_stop(self, now: float) -> bool: ...


class Player(Protocol):
    """What is played, episode by episode; every method may raise RecordingError."""

    def listeners_ready(self, now: float) -> bool:
        """Whether the streams have their listeners (or waited for them long enough)."""

    def next_episode(self, now: float) -> bool:
        """Open the next episode; False when there is none left."""

    def poll(self, now: float) -> None:
        """Called on every step while an episode is open (e.g. to read a followed file)."""

    def prepare(self, now: float) -> Preparation:
        """Whether the open episode can start now, later, or not at all."""

    def move_to_start(self, now: float) -> float:
        """Send the robot to the episode's start pose; the seconds to wait (0: not driving)."""

    def begin(self, now: float) -> None:
        """Streaming starts now."""

    def stream(self, now: float) -> bool:
        """Publish what is due now; True once the episode's motion is over."""

    def success(self) -> bool:
        """The label of the episode that just ended."""

    def summary(self) -> Finished:
        """The result after the last episode."""


class EpisodeDriver:
    """Runs a player's episodes against a recorder (see the module docstring)."""

    def __init__(self, player: Player, recorder: Recorder) -> None:
        self.player = player
        self.recorder = recorder
        self.phase = Phase.WAITING
        self.result: Finished | None = None
        self._until = 0.0

    def step(self, now: float) -> Finished | None:
        """Advance by what is due at ``now``; the result once the run is over."""
        if self.result is None:
            try:
                self._step(now)
            except RecordingError as exc:
                self._finish(Finished(1, str(exc)))
        return self.result

    def _step(self, now: float) -> None:
        player, recorder, phase = self.player, self.recorder, self.phase
        if phase is Phase.WAITING:
            if recorder.ready(now) and player.listeners_ready(now):
                self._next(now)
            return
        player.poll(now)
        if phase is Phase.PREPARING:
            preparation = player.prepare(now)
            if preparation is Preparation.SKIPPED:
                self._next(now)
            elif preparation is Preparation.READY:
                self._until = now
                settle = player.move_to_start(now)
                if settle > 0:
                    self._until = now + settle + SETTLE_MARGIN_S
                self.phase = Phase.SETTLING
                self._step_settling(now)
        elif phase is Phase.SETTLING:
            self._step_settling(now)
        elif phase is Phase.STARTING:
            self._step_starting(now)
        elif phase is Phase.STREAMING:
            self._step_streaming(now)
        elif phase is Phase.STOPPING:
            if recorder.poll_stop(now):
                self._next(now)

    def _step_settling(self, now: float) -> None:
        if now >= self._until:
            self.phase = Phase.STARTING
            self.recorder.request_start(now)
            self._step_starting(now)              # without a recorder: streams at once

    def _step_starting(self, now: float) -> None:
        if self.recorder.poll_start(now):
            self.phase = Phase.STREAMING
            self.player.begin(now)
            self._step_streaming(now)

    def _step_streaming(self, now: float) -> None:
        if self.player.stream(now):
            self.phase = Phase.STOPPING
            self.recorder.request_stop(now, success=self.player.success())
            if self.recorder.poll_stop(now):      # without a recorder: the next at once
                self._next(now)

    def _next(self, now: float) -> None:
        if self.player.next_episode(now):
            self.phase = Phase.PREPARING
            self._step(now)
        else:
            self._finish(self.player.summary())

    def _finish(self, result: Finished) -> None:
        self.phase = Phase.DONE
        self.result = result
