"""BVH motion capture files: a small parser and writer.

A small parser rather than a PyPI library: ``bvh`` 0.3 keeps values as strings and accepts
wrong value counts, unknown channel names and non-numeric values; ``bvhio`` 1.5.4 loops
forever when ``Frames:`` exceeds the frame lines, fails with a bare IndexError on a short
line and accepts unknown channel names; ``pybvh`` 0.9.0 accepts a missing ``}`` and reports
motion errors by data row, not by file line (and pulls in matplotlib). None names file and
line for every malformed case, which the importer needs; the format is small enough that a
tokenizer and a recursive descent over the hierarchy are shorter than the workarounds.

Conventions: one ROOT; each joint has an OFFSET, a CHANNELS list (any subset of the six
names below, in any order) and at most one End Site. Rotation channels are degrees and
intrinsic in channel order: ``Zrotation Xrotation Yrotation`` means R = Rz Rx Ry applied to
the child's local vectors. A joint with position channels takes their values as its local
translation (the OFFSET is the rest pose; an axis without a channel keeps its OFFSET value),
as Blender's importer does. Errors are :class:`BvhError` and start with ``file:line:``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from il_policy_node.errors import MocapError
from il_policy_node.files import atomic_write

POSITION_CHANNELS = ('Xposition', 'Yposition', 'Zposition')
ROTATION_CHANNELS = ('Xrotation', 'Yrotation', 'Zrotation')
CHANNELS = POSITION_CHANNELS + ROTATION_CHANNELS
_KEYWORDS = {'HIERARCHY', 'ROOT', 'JOINT', 'End', 'Site', 'OFFSET', 'CHANNELS', 'MOTION',
             '{', '}'}


class BvhError(MocapError):
    """A malformed BVH file or a bad request on a clip; the message names file and line."""


@dataclass(frozen=True)
class BvhJoint:
    name: str
    parent: int                                       # index in BvhClip.joints; -1 for the root
    offset: tuple[float, float, float]
    channels: tuple[str, ...]
    end_site: tuple[float, float, float] | None = None


@dataclass(frozen=True, eq=False)
class BvhClip:
    """A skeleton (joints in file order, parents first) and its frames [n, channels]."""

    joints: tuple[BvhJoint, ...]
    frames: np.ndarray
    frame_time: float                                 # s
    source: str = '<memory>'                          # the file, in error messages
    sha256: str = ''                                  # of the file's bytes ('' when not read)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'joints', tuple(self.joints))
        frames = np.array(self.frames, dtype=np.float64, ndmin=2)
        frames.setflags(write=False)
        object.__setattr__(self, 'frames', frames)
        _check_skeleton(self.joints, self.source)
        width = sum(len(j.channels) for j in self.joints)
        if frames.shape[0] == 0 or frames.shape[1] != width:
            raise BvhError(f'{self.source}: frames have shape {frames.shape}, expected '
                           f'(n >= 1, {width}) for the channels of the skeleton')
        if not np.isfinite(frames).all():
            raise BvhError(f'{self.source}: frames hold non-finite values')
        if not (np.isfinite(self.frame_time) and self.frame_time > 0):
            raise BvhError(f'{self.source}: frame time must be > 0, got {self.frame_time}')

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def times(self) -> np.ndarray:
        """Seconds from the first frame, one per frame."""
        return np.arange(self.num_frames) * self.frame_time

    @property
    def root_positions(self) -> np.ndarray:
        """[n, 3] position of the root, in BVH units."""
        return self.local_translations(self.joints[0].name)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {joint.name: i for i, joint in enumerate(self.joints)}

    @cached_property
    def _first_column(self) -> list[int]:
        return np.cumsum([0] + [len(j.channels) for j in self.joints]).tolist()

    def joint_index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise BvhError(f'{self.source}: no joint {name!r}; joints: '
                           f'{", ".join(self._index)}') from None

    def channel_index(self, joint: str, channel: str) -> int:
        """Column of ``channel`` of ``joint`` in ``frames``."""
        i = self.joint_index(joint)
        channels = self.joints[i].channels
        if channel not in channels:
            raise BvhError(f'{self.source}: joint {joint!r} has no channel {channel!r}; '
                           f'channels: {" ".join(channels) or "none"}')
        return self._first_column[i] + channels.index(channel)

    def local_rotations(self, joint: str) -> Rotation:
        """[n] rotation of ``joint`` relative to its parent (identity without channels)."""
        channels = self.joints[self.joint_index(joint)].channels
        order = [c for c in channels if c in ROTATION_CHANNELS]
        if not order:
            return Rotation.identity(self.num_frames)
        angles = self.frames[:, [self.channel_index(joint, c) for c in order]]
        return Rotation.from_euler(''.join(c[0] for c in order), angles, degrees=True)

    def local_translations(self, joint: str) -> np.ndarray:
        """[n, 3] translation from the parent: the position channels, else the OFFSET."""
        j = self.joints[self.joint_index(joint)]
        out = np.tile(np.asarray(j.offset, dtype=np.float64), (self.num_frames, 1))
        for axis, channel in enumerate(POSITION_CHANNELS):
            if channel in j.channels:
                out[:, axis] = self.frames[:, self.channel_index(joint, channel)]
        return out


def _check_skeleton(joints: tuple[BvhJoint, ...], source: str) -> None:
    """Raises BvhError unless joints are one tree in depth-first file order with valid channels."""
    if not joints or joints[0].parent != -1:
        raise BvhError(f'{source}: the first joint must be the root (parent -1)')
    names = set()
    ancestors: list[int] = []                      # the path from the root to the last joint
    for i, joint in enumerate(joints):
        if joint.name in names:
            raise BvhError(f'{source}: duplicate joint name {joint.name!r}')
        names.add(joint.name)
        if i:
            while ancestors and ancestors[-1] != joint.parent:
                ancestors.pop()
            if not ancestors:
                raise BvhError(f'{source}: joint {joint.name!r} has parent {joint.parent}, '
                               'which is not an ancestor in depth-first order')
        ancestors.append(i)
        bad = [c for c in joint.channels if c not in CHANNELS]
        if bad or len(set(joint.channels)) != len(joint.channels):
            raise BvhError(f'{source}: joint {joint.name!r}: channels {list(joint.channels)} '
                           f'must be distinct names out of {" ".join(CHANNELS)}')


@dataclass(frozen=True)
class BvhHeader:
    """What a BVH file says before its frames: the skeleton and the MOTION header."""

    joints: tuple[BvhJoint, ...]
    frame_time: float                                 # s
    frame_count: int                                  # as declared by ``Frames:``
    data_line: int                                    # 1-based line after ``Frame Time:``
    source: str

    @property
    def width(self) -> int:
        """Values per frame line (channels of the skeleton)."""
        return sum(len(j.channels) for j in self.joints)


def load_bvh(path: str | Path) -> BvhClip:
    """Reads a BVH file; BvhError names the file and line of whatever is malformed."""
    path = Path(path)
    data = path.read_bytes()
    text = decode_bvh(data, str(path))
    parser = _Parser(str(path), text.splitlines())
    joints = parser.hierarchy()
    frame_time, frames = parser.motion(sum(len(j.channels) for j in joints))
    return BvhClip(joints=tuple(joints), frames=frames, frame_time=frame_time,
                   source=str(path), sha256=hashlib.sha256(data).hexdigest())


def decode_bvh(data: bytes, source: str) -> str:
    """The text of a BVH file's bytes; BvhError names ``source`` when they are not UTF-8."""
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise BvhError(f'{source}: not a UTF-8 text file ({exc})') from None


