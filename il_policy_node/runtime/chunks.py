"""How action chunks become one target per tick: the options and their defaults (no torch).

The defaults here are those of policy_node's parameters, il-policy eval's options and the
runtime's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from il_policy_node.errors import ConfigError


class InferenceMode(str, Enum):
    """Where inference runs: in the tick, on a background thread, or chosen by its cost."""

    SYNC = 'sync'
    ASYNC = 'async'
    AUTO = 'auto'       # async when the warm-up inference exceeds AUTO_ASYNC_FRACTION x period


AUTO_ASYNC_FRACTION = 0.25
SEAM_TICKS = 4          # async chunk mode: ticks over which a new chunk fades in


class ChunkExecution(str, Enum):
    """How an action chunk (H > 1 future targets) becomes one target per tick."""

    ENSEMBLE = 'ensemble'
    CHUNK = 'chunk'


@dataclass(frozen=True)
class ChunkOptions:
    """How chunks are executed (the defaults of policy_node, il-policy eval and the demo)."""

    execution: ChunkExecution = ChunkExecution.ENSEMBLE
    ensemble_decay: float = 0.01    # temporal ensembling weight exp(-decay * i)
    replan_every: int = 0           # chunk mode: query every N ticks; 0 = the whole chunk
    inference: InferenceMode = InferenceMode.AUTO

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, 'execution', ChunkExecution(self.execution))
        except ValueError:
            raise ConfigError(f'chunk_execution must be one of '
                              f'{[e.value for e in ChunkExecution]}, got '
                              f'{self.execution!r}') from None
        try:
            object.__setattr__(self, 'inference', InferenceMode(self.inference))
        except ValueError:
            raise ConfigError(f'inference must be one of {[e.value for e in InferenceMode]}, '
                              f'got {self.inference!r}') from None
        if not (isinstance(self.ensemble_decay, (int, float)) and
                math.isfinite(self.ensemble_decay) and self.ensemble_decay >= 0):
            raise ConfigError(f'ensemble_decay must be finite and >= 0, got '
                              f'{self.ensemble_decay!r}')
        if isinstance(self.replan_every, bool) or not isinstance(self.replan_every, int) or \
                self.replan_every < 0:
            raise ConfigError(f'replan_every must be an integer >= 0, got {self.replan_every!r}')
