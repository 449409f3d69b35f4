"""PolicyController: the tick state machine, with real exported policies and no ROS."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from il_policy_node.runtime.artifact import load_policy
from il_policy_node.runtime.chunks import ChunkOptions
from il_policy_node.runtime.controller import Mode, PolicyController
from il_policy_node.runtime.controller_config import ConfigError, ControllerConfig
from il_policy_node.runtime.joint_state import StateFault
from il_policy_node.runtime.policy_runtime import PolicyRuntime
from il_policy_node.runtime.safety import Intervention
from test.support.policies import ConstantPolicy, GoalPolicy, NaNPolicy, OffsetPolicy, export

JOINTS = ['j1', 'j2', 'j3']
RATE = 100.0
TICK_NS = int(1e9 / RATE)
MAX_VEL = 2.0


def _controller(tmp_path, model, *, joints=JOINTS, policy_joints=JOINTS, extra=(), **params):
    path = export(model, tmp_path / 'policy.pt', policy_joints, rate_hz=RATE, extra=extra)
    config = ControllerConfig.from_parameters({
        'model_path': str(path), 'joint_names': joints, 'control_rate_hz': RATE,
        'state_timeout_s': 0.05, 'ramp_in_s': 0.5, 'position_lower_limits': [-1.0] * len(joints),
        'position_upper_limits': [1.0] * len(joints), 'max_velocity_rad_s': [MAX_VEL],
        **params})
    controller = PolicyController(config, PolicyRuntime(load_policy(path)))
    controller.activate()
    return controller


def _feed(controller, now, position, names=JOINTS, velocity=None):
    velocity = np.zeros(len(names)) if velocity is None else velocity
    controller.on_joint_state(list(names), np.asarray(position, float), velocity, now)


def _run(controller, start_ns, ticks, position):
    """Feed the same state each tick; return the commands (None for silence)."""
    out = []
    for k in range(ticks):
        now = start_ns + k * TICK_NS
        _feed(controller, now, position)
        command = controller.tick(now)
        out.append(None if command is None else (command.positions.copy(), command.hold))
    return out


def test_waits_for_state_then_ramps_in_from_the_measured_pose(tmp_path):
    controller = _controller(tmp_path, ConstantPolicy([0.8, -0.8, 0.5]))
    assert controller.tick(0) is None and controller.mode is Mode.WAITING
    start = np.array([0.1, 0.2, 0.3])
    commands = _run(controller, TICK_NS, 100, start)
    first = commands[0][0]
    assert first == pytest.approx(start)
    steps = np.abs(np.diff([c[0] for c in commands], axis=0))
    assert (steps <= MAX_VEL / RATE + 1e-9).all()
    assert commands[-1][0] == pytest.approx([0.8, -0.8, 0.5], abs=1e-6)
    assert controller.mode is Mode.RUNNING


def test_stale_state_gives_one_hold_then_silence_then_a_new_ramp(tmp_path):
    controller = _controller(tmp_path, ConstantPolicy([0.5, 0.5, 0.5]))
    pose = np.array([0.0, 0.1, 0.2])
    _run(controller, 0, 10, pose)
    last_state = 9 * TICK_NS
    commands = [controller.tick(last_state + k * TICK_NS) for k in range(1, 20)]
    holds = [k for k, c in enumerate(commands) if c is not None and c.hold]
    assert len(holds) == 1 and all(c is None for c in commands[holds[0] + 1:])
    assert holds[0] >= 4                     # streaming goes on until state_timeout_s (50 ms)
    holds = [commands[holds[0]]]
    assert holds[0].positions == pytest.approx(pose)
    assert controller.counts[Intervention.STATE_TIMEOUT] == 1
    resumed = _run(controller, last_state + 20 * TICK_NS, 3, np.array([0.3, 0.3, 0.3]))
    assert resumed[0][0] == pytest.approx([0.3, 0.3, 0.3])   # ramp restarts at the new pose
    assert controller.mode is Mode.RAMPING


def test_a_missing_joint_holds(tmp_path):
    controller = _controller(tmp_path, ConstantPolicy([0.5, 0.5, 0.5]))
    _run(controller, 0, 5, np.zeros(3))
    now = 5 * TICK_NS
    commands = []
    for k in range(10):                      # j3 no longer published
        _feed(controller, now + k * TICK_NS, [0.0, 0.0], names=['j1', 'j2'])
        commands.append(controller.tick(now + k * TICK_NS))
    holds = [c for c in commands if c is not None and c.hold]
    assert len(holds) == 1 and commands[-1] is None
    assert controller.last_fault.value == 'missing_joint'
    assert controller.state.stale_joints(now + 9 * TICK_NS, int(0.05e9)) == ['j3']


def test_nonfinite_state_holds_immediately(tmp_path):
    controller = _controller(tmp_path, ConstantPolicy([0.5, 0.5, 0.5]))
    _run(controller, 0, 5, np.zeros(3))
    _feed(controller, 5 * TICK_NS, [0.0, np.nan, 0.0])
    command = controller.tick(5 * TICK_NS)
    assert command.hold and np.isfinite(command.positions).all()
    assert controller.counts[Intervention.NONFINITE_STATE] == 1
    assert controller.tick(6 * TICK_NS) is None


def test_nan_policy_never_outputs_nan(tmp_path):
    controller = _controller(tmp_path, NaNPolicy(3))
    commands = _run(controller, 0, 20, np.array([0.1, 0.2, 0.3]))
    assert all(np.isfinite(c[0]).all() and c[0] == pytest.approx([0.1, 0.2, 0.3])
               for c in commands)
    assert controller.counts[Intervention.NONFINITE_ACTION] == 20


def test_estop_latches_until_reset_and_survives_reactivation(tmp_path):
    controller = _controller(tmp_path, ConstantPolicy([0.5, 0.5, 0.5]))
    _run(controller, 0, 5, np.zeros(3))
    hold = controller.estop()
    assert hold.hold and controller.estop() is None
    assert _run(controller, 5 * TICK_NS, 5, np.zeros(3)) == [None] * 5
    assert controller.deactivate() is None
    controller.activate()
    assert controller.mode is Mode.ESTOPPED
    assert controller.reset_estop() and not controller.reset_estop()
    assert _run(controller, 10 * TICK_NS, 1, np.zeros(3))[0][0] == pytest.approx(np.zeros(3))


def test_deactivate_holds_once_and_reactivation_starts_fresh(tmp_path):
    controller = _controller(tmp_path, ConstantPolicy([0.5, 0.5, 0.5]))
    _run(controller, 0, 60, np.array([0.2, 0.2, 0.2]))
    hold = controller.deactivate()
    assert hold.hold and hold.positions == pytest.approx([0.2, 0.2, 0.2])
    assert controller.tick(61 * TICK_NS) is None
    controller.activate()
    again = _run(controller, 62 * TICK_NS, 1, np.array([-0.4, 0.0, 0.4]))
    assert again[0][0] == pytest.approx([-0.4, 0.0, 0.4])


def test_joint_order_and_extra_joints_do_not_matter(tmp_path):
    targets = []
    for names, position in ((JOINTS, [0.1, 0.2, 0.3]),
                            (['x', 'j3', 'j1', 'y', 'j2'], [9.0, 0.3, 0.1, 9.0, 0.2])):
        controller = _controller(tmp_path, OffsetPolicy([0.01, 0.02, 0.03]), ramp_in_s=0.0,
                                 max_velocity_rad_s=[100.0])
        _feed(controller, 0, position, names=names)
        targets.append(controller.tick(0).positions.copy())
    assert targets[0] == pytest.approx([0.11, 0.22, 0.33], abs=1e-6)
    assert targets[1] == pytest.approx(targets[0])


def test_partial_messages_are_merged(tmp_path):
    controller = _controller(tmp_path, OffsetPolicy([0.0, 0.0, 0.0]), ramp_in_s=0.0)
    _feed(controller, 0, [0.1], names=['j1'])
    assert controller.tick(0) is None
    _feed(controller, 0, [0.3, 0.2], names=['j3', 'j2'])
    assert controller.tick(0).positions == pytest.approx([0.1, 0.2, 0.3], abs=1e-6)


def test_controller_joints_the_policy_does_not_drive_stay_put(tmp_path):
    controller = _controller(tmp_path, ConstantPolicy([0.5, 0.5]), policy_joints=['j1', 'j3'],
                             ramp_in_s=0.0, max_velocity_rad_s=[100.0])
    commands = _run(controller, 0, 3, np.array([0.0, -0.3, 0.0]))
    assert commands[-1][0] == pytest.approx([0.5, -0.3, 0.5])


def test_policy_must_fit_the_controller(tmp_path):
    with pytest.raises(ConfigError, match="policy joint 'j9' is not among"):
        _controller(tmp_path, ConstantPolicy([0.0]), policy_joints=['j9'])
    path = export(ConstantPolicy([0.0] * 3), tmp_path / 'other.pt', JOINTS, rate_hz=50.0)
    config = ControllerConfig.from_parameters({
        'model_path': str(path), 'joint_names': JOINTS, 'control_rate_hz': RATE,
        'state_timeout_s': 0.05, 'position_lower_limits': [-1.0] * 3,
        'position_upper_limits': [1.0] * 3, 'max_velocity_rad_s': [1.0]})
    with pytest.raises(ConfigError, match='differs from the rate the policy was trained at'):
        PolicyController(config, PolicyRuntime(load_policy(path)))


def test_an_extra_input_is_waited_for_then_observed(tmp_path):
    goal = {'topic': '/goal', 'joints': ['j3', 'j1', 'j2']}
    controller = _controller(tmp_path, GoalPolicy(3), extra=[goal], ramp_in_s=0.0)
    now = 10**9
    _feed(controller, now, [0.0, 0.0, 0.0])
    assert controller.tick(now) is None and controller.mode is Mode.WAITING
    assert controller.last_fault is StateFault.MISSING_JOINT   # the goal was never received
    controller.on_input('/goal', ['j1', 'j2', 'j3'], np.array([0.01, 0.02, 0.03]),
                        np.zeros(0), now)
    for k in range(1, 4):                    # the goal keeps its value: no age watchdog
        _feed(controller, now + k * TICK_NS, [0.0, 0.0, 0.0])
        command = controller.tick(now + k * TICK_NS)
    assert command is not None and controller.mode is Mode.RUNNING
    np.testing.assert_allclose(command.positions, [0.03, 0.01, 0.02], atol=1e-6)
    controller.on_input('/goal', ['j1', 'j2', 'j3'], np.array([np.nan, 0.0, 0.0]),
                        np.zeros(0), now + 4 * TICK_NS)
    _feed(controller, now + 4 * TICK_NS, [0.0, 0.0, 0.0])
    assert controller.tick(now + 4 * TICK_NS).hold and controller.mode is Mode.HOLDING


def test_a_late_tick_takes_the_target_that_is_due_now(tmp_path):
    class StepPolicy(torch.nn.Module):
        """Chunk step k = 0.01 k for every joint, whatever the observation."""

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            steps = torch.arange(10, dtype=torch.float32).repeat_interleave(3) * 0.01
            return steps.unsqueeze(0) + 0.0 * obs[:, :1]

    path = export(StepPolicy(), tmp_path / 'policy.pt', JOINTS, rate_hz=RATE, horizon=10)
    config = ControllerConfig.from_parameters({
        'model_path': str(path), 'joint_names': JOINTS, 'control_rate_hz': RATE,
        'state_timeout_s': 0.5, 'position_lower_limits': [-1.0] * 3,
        'position_upper_limits': [1.0] * 3, 'max_velocity_rad_s': [10.0],
        'chunk_execution': 'chunk', 'lookahead_s': 0.0, 'ramp_in_s': 0.0})
    chunks = ChunkOptions(execution='chunk')
    controller = PolicyController(config, PolicyRuntime(load_policy(path), chunks))
    controller.activate()
    targets = []
    for tick in (0, 1, 4, 5):              # ticks 2 and 3 are missed (the timer came late)
        _feed(controller, tick * TICK_NS, np.zeros(3))
        targets.append(controller.tick(tick * TICK_NS).positions[0])
    assert targets == pytest.approx([0.0, 0.01, 0.04, 0.05])
    # measured lookahead: a state received 5 ms before the tick is half a period old
    auto = replace(config, lookahead_s=-1.0)
    controller = PolicyController(auto, PolicyRuntime(load_policy(path), chunks))
    controller.activate()
    _feed(controller, 0, np.zeros(3))
    controller.tick(0)
    _feed(controller, TICK_NS - TICK_NS // 2, np.zeros(3))
    target = controller.tick(TICK_NS).positions[0]
    inference = controller.runtime.inference_s * RATE       # in periods, about 0.01
    assert target == pytest.approx(0.01 * (1.5 + inference), abs=1e-6)
