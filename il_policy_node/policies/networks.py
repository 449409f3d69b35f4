"""Policy networks by family: each maps the processor's output [B, C] to [B, H * A].

A run directory names its network as ``{'family': ..., 'input_size': C, 'output_size': H*A,
'history': k, 'horizon': H, 'action_size': A, 'options': {the family's train.yaml keys}}``;
``build_network`` makes it again from that description. A family's network may define
``loss(inputs, targets)`` (a sum over the chunk elements, as the squared error it replaces);
``TrainingObjective`` falls back to the summed squared error of its forward.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from il_policy_node.errors import ConfigError
from il_policy_node.policies.act import act_network
from il_policy_node.policies.diffusion import diffusion_network
from il_policy_node.policies.mlp import mlp_network
from il_policy_node.policies.options import family_options

BUILDERS: dict[str, Callable[[Mapping[str, Any], Any], nn.Module]] = {
    'mlp': mlp_network, 'act': act_network, 'diffusion': diffusion_network}
GENERATIVE = ('diffusion',)     # sample their chunk: inference costs their step count


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    """The untrained network a description names; ConfigError for a bad description."""
    name = str(spec.get('family'))
    # run directories written before the families had sections kept the MLP's keys inline
    section = spec.get('options', {k: spec[k] for k in ('hidden', 'dropout') if k in spec})
    options = family_options(name, section)
    try:
        return BUILDERS[name](spec, options)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f'network {name}: bad description {dict(spec)} ({exc})') from None


def network_passes(spec: Mapping[str, Any]) -> int:
    """Passes through the network per inference: the step count of a generative family."""
    if spec.get('family') in GENERATIVE:
        return int(family_options(str(spec['family']), spec.get('options')).inference_steps)
    return 1


class TrainingObjective(nn.Module):
    """``network``'s training loss as a module's forward (what DistributedDataParallel wraps)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = getattr(self.network, 'loss', None)
        if loss is not None:
            return loss(inputs, targets)
        return ((self.network(inputs) - targets) ** 2).sum()
