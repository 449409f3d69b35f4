"""The out-of-distribution monitor: z-scores and ranges from the artifact's statistics."""
import numpy as np
import pytest
from torch import nn

from il_policy_node.errors import PolicyArtifactError
from il_policy_node.runtime.artifact import load_policy
from il_policy_node.runtime.controller import PolicyController
from il_policy_node.runtime.controller_config import ControllerConfig
from il_policy_node.runtime.observation import ObservationSpec
from il_policy_node.runtime.ood import STATISTICS_KEY, OodMonitor, column_names
from il_policy_node.runtime.policy_runtime import PolicyRuntime
from il_policy_node.runtime.safety import Intervention
from test.support.policies import export

JOINTS = ('a', 'b')
SPEC = ObservationSpec(joints=JOINTS, extra=({'topic': '/goal', 'joints': ['b']},))
STATS = {'mean': [0.0, 1.0, 0.0, 0.0, 0.5], 'std': [0.1, 0.5, 1.0, 1.0, 0.25],
         'min': [-0.2, 0.0, -2.0, -2.0, 0.0], 'max': [0.2, 2.0, 2.0, 2.0, 1.0]}


def test_reading_names_the_worst_column_and_counts_the_range():
    monitor = OodMonitor(SPEC, STATS)
    assert column_names(SPEC) == ['position:a', 'position:b', 'velocity:a', 'velocity:b',
                                  '/goal:position:b']
    inside = monitor.read([np.array([0.05, 1.5]), np.zeros(2), np.array([0.5])])
    assert inside.max_z == pytest.approx(1.0) and inside.outside_range == 0
    far = monitor.read([np.array([0.6, 1.0]), np.zeros(2), np.array([1.5])])
    assert far.max_z == pytest.approx(6.0) and far.column == 'position:a'
    assert far.outside_range == 2          # position a and the goal are beyond the data


@pytest.mark.parametrize('change, message', [
    ({'std': [0.0] * 5}, 'std'), ({'min': [0.0] * 4}, 'min'), ({'max': None}, 'max'),
    ({'mean': 'x'}, 'malformed')])
def test_malformed_statistics_are_refused(change, message):
    with pytest.raises(PolicyArtifactError, match=message):
        OodMonitor(SPEC, {**STATS, **change})


def _controller(tmp_path, **params):
    path = export(nn.Linear(4, 2), tmp_path / 'p.pt', JOINTS,
                  extra_metadata={STATISTICS_KEY: {k: v[:4] for k, v in STATS.items()}})
    config = ControllerConfig.from_parameters({
        'model_path': str(path), 'joint_names': JOINTS, 'control_rate_hz': 100.0,
        'state_timeout_s': 0.05, 'ramp_in_s': 0.0, 'position_lower_limits': [-1.0, -1.0],
        'position_upper_limits': [3.0, 3.0], 'max_velocity_rad_s': [100.0], **params})
    controller = PolicyController(config, PolicyRuntime(load_policy(path)))
    controller.activate()
    return controller


def _tick(controller, now_ns, position):
    controller.on_joint_state(JOINTS, np.asarray(position, float), np.zeros(2), now_ns)
    return controller.tick(now_ns + 1000)


def test_counted_by_default_and_held_with_ood_hold_z(tmp_path):
    counting = _controller(tmp_path / 'a')
    _tick(counting, 0, [0.0, 1.0])
    _tick(counting, 10_000_000, [0.9, 1.0])                # position a: 9 std off
    assert counting.ood_ticks == 1 and counting.ood_outside_ticks == 1
    assert counting.take_ood_window() == (pytest.approx(9.0), 'position:a')
    assert counting.counts[Intervention.OUT_OF_DATA] == 0 and counting.hold_reason == ''

    holding = _controller(tmp_path / 'b', ood_hold_z=5.0)
    start = [0.9, 1.0]
    command = _tick(holding, 0, start)
    assert command.positions == pytest.approx(start)       # the measured pose, kept
    assert holding.counts[Intervention.OUT_OF_DATA] == 1
    assert 'position:a is 9.0 std from its mean' in holding.hold_reason
    assert holding.runtime.inferences == 0                 # the policy is not asked
    _tick(holding, 10_000_000, [0.1, 1.0])                  # back in the data: it runs
    assert holding.runtime.inferences == 1 and holding.hold_reason == ''


def test_an_artifact_without_statistics_has_no_monitor(tmp_path):
    path = export(nn.Linear(4, 2), tmp_path / 'p.pt', JOINTS)
    assert OodMonitor.of_metadata(load_policy(path).metadata.observation,
                                  load_policy(path).metadata.extra) is None
