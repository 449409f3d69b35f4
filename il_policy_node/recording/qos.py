"""The QoS a recorder subscribes with, from what the publishers offer (as ros2 bag record)."""
from __future__ import annotations

from typing import Sequence

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

RECORDING_DEPTH = 2000               # subscription history: ~1 s at 2 kHz before DDS drops
_INFINITE = QosTime(sec=9223372036, nsec=854775807)   # RMW_DURATION_INFINITE


def recording_qos(offered: Sequence[Qos], depth: int = RECORDING_DEPTH) -> Qos:
    """Reliable if every publisher is, transient local if every one is; a deep history."""
    reliable = bool(offered) and all(q.reliability == QosReliability.RELIABLE for q in offered)
    latched = bool(offered) and all(q.durability == QosDurability.TRANSIENT_LOCAL
                                    for q in offered)
    return Qos(
        history=QosHistory.KEEP_LAST, depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        deadline=_INFINITE, lifespan=_INFINITE, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_INFINITE, avoid_ros_namespace_conventions=False)


def qos_compatible(requested: Qos, offered: Qos) -> bool:
    """Whether a publisher with ``offered`` QoS can deliver to a ``requested`` subscription."""
    if requested.reliability == QosReliability.RELIABLE and \
            offered.reliability == QosReliability.BEST_EFFORT:
        return False
    return not (requested.durability == QosDurability.TRANSIENT_LOCAL
                and offered.durability == QosDurability.VOLATILE)
