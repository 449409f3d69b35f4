"""Asynchronous inference, analytically: each chunk encodes the tick it observed.

TickChunkPolicy's chunk observed at tick q (observation = q) predicts q + k for its k-th
step, so a target equal to the tick shows that the chunk was read from its observation tick
(the prefix elapsed during inference skipped). A gate stands between the background thread
and the module, so each test decides at which tick an inference finishes.
"""
import contextlib
import threading

import numpy as np
import pytest
import torch
from torch import nn

from il_policy_node.errors import ConfigError
from il_policy_node.runtime.artifact import load_policy
from il_policy_node.runtime.chunks import SEAM_TICKS, ChunkOptions
from il_policy_node.runtime.controller import PolicyController
from il_policy_node.runtime.controller_config import ControllerConfig
from il_policy_node.runtime.policy_runtime import PolicyRuntime
from il_policy_node.runtime.safety import Intervention
from test.runtime.test_policy_runtime import JOINTS, TickChunkPolicy, _fields
from test.support.policies import SlowPolicy, export

H = 4
WAIT_S = 10.0


class Gate:
    """Runs the module only when released: one release per inference."""

    def __init__(self, module) -> None:
        self.module = module
        self.allowed = threading.Semaphore(0)
        self.observed: list[float] = []

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        assert self.allowed.acquire(timeout=WAIT_S)
        self.observed.append(float(obs[0, 0]))
        return self.module(obs)


@pytest.fixture(scope='module', params=['p.pt', 'p.onnx'], ids=['torchscript', 'onnx'])
def policy_file(request, tmp_path_factory):
    """The chunk-encoding policy in each backend (async inference runs either the same way)."""
    return export(TickChunkPolicy(), tmp_path_factory.mktemp('async') / request.param, JOINTS,
                  horizon=H)


@pytest.fixture
def policy(policy_file):
    return load_policy(policy_file)


@contextlib.contextmanager
def _async(policy, **options):
    """An async runtime whose inferences pass ``gate``; gate opened and thread stopped after."""
    runtime = PolicyRuntime(policy, ChunkOptions(inference='async', **options))
    gate = Gate(policy.module)
    background = runtime.start_background(gate)
    try:
        yield runtime, gate, background
    finally:
        gate.allowed.release(10)
        runtime.close()


def _finish(gate, background):
    gate.allowed.release()
    assert background.wait_idle(WAIT_S)


def test_ensemble_splices_the_chunk_at_its_observation_tick(policy):
    with _async(policy, execution='ensemble',
                ensemble_decay=0.0) as (runtime, gate, background):
        assert runtime.step(_fields(0.0)) is None          # tick 0: inference of tick 0 starts
        assert runtime.hold_reason == 'waiting for the first chunk'
        assert runtime.step(_fields(1.0)) is None
        _finish(gate, background)                          # finishes during tick 1 -> 2
        assert runtime.step(_fields(2.0))[0] == pytest.approx(2.0)   # chunk 0 read at index 2
        assert runtime.step(_fields(3.0))[0] == pytest.approx(3.0)
        assert gate.observed == [0.0]                      # tick 2 submitted the next one
        _finish(gate, background)
        # tick 4: chunk 0 has run out, the chunk observed at tick 2 covers it (2 + 2)
        assert runtime.step(_fields(4.0))[0] == pytest.approx(4.0)
        assert gate.observed == [0.0, 2.0] and runtime.inferences == 2
        # nothing finishes any more: the chunk of tick 2 lasts to tick 5, then nothing covers
        assert runtime.step(_fields(5.0))[0] == pytest.approx(5.0)
        assert runtime.step(_fields(6.0)) is None
        assert 'no chunk covers this tick' in runtime.hold_reason


def test_a_result_older_than_its_chunk_is_dropped_and_counted(policy):
    with _async(policy, execution='ensemble') as (runtime, gate, background):
        runtime.step(_fields(0.0))
        for t in range(1, H + 1):
            assert runtime.step(_fields(float(t))) is None
        _finish(gate, background)
        assert runtime.step(_fields(H + 1.0)) is None       # observed at 0, whole chunk elapsed
        assert runtime.late_inferences == 1 and runtime.inferences == 1
        assert 'no chunk covers this tick: the last inference took' in runtime.hold_reason


def test_chunk_mode_fades_the_new_chunk_in_over_the_seam(policy):
    with _async(policy, execution='chunk', replan_every=2) as (runtime, gate, background):
        runtime.step(_fields(0.0))
        _finish(gate, background)
        got = [runtime.step(_fields(10.0))[0]]              # tick 1: chunk 0 at 1; submits
        assert gate.observed == [0.0]
        _finish(gate, background)                           # observed 10 at tick 1
        got.append(runtime.step(_fields(20.0))[0])          # tick 2: splice, seam starts
        old, new = 2.0, 10.0 + 1.0                          # chunk 0 at 2, new chunk at 2 - 1
        weight = 1 / (SEAM_TICKS + 1)
        assert got == pytest.approx([1.0, (1 - weight) * old + weight * new])


def test_reset_drops_an_inference_of_the_previous_run(policy):
    with _async(policy, execution='ensemble') as (runtime, gate, background):
        runtime.step(_fields(50.0))
        runtime.reset()
        _finish(gate, background)
        assert runtime.step(_fields(0.0)) is None           # the chunk of 50 is never used
        assert runtime.inferences == 0


def test_auto_picks_async_for_a_module_slower_than_a_quarter_period(tmp_path):
    fast = load_policy(export(nn.Linear(4, 2), tmp_path / 'f.pt', JOINTS, rate_hz=50.0))
    slow = load_policy(export(SlowPolicy([0.0] * len(JOINTS), horizon=2, products=400),
                              tmp_path / 's.pt', JOINTS, rate_hz=1000.0, horizon=2))
    for loaded, expected in ((fast, False), (slow, True)):
        runtime = PolicyRuntime(loaded, ChunkOptions(inference='auto'))
        runtime.warmup(3)
        try:
            assert runtime.asynchronous is expected, runtime.inference_s
        finally:
            runtime.close()
    sync = PolicyRuntime(slow, ChunkOptions(inference='sync'))
    sync.warmup(1)
    assert not sync.asynchronous
    single = PolicyRuntime(fast, ChunkOptions(inference='async'))
    with pytest.raises(ConfigError, match='needs an action chunk'):
        single.warmup(1)


def test_the_controller_repeats_its_last_command_and_counts_no_chunk(policy):
    config = ControllerConfig.from_parameters({
        'model_path': str(policy.path), 'joint_names': JOINTS, 'control_rate_hz': 100.0,
        'state_timeout_s': 0.05, 'ramp_in_s': 0.5, 'position_lower_limits': [-1.0, -1.0],
        'position_upper_limits': [1.0, 1.0], 'max_velocity_rad_s': [2.0],
        'inference': 'async'})
    with _async(policy, execution='ensemble') as (runtime, _, _):
        controller = PolicyController(config, runtime)
        controller.activate()
        controller.on_joint_state(JOINTS, np.array([0.5, 0.5]), np.zeros(2), 0)
        command = controller.tick(1_000)
        assert command is not None and not command.hold
        assert command.positions == pytest.approx([0.5, 0.5])      # the measured pose, kept
        assert controller.counts[Intervention.NO_CHUNK] == 1
        assert controller.hold_reason == 'waiting for the first chunk'
