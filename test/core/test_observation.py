"""Observation spec and the history buffer."""
import numpy as np
import pytest

from il_policy_node.core.observation import ObservationBuilder, ObservationSpec, StateField


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
    ({'joints': ('a',), 'fields': ('effort',)}, "'effort' is not a valid StateField"),
])
def test_bad_specs_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ObservationSpec(**kwargs)


def test_from_dict_rejects_unknown_and_missing_keys():
    with pytest.raises(ValueError, match="unknown keys.*'torque'"):
        ObservationSpec.from_dict({'joints': ['a'], 'fields': ['position'], 'history': 1,
                                   'torque': 1})
    with pytest.raises(ValueError, match="missing 'history'"):
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
