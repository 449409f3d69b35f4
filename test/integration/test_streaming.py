"""policy_node streaming over DDS: rate, controller contract, ramp-in, deactivate, layouts."""
import signal
import time

import numpy as np
import pytest

from test.support.graph import (
    JOINTS,
    RATE_HZ,
    START,
    assert_controller_contract,
    expect_one_hold_then_silence,
    max_step,
    policy_params,
    wait_until,
)
from test.support.policies import ConstantPolicy, OffsetPolicy, export

FAR = np.array([0.7, -1.0, 1.2])            # a first action far from START


@pytest.mark.parametrize('velocities', [False, True])
def test_streams_at_the_control_rate_within_the_controller_contract(graph, tmp_path, velocities):
    model = export(ConstantPolicy(list(START + 0.05)), tmp_path / 'policy.pt', JOINTS)
    rx = graph.activate(model, publish_velocities=velocities)
    assert wait_until(lambda: rx.trajectories, 10.0), 'nothing streamed'
    mark, t0 = len(rx.trajectories), time.monotonic()
    time.sleep(2.0)                                     # the counting window
    window = [m for m in rx.since(mark) if m.t <= t0 + 2.0]
    assert 0.6 * 2.0 * RATE_HZ <= len(window) <= 1.4 * 2.0 * RATE_HZ, len(window)
    msgs = rx.since(0)
    assert_controller_contract(msgs, velocities)
    assert len(msgs[-1].times) == (2 if velocities else 1)
    np.testing.assert_allclose(msgs[-1].target, START + 0.05, atol=1e-6)
    assert rx.targets and list(rx.targets[-1].name) == list(JOINTS)
    assert rx.wait_for_diagnostic('mode', lambda mode: mode == 'running')


def test_an_onnx_policy_streams_as_a_torchscript_one(graph, tmp_path):
    model = export(OffsetPolicy([0.01, -0.02, 0.03]), tmp_path / 'policy.onnx', JOINTS)
    rx = graph.activate(model)
    assert rx.wait_for_diagnostic('mode', lambda mode: mode == 'running')
    assert rx.wait_for_diagnostic('backend', lambda backend: backend == 'onnx')
    assert wait_until(lambda: len(rx.trajectories) > 20, 10.0), 'nothing streamed'
    msgs = rx.since(0)
    assert_controller_contract(msgs, velocities=True)
    np.testing.assert_allclose(msgs[-1].target, START + [0.01, -0.02, 0.03], atol=1e-5)


def test_activate_far_from_the_first_action_ramps_in_from_the_measured_pose(graph, tmp_path):
    model = export(ConstantPolicy(list(FAR)), tmp_path / 'policy.pt', JOINTS)
    ramp_s, max_velocity = 1.0, 1.0
    rx = graph.activate(model, ramp_in_s=ramp_s, max_velocity_rad_s=[max_velocity])
    reached = lambda: [i for i, m in enumerate(rx.since(0))  # noqa: E731
                       if np.allclose(m.target, FAR, atol=1e-6)]
    assert wait_until(reached, 10.0), 'never reached the policy target'
    msgs = rx.since(0)
    assert_controller_contract(msgs, velocities=True)
    np.testing.assert_allclose(msgs[0].target, START, atol=1e-9)   # first: the measured pose
    assert max_step(msgs) <= max_velocity / RATE_HZ + 1e-9         # gradual
    steps = np.diff([m.target for m in msgs], axis=0)
    assert (steps * np.sign(FAR - START) >= -1e-9).all()             # monotonic approach
    assert reached()[0] >= 0.6 * ramp_s * RATE_HZ                   # took about ramp_in_s


def test_deactivate_holds_once_at_the_measured_pose_then_silence(graph, tmp_path):
    model = export(ConstantPolicy(list(FAR)), tmp_path / 'policy.pt', JOINTS)
    rx = graph.activate(model)
    assert wait_until(lambda: len(rx.trajectories) > 20, 10.0)
    mark = len(rx.trajectories)
    assert rx.lifecycle.change('deactivate')
    msgs, hold = expect_one_hold_then_silence(rx, mark)
    assert len(msgs) <= 50                              # the transition took effect promptly
    np.testing.assert_allclose(hold.target, START, atol=1e-9)
    assert rx.lifecycle.state() == 'inactive'
    # Re-activate: a fresh ramp-in from the measured pose, no replay of the old run.
    mark = len(rx.trajectories)
    assert rx.lifecycle.change('activate')
    assert wait_until(lambda: len(rx.since(mark)) > 5, 10.0)
    np.testing.assert_allclose(rx.since(mark)[0].target, START, atol=1e-9)


@pytest.mark.parametrize('signal_name', ['SIGINT', 'SIGTERM'])
def test_a_stopped_process_holds_once_before_it_exits(graph, tmp_path, signal_name):
    model = export(ConstantPolicy(list(FAR)), tmp_path / 'policy.pt', JOINTS)
    rx = graph.activate(model)
    node = graph.processes[0]
    assert wait_until(lambda: len(rx.trajectories) > 20, 10.0)
    mark = len(rx.trajectories)
    node.popen.send_signal(getattr(signal, signal_name))
    assert node.popen.wait(timeout=10.0) == 0, node.log()
    _, hold = expect_one_hold_then_silence(rx, mark)
    np.testing.assert_allclose(hold.target, START, atol=1e-9)


def test_shuffled_extra_and_partial_joint_states_give_identical_targets(graph, tmp_path):
    offsets = [0.1, -0.2, 0.3]
    model = export(OffsetPolicy(offsets), tmp_path / 'policy.pt', JOINTS)
    graph.policy_node(policy_params(model, ramp_in_s=0.05))
    rx = graph.receiver
    layouts = [(), ('--shuffle', '--extra', '3'), ('--parts', '3'),
               ('--shuffle', '--extra', '2', '--parts', '2')]
    steady = []
    for layout in layouts:
        source = graph.source(START, *layout)
        mark = len(rx.trajectories)
        assert rx.lifecycle.change('activate')

        def settled():
            msgs = rx.since(mark)
            return len(msgs) > 40 and all(
                np.array_equal(m.positions, msgs[-1].positions) for m in msgs[-10:])
        assert wait_until(settled, 10.0), f'no steady target with {layout}'
        steady.append(rx.since(mark)[-1].target)
        assert rx.lifecycle.change('deactivate')
        graph.stop(source)
    np.testing.assert_allclose(steady[0], START + offsets, atol=1e-6)
    for layout, target in zip(layouts[1:], steady[1:]):
        np.testing.assert_array_equal(target, steady[0], err_msg=str(layout))
