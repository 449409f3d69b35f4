"""Policy network architectures (plain torch modules on normalized data)."""
from __future__ import annotations

from typing import Sequence

from torch import nn


def seed_mlp(obs_size: int, output_size: int, hidden: Sequence[int] = (256, 256)) -> nn.Module:
    """The classic BC MLP: obs -> 256 -> ReLU -> 256 -> ReLU -> output."""
    layers: list[nn.Module] = []
    width = obs_size
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, output_size))
    return nn.Sequential(*layers)
