"""The seed MLP: the classic behavioral-cloning network on normalized inputs."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from il_policy_node.errors import ConfigError
from il_policy_node.policies.options import MlpOptions


def seed_mlp(input_size: int, output_size: int, hidden: Sequence[int] = (256, 256), *,
             dropout: float = 0.0) -> nn.Sequential:
    """Input -> 256 -> ReLU -> 256 -> ReLU -> output.

    ``dropout`` > 0 adds a Dropout after each ReLU (layer indices then shift by one per
    hidden layer; with 0 the module and its state_dict keys are the seed's).
    """
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f'dropout must be in [0, 1), got {dropout}')
    layers: list[nn.Module] = []
    width = input_size
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, output_size))
    return nn.Sequential(*layers)


def mlp_network(spec: Mapping[str, Any], options: MlpOptions) -> nn.Sequential:
    return seed_mlp(int(spec['input_size']), int(spec['output_size']), options.hidden,
                    dropout=options.dropout)
