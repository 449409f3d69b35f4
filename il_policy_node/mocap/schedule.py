"""Which retargeted sample of which clip is due when: mocap_bridge's player, without ROS.

``ClipScheduler`` goes through the files one after the other (again and again with ``loop``;
the last one followed while it is written with ``follow``), skipping files that cannot be
read or retargeted, and queues each clip's samples as its ClipSource yields them. Once the
clip is started, ``due(now)`` gives every sample whose time has come, in order, each exactly
once: sample i is due ``period_s`` after sample i-1, counted from the anchor (the start, or the
moment a late writer delivered again), so a late tick gets the samples that became due and a
stall never bursts what was not yet written.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from il_policy_node.errors import MocapError
from il_policy_node.mocap.bvh import BvhHeader
from il_policy_node.mocap.stream import ClipSource, FrameValues, MotionSamples

LOG = logging.getLogger(__name__)

EARLY = 0.25              # of a period: a sample due this soon goes out now
CLIP_ERRORS = (MocapError, OSError)


@dataclass(frozen=True)
class Playback:
    """How the clips are played (the defaults are mocap_bridge's parameters')."""

    loop: bool = False                  # the files again and again
    follow: bool = False                # the last file followed while it is written
    follow_timeout_s: float = 5.0       # a followed file ends this long after its last frame
    rate_scale: float = 1.0             # 2.0: twice as fast
    publish_rate_hz: float = 0.0        # 0: the clip's own rate times rate_scale

    def __post_init__(self) -> None:
        if self.loop and self.follow:
            raise MocapError('loop and follow exclude each other')


@dataclass(frozen=True)
class DueSample:
    """One sample to publish: row ``row`` of ``batch``, the clip's sample ``index``."""

    batch: MotionSamples
    row: int
    index: int
    stamp_ns: int               # its due time on the caller's clock


class ClipScheduler:
    """The clips of ``files`` as timed samples (see the module docstring)."""

    def __init__(self, files: Sequence[str], values: Callable[[BvhHeader], FrameValues], *,
                 playback: Playback = Playback(), clock: Callable[[], float] = time.monotonic,
                 report: Callable[[int, str], None] = LOG.log) -> None:
        """Clips of ``files`` retargeted by ``values(header)`` (a method's frame_values).

        ``clock``: monotonic seconds; ``report(level, message)``: skipped files, errors.
        """
        self.files = [str(f) for f in files]
        self._values = values
        self.loop, self.follow = playback.loop, playback.follow
        self.follow_timeout_s = playback.follow_timeout_s
        self.rate_scale = playback.rate_scale
        self.publish_rate_hz = playback.publish_rate_hz
        self._clock, self._report = clock, report
        self.index, self.round = -1, 0
        self._played_in_round = 0
        self.source: ClipSource | None = None
        self._queue: deque[MotionSamples] = deque()
        self._cursor = 0                   # next row of self._queue[0]
        self.next_sample = 0               # index of the next sample of the clip
        self._anchor = (0.0, 0, 0)         # (clock s, sample index, stamp ns)
        self.period_s = 0.0                # clock seconds per sample of this clip
        self.error = ''                    # why the clip ended early, if it did
        self.played: list[str] = []
        self.skipped: list[str] = []       # error messages
        self.played_s = 0.0

    # -- clips ---------------------------------------------------------------------------
    def open_next(self) -> bool:
        """Open the next file that can be read; False when there is none left."""
        while True:
            self.index += 1
            if self.index == len(self.files):
                if not self.loop or not self._played_in_round:
                    return False
                self.index, self._played_in_round = 0, 0
                self.round += 1
            path = self.files[self.index]
            follow = self.follow and self.index == len(self.files) - 1
            rate_hz = self.publish_rate_hz / self.rate_scale if self.publish_rate_hz else None
            try:
                self.source = ClipSource(path, self._values, rate_hz=rate_hz, follow=follow,
                                         follow_timeout_s=self.follow_timeout_s,
                                         clock=self._clock)
            except CLIP_ERRORS as exc:
                self._skip(path, exc)
                continue
            self._queue.clear()
            self._cursor = self.next_sample = 0
            self.error = ''
            if follow:
                self._report(logging.INFO, f'following {path} (ends {self.follow_timeout_s:g} '
                                           's after its last new frame)')
            return True

    def poll(self) -> None:
        """Read what the clip's source has.

        An unreadable clip before its first sample is skipped (``source`` becomes None); a
        later error ends the clip early (``error``).
        """
        source = self.source
        if source is None or source.done:
            return
        try:
            samples = source.poll()
        except CLIP_ERRORS as exc:
            if not self.next_sample and not self._queue:      # nothing published: skip it
                self._skip(str(source.path), exc)
                self.source = None
                return
            self.error = str(exc)
            self._report(logging.ERROR, f'{exc}; ending the clip')
            retargeter = source.retargeter
            samples = retargeter.finish() if not retargeter.finished else None
            source.done = True
        if samples is not None and len(samples):
            self._queue.append(samples)

    @property
    def ready(self) -> bool:
        """The clip has samples to start with."""
        return bool(self._queue)

    @property
    def first_pose(self) -> np.ndarray:
        return self._queue[0].positions[0]

    @property
    def finished(self) -> bool:
        """Every sample of the clip has been given out."""
        return self.source is not None and self.source.done and not self._queue

    def end_clip(self) -> dict:
        """Book the clip as played; its info (see ClipSource.info)."""
        info = self.source.info()
        self.played_s += info['duration_s']
        self.played.append(str(self.source.path))
        self._played_in_round += 1
        return info

    # -- timing --------------------------------------------------------------------------
    def start(self, stamp_ns: int) -> None:
        """The next sample is due now (``stamp_ns`` on the caller's clock), the rest after it."""
        self.period_s = 1.0 / (self.source.retargeter.rate_hz * self.rate_scale)
        self._anchor = (self._clock(), self.next_sample, stamp_ns)

    def due(self, now: float, stamp_ns: Callable[[], int]) -> Iterator[DueSample]:
        """Every sample due at ``now``, in order; ``stamp_ns()`` re-anchors after a stall."""
        while self._queue and self._due(self.next_sample) <= now + EARLY * self.period_s:
            batch = self._queue[0]
            _, i0, ros0 = self._anchor
            yield DueSample(batch, self._cursor, self.next_sample,
                            ros0 + round((self.next_sample - i0) * self.period_s * 1e9))
            self.next_sample += 1
            self._cursor += 1
            if self._cursor == len(batch):
                self._queue.popleft()
                self._cursor = 0
        if not self._queue and not self.source.done and self._due(self.next_sample) < now:
            self._anchor = (self._clock(), self.next_sample, stamp_ns())   # the writer is late

    def _due(self, index: int) -> float:
        t0, i0, _ = self._anchor
        return t0 + (index - i0) * self.period_s

    def _skip(self, path: str, exc: Exception) -> None:
        if isinstance(exc, OSError) and exc.strerror:
            message = f'{path}: {exc.strerror}'
        else:
            message = str(exc) if path in str(exc) else f'{path}: {exc}'
        self.skipped.append(message)
        self._report(logging.ERROR, f'skipped: {message}')

    def summary(self) -> tuple[bool, str]:
        """(any clip played, what was played) after the last clip."""
        skipped = f', {len(self.skipped)} skipped' if self.skipped else ''
        if not self.played:
            return False, f'no clip could be played ({len(self.files)} files{skipped})'
        return True, (f'{len(self.played)} clips played ({self.played_s:.1f} s of motion)'
                      f'{skipped}')

