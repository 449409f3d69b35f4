"""policy_node with a model far slower than its control period: inference runs off the tick.

A module built to be slow (thousands of small matrix products per forward: many control
periods) whose chunk is a constant target. With ``inference: auto`` the node measures it at
warm-up and runs it on a background thread; the ticks keep streaming the chunk's targets
while each inference takes many periods, and /diagnostics says so.
"""
import numpy as np
import torch
from torch import nn

from test.support.graph import JOINTS, RATE_HZ, START, wait_until
from test.support.policies import export

TARGET = START + 0.05
HORIZON = 100                       # a 1 s chunk at the test rate


class SlowConstantPolicy(nn.Module):
    """The chunk TARGET x HORIZON after a loop of matrix products that depends on the input."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer('chunk', torch.tensor(list(TARGET) * HORIZON, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.ones(48, 48) * (1.0 + 0.0 * obs[0, 0])
        for _ in range(400):
            x = torch.tanh(x @ x) * 0.5
        return self.chunk.expand(obs.shape[0], -1) + 0.0 * x[0, 0]


def test_slow_inference_runs_in_the_background_and_the_ticks_keep_streaming(graph, tmp_path):
    model = export(SlowConstantPolicy(), tmp_path / 'policy.pt', JOINTS, horizon=HORIZON,
                   rate_hz=RATE_HZ)
    rx = graph.activate(model, ramp_in_s=0.0, inference='auto')
    log = graph.processes[0].log
    assert rx.wait_for_diagnostic('inference', lambda v: v == 'async', 30.0), log()
    # the inference is many periods long, as measured by the node itself
    assert rx.wait_for_diagnostic('inference_last_ms',
                                  lambda v: float(v or 0) > 3 * 1e3 / RATE_HZ, 30.0), log()
    assert wait_until(lambda: int(rx.diagnostic('inferences') or 0) >= 2, 60.0), log()
    first_inferences, first_commands = int(rx.diagnostic('inferences')), len(rx.trajectories)
    assert wait_until(lambda: int(rx.diagnostic('inferences') or 0) >= first_inferences + 3,
                      60.0), log()
    inferences = int(rx.diagnostic('inferences')) - first_inferences
    commands = len(rx.trajectories) - first_commands
    # a tick that waited for inference would publish about one command per inference
    assert commands > 3 * inferences, (commands, inferences)
    np.testing.assert_allclose(rx.trajectories[-1].target, TARGET, atol=1e-5)
    assert 'Traceback' not in log()
