"""PolicyRuntime: observation history, inference, and action-chunk execution.

One small contract wraps the model (as robomimic's RolloutPolicy does): ``reset()`` when a new
run starts, ``step(fields)`` once per control tick with the current joint state, returning
this tick's joint position targets. With an action horizon H > 1 the runtime either executes
chunks open loop (re-querying every ``replan_every`` ticks) or queries every tick and averages
the overlapping predictions for the current tick (ACT's temporal ensembling: weight
``exp(-decay * i)`` with i = 0 for the oldest prediction).
"""
from __future__ import annotations

import logging
from enum import Enum
from typing import Sequence

import numpy as np
import torch

from il_policy_node.core.artifact import LoadedPolicy, quiet_torchscript
from il_policy_node.core.observation import ObservationBuilder

_log = logging.getLogger(__name__)
OPTIMIZED_ATOL = 1e-5


class ChunkExecution(str, Enum):
    """How an action chunk (H > 1 future targets) becomes one target per tick."""

    ENSEMBLE = 'ensemble'
    CHUNK = 'chunk'


def optimized_for_inference(policy: LoadedPolicy) -> torch.jit.ScriptModule:
    """The module after torch's inference passes (fused, prepacked linear layers).

    Used only when its outputs match the artifact's within OPTIMIZED_ATOL; otherwise the
    artifact's module runs as exported.
    """
    module = policy.module
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(8, policy.metadata.observation.size, generator=generator)
    try:
        with quiet_torchscript(), torch.inference_mode():
            optimized = torch.jit.optimize_for_inference(module)
            diff = float((optimized(inputs) - module(inputs)).abs().nan_to_num(0.0).max())
    except RuntimeError as exc:
        _log.info('inference optimization unavailable (%s); running the module as exported', exc)
        return module
    if diff > OPTIMIZED_ATOL:
        _log.info('optimized module differs by %.2g; running the module as exported', diff)
        return module
    return optimized


class PolicyRuntime:
    """Runs a loaded policy one control tick at a time, allocating nothing per tick."""

    def __init__(self, policy: LoadedPolicy, *, execution: ChunkExecution | str = 'ensemble',
                 ensemble_decay: float = 0.01, replan_every: int = 0) -> None:
        meta = policy.metadata
        self.policy = policy
        self.execution = ChunkExecution(execution)
        self.horizon = meta.action_horizon
        if not 0 <= replan_every <= self.horizon:
            raise ValueError(f'replan_every must be in [0, {self.horizon}] (0 = whole chunk), '
                             f'got {replan_every}')
        if ensemble_decay < 0 or not np.isfinite(ensemble_decay):
            raise ValueError(f'ensemble_decay must be finite and >= 0, got {ensemble_decay}')
        self.replan_every = replan_every or self.horizon
        self.observation = ObservationBuilder(meta.observation)
        self._module = optimized_for_inference(policy)
        self._obs = torch.from_numpy(self.observation.vector).unsqueeze(0)  # shares memory
        h, a = self.horizon, meta.action_size
        self._chunks = np.zeros((h, h, a), np.float32)   # ring of chunks by query tick
        self._weights = np.exp(-ensemble_decay * np.arange(h))  # oldest first
        self._ages = np.arange(h)
        self._action = np.zeros(a, np.float64)
        self._tick = 0
        self._queried = 0
        self.inferences = 0

    def reset(self) -> None:
        """Start a new run: empty history, no chunk carried over (never replay old actions)."""
        self.observation.reset()
        self._tick = 0
        self._queried = 0

    def infer(self) -> np.ndarray:
        """Run the model on the current observation vector; returns the chunk [H, A]."""
        with torch.inference_mode():
            out = self._module(self._obs)
        self.inferences += 1
        return out[0].numpy()

    def step(self, fields: Sequence[np.ndarray]) -> np.ndarray:
        """Push this tick's state (one array per observed field) and return the target [A].

        The returned array is reused on the next call; copy it to keep it.
        """
        self.observation.push(fields)
        h = self.horizon
        if h == 1:
            self._action[:] = self.infer()[0]
        elif self.execution is ChunkExecution.CHUNK:
            offset = self._tick % self.replan_every
            if offset == 0:
                self._chunks[0] = self.infer()
            self._action[:] = self._chunks[0, offset]
        else:
            self._chunks[self._tick % h] = self.infer()
            self._queried = min(self._queried + 1, h)
            n = self._queried
            ages = self._ages[:n]                       # 0 = newest chunk
            rows = (self._tick - ages) % h
            preds = self._chunks[rows, ages]           # this tick's prediction from each chunk
            weights = self._weights[:n][::-1]          # oldest chunk gets weights[0]
            np.dot(weights, preds, out=self._action)
            self._action /= weights.sum()
        self._tick += 1
        return self._action

    def warmup(self, iterations: int) -> None:
        """Run inference on zeros so the first real tick does not pay for lazy initialization."""
        self.observation.vector[:] = 0.0
        for _ in range(iterations):
            self.infer()
        self.reset()
