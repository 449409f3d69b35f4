"""Streaming retargeting, ROS-free: BVH frames -> robot joint samples as the frames come.

What the mocap_bridge node plays, live, and what a mocap suit behind a retargeting system
would send:

- :class:`BvhFollower` reads a BVH file while it is being written (``tail -f``): the header
  once it is complete, then every whole frame line appended. ``Frames:`` is not checked (a
  live writer does not know the count; write 0). Errors are :class:`~.bvh.BvhError` naming
  ``file:line``.
- :class:`FrameRetargeter` retargets frames batch by batch (a :class:`FrameValues`: the map's
  maths, :class:`MapValues` with angles unwrapped across batches, or inverse kinematics,
  il_policy_node.mocap.methods.IkValues, carrying the robot from frame to frame) and emits
  samples on a uniform grid, with the limits and the clamp report: at the clip's own rate
  (sample i is frame i) or resampled. Unlike :func:`~.retarget.retarget`, which fits a cubic spline
  through the whole clip, it is causal up to one frame: the velocity at a frame is the central
  difference of its neighbours (one-sided at the clip's ends), and between frames positions
  and velocities follow the cubic Hermite curve through both frames with those velocities.
  A sample therefore waits for the frame after it (two frames when resampled) until
  :meth:`FrameRetargeter.finish` says the clip ended.
- :class:`ClipSource` is one BVH file, read whole or followed until ``follow_timeout_s``
  passes without a new frame, retargeted by a FrameRetargeter.
"""
from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from il_policy_node.mocap.bvh import (
    BvhClip,
    BvhError,
    BvhHeader,
    header_complete,
    load_bvh,
    parse_frame,
    parse_header,
)
from il_policy_node.mocap.retarget import (
    JointClamp,
    RetargetError,
    RetargetMap,
    apply_sources,
    check_fit,
    end_effector_positions,
    joint_limits,
    source_values,
)

_SNAP = 1e-9          # frames: a sample this close to a frame is that frame
_END_SLACK = 1e-6     # samples: the last grid time is within the clip, up to this


class FrameValues(Protocol):
    """Robot values of BVH frames, batch after batch of one clip, in order."""

    joint_names: tuple[str, ...]
    lower: np.ndarray                          # rad, the limits the samples are clamped to
    upper: np.ndarray
    effectors: tuple[str, ...]                 # end-effector names
    source: str                                # the map file, or 'ik:<model>:<skeleton>'
    fingerprint: str

    def __call__(self, clip: BvhClip) -> np.ndarray:
        """[m, J + 3 E] joint values (before limits), then each end effector's x y z."""


class MapValues:
    """The map's values (il_policy_node.mocap.retarget), angles unwrapped across batches."""

    def __init__(self, header: BvhHeader, mapping: RetargetMap, *,
                 joint_names: Sequence[str], lower: Sequence[float] | None = None,
                 upper: Sequence[float] | None = None) -> None:
        """RetargetError when the map does not fit the robot or the header's skeleton."""
        probe = BvhClip(joints=header.joints, frames=np.zeros((1, header.width)),
                        frame_time=header.frame_time, source=header.source)
        self.mapping = mapping
        self.joint_names = check_fit(probe, mapping, joint_names)
        self.lower, self.upper = joint_limits(mapping, self.joint_names, lower, upper)
        self.effectors = tuple(ee.name for ee in mapping.end_effectors)
        self.source, self.fingerprint = mapping.source, mapping.sha256
        self._last_raw: np.ndarray | None = None    # unwrapped source values of the last frame

    def __call__(self, clip: BvhClip) -> np.ndarray:
        raw, angular = source_values(clip, self.mapping, self.joint_names)
        if self._last_raw is not None:      # unwrap on from the previous batch's last frame
            raw = np.vstack([self._last_raw, raw])
        raw[:, angular] = np.unwrap(raw[:, angular], axis=0)
        if self._last_raw is not None:
            raw = raw[1:]
        self._last_raw = raw[-1:].copy()
        points = end_effector_positions(clip, self.mapping)
        return np.hstack([apply_sources(self.mapping, self.joint_names, raw),
                          *(points[name] for name in self.effectors)])


@dataclass(frozen=True, eq=False)
class MotionSamples:
    """Consecutive output samples: sample ``first + k`` is at clip time (first + k) / rate."""

    first: int
    times: np.ndarray                          # [m] s from the clip's first frame
    positions: np.ndarray                      # [m, J] rad, within the limits
    velocities: np.ndarray                     # [m, J] rad/s (clip time), 0 where clamped
    end_effectors: dict[str, np.ndarray]       # name -> [m, 3] m, robot axes

    def __len__(self) -> int:
        return len(self.times)


