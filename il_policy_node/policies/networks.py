"""Policy networks by family: each maps the processor's output [B, C] to [B, H * A].

A run directory names its network as ``{'family': ..., 'input_size': C, 'output_size': H*A,
and the family's own keys}``; ``build_network`` makes it again from that description.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from il_policy_node.errors import ConfigError
from il_policy_node.policies.mlp import seed_mlp


def _mlp(spec: Mapping[str, Any]) -> nn.Module:
    return seed_mlp(int(spec['input_size']), int(spec['output_size']),
                    tuple(int(h) for h in spec['hidden']), dropout=float(spec['dropout']))


FAMILIES = {'mlp': _mlp}


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    """The untrained network a description names; ConfigError for an unknown family."""
    family = spec.get('family')
    if family not in FAMILIES:
        raise ConfigError(f'unknown network family {family!r}; known: {sorted(FAMILIES)}')
    try:
        return FAMILIES[family](spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f'network {family}: bad description {dict(spec)} ({exc})') from None