def parse_header(lines: list[str], source: str, *, live: bool = False) -> BvhHeader:
    """The hierarchy and MOTION header of a BVH text (frame lines after it are not read).

    ``lines`` must reach the ``Frame Time:`` line (see :func:`header_complete`). ``live``: a
    file still being written, whose ``Frames:`` may be 0 (a live writer does not know the
    count yet). BvhError names ``source`` and the line.
    """
    parser = _Parser(source, lines)
    joints = parser.hierarchy()
    rows = parser.motion_rows()
    frames_line, count, frame_time = parser.motion_header(rows)
    if count == 0 and not live:
        raise parser.error(frames_line, 'empty motion (Frames: 0)')
    return BvhHeader(joints=tuple(joints), frame_time=frame_time, frame_count=count,
                     data_line=rows[1][0] + 1, source=source)


def header_complete(lines: list[str]) -> bool:
    """True when ``lines`` reach past a ``Frame Time:`` line after ``MOTION`` (or can never).

    Lines after MOTION that are neither blank nor the two header lines also count as complete:
    :func:`parse_header` then names what is wrong with them.
    """
    motion = next((i for i, line in enumerate(lines) if line.split()[:1] == ['MOTION']), None)
    if motion is None:
        return False
    rows = [line for line in lines[motion + 1:] if line.strip()]
    return len(rows) >= 2 or any(not row.strip().startswith('Frames:') for row in rows)


