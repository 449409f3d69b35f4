"""Fast decoding of joint signals from serialized messages: JointState in bulk.

Messages of one connection nearly always share one CDR layout (same joint names, same array
lengths, same frame_id length). ``JointStateDecoder`` parses the layout of the first message of
each length once, then decodes a whole chunk of messages as one uint8 matrix: the layout bytes
(frame_id length, names, array lengths) are compared against the template with numpy, and the
doubles are read with ``frombuffer`` views. A message that does not match is decoded by
rosbags' generic decoder instead (``deserialize_lenient``). JointTrajectory commands (the
first point of each) go through the generic decoder.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from rosbags.typesys import Stores, get_typestore

from il_policy_node.errors import BagError

JOINT_STATE = 'sensor_msgs/msg/JointState'
JOINT_TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
CHUNK_MESSAGES = 8192            # messages decoded together (bounds memory per connection)
_STORE = None


def typestore() -> Any:
    """The Jazzy typestore of rosbags (JointState, JointTrajectory: same in every distro)."""
    global _STORE
    if _STORE is None:
        _STORE = get_typestore(Stores.ROS2_JAZZY)
    return _STORE


# -- JointState layout ----------------------------------------------------------------------
@dataclass(frozen=True)
class JointStateLayout:
    """Where the fields of one little-endian JointState CDR message lie (offsets into it)."""

    size: int
    names: tuple[str, ...]
    position: int                 # offset of the first position double
    n_position: int
    velocity: int
    n_velocity: int
    # byte ranges that must equal the template's: length fields and joint names, never
    # alignment padding (serializers leave it uninitialized) nor frame_id's text
    check: tuple[tuple[int, int], ...] = field(repr=False)
    template: np.ndarray = field(repr=False)  # the first message's bytes

    def matches(self, rows: np.ndarray) -> np.ndarray:
        """Which rows (messages of this size as a byte matrix) share the layout.

        Fast path: a few wide ranges that include the padding between names (usually equal
        to the template's); rows that differ there get the exact check without padding.
        """
        ok = _equal_in(rows, self.template, _merge_ranges(self.check, gap=4))
        if not ok.all():
            differ = np.flatnonzero(~ok)
            ok[differ] = _equal_in(rows[differ], self.template, self.check)
        return ok


def _equal_in(rows: np.ndarray, template: np.ndarray,
              ranges: tuple[tuple[int, int], ...]) -> np.ndarray:
    ok = np.ones(len(rows), bool)
    for start, end in ranges:
        ok &= (rows[:, start:end] == template[start:end]).all(axis=1)
    return ok


def _align(pos: int, n: int) -> int:
    # CDR alignment counts from the end of the 4-byte encapsulation header
    return pos + (-(pos - 4)) % n


def parse_joint_state_layout(buf: bytes) -> JointStateLayout:
    """The layout of one serialized JointState; ValueError if it is not little-endian CDR."""
    if len(buf) < 20 or buf[1] != 1:
        raise ValueError('not a little-endian CDR message')
    u32 = struct.Struct('<I').unpack_from
    pos = 12
    pos += 4 + u32(buf, pos)[0]                      # header.frame_id
    pos = _align(pos, 4)
    count = u32(buf, pos)[0]
    check = [(12, 16), (pos, pos + 4)]               # frame_id length, name count
    pos += 4
    names = []
    for _ in range(count):
        pos = _align(pos, 4)
        length = u32(buf, pos)[0]
        if length == 0 or pos + 4 + length > len(buf):
            raise ValueError('bad string in name')
        names.append(buf[pos + 4:pos + 3 + length].decode())
        check.append((pos, pos + 4 + length))       # length and text of the name
        pos += 4 + length
    arrays = []
    for _ in range(3):                               # position, velocity, effort
        start = _align(pos, 4)
        n = u32(buf, start)[0]
        check.append((start, start + 4))             # the array's length
        data = _align(start + 4, 8) if n else start + 4
        arrays.append((data, n))
        pos = data + 8 * n
        if pos > len(buf):
            raise ValueError('arrays run past the end of the message')
    return JointStateLayout(
        size=len(buf), names=tuple(names), position=arrays[0][0], n_position=arrays[0][1],
        velocity=arrays[1][0], n_velocity=arrays[1][1], check=_merge_ranges(check),
        template=np.frombuffer(buf, np.uint8))


def _merge_ranges(ranges, gap: int = 0) -> tuple[tuple[int, int], ...]:
    """Sorted ranges with those closer than ``gap`` bytes joined (the gap included)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start - merged[-1][1] < max(gap, 1):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


@dataclass
class JointSeries:
    """A joint signal over time: rows are messages, columns follow ``names``."""

    names: tuple[str, ...]
    stamp_ns: np.ndarray          # int64 header.stamp
    receive_ns: np.ndarray        # int64 bag (receive) time
    position: np.ndarray          # float64 [n, joints]
    velocity: np.ndarray | None   # float64 [n, joints], None when the messages carry none


class JointStateDecoder:
    """Accumulates raw JointState messages of one topic; ``finish`` returns a JointSeries."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.names: tuple[str, ...] | None = None
        self._layouts: dict[int, JointStateLayout] = {}
        self._raw: list[bytes] = []
        self._times: list[int] = []
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.fallbacks = 0

    def add(self, receive_ns: int, data: bytes) -> None:
        self._raw.append(data)
        self._times.append(receive_ns)
        if len(self._raw) >= CHUNK_MESSAGES:
            self._flush()

    def finish(self) -> JointSeries:
        self._flush()
        if not self._parts:
            raise BagError(f'topic {self.topic} has no messages')
        assert self.names is not None
        vel = [p[3] for p in self._parts]
        has_vel = [v is not None for v in vel]
        if any(has_vel) and not all(has_vel):
            raise BagError(f'topic {self.topic}: velocity present in some messages only')
        return JointSeries(
            names=self.names, stamp_ns=np.concatenate([p[0] for p in self._parts]),
            receive_ns=np.concatenate([p[1] for p in self._parts]),
            position=np.concatenate([p[2] for p in self._parts]),
            velocity=np.concatenate(vel) if all(has_vel) else None)

    # -- bulk decoding ---------------------------------------------------------------------
    def _layout(self, data: bytes) -> JointStateLayout | None:
        layout = self._layouts.get(len(data))
        if layout is None:
            try:
                layout = parse_joint_state_layout(data)
            except (ValueError, struct.error, UnicodeDecodeError):
                return None
            if layout.n_position != len(layout.names) or \
                    layout.n_velocity not in (0, len(layout.names)):
                return None                           # let the generic path explain it
            self._set_names(layout.names)
            if layout.names != self.names:
                return None
            self._layouts[len(data)] = layout
        return layout

    def _set_names(self, names: Sequence[str]) -> None:
        names = tuple(names)
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise BagError(f'topic {self.topic}: duplicate joint names {dups}')
        if self.names is None:
            self.names = names

    def _flush(self) -> None:
        raw, times = self._raw, np.asarray(self._times, np.int64)
        self._raw, self._times = [], []
        n = len(raw)
        if not n:
            return
        lengths = np.fromiter(map(len, raw), np.int64, n)
        stamp = np.empty(n, np.int64)
        done = np.zeros(n, bool)
        pos: np.ndarray | None = None
        vel: np.ndarray | None = None
        for size in np.unique(lengths):
            rows = np.flatnonzero(lengths == size)
            layout = self._layout(raw[rows[0]])
            if layout is None:
                continue
            if pos is None:
                pos = np.empty((n, len(layout.names)))
                vel = np.empty((n, len(layout.names))) if layout.n_velocity else None
            if (vel is None) != (layout.n_velocity == 0):
                continue
            block = raw if len(rows) == n else [raw[i] for i in rows]
            mat = np.frombuffer(b''.join(block), np.uint8).reshape(len(rows), int(size))
            ok = layout.matches(mat)
            good = rows[ok]
            mat = mat[ok]
            sec = mat[:, 4:8].copy().view('<i4')[:, 0].astype(np.int64)
            nsec = mat[:, 8:12].copy().view('<u4')[:, 0].astype(np.int64)
            stamp[good] = sec * 1_000_000_000 + nsec
            width = 8 * layout.n_position
            pos[good] = mat[:, layout.position:layout.position + width].copy().view('<f8')
            if vel is not None:
                vel[good] = mat[:, layout.velocity:layout.velocity + width].copy().view('<f8')
            done[good] = True
        for i in np.flatnonzero(~done):
            self.fallbacks += 1
            pos, vel = self._generic(raw[i], i, n, stamp, pos, vel)
        self._parts.append((stamp, times, pos, vel))

    def _generic(self, data: bytes, i: int, n: int, stamp: np.ndarray,
                 pos: np.ndarray | None, vel: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            msg = deserialize_lenient(data, JOINT_STATE)
        except Exception as exc:
            raise BagError(f'topic {self.topic}: message cannot be decoded as JointState: '
                           f'{type(exc).__name__}: {exc}') from None
        self._set_names(msg.name)
        names = tuple(msg.name)
        if set(names) != set(self.names) or len(names) != len(self.names):
            raise BagError(f'topic {self.topic}: joint names change within the topic '
                           f'({list(self.names)} then {list(names)})')
        if len(msg.position) != len(names):
            raise BagError(f'topic {self.topic}: {len(msg.position)} positions for '
                           f'{len(names)} joints')
        if len(msg.velocity) not in (0, len(names)):
            raise BagError(f'topic {self.topic}: {len(msg.velocity)} velocities for '
                           f'{len(names)} joints')
        order = [names.index(name) for name in self.names]
        if pos is None:
            pos = np.empty((n, len(names)))
            vel = np.empty((n, len(names))) if len(msg.velocity) else None
        if (vel is None) != (len(msg.velocity) == 0):
            raise BagError(f'topic {self.topic}: velocity present in some messages only')
        stamp[i] = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        pos[i] = np.asarray(msg.position)[order]
        if vel is not None:
            vel[i] = np.asarray(msg.velocity)[order]
        return pos, vel


def deserialize_lenient(data: bytes, typename: str) -> Any:
    """Rosbags' CDR decoding, accepting bytes after the message's end.

    rclpy's serialize_message (rmw_fastrtps) sizes its buffer by an estimate, and a node that
    publishes such a pre-serialized message (ours does) sends the slack along; ROS readers
    ignore it, rosbags' ``deserialize_cdr`` refuses it as a size mismatch.
    """
    if len(data) < 4 or bytes(data[:2]) not in (b'\x00\x00', b'\x00\x01'):
        raise ValueError('invalid or unsupported CDR encapsulation')
    msgdef = typestore().get_msgdef(typename)
    decode = msgdef.deserialize_cdr_le if data[1] else msgdef.deserialize_cdr_be
    message, _ = decode(memoryview(data)[4:], 0, msgdef.cls, typestore())
    return message


class TrajectoryDecoder:
    """First-point positions of JointTrajectory messages (rosbags' generic decoder)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.names: tuple[str, ...] | None = None
        self._rows: list[np.ndarray] = []
        self._stamps: list[int] = []
        self._times: list[int] = []

    def add(self, receive_ns: int, data: bytes) -> None:
        try:
            msg = deserialize_lenient(data, JOINT_TRAJECTORY)
        except Exception as exc:
            raise BagError(f'topic {self.topic}: message cannot be decoded as JointTrajectory: '
                           f'{type(exc).__name__}: {exc}') from None
        names = tuple(msg.joint_names)
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise BagError(f'topic {self.topic}: duplicate joint names {dups}')
        if self.names is None:
            self.names = names
        if not msg.points:
            return                                   # an empty trajectory: nothing commanded
        positions = np.asarray(msg.points[0].positions, np.float64)
        if len(positions) != len(names):
            raise BagError(f'topic {self.topic}: {len(positions)} positions for '
                           f'{len(names)} joints')
        if names != self.names:
            if set(names) != set(self.names):
                raise BagError(f'topic {self.topic}: joint names change within the topic '
                               f'({list(self.names)} then {list(names)})')
            positions = positions[[names.index(name) for name in self.names]]
        self._rows.append(positions)
        self._stamps.append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
        self._times.append(receive_ns)

    def finish(self) -> JointSeries:
        if not self._rows:
            raise BagError(f'topic {self.topic} has no trajectory points')
        assert self.names is not None
        return JointSeries(names=self.names, stamp_ns=np.asarray(self._stamps, np.int64),
                           receive_ns=np.asarray(self._times, np.int64),
                           position=np.vstack(self._rows), velocity=None)
