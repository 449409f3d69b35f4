"""Small policies exported through the real export path, for tests and benchmarks."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from il_policy_node.pipeline.export import export_policy, raw_policy
from il_policy_node.policies.mlp import seed_mlp
from il_policy_node.runtime.artifact import PolicyMetadata
from il_policy_node.runtime.observation import ObservationSpec


class ConstantPolicy(nn.Module):
    """Always the same chunk, whatever the observation (targets far from the start pose)."""

    def __init__(self, values: Sequence[float], horizon: int = 1) -> None:
        super().__init__()
        self.register_buffer('chunk', torch.tensor(list(values) * horizon, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.chunk.expand(obs.shape[0], -1) + 0.0 * obs[:, :1]


class SlowPolicy(ConstantPolicy):
    """A constant chunk behind ``products`` chained 64x64 matrix products (~20 us each here).

    The work depends on the observation, so TorchScript cannot fold it away: a forward that
    takes many control periods, for the asynchronous-inference tests.
    """

    def __init__(self, values: Sequence[float], horizon: int, products: int) -> None:
        super().__init__(values, horizon)
        self.products = products

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.ones(64, 64) * (1.0 + 0.0 * obs[0, 0])
        for _ in range(self.products):
            x = torch.tanh(x @ x)
        return self.chunk.expand(obs.shape[0], -1) + 0.0 * x[0, :1]


class NaNPolicy(nn.Module):
    """Emits NaN for every joint (a broken model)."""

    def __init__(self, action_size: int, horizon: int = 1) -> None:
        super().__init__()
        self.size = action_size * horizon

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0], self.size), float('nan'))


class GoalPolicy(nn.Module):
    """Target = the last ``size`` observation values (an extra input at the end of the frame)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[:, -self.size:] + 0.0


class OffsetPolicy(nn.Module):
    """Target = observed position + a per-joint offset: depends on the joint order."""

    def __init__(self, offsets: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer('offsets', torch.tensor(list(offsets), dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        n = self.offsets.numel()
        return obs[:, -2 * n:-n] + self.offsets  # positions of the newest frame


def mlp(obs_size: int, action_size: int, hidden: int = 256, seed: int = 0) -> nn.Module:
    """The seed MLP with ``hidden`` units per layer, seeded."""
    torch.manual_seed(seed)
    return seed_mlp(obs_size, action_size, (hidden, hidden))


def export(model: nn.Module, path: Path, joints: Sequence[str], *, rate_hz: float = 100.0,
           horizon: int = 1, history: int = 1, extra: Sequence[dict] = (),
           extra_metadata: dict | None = None, backend: str | None = None) -> Path:
    """Export ``model`` (raw observations -> [B, H*A]) as a policy file (.onnx: ONNX).

    It observes ``joints`` (positions, velocities), then the ``extra`` inputs.
    """
    spec = ObservationSpec(joints=tuple(joints), history=history, extra=tuple(extra))
    metadata = PolicyMetadata(joint_names=tuple(joints), observation=spec,
                              action_horizon=horizon, control_rate_hz=rate_hz,
                              dataset_fingerprint='test', extra=extra_metadata or {})
    return export_policy(raw_policy(model, metadata), path, metadata, backend=backend)
