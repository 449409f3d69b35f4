"""rclpy QoS profiles <-> the plain QoS values of bags (rosbags' Qos), for the recorder."""
from __future__ import annotations

from enum import Enum

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

# Both sides number their policies as rmw does (rmw_qos_*_policy_e).


def _plain(kind: type[Enum], value) -> Enum:
    try:
        return kind(int(value))
    except ValueError:
        return kind.UNKNOWN


def _time(duration: Duration) -> QosTime:
    sec, nsec = divmod(int(duration.nanoseconds), 1_000_000_000)
    return QosTime(sec=sec, nsec=nsec)


def offered_qos(profile: QoSProfile) -> Qos:
    """A publisher's QoS (``TopicEndpointInfo.qos_profile``) as plain values."""
    return Qos(
        history=_plain(QosHistory, profile.history), depth=int(profile.depth),
        reliability=_plain(QosReliability, profile.reliability),
        durability=_plain(QosDurability, profile.durability),
        deadline=_time(profile.deadline), lifespan=_time(profile.lifespan),
        liveliness=_plain(QosLiveliness, profile.liveliness),
        liveliness_lease_duration=_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))


def subscription_qos(qos: Qos) -> QoSProfile:
    """The rclpy profile for plain values (history, reliability, durability are used)."""
    return QoSProfile(history=HistoryPolicy(qos.history.value), depth=qos.depth,
                      reliability=ReliabilityPolicy(qos.reliability.value),
                      durability=DurabilityPolicy(qos.durability.value),
                      liveliness=LivelinessPolicy.AUTOMATIC)
