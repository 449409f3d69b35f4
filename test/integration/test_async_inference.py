"""policy_node with a model slower than its control period, over DDS: inference off the tick.

The slow model takes ~10000 chained matrix products (~0.25 s here, 25 periods at 100 Hz).
Run in the tick, each command would wait for one inference; off the tick (what
``inference: auto`` chooses for it) the commands keep streaming from the current chunk
while the next one is computed, and when no chunk covers a tick the node holds and says why.
"""
import numpy as np

from test.support.graph import JOINTS, START, assert_controller_contract, max_step, wait_until
from test.support.policies import SlowPolicy, export

TARGET = START + np.array([0.2, -0.2, 0.2])
PRODUCTS = 10000
MAX_STEP = 2.0 / 100.0                      # policy_params: max_velocity_rad_s 2, 100 Hz


def test_a_slow_model_runs_off_the_tick_and_the_commands_keep_streaming(graph, tmp_path):
    horizon = 200                           # a 2 s chunk: covers many slow inferences
    model = export(SlowPolicy(list(TARGET), horizon, PRODUCTS), tmp_path / 'slow.pt', JOINTS,
                   horizon=horizon)
    rx = graph.activate(model, inference='auto')
    assert rx.wait_for_diagnostic('inferences', lambda n: int(n or 0) >= 1, 30.0)
    # the ticks before the first chunk hold (counted as no_chunk); none after it
    waited = int(rx.diagnostics[-1]['count_no_chunk'])
    assert rx.wait_for_diagnostic('inferences', lambda n: int(n or 0) >= 4, 30.0), \
        rx.diagnostics[-1:]
    snapshot = rx.diagnostics[-1]
    assert snapshot['inference'] == 'async'
    assert float(snapshot['inference_last_ms']) > 3 * 10.0    # slower than 3 periods
    commands = rx.since(0)
    # in the tick there would be one command per inference; off it, a chunk's worth each
    assert len(commands) > 3 * int(snapshot['inferences']), (len(commands), snapshot)
    assert_controller_contract(commands, velocities=True)
    assert not any(m.hold for m in commands), 'held while a chunk covered the tick'
    assert max_step(commands) <= MAX_STEP + 1e-9
    assert wait_until(lambda: np.allclose(rx.trajectories[-1].target, TARGET, atol=1e-6), 10.0)
    assert int(rx.diagnostic('late_inferences')) == 0
    assert int(rx.diagnostic('count_no_chunk')) == waited > 0


def test_a_model_slower_than_its_chunk_holds_and_says_why(graph, tmp_path):
    model = export(SlowPolicy(list(TARGET), 2, PRODUCTS), tmp_path / 'slow.pt', JOINTS,
                   horizon=2)               # a 20 ms chunk, elapsed before its inference ends
    rx = graph.activate(model, inference='async')
    assert rx.wait_for_diagnostic('late_inferences', lambda n: int(n or 0) >= 2, 30.0), \
        rx.diagnostics[-1:]
    snapshot = rx.diagnostics[-1]
    assert snapshot['inferences'] == snapshot['late_inferences']        # every one too late
    assert snapshot['_level'] == '1', snapshot                            # warn
    assert 'no chunk covers this tick: the last inference took' in snapshot['_message']
    assert snapshot['_message'].endswith('the chunk lasts 20 ms'), snapshot['_message']
    for msg in rx.since(0):                 # the robot was never moved towards the target
        np.testing.assert_allclose(msg.target, START, atol=1e-9)
