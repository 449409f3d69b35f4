"""JointStateCache: merge by name, ages, non-finite values, malformed messages."""
import numpy as np
import pytest

from il_policy_node.errors import StateError
from il_policy_node.runtime.joint_state import JointStateCache, StateFault

MS = 1_000_000


def test_merge_by_name_and_faults():
    cache = JointStateCache(['a', 'b'])
    assert cache.fault(0, 100 * MS) is StateFault.STATE_TIMEOUT and not cache.pose_known()
    cache.update(['b', 'x'], np.array([2.0, 9.0]), np.array([0.2, 9.0]), 0)
    assert cache.fault(0, 100 * MS) is StateFault.MISSING_JOINT
    cache.update(['a'], np.array([1.0]), np.array([0.1]), 10 * MS)
    assert cache.fault(20 * MS, 100 * MS) is None and cache.pose_known()
    assert cache.position.tolist() == [1.0, 2.0] and cache.velocity.tolist() == [0.1, 0.2]
    assert cache.oldest_age_ns(20 * MS) == 20 * MS
    assert cache.stale_joints(105 * MS, 100 * MS) == ['b']


def test_nonfinite_values_invalidate_only_those_joints():
    cache = JointStateCache(['a', 'b'])
    bad = cache.update(['a', 'b'], np.array([1.0, np.inf]), np.array([0.0, 0.0]), 0)
    assert bad == 1 and cache.fault(0, MS) is StateFault.NONFINITE_STATE
    assert cache.position[0] == 1.0 and np.isnan(cache.position[1])
    cache.update(['b'], np.array([2.0]), np.array([np.nan]), 0)
    assert cache.fault(0, MS) is StateFault.NONFINITE_STATE
    cache.update(['b'], np.array([2.0]), np.array([0.0]), 0)
    assert cache.fault(0, MS) is None


def test_messages_without_velocities_keep_zero_velocity():
    cache = JointStateCache(['a'])
    cache.update(['a'], np.array([0.5]), np.zeros(0), 0)
    assert cache.velocity.tolist() == [0.0] and cache.fault(0, MS) is None


@pytest.mark.parametrize('names, position, velocity, error, message', [
    (['a', 'a'], [1.0, 2.0], [], StateError, "lists \\['a'\\] more than once"),
    (['a', 'b'], [1.0], [], StateError, '2 names but 1 positions'),
    (['a', 'b'], [1.0, 2.0], [0.0], StateError, '2 names but 1 velocities'),
])
def test_malformed_messages_are_refused(names, position, velocity, error, message):
    cache = JointStateCache(['a', 'b'])
    with pytest.raises(error, match=message):
        cache.update(names, np.array(position), np.array(velocity), 0)
