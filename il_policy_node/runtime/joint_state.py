"""Latest joint state by NAME, merged from full or partial JointState messages.

Messages may list joints in any order, carry extra joints, or carry only some joints (several
publishers, one per limb). Each required joint keeps its last finite position and velocity and
the monotonic time it was received; the index mapping is computed once per name layout.
"""
from __future__ import annotations

from enum import Enum
from typing import Sequence

import numpy as np

from il_policy_node.errors import StateError
from il_policy_node.runtime.safety import Intervention

NEVER = np.iinfo(np.int64).min // 2


class StateFault(str, Enum):
    """Why the state cannot drive the policy right now (values match safety.Intervention)."""

    NONFINITE_STATE = Intervention.NONFINITE_STATE.value
    STATE_TIMEOUT = Intervention.STATE_TIMEOUT.value
    MISSING_JOINT = Intervention.MISSING_JOINT.value


class JointStateCache:
    """Per-joint latest position, velocity and receive time for a fixed set of joints."""

    def __init__(self, joints: Sequence[str]) -> None:
        self.joints = tuple(joints)
        self._index = {name: i for i, name in enumerate(self.joints)}
        n = len(self.joints)
        self.position = np.full(n, np.nan)
        self.velocity = np.zeros(n)
        self.stamp_ns = np.full(n, NEVER, np.int64)
        self.invalid = np.zeros(n, bool)
        self._any_invalid = False
        self.oldest_stamp_ns = NEVER   # of the required joints, as of the last fault() call
        self._layout: list[str] | None = None
        self._msg_idx = np.zeros(0, np.intp)
        self._cache_idx = np.zeros(0, np.intp)

    def _relayout(self, names: Sequence[str]) -> None:
        if len(set(names)) != len(names):
            seen: set[str] = set()
            dup = sorted({n for n in names if n in seen or seen.add(n)})
            raise StateError(f'joint_states lists {dup} more than once')
        pairs = [(m, self._index[name]) for m, name in enumerate(names) if name in self._index]
        self._msg_idx = np.array([m for m, _ in pairs], np.intp)
        self._cache_idx = np.array([c for _, c in pairs], np.intp)
        self._layout = list(names)

    def update(self, names: Sequence[str], position: np.ndarray, velocity: np.ndarray,
               now_ns: int) -> int:
        """Merge one message; return how many known joints carried non-finite values.

        Joints with non-finite position or velocity are marked invalid until a finite value
        arrives. A message with no velocity array updates positions and keeps velocities at 0.
        Raises StateError for a message that lists a joint twice or whose sizes differ.
        """
        if names != self._layout:
            self._relayout(names)
        if self._msg_idx.size == 0:
            return 0
        if len(position) != len(names):
            raise StateError(f'joint_states has {len(names)} names but {len(position)} '
                             'positions')
        pos = position[self._msg_idx]
        ok = np.isfinite(pos)
        vel = None
        if len(velocity):
            if len(velocity) != len(names):
                raise StateError(
                    f'joint_states has {len(names)} names but {len(velocity)} velocities')
            vel = velocity[self._msg_idx]
            ok &= np.isfinite(vel)
        idx = self._cache_idx
        if ok.all():
            self.position[idx] = pos
            if vel is not None:
                self.velocity[idx] = vel
            self.stamp_ns[idx] = now_ns
            if self._any_invalid:
                self.invalid[idx] = False
                self._any_invalid = bool(self.invalid.any())
            return 0
        good = idx[ok]
        self.position[good] = pos[ok]
        if vel is not None:
            self.velocity[good] = vel[ok]
        self.stamp_ns[good] = now_ns
        self.invalid[good] = False
        self.invalid[idx[~ok]] = True
        self._any_invalid = True
        return int(np.count_nonzero(~ok))

    def fault(self, now_ns: int, timeout_ns: int) -> StateFault | None:
        """None when every joint is finite and fresher than ``timeout_ns``."""
        if self._any_invalid:
            return StateFault.NONFINITE_STATE
        self.oldest_stamp_ns = oldest = int(self.stamp_ns.min())
        if now_ns - oldest <= timeout_ns:
            return None
        newest = int(self.stamp_ns.max())
        return StateFault.STATE_TIMEOUT if now_ns - newest > timeout_ns \
            else StateFault.MISSING_JOINT

    def stale_joints(self, now_ns: int, timeout_ns: int) -> list[str]:
        """Names of joints that are invalid or older than ``timeout_ns`` (for messages)."""
        stale = (now_ns - self.stamp_ns > timeout_ns) | self.invalid
        return [self.joints[i] for i in np.flatnonzero(stale)]

    def oldest_age_ns(self, now_ns: int) -> int:
        return int(now_ns - self.stamp_ns.min())

    def pose_known(self) -> bool:
        """Every joint has had a finite position at some time."""
        return bool(np.isfinite(self.position).all())
