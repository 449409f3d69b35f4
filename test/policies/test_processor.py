"""The policy processor on small arrays whose results are worked out by hand."""
import numpy as np
import pytest
import torch

from il_policy_node.errors import ConfigError
from il_policy_node.policies.processor import Policy, Processor, ProcessorLayout
from il_policy_node.policies.statistics import MIN_STD, RunningStatistics, Statistics
from il_policy_node.runtime.observation import ObservationSpec

# One frame: position a, position b, goal b (a further input). History 2: 6 columns.
SPEC = ObservationSpec(joints=('a', 'b'), fields=('position',), history=2,
                       extra=({'topic': '/goal', 'joints': ['b']},))
OBS = torch.tensor([[1.0, 2.0, 7.0, 3.0, 5.0, 11.0]])   # frames (1, 2 | 7) then (3, 5 | 11)


def _processor(layout, *, horizon=2, inputs=None, actions=None):
    return Processor(layout, horizon=horizon, action_size=2, inputs=inputs, actions=actions)


def test_layout_of_the_options():
    assert ProcessorLayout.plan(SPEC, ('a', 'b')) == ProcessorLayout(frame_size=3, history=2)
    layout = ProcessorLayout.plan(SPEC, ('b', 'a'), relative_actions=True,
                                  relative_inputs=True, absolute_positions=False)
    assert layout.reference == (1, 0)          # frame columns of position b, position a
    assert layout.differences == ((2, 1),)     # goal b minus position b
    assert layout.hidden == (0, 1) and layout.input_size == 2
    assert ProcessorLayout.from_dict(layout.to_dict()) == layout


def test_encode_differences_then_normalizes_then_selects():
    layout = ProcessorLayout(frame_size=3, history=2, differences=((2, 1),), hidden=(0, 1))
    inputs = Statistics(mean=np.array([0.0, 0.0, 4.0]), std=np.array([1.0, 1.0, 2.0]), count=1)
    processor = _processor(layout, inputs=inputs)
    # goal - position: 7 - 2 = 5 and 11 - 5 = 6; (5 - 4) / 2 = 0.5, (6 - 4) / 2 = 1.0
    assert processor.encode(OBS).tolist() == [[0.5, 1.0]]


def test_decode_unnormalizes_and_adds_the_newest_positions_back():
    layout = ProcessorLayout(frame_size=3, history=2, reference=(1, 0))
    actions = Statistics(mean=np.array([1.0, -1.0]), std=np.array([2.0, 0.5]), count=1)
    processor = _processor(layout, actions=actions)
    out = torch.tensor([[0.5, 2.0, -1.0, 0.0]])          # steps (0.5, 2), (-1, 0)
    # step 0: (0.5 * 2 + 1, 2 * 0.5 - 1) = (2, 0), plus newest (b, a) = (5, 3) -> (7, 3)
    # step 1: (-1 * 2 + 1, 0 * 0.5 - 1) = (-1, -1), plus (5, 3) -> (4, 2)
    assert processor.decode(out, OBS).tolist() == [[[7.0, 3.0], [4.0, 2.0]]]
    chunk = torch.tensor([[[7.0, 3.0], [4.0, 2.0]]])
    assert processor.targets(chunk, OBS).tolist() == out.tolist()


def test_a_constant_column_is_centered_not_scaled():
    stats = Statistics.of(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert stats.mean.tolist() == [2.0, 5.0] and stats.std.tolist() == [1.0, 1.0]
    assert MIN_STD == 1e-6


def test_running_statistics_equal_the_two_pass_ones_on_blocks():
    rng = np.random.default_rng(0)
    values = 1e4 + rng.normal(0, 1e-3, (1000, 3))          # a large mean, a small spread
    running = RunningStatistics(3)
    for block in np.array_split(values, 7):
        running.add(block)
    result = running.result()
    np.testing.assert_allclose(result.mean, values.mean(0), rtol=1e-12)
    np.testing.assert_allclose(result.std, values.std(0), rtol=1e-6)
    assert result.count == 1000


def test_the_processor_is_scripted_as_it_is():
    layout = ProcessorLayout(frame_size=3, history=2, reference=(0, 1), differences=((2, 1),),
                             hidden=(0, 1))
    inputs = Statistics(np.array([0.5, -0.5, 2.0]), np.array([2.0, 3.0, 4.0]), 1)
    actions = Statistics(np.array([0.1, 0.2]), np.array([0.3, 0.4]), 1)
    policy = Policy(_processor(layout, inputs=inputs, actions=actions),
                    torch.nn.Linear(2, 4)).eval()
    scripted = torch.jit.script(policy)
    obs = torch.randn(5, 6)
    with torch.no_grad():
        torch.testing.assert_close(scripted(obs), policy(obs))
    assert scripted(obs).shape == (5, 2, 2)


def test_statistics_of_the_wrong_size_are_refused():
    layout = ProcessorLayout(frame_size=3, history=1)
    with pytest.raises(ConfigError, match='input statistics have 2 columns, a frame has 3'):
        _processor(layout, inputs=Statistics(np.zeros(2), np.ones(2), 1))
    with pytest.raises(ConfigError, match='the action has 2 joints'):
        _processor(layout, actions=Statistics(np.zeros(3), np.ones(3), 1))


def test_a_column_that_barely_moves_gets_a_std_floor_within_its_group():
    from il_policy_node.policies.statistics import RELATIVE_STD_FLOOR, with_std_floor
    stats = Statistics(mean=np.zeros(5), std=np.array([1.0, 1e-4, 0.5, 3.0, 2e-5]), count=10)
    floored = with_std_floor(stats, [range(0, 3), range(3, 5)])
    # positions (0..2): floor 0.1 x 1.0; velocities (3..4): floor 0.1 x 3.0
    assert RELATIVE_STD_FLOOR == 0.1
    np.testing.assert_allclose(floored.std, [1.0, 0.1, 0.5, 3.0, 0.3])
    np.testing.assert_array_equal(floored.mean, stats.mean)
    assert with_std_floor(stats, []).std.tolist() == stats.std.tolist()


def test_state_shifts_move_inputs_and_targets_as_a_moved_position_does():
    layout = ProcessorLayout.plan(SPEC, ('b', 'a'), relative_actions=True,
                                  relative_inputs=True, absolute_positions=False)
    inputs = Statistics(mean=np.array([0.5, -0.5, 2.0]), std=np.array([2.0, 3.0, 4.0]), count=1)
    actions = Statistics(mean=np.array([0.1, 0.2]), std=np.array([0.5, 0.25]), count=1)
    processor = _processor(layout, inputs=inputs, actions=actions)
    into_inputs, into_targets = processor.state_shifts([0, 1])      # positions a, b
    # position b up 1 rad: goal b - position b down 1 (std 4), targets of b (std 0.5) down 2
    assert into_inputs[1].tolist() == [-0.25, -0.25]
    assert into_targets[1].tolist() == [-2.0, 0.0, -2.0, 0.0]
    assert into_inputs[0].tolist() == [0.0, 0.0]                    # a is hidden, no goal
    assert into_targets[0].tolist() == [0.0, -4.0, 0.0, -4.0]
    noise = torch.tensor([[0.3, -0.7]])
    moved = OBS + torch.tensor([[0.3, -0.7, 0.0] * 2])
    chunk = torch.tensor([[[7.0, 3.0], [4.0, 2.0]]])
    torch.testing.assert_close(processor.encode(moved),
                               processor.encode(OBS) + noise @ into_inputs)
    torch.testing.assert_close(processor.targets(chunk, moved),
                               processor.targets(chunk, OBS) + noise @ into_targets)
