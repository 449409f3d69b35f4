"""PolicyRuntime: single actions, chunk execution and temporal ensembling, reset."""
import numpy as np
import pytest
import torch
from torch import nn

from il_policy_node.errors import ConfigError
from il_policy_node.runtime.artifact import load_policy
from il_policy_node.runtime.chunks import ChunkOptions
from il_policy_node.runtime.policy_runtime import PolicyRuntime, optimized_for_inference
from test.support.policies import export

JOINTS = ['a', 'b']
H = 4


class TickChunkPolicy(nn.Module):
    """Chunk k-th step = (observed position of joint a) + k, for every joint.

    Feeding the tick number as the observation makes each chunk identify when it was queried.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer('steps', torch.arange(H, dtype=torch.float32).repeat_interleave(2))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[:, :1] + self.steps.unsqueeze(0)


@pytest.fixture
def chunk_policy(tmp_path):
    return load_policy(export(TickChunkPolicy(), tmp_path / 'p.pt', JOINTS, horizon=H))


def _fields(tick: float):
    return [np.array([tick, 0.0]), np.zeros(2)]


def test_chunk_mode_executes_each_chunk_open_loop(chunk_policy):
    runtime = PolicyRuntime(chunk_policy, ChunkOptions(execution='chunk'))
    actions = [runtime.step(_fields(t))[0] for t in range(8)]
    # queried at tick 0 (base 0) and tick 4 (base 4): 0,1,2,3 then 4,5,6,7
    assert actions == pytest.approx(list(range(8)))
    assert runtime.inferences == 2


def test_chunk_mode_replans_early_when_asked(chunk_policy):
    runtime = PolicyRuntime(chunk_policy, ChunkOptions(execution='chunk', replan_every=2))
    actions = [runtime.step(_fields(10 * t))[0] for t in range(4)]
    assert actions == pytest.approx([0, 1, 20, 21])


def test_temporal_ensembling_averages_the_predictions_for_this_tick(chunk_policy):
    decay = 0.5
    runtime = PolicyRuntime(chunk_policy,
                            ChunkOptions(execution='ensemble', ensemble_decay=decay))
    # observation base = 10 * tick: the chunk from tick q predicts 10q + (t - q) for tick t.
    got = [runtime.step(_fields(10.0 * t))[0] for t in range(6)]
    for t, value in enumerate(got):
        queries = list(range(max(0, t - H + 1), t + 1))           # oldest first
        preds = np.array([10.0 * q + (t - q) for q in queries])
        weights = np.exp(-decay * np.arange(len(queries)))       # oldest gets weight 1
        assert value == pytest.approx(float(weights @ preds / weights.sum()), rel=1e-5)


def test_after_missed_ticks_chunks_are_read_at_the_tick_that_is_due(chunk_policy):
    runtime = PolicyRuntime(chunk_policy, ChunkOptions(execution='chunk'))
    got = [runtime.step(_fields(0.0))[0], runtime.step(_fields(0.0))[0],
           runtime.step(_fields(0.0), ticks=2)[0]]
    assert got == pytest.approx([0, 1, 3])                # tick 2 was missed
    assert runtime.step(_fields(60.0), ticks=3)[0] == pytest.approx(60.0)   # tick 6: new chunk
    decay = 0.3
    runtime = PolicyRuntime(chunk_policy,
                            ChunkOptions(execution='ensemble', ensemble_decay=decay))
    for t in range(3):
        runtime.step(_fields(10.0 * t))
    value = runtime.step(_fields(50.0), ticks=3)[0]       # tick 5; ticks 3 and 4 missed
    # chunks of ticks 0 and 1 end before tick 5; tick 2's predicts 20 + 3, tick 5's 50;
    # weights exp(-decay * i), i in ticks from the oldest prediction
    weights = np.array([1.0, np.exp(-decay * 3)])
    assert value == pytest.approx(float(weights @ [23.0, 50.0] / weights.sum()), rel=1e-5)
    with pytest.raises(ValueError, match='ticks must be >= 1'):
        runtime.step(_fields(0.0), ticks=0)


def test_lookahead_reads_the_chunks_later_between_steps(chunk_policy):
    runtime = PolicyRuntime(chunk_policy, ChunkOptions(execution='chunk'))
    assert runtime.step(_fields(0.0), lookahead=0.25)[0] == pytest.approx(0.25)
    assert runtime.step(_fields(0.0), lookahead=2.5)[0] == pytest.approx(3.0)   # the chunk's end
    runtime = PolicyRuntime(chunk_policy, ChunkOptions(execution='ensemble', ensemble_decay=0.0))
    runtime.step(_fields(0.0))
    # tick 1: chunk 0 read at 1.5 -> 1.5, chunk 1 (base 10) at 0.5 -> 10.5; plain average
    assert runtime.step(_fields(10.0), lookahead=0.5)[0] == pytest.approx(6.0)
    with pytest.raises(ValueError, match='lookahead must be in'):
        runtime.step(_fields(0.0), lookahead=H)


def test_reset_never_replays_an_old_chunk(chunk_policy):
    runtime = PolicyRuntime(chunk_policy, ChunkOptions(execution='chunk'))
    runtime.step(_fields(100.0))
    runtime.reset()
    assert runtime.step(_fields(0.0))[0] == pytest.approx(0.0)


def test_single_step_policy_and_warmup(tmp_path):
    policy = load_policy(export(nn.Linear(4, 2), tmp_path / 'p.pt', JOINTS))
    runtime = PolicyRuntime(policy)
    runtime.warmup(3)
    assert runtime.inferences == 0 and runtime.inference_s > 0    # timed, not counted
    out = runtime.step([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    assert runtime.inferences == 1
    with torch.no_grad():
        expected = policy.module(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))[0, 0].numpy()
    assert out == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize('kwargs, message', [
    ({'replan_every': 9}, 'replan_every must be in'),
    ({'ensemble_decay': -1.0}, 'ensemble_decay must be finite and >= 0'),
    ({'execution': 'bogus'}, "chunk_execution must be one of \\['ensemble', 'chunk'\\]"),
])
def test_bad_options(chunk_policy, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PolicyRuntime(chunk_policy, ChunkOptions(**kwargs))


def test_the_optimized_module_matches_the_exported_one(tmp_path):
    policy = load_policy(export(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
                                tmp_path / 'p.pt', JOINTS))
    optimized = optimized_for_inference(policy)
    obs = torch.randn(5, 4)
    with torch.inference_mode():
        assert torch.allclose(optimized(obs), policy.module(obs), atol=1e-5)
