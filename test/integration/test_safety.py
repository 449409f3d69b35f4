"""policy_node safety over DDS: NaN in and out, stale or missing joint states, e-stop."""
import time

import numpy as np

from test.support.graph import (
    JOINTS,
    START,
    assert_controller_contract,
    expect_one_hold_then_silence,
    max_step,
    policy_params,
    wait_until,
)
from test.support.policies import ConstantPolicy, NaNPolicy, export

TARGET = START + np.array([0.2, -0.2, 0.2])
MAX_STEP = 2.0 / 100.0                      # policy_params: max_velocity_rad_s 2, 100 Hz


def all_finite(msgs) -> bool:
    return all(np.isfinite(m.positions).all() and all(np.isfinite(v).all() for v in m.velocities)
               for m in msgs)


def count(rx, key: str) -> int:
    return int(rx.diagnostic(f'count_{key}', '0'))


def assert_ramps_in_from(msgs, pose: np.ndarray) -> None:
    """A run that starts at ``pose`` (the measured one) and moves gradually."""
    assert not msgs[0].hold
    np.testing.assert_allclose(msgs[0].target, pose, atol=1e-9)
    assert max_step(msgs) <= MAX_STEP + 1e-9


def test_nan_from_the_model_never_reaches_the_topic(graph, tmp_path):
    model = export(NaNPolicy(len(JOINTS)), tmp_path / 'policy.pt', JOINTS)
    rx = graph.activate(model)
    assert rx.wait_for_diagnostic('count_nonfinite_action', lambda n: int(n or 0) > 10, 10.0)
    assert wait_until(lambda: len(rx.trajectories) > 50, 10.0)
    msgs = rx.since(0)
    assert all_finite(msgs)
    assert_controller_contract(msgs, velocities=True)
    for msg in msgs:                                    # held at the last safe command
        np.testing.assert_allclose(msg.target, START, atol=1e-9)


def test_nan_in_joint_states_holds_then_resumes_with_a_ramp_in(graph, tmp_path):
    model = export(ConstantPolicy(list(TARGET)), tmp_path / 'policy.pt', JOINTS)
    rx = graph.activate(model, '--nan-joint', 'j1', '--nan-after', '2.0', '--nan-for', '1.5')
    assert wait_until(lambda: rx.trajectories, 10.0)
    msgs, hold = expect_one_hold_then_silence(rx, 0, silence_s=0.5)
    assert len(msgs) > 20                               # it was streaming before the NaN
    np.testing.assert_allclose(hold.target, START, atol=1e-9)   # the last finite pose
    assert rx.wait_for_diagnostic('count_nonfinite_state', lambda n: int(n or 0) > 0)
    assert 'nonfinite_state' in rx.diagnostic('last_fault')
    mark = len(rx.trajectories)
    assert wait_until(lambda: len(rx.since(mark)) > 10, 10.0), 'did not resume'
    resumed = rx.since(mark)
    assert resumed[0].t - hold.t > 0.5                  # silent while the state was NaN
    assert_ramps_in_from(resumed, START)
    assert all_finite(rx.since(0))


def test_joint_states_stopping_holds_once_then_resumes_from_the_new_pose(graph, tmp_path):
    model = export(ConstantPolicy(list(TARGET)), tmp_path / 'policy.pt', JOINTS)
    graph.policy_node(policy_params(model))
    source = graph.source(START, '--stop-after', '2.0')
    rx = graph.receiver
    assert rx.lifecycle.change('activate')
    assert wait_until(lambda: rx.trajectories, 10.0)
    msgs, hold = expect_one_hold_then_silence(rx, 0)
    assert len(msgs) > 20
    np.testing.assert_allclose(hold.target, START, atol=1e-9)
    assert rx.wait_for_diagnostic('count_state_timeout', lambda n: int(n or 0) == 1)
    graph.stop(source)
    moved = START + np.array([0.05, 0.1, -0.05])      # the robot was moved meanwhile
    mark = len(rx.trajectories)
    graph.source(moved)
    assert wait_until(lambda: len(rx.since(mark)) > 10, 10.0), 'did not resume'
    assert_ramps_in_from(rx.since(mark), moved)


def test_a_missing_joint_streams_nothing_and_says_why(graph, tmp_path):
    model = export(ConstantPolicy(list(TARGET)), tmp_path / 'policy.pt', JOINTS)
    rx = graph.activate(model, '--omit', 'j2')
    assert rx.wait_for_diagnostic('last_fault', lambda fault: fault == 'missing_joint', 10.0)
    assert 'missing_joint' in rx.diagnostics[-1]['_message']
    time.sleep(0.5)                                     # observation window: silent
    assert not rx.trajectories
    # j2 from a second publisher (a partial source) for a while: streaming, then one hold.
    graph.source(START[2:], '--stop-after', '2.0', joints=['j2'], name='j2_source')
    assert wait_until(lambda: rx.trajectories, 10.0), 'no streaming with j2 present'
    msgs, hold = expect_one_hold_then_silence(rx, 0)
    assert len(msgs) > 20
    np.testing.assert_allclose(hold.target, START, atol=1e-9)
    assert rx.wait_for_diagnostic('count_missing_joint', lambda n: int(n or 0) == 1)
    assert rx.diagnostic('last_fault') == 'missing_joint'


def test_estop_latches_until_reset(graph, tmp_path):
    model = export(ConstantPolicy(list(TARGET)), tmp_path / 'policy.pt', JOINTS)
    rx = graph.activate(model)
    assert wait_until(lambda: len(rx.trajectories) > 20, 10.0)
    mark = len(rx.trajectories)
    rx.estop(True)
    msgs, hold = expect_one_hold_then_silence(rx, mark)
    np.testing.assert_allclose(hold.target, START, atol=1e-9)
    assert rx.wait_for_diagnostic('estop_latched', lambda latched: latched == 'True')
    assert int(rx.diagnostic('count_estop')) == 1
    mark = len(rx.trajectories)
    rx.estop(False)
    time.sleep(0.5)                                     # observation window: still latched
    assert not rx.since(mark)
    assert rx.diagnostic('estop_latched') == 'True'
    reply = rx.reset_estop()
    assert reply.success, reply.message
    assert wait_until(lambda: len(rx.since(mark)) > 10, 10.0), 'did not resume after reset'
    assert_ramps_in_from(rx.since(mark), START)
    reply = rx.reset_estop()
    assert not reply.success and 'not latched' in reply.message