def parse_frame(line: str, number: int, frame: int, width: int, source: str) -> np.ndarray:
    """[width] values of one frame line; BvhError names ``source:number`` and ``frame``."""
    values = line.split()
    if len(values) != width:
        raise BvhError(f'{source}:{number}: frame {frame} has {len(values)} values, the '
                       f'hierarchy has {width} channels')
    try:
        row = np.array(values, dtype=np.float64)
    except ValueError:
        row = np.empty(width)
        for column, value in enumerate(values):
            try:
                row[column] = float(value)
            except ValueError:
                raise BvhError(f'{source}:{number}: frame {frame}, value {column + 1}: '
                               f'non-numeric value {value!r}') from None
    if not np.isfinite(row).all():
        column = int(np.flatnonzero(~np.isfinite(row))[0])
        raise BvhError(f'{source}:{number}: frame {frame}, value {column + 1}: non-finite '
                       f'value {values[column]!r}')
    return row


def write_bvh(path: str | Path, clip: BvhClip) -> None:
    """Writes ``clip`` as a BVH file (tab-indented hierarchy, one frame per line)."""
    children: dict[int, list[int]] = {}
    for i, joint in enumerate(clip.joints):
        children.setdefault(joint.parent, []).append(i)
    lines = ['HIERARCHY']

    def emit(i: int, depth: int) -> None:
        joint, pad = clip.joints[i], '\t' * depth
        lines.append(f'{pad}{"ROOT" if joint.parent < 0 else "JOINT"} {joint.name}')
        lines.append(pad + '{')
        lines.append(f'{pad}\tOFFSET {_numbers(joint.offset)}')
        lines.append(f'{pad}\tCHANNELS {len(joint.channels)} {" ".join(joint.channels)}'.rstrip())
        for child in children.get(i, []):
            emit(child, depth + 1)
        if joint.end_site is not None:
            lines.extend([f'{pad}\tEnd Site', pad + '\t{',
                          f'{pad}\t\tOFFSET {_numbers(joint.end_site)}', pad + '\t}'])
        lines.append(pad + '}')

    emit(0, 0)
    lines += ['MOTION', f'Frames: {clip.num_frames}', f'Frame Time: {clip.frame_time:.9g}']
    lines += [_numbers(row) for row in clip.frames]
    atomic_write(path, '\n'.join(lines) + '\n')


def _numbers(values) -> str:
    return ' '.join(f'{v:.9g}' for v in values)