class FrameRetargeter:
    """Retargets BVH frames pushed in batches into samples at ``rate_hz`` (see module doc)."""

    def __init__(self, header: BvhHeader, values: FrameValues, *,
                 rate_hz: float | None = None) -> None:
        """``rate_hz``: output rate; None = the clip's (1 / frame_time, sample i = frame i)."""
        self.header, self.values = header, values
        self.joint_names = values.joint_names
        self.lower, self.upper = values.lower, values.upper
        self.rate_hz = 1.0 / header.frame_time if rate_hz is None else float(rate_hz)
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise RetargetError(f'rate_hz must be > 0, got {rate_hz}')
        # frames per sample; exactly 1.0 at the clip's rate so sample i is frame i
        self._ratio = 1.0 if rate_hz is None else 1.0 / (self.rate_hz * header.frame_time)
        self._effectors = values.effectors
        self._width = len(self.joint_names) + 3 * len(self._effectors)
        self._window = np.zeros((0, self._width))   # values of frames _window_first ...
        self._window_first = 0
        self.frames = 0                             # frames pushed
        self.samples = 0                            # samples emitted
        self.finished = False
        self._clamped: dict[str, list] = {}         # name -> [frames, worst excess]

    @property
    def duration_s(self) -> float:
        """Clip time covered by the frames pushed so far."""
        return max(self.frames - 1, 0) * self.header.frame_time

    @property
    def clamped(self) -> dict[str, JointClamp]:
        """Joints clamped in the samples emitted so far: frames and the largest excess (rad)."""
        return {name: JointClamp(count, worst) for name, (count, worst) in self._clamped.items()}

    def push(self, frames: np.ndarray) -> MotionSamples:
        """Add frames [m, width] (channel values as in the file); return the samples now due."""
        if self.finished:
            raise ValueError('push after finish')
        frames = np.asarray(frames, dtype=np.float64).reshape(-1, self.header.width)
        if len(frames):
            self._window = np.vstack([self._window, self._values(frames)])
            self.frames += len(frames)
        return self._emit()

    def finish(self) -> MotionSamples:
        """The clip has ended: the samples still held back for lack of a next frame."""
        self.finished = True
        return self._emit()

    def _values(self, frames: np.ndarray) -> np.ndarray:
        """[m, width] robot values before limits (joints, then end-effector x y z)."""
        header = self.header
        return self.values(BvhClip(joints=header.joints, frames=frames,
                                   frame_time=header.frame_time, source=header.source))

    def _emit(self) -> MotionSamples:
        n = self.frames
        # Without the next frame a sample cannot have its velocity: hold back what needs it.
        last_frame = n - 1 if self.finished else n - 2
        end = math.floor(last_frame / self._ratio + _END_SLACK) + 1 if last_frame >= 0 else 0
        first = self.samples
        indices = np.arange(first, max(end, first))
        u = indices * self._ratio                                   # in frames
        k = np.floor(u + _SNAP).astype(int)
        s = u - k
        s[s < _SNAP] = 0.0
        k1 = np.minimum(k + 1, n - 1)
        q0, q1 = self._frame(k), self._frame(k1)
        v0, v1 = self._velocity(k), self._velocity(k1)
        dt = self.header.frame_time
        s = s[:, None]
        s2, s3 = s * s, s * s * s
        values = ((2 * s3 - 3 * s2 + 1) * q0 + (s3 - 2 * s2 + s) * dt * v0
                  + (3 * s2 - 2 * s3) * q1 + (s3 - s2) * dt * v1)
        rates = ((6 * s2 - 6 * s) * q0 + (3 * s2 - 4 * s + 1) * dt * v0
                 + (6 * s - 6 * s2) * q1 + (3 * s2 - 2 * s) * dt * v1) / dt
        on_frame = s[:, 0] == 0.0                                   # exactly the frame's values
        values[on_frame], rates[on_frame] = q0[on_frame], v0[on_frame]
        joints = len(self.joint_names)
        positions = np.clip(values[:, :joints], self.lower, self.upper)
        velocities = rates[:, :joints]
        outside = positions != values[:, :joints]
        velocities[outside] = 0.0
        for j in np.flatnonzero(outside.any(axis=0)):
            entry = self._clamped.setdefault(self.joint_names[j], [0, 0.0])
            entry[0] += int(outside[:, j].sum())
            entry[1] = max(entry[1], float(np.abs(values[:, j] - positions[:, j]).max()))
        effectors = {name: values[:, joints + 3 * e:joints + 3 * e + 3]
                     for e, name in enumerate(self._effectors)}
        self.samples = first + len(indices)
        self._trim()
        return MotionSamples(first=first, times=indices / self.rate_hz, positions=positions,
                             velocities=velocities, end_effectors=effectors)

    def _frame(self, k: np.ndarray) -> np.ndarray:
        return self._window[k - self._window_first]

    def _velocity(self, k: np.ndarray) -> np.ndarray:
        """[len(k), width] per second: central difference, one-sided at the clip's ends."""
        n = self.frames
        before = np.maximum(k - 1, 0)
        after = np.minimum(k + 1, n - 1)
        span = ((after - before) * self.header.frame_time)[:, None]
        difference = self._frame(after) - self._frame(before)
        return np.divide(difference, span, out=np.zeros_like(difference), where=span > 0)

    def _trim(self) -> None:
        """Forget frames no future sample needs (it needs its frame's predecessor)."""
        keep = max(math.floor(self.samples * self._ratio + _SNAP) - 1, 0)
        drop = min(keep - self._window_first, len(self._window))
        if drop > 0:
            self._window = self._window[drop:]
            self._window_first += drop


