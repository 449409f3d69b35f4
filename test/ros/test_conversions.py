"""Pre-serialized commands: the bytes published decode to the message rclpy would send.

Bytes are compared after decoding: CDR alignment padding is not initialized by the
serializer, so two serializations of one message may differ in their padding bytes.
"""
from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from il_policy_node.ros.conversions import TrajectoryMessages

JOINTS = ['a', 'bb', 'joint_c']
PERIOD_S = 0.002


def _point(seconds: float, positions, velocities=None) -> JointTrajectoryPoint:
    point = JointTrajectoryPoint(positions=list(positions))
    if velocities is not None:
        point.velocities = list(velocities)
    point.time_from_start.nanosec = round(seconds * 1e9)
    return point


@pytest.mark.parametrize('velocities', [False, True])
def test_fill_matches_the_message_rclpy_serializes(velocities):
    messages = TrajectoryMessages(JOINTS, PERIOD_S, velocities)
    for positions, speed in (([0.1, -2.5, 3.0], [1.0, 2.0, -3.0]), ([0.0, 7.0, np.pi], [0] * 3)):
        data = messages.fill(np.array(positions), np.array(speed, float), hold=False)
        points = [_point(PERIOD_S, positions, speed if velocities else None)]
        if velocities:
            points.append(_point(2 * PERIOD_S, positions, [0.0] * 3))
        expected = JointTrajectory(joint_names=JOINTS, points=points)
        assert len(data) == len(serialize_message(expected))
        assert deserialize_message(data, JointTrajectory) == expected


@pytest.mark.parametrize('velocities', [False, True])
def test_hold_is_one_point_at_rest(velocities):
    messages = TrajectoryMessages(JOINTS, PERIOD_S, velocities)
    messages.fill(np.array([5.0, 5.0, 5.0]), np.ones(3), hold=False)
    data = messages.fill(np.array([0.5, -0.5, 1.5]), None, hold=True)
    expected = JointTrajectory(joint_names=JOINTS, points=[
        _point(PERIOD_S, [0.5, -0.5, 1.5], [0.0] * 3 if velocities else None)])
    assert len(data) == len(serialize_message(expected))
    assert deserialize_message(data, JointTrajectory) == expected
