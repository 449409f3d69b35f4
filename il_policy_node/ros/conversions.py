"""Message <-> numpy conversion with preallocated messages, so a control tick allocates little.

rclpy stores float64[] fields as ``array.array('d')``; a numpy view on that array lets the
control loop write targets in place, and assigning an ``array.array`` to a field is a plain
reference (no per-element type check). Commands go further: they are serialized once, the
targets are written straight into the CDR bytes and published as a serialized message, which
skips rclpy's per-publish conversion of the message (joint name strings included).
"""
from __future__ import annotations

import array
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

_EMPTY = np.zeros(0)


def joint_state_arrays(msg: JointState) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, positions, velocities) as zero-copy numpy views of the message."""
    position = np.frombuffer(msg.position, np.float64) if len(msg.position) else _EMPTY
    velocity = np.frombuffer(msg.velocity, np.float64) if len(msg.velocity) else _EMPTY
    return msg.name, position, velocity


def seconds(stamp) -> float:
    """A builtin_interfaces Time or Duration message in seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def duration_msg(value_s: float) -> Duration:
    """builtin_interfaces/Duration of ``value_s`` seconds (rounded to the nanosecond)."""
    nanoseconds = int(round(value_s * 1e9))
    return Duration(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)


def _attach(msg, field: str, size: int) -> np.ndarray:
    """Give ``msg.field`` a float64 array of ``size`` zeros; return a numpy view of it.

    The view is taken from the message's own array after assignment: depending on the distro
    and ROS_PYTHON_CHECK_FIELDS, the setter keeps the given array or copies it.
    """
    setattr(msg, field, array.array('d', bytes(8 * size)))
    return np.frombuffer(getattr(msg, field), np.float64)


class SerializedMessage:
    """A message serialized once, with writable numpy views of float64 arrays in its bytes.

    Each array is located by serializing it filled with distinct values, so the layout comes
    from the real serializer (CDR), not from assumptions about it.
    """

    def __init__(self, msg, arrays: Sequence[np.ndarray]) -> None:
        """``arrays``: numpy views of float64 fields of ``msg`` (see ``_attach``)."""
        rng = np.random.default_rng(0)
        for array_ in arrays:
            array_[:] = rng.uniform(1.0, 2.0, array_.size)
        self._buffer = bytearray(serialize_message(msg))
        self.views = []
        for array_ in arrays:
            key = array_.tobytes()
            offset = self._buffer.find(key)
            if offset < 0 or self._buffer.find(key, offset + 1) >= 0:
                raise ValueError(f'cannot locate a float64[{array_.size}] field in the '
                                 f'serialized {type(msg).__name__}')
            self.views.append(np.frombuffer(self._buffer, np.float64, array_.size, offset))
        for array_ in (*arrays, *self.views):
            array_[:] = 0.0

    def data(self) -> bytes:
        """The serialized message as it stands, for ``Publisher.publish``."""
        return bytes(self._buffer)


class TrajectoryMessages:
    """Preallocated, pre-serialized JointTrajectory messages for joint_trajectory_controller.

    header.stamp stays zero (start now). A command is one point at ``period_s``; with
    velocities, a second point at ``2 * period_s`` repeats the positions with zero velocity,
    so the trajectory ends at rest (the controller's default rejects anything else) and the
    robot stops at the last target if the stream stops. A hold is one point at rest.
    """

    def __init__(self, joint_names: Sequence[str], period_s: float, velocities: bool) -> None:
        n = len(joint_names)
        first = JointTrajectoryPoint(time_from_start=duration_msg(period_s))
        positions = [_attach(first, 'positions', n)]
        velocity = [_attach(first, 'velocities', n)] if velocities else []
        points = [first]
        if velocities:
            last = JointTrajectoryPoint(time_from_start=duration_msg(2 * period_s))
            positions.append(_attach(last, 'positions', n))
            _attach(last, 'velocities', n)
            points.append(last)
        self._command = SerializedMessage(
            JointTrajectory(joint_names=list(joint_names), points=points), positions + velocity)
        self._command_positions = self._command.views[:len(positions)]
        self._command_velocities = self._command.views[-1] if velocities else None
        hold = JointTrajectoryPoint(time_from_start=duration_msg(period_s))
        arrays = [_attach(hold, 'positions', n)]
        if velocities:
            _attach(hold, 'velocities', n)
        self._hold = SerializedMessage(
            JointTrajectory(joint_names=list(joint_names), points=[hold]), arrays)

    def fill(self, positions: np.ndarray, velocities: np.ndarray | None, hold: bool) -> bytes:
        """Write the targets into the serialized message and return it for publishing."""
        if hold:
            self._hold.views[0][:] = positions
            return self._hold.data()
        for view in self._command_positions:
            view[:] = positions
        if self._command_velocities is not None and velocities is not None:
            self._command_velocities[:] = velocities
        return self._command.data()


class JointStateMessage:
    """A preallocated JointState with numpy views of its positions (and velocities)."""

    def __init__(self, joint_names: Sequence[str], *, velocities: bool = False) -> None:
        self.msg = JointState(name=list(joint_names))
        self.positions = _attach(self.msg, 'position', len(joint_names))
        self.velocities = _attach(self.msg, 'velocity', len(joint_names)) if velocities \
            else None