class BvhFollower:
    """Reads a BVH file as it grows: :meth:`poll` returns the frames of new whole lines."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        self.header: BvhHeader | None = None
        self.frames = 0                      # frame lines read
        self._offset = 0                     # bytes read
        self._partial = b''                  # an unterminated last line
        self._lines: list[str] = []          # whole lines before the header was complete
        self._line = 0                       # whole lines read
        self._sha256 = hashlib.sha256()
        self._error: BvhError | None = None  # raised at the next call: frames before it first

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    @property
    def sha256(self) -> str:
        """Of the bytes read so far."""
        return self._sha256.hexdigest()

    def poll(self) -> np.ndarray:
        """Frames [m, width] of the whole lines appended since the last poll (m may be 0).

        Before the header is complete (and while the file does not exist) nothing is read.
        BvhError names the file and line of a malformed line (the frames before it are
        returned first), or a file that shrank.
        """
        self._raise_pending()
        try:
            with open(self.path, 'rb') as stream:
                size = stream.seek(0, 2)
                if size < self._offset:
                    raise BvhError(f'{self.source}: the file shrank from {self._offset} to '
                                   f'{size} bytes while it was followed')
                stream.seek(self._offset)
                data = stream.read(size - self._offset)
        except FileNotFoundError:
            if self._offset:
                raise BvhError(f'{self.source}: the file disappeared while it was followed')
            return self._empty()
        self._offset += len(data)
        self._sha256.update(data)
        chunks = (self._partial + data).split(b'\n')
        self._partial = chunks.pop()
        return self._take([self._decode(chunk) for chunk in chunks])

    def close(self) -> np.ndarray:
        """The writer is done: the frame of an unterminated last line, if any.

        BvhError when the header never became complete.
        """
        self._raise_pending()
        lines = [self._decode(self._partial)] if self._partial.strip() else []
        self._partial = b''
        frames = self._take(lines)
        if self.header is None:
            if not self.exists:
                raise BvhError(f'{self.source}: no such file')
            # parse what there is, for the error naming what is missing
            parse_header(self._lines, self.source, live=True)
            raise BvhError(f'{self.source}:{self._line}: the header is incomplete')
        return frames

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _decode(self, chunk: bytes) -> str:
        self._line += 1
        try:
            return chunk.decode('utf-8').rstrip('\r')
        except UnicodeDecodeError:
            raise BvhError(f'{self.source}:{self._line}: not UTF-8 text') from None

    def _take(self, lines: list[str]) -> np.ndarray:
        """Frames of ``lines``, the last ones read (numbered up to self._line)."""
        number = self._line - len(lines)                     # of the line before lines[0]
        if self.header is None:
            self._lines.extend(lines)
            if not header_complete(self._lines):
                return self._empty()
            self.header = parse_header(self._lines, self.source, live=True)
            number = self.header.data_line - 1
            lines = self._lines[number:]
            self._lines = []
        rows = []
        for offset, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    rows.append(parse_frame(line, number + offset, self.frames + 1,
                                            self.header.width, self.source))
                except BvhError as error:
                    self._error = error
                    break
                self.frames += 1
        return np.array(rows).reshape(-1, self.header.width)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.header.width if self.header else 0))


class ClipSource:
    """One BVH file as retargeted samples: read whole, or followed while it is written.

    Call :meth:`poll` until :attr:`done`. A followed file may not exist yet; it ends when
    ``follow_timeout_s`` passes without a new frame (or, before its first frame, since the
    source was made). Errors (BvhError, RetargetError, OSError) name the file.
    """

    def __init__(self, path: str | Path, values: Callable[[BvhHeader], FrameValues], *,
                 rate_hz: float | None = None, follow: bool = False,
                 follow_timeout_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``values(header)``: the clip's FrameValues (e.g. a method's ``frame_values``)."""
        self.path = Path(path)
        self._make_values = values
        self.follow = follow
        if follow and follow_timeout_s is None:
            raise BvhError(f'{self.path}: following a file needs a follow_timeout_s')
        self.follow_timeout_s = follow_timeout_s
        self._rate_hz = rate_hz
        self._clock = clock
        self._last_frame_at = clock()
        self.retargeter: FrameRetargeter | None = None
        self.done = False
        self.sha256 = ''
        self._follower: BvhFollower | None = None
        self._whole: BvhClip | None = None
        if follow:
            self._follower = BvhFollower(self.path)
        else:
            self._whole = load_bvh(self.path)
            self.sha256 = self._whole.sha256
            self._start(BvhHeader(joints=self._whole.joints,
                                  frame_time=self._whole.frame_time,
                                  frame_count=self._whole.num_frames, data_line=0,
                                  source=self._whole.source))

    @property
    def header(self) -> BvhHeader | None:
        return None if self.retargeter is None else self.retargeter.header

    def _start(self, header: BvhHeader) -> None:
        self.retargeter = FrameRetargeter(header, self._make_values(header),
                                          rate_hz=self._rate_hz)

    def poll(self) -> MotionSamples | None:
        """The samples that became available (None: none yet); sets :attr:`done` at the end."""
        if self.done:
            return None
        if self._whole is not None:
            first = self.retargeter.push(self._whole.frames)
            self._whole = None
            self.done = True
            return _concat(first, self.retargeter.finish())
        follower = self._follower
        frames = follower.poll()
        now = self._clock()
        if follower.header is not None and self.retargeter is None:
            self._start(follower.header)
        samples = None
        if len(frames):
            self._last_frame_at = now
            samples = _concat(self.retargeter.push(frames))
        if now - self._last_frame_at >= self.follow_timeout_s:
            if not follower.exists:
                self.done = True
                raise BvhError(f'{self.path}: no such file after {self.follow_timeout_s:g} s')
            last = follower.close()
            if self.retargeter is None:                    # close raised unless the header is in
                self._start(follower.header)
            if len(last):
                samples = _concat(samples, self.retargeter.push(last))
            self.sha256 = follower.sha256
            if self.retargeter.frames == 0:
                self.done = True
                raise BvhError(f'{self.path}: no frame within {self.follow_timeout_s:g} s')
            self.done = True
            samples = _concat(samples, self.retargeter.finish())
        return samples

    def info(self) -> dict:
        """What is known of the clip so far (for a log line or a message)."""
        r = self.retargeter
        return {
            'file': str(self.path), 'follow': self.follow, 'complete': self.done,
            'frame_rate_hz': None if r is None else 1.0 / r.header.frame_time,
            'frames': 0 if r is None else r.frames,
            'duration_s': 0.0 if r is None else r.duration_s,
            'rate_hz': None if r is None else r.rate_hz,
            'samples': 0 if r is None else r.samples,
            'file_sha256': self.sha256,
            'retarget_map': None if r is None else r.values.source,
            'map_sha256': None if r is None else r.values.fingerprint,
            'clamped': {} if r is None else {
                name: {'frames': c.frames, 'worst_excess_rad': c.worst_excess}
                for name, c in r.clamped.items()},
        }


def _concat(*parts: MotionSamples | None) -> MotionSamples | None:
    """Consecutive sample batches as one (None and empty batches are skipped)."""
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return MotionSamples(
        first=parts[0].first, times=np.concatenate([p.times for p in parts]),
        positions=np.vstack([p.positions for p in parts]),
        velocities=np.vstack([p.velocities for p in parts]),
        end_effectors={name: np.vstack([p.end_effectors[name] for p in parts])
                       for name in parts[0].end_effectors})
