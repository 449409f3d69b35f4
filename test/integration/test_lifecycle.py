"""Transitions that are not valid from policy_node's state are answered as failed; it lives on.

rclpy's LifecycleNode in the Jazzy wheels dies on them with an RCLError (ros2/rclpy#1209);
policy_node refuses them, logs why, and keeps streaming when it was active.
"""
import numpy as np

from test.support.graph import JOINTS, START, wait_until
from test.support.policies import ConstantPolicy, export

TARGET = START + 0.05


def test_invalid_transitions_fail_and_the_node_keeps_running_and_streaming(graph, tmp_path):
    model = export(ConstantPolicy(list(TARGET)), tmp_path / 'policy.pt', JOINTS)
    rx = graph.activate(model, ramp_in_s=0.0)
    process = graph.processes[0]
    lifecycle = rx.lifecycle
    assert wait_until(lambda: len(rx.trajectories) > 10, 10.0), process.log()
    for transition in ('activate', 'configure', 'cleanup'):     # all invalid while active
        mark = len(rx.trajectories)
        assert lifecycle.change(transition) is False, transition
        assert lifecycle.state() == 'active'
        assert wait_until(lambda: len(rx.trajectories) > mark + 10, 10.0), \
            f'stopped streaming after {transition}:\n{process.log()}'
    np.testing.assert_allclose(rx.trajectories[-1].target, TARGET, atol=1e-6)
    assert process.popen.poll() is None
    assert lifecycle.change('deactivate') and lifecycle.state() == 'inactive'
    assert lifecycle.change('deactivate') is False                 # twice
    assert lifecycle.change('cleanup') and lifecycle.state() == 'unconfigured'
    assert lifecycle.change('activate') is False                   # not configured
    assert lifecycle.change('cleanup') is False
    assert lifecycle.change('configure') and lifecycle.change('activate')
    assert lifecycle.state() == 'active' and process.popen.poll() is None
    refusals = ("transition 'activate' refused: not valid from state 'active'",
                "transition 'configure' refused: not valid from state 'active'",
                "transition 'activate' refused: not valid from state 'unconfigured'")
    assert wait_until(lambda: all(r in process.log() for r in refusals), 10.0), process.log()
    assert 'RCLError' not in process.log() and 'Traceback' not in process.log()