class _Parser:
    """Recursive descent over the hierarchy tokens, then the MOTION lines one by one."""

    def __init__(self, source: str, lines: list[str]) -> None:
        self.source, self.lines = source, lines
        self.motion_line = next((i for i, line in enumerate(lines)
                                 if line.split()[:1] == ['MOTION']), len(lines))
        self.tokens = [(token, number)
                       for number, line in enumerate(lines[:self.motion_line], start=1)
                       for token in line.split()]
        self.pos = 0
        self.joints: list[BvhJoint] = []

    def error(self, line: int, message: str) -> BvhError:
        return BvhError(f'{self.source}:{line}: {message}')

    def peek(self) -> tuple[str, int]:
        if self.pos < len(self.tokens):
            return self.tokens[self.pos]
        if self.motion_line < len(self.lines):
            return 'MOTION', self.motion_line + 1
        return 'end of file', max(len(self.lines), 1)

    def take(self, *expected: str, what: str = '') -> tuple[str, int]:
        token, line = self.peek()
        if expected and token not in expected:
            want = ' or '.join(repr(e) for e in expected)
            raise self.error(line, f'{what}expected {want}, got {token!r}')
        self.pos += self.pos < len(self.tokens)
        return token, line

    def hierarchy(self) -> list[BvhJoint]:
        self.take('HIERARCHY')
        self.take('ROOT')
        self.joint(-1)
        token, line = self.peek()
        if self.pos < len(self.tokens):
            raise self.error(line, f'expected MOTION after the root joint, got {token!r}'
                             + (' (only one ROOT is supported)' if token == 'ROOT' else ''))
        if self.motion_line == len(self.lines):
            raise self.error(line, 'no MOTION section')
        return self.joints

    def joint(self, parent: int) -> None:
        name, line = self.take()
        if name in _KEYWORDS or name == 'end of file':
            raise self.error(line, f'expected a joint name, got {name!r}')
        if any(j.name == name for j in self.joints):
            raise self.error(line, f'duplicate joint name {name!r}')
        where = f'joint {name!r}: '
        self.take('{', what=where)
        offset = self.offset(where)
        _, line = self.take('CHANNELS', what=where)
        channels = self.channels(name, line)
        index = len(self.joints)
        self.joints.append(BvhJoint(name, parent, offset, channels))
        end_site = None
        while True:
            token, line = self.take()
            if token == 'JOINT':
                self.joint(index)
            elif token == 'End':
                self.take('Site', what=f'{where}after End: ')
                if end_site is not None:
                    raise self.error(line, f'{where}a second End Site')
                self.take('{', what=f'{where}End Site: ')
                end_site = self.offset(f'{where}End Site: ')
                token, line = self.take()
                if token != '}':
                    hint = ' (an End Site has no children)' if token in ('JOINT', 'End') else ''
                    raise self.error(line, f"{where}End Site: expected '}}', got {token!r}{hint}")
            elif token == '}':
                break
            else:
                raise self.error(line, f"{where}expected JOINT, End Site or '}}', got {token!r}")
        self.joints[index] = BvhJoint(name, parent, offset, channels, end_site)

    def offset(self, where: str) -> tuple[float, float, float]:
        _, line = self.take('OFFSET', what=where)
        values = []
        while len(values) < 3 and self.peek()[1] == line and self.pos < len(self.tokens):
            values.append(self.number(*self.take(), what=f'{where}OFFSET'))
        if len(values) != 3:
            raise self.error(line, f'{where}OFFSET needs 3 numbers on its line')
        return tuple(values)

    def channels(self, joint: str, line: int) -> tuple[str, ...]:
        count, _ = self.take()
        names = []
        while self.pos < len(self.tokens) and self.peek()[1] == line:
            names.append(self.take()[0])
        if not count.isdigit() or int(count) != len(names):
            raise self.error(line, f'joint {joint!r}: CHANNELS {count} lists {len(names)} names')
        for name in names:
            if name not in CHANNELS:
                raise self.error(line, f'joint {joint!r}: unsupported channel name {name!r} '
                                 f'(supported: {" ".join(CHANNELS)})')
        if len(set(names)) != len(names):
            raise self.error(line, f'joint {joint!r}: a channel is listed twice')
        return tuple(names)

    def number(self, token: str, line: int, what: str) -> float:
        try:
            value = float(token)
        except ValueError:
            raise self.error(line, f'{what}: non-numeric value {token!r}') from None
        if not np.isfinite(value):
            raise self.error(line, f'{what}: non-finite value {token!r}')
        return value

    def motion_rows(self) -> list[tuple[int, str]]:
        """(line number, text) of the non-blank lines after MOTION."""
        return [(n, line) for n, line in enumerate(self.lines[self.motion_line + 1:],
                                                   start=self.motion_line + 2) if line.strip()]

    def motion_header(self, rows: list[tuple[int, str]]) -> tuple[int, int, float]:
        """(line of ``Frames:``, its count, the frame time) from the first two rows."""
        header = self.motion_line + 1
        frames_line, count = self.header(rows, 0, 'Frames:', header)
        time_line, frame_time = self.header(rows, 1, 'Frame Time:', frames_line)
        if not count.isdigit():
            raise self.error(frames_line, f'Frames: must be a whole number, got {count!r}')
        seconds = self.number(frame_time, time_line, 'Frame Time')
        if seconds <= 0:
            raise self.error(time_line, f'Frame Time must be > 0, got {frame_time}')
        return frames_line, int(count), seconds

    def motion(self, width: int) -> tuple[float, np.ndarray]:
        rows = self.motion_rows()
        frames_line, n, seconds = self.motion_header(rows)
        if n == 0:
            raise self.error(frames_line, 'empty motion (Frames: 0)')
        data = rows[2:]
        if len(data) < n:
            raise self.error(frames_line, f'Frames: {n} but {len(data)} frame lines follow')
        if len(data) > n:
            raise self.error(data[n][0], f'frame line {n + 1} beyond Frames: {n}')
        frames = np.empty((n, width))
        for row, (number, line) in enumerate(data):
            frames[row] = parse_frame(line, number, row + 1, width, self.source)
        return seconds, frames

    def header(self, rows: list[tuple[int, str]], k: int, label: str,
               after: int) -> tuple[int, str]:
        if len(rows) <= k or not rows[k][1].strip().startswith(label):
            line = rows[k][0] if len(rows) > k else after
            raise self.error(line, f'expected {label!r} in the MOTION section')
        number, line = rows[k]
        value = line.strip()[len(label):].split()
        if len(value) != 1:
            raise self.error(number, f'{label} needs one value')
        return number, value[0]
