"""Policy network architectures (plain torch modules on normalized data)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def seed_mlp(obs_size: int, output_size: int, hidden: Sequence[int] = (256, 256), *,
             dropout: float = 0.0) -> nn.Module:
    """The classic BC MLP: obs -> 256 -> ReLU -> 256 -> ReLU -> output.

    ``dropout`` > 0 adds a Dropout after each ReLU (layer indices then shift by one per
    hidden layer; with 0 the module and its state_dict keys are the seed's).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f'dropout must be in [0, 1), got {dropout}')
    layers: list[nn.Module] = []
    width = obs_size
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, output_size))
    return nn.Sequential(*layers)


class SelectColumns(nn.Module):
    """Passes on only the given input columns (``[B, N] -> [B, len(columns)]``)."""

    def __init__(self, columns: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer('columns', torch.tensor(list(columns), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.columns)
