"""Observation spec and the history buffer."""
import numpy as np
import pytest

from il_policy_node.errors import ConfigError
from il_policy_node.runtime.observation import (
    ObservationBuilder,
    ObservationSpec,
    StateField,
    frame_columns,
)


def test_spec_sizes_and_round_trip():
    spec = ObservationSpec(joints=('a', 'b', 'c'), fields=('position',), history=3)
    assert spec.frame_size == 3 and spec.size == 9
    assert spec.fields == (StateField.POSITION,)
    assert ObservationSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize('kwargs, message', [
    ({'joints': ()}, 'lists no joints'),
    ({'joints': ('a', 'a')}, "duplicate joint names.*'a'"),
    ({'joints': ('a',), 'fields': ()}, 'lists no fields'),
    ({'joints': ('a',), 'history': 0}, 'history must be an integer >= 1'),
    ({'joints': ('a',), 'fields': ('effort',)},
     r"fields must be of \['position', 'velocity'\], got \['effort'\]"),
])
def test_bad_specs_name_the_problem(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ObservationSpec(**kwargs)


def test_from_dict_rejects_unknown_and_missing_keys():
    with pytest.raises(ConfigError, match="unknown keys.*'torque'"):
        ObservationSpec.from_dict({'joints': ['a'], 'fields': ['position'], 'history': 1,
                                   'torque': 1})
    with pytest.raises(ConfigError, match="missing 'history'"):
        ObservationSpec.from_dict({'joints': ['a'], 'fields': ['position']})


def test_history_is_oldest_first_and_padded_with_the_first_frame():
    builder = ObservationBuilder(ObservationSpec(joints=('a', 'b'), history=3))
    vector = builder.push([np.array([1.0, 2.0]), np.array([10.0, 20.0])])
    assert vector.tolist() == [1, 2, 10, 20] * 3
    vector = builder.push([np.array([3.0, 4.0]), np.array([30.0, 40.0])])
    assert vector.tolist() == [1, 2, 10, 20, 1, 2, 10, 20, 3, 4, 30, 40]
    builder.push([np.array([5.0, 6.0]), np.array([50.0, 60.0])])
    vector = builder.push([np.array([7.0, 8.0]), np.array([70.0, 80.0])])
    assert vector.tolist() == [3, 4, 30, 40, 5, 6, 50, 60, 7, 8, 70, 80]
    builder.reset()
    vector = builder.push([np.array([9.0, 9.0]), np.array([0.0, 0.0])])
    assert vector.tolist() == [9, 9, 0, 0] * 3


GOAL = {'topic': '/goal', 'joints': ['b', 'a'], 'fields': ['position']}


def test_extra_inputs_follow_the_state_in_each_frame():
    spec = ObservationSpec(joints=('a', 'b'), history=2, extra=(GOAL,))
    assert spec.frame_size == 6 and spec.size == 12
    assert [(t, f.value, j) for t, f, j in spec.parts] == [
        (None, 'position', ('a', 'b')), (None, 'velocity', ('a', 'b')),
        ('/goal', 'position', ('b', 'a'))]
    assert ObservationSpec.from_dict(spec.to_dict()) == spec
    builder = ObservationBuilder(spec)
    builder.push([np.array([1.0, 2.0]), np.array([10.0, 20.0]), np.array([7.0, 8.0])])
    vector = builder.push([np.array([3.0, 4.0]), np.array([30.0, 40.0]), np.array([5.0, 6.0])])
    assert vector.tolist() == [1, 2, 10, 20, 7, 8, 3, 4, 30, 40, 5, 6]


def test_specs_without_extra_keep_the_old_metadata_form():
    spec = ObservationSpec(joints=('a',))
    assert 'extra' not in spec.to_dict()


@pytest.mark.parametrize('extra, message', [
    ((GOAL, GOAL), r"topic\(s\) \['/goal'\] more than once"),
    (({'topic': '', 'joints': ['a']},), 'must be a topic name'),
    (({'topic': '/g', 'joints': []},), 'observation input /g lists no joints'),
    (({'topic': '/g', 'joints': ['a'], 'rate': 3},), r"unknown keys.*'rate'"),
])
def test_bad_extra_inputs_name_the_problem(extra, message):
    with pytest.raises(ConfigError, match=message):
        ObservationSpec(joints=('a',), extra=extra)


def test_frame_columns_map_recorded_frames_to_a_policy_layout():
    recorded = ObservationSpec(joints=('a', 'b', 'c'), extra=(GOAL,))
    policy = ObservationSpec(joints=('c', 'a'), fields=('velocity',),
                             extra=({'topic': '/goal', 'joints': ['a']},))
    columns = frame_columns(recorded, policy)
    assert [c.tolist() for c in columns] == [[5, 3], [7]]
    with pytest.raises(ConfigError, match=r"no position of joint\(s\) \['d'\] in the robot"):
        frame_columns(recorded, ObservationSpec(joints=('d',)))
    with pytest.raises(ConfigError, match='no position of input /target'):
        frame_columns(recorded, ObservationSpec(joints=('a',), extra=(
            {'topic': '/target', 'joints': ['a']},)))
