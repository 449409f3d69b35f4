"""PolicyRuntime: observation history, inference, and action-chunk execution.

One small contract wraps the model (as robomimic's RolloutPolicy does): ``reset()`` when a new
run starts, ``step(fields)`` once per control tick with the current joint state, returning
this tick's joint position targets. With an action horizon H > 1 the runtime either executes
chunks open loop (re-querying every ``replan_every`` ticks) or queries every tick and averages
the overlapping predictions for the current tick (ACT's temporal ensembling: weight
``exp(-decay * i)``, i in ticks from the oldest prediction). Chunks are read by tick: after
missed ticks (``step(fields, ticks=k)``) the targets due now are taken, not the ones that
were due at the missed ticks, so a late control loop does not slow the motion down; and
``lookahead`` reads them a fraction of a period later, for the latency between observing
the state and the robot receiving the target (which a policy in a feedback loop otherwise
feels as a slower motion).
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np
import torch

from il_policy_node.errors import ConfigError
from il_policy_node.runtime.artifact import LoadedPolicy, quiet_torchscript
from il_policy_node.runtime.chunks import ChunkExecution, ChunkOptions
from il_policy_node.runtime.observation import ObservationBuilder

_log = logging.getLogger(__name__)
OPTIMIZED_ATOL = 1e-5
NEVER = -(2 ** 62)         # the query tick of an empty chunk slot


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
    """Runs a loaded policy one control tick at a time, with buffers allocated once."""

    def __init__(self, policy: LoadedPolicy, options: ChunkOptions = ChunkOptions()) -> None:
        meta = policy.metadata
        self.policy = policy
        self.execution = options.execution
        self.horizon = meta.action_horizon
        if options.replan_every > self.horizon:
            raise ConfigError(f'replan_every must be in [0, {self.horizon}] (0 = whole chunk), '
                              f'got {options.replan_every}')
        self.replan_every = options.replan_every or self.horizon
        self.observation = ObservationBuilder(meta.observation)
        self._module = optimized_for_inference(policy)
        self._obs = torch.from_numpy(self.observation.vector).unsqueeze(0)  # shares memory
        h, a = self.horizon, meta.action_size
        self.ensemble_decay = options.ensemble_decay
        self._chunks = np.zeros((h, h, a), np.float32)   # ring of chunks by query tick
        self._queried_at = np.full(h, NEVER, np.int64)   # the tick each chunk was queried at
        self._slots = np.arange(h)
        self._ages = np.zeros(h, np.int64)
        self._weights = np.zeros(h, np.float64)
        self._action = np.zeros(a, np.float64)
        self._tick = -1                                  # tick of the last step, -1: none
        self._chunk_tick = 0                             # chunk mode: tick of the chunk
        self.inferences = 0
        self.inference_s = 0.0                           # the last inference's duration

    def reset(self) -> None:
        """Start a new run: empty history, no chunk carried over (never replay old actions)."""
        self.observation.reset()
        self._tick = -1
        self._queried_at[:] = NEVER

    def infer(self) -> np.ndarray:
        """Run the model on the current observation vector; returns the chunk [H, A]."""
        started = time.perf_counter()
        with torch.inference_mode():
            out = self._module(self._obs)
        self.inferences += 1
        self.inference_s = time.perf_counter() - started
        return out[0].numpy()

    def step(self, fields: Sequence[np.ndarray], ticks: int = 1,
             lookahead: float = 0.0) -> np.ndarray:
        """Push this tick's state (one array per observed field) and return the target [A].

        ``ticks``: control periods since the previous step (more than 1 after missed ticks;
        ignored on the first step of a run). ``lookahead``: read the chunks this many periods
        later (linear interpolation between steps), to make up for the time from observing
        the state to the robot receiving the target. The returned array is reused on the
        next call; copy it to keep it.
        """
        if ticks < 1:
            raise ValueError(f'ticks must be >= 1, got {ticks}')
        if not 0.0 <= lookahead < self.horizon:
            raise ValueError(f'lookahead must be in [0, {self.horizon}), got {lookahead}')
        self.observation.push(fields)
        first = self._tick < 0
        tick = self._tick = 0 if first else self._tick + ticks
        h = self.horizon
        whole = int(lookahead)
        fraction = lookahead - whole
        if h == 1:
            self._action[:] = self.infer()[0]
        elif self.execution is ChunkExecution.CHUNK:
            if first or tick - self._chunk_tick >= self.replan_every:
                self._chunks[0] = self.infer()
                self._chunk_tick = tick
            i = min(tick - self._chunk_tick + whole, h - 1)
            chunk = self._chunks[0]
            self._action[:] = chunk[i] + fraction * (chunk[min(i + 1, h - 1)] - chunk[i])
        else:
            slot = tick % h
            self._chunks[slot] = self.infer()
            self._queried_at[slot] = tick
            ages, weights = self._ages, self._weights
            np.subtract(tick, self._queried_at, out=ages)      # >= h: stale or never queried
            # exp(-decay * i), i = 0 for the oldest prediction, is proportional to
            # exp(decay * age); predictions older than the horizon get no weight
            np.multiply(np.minimum(ages, h - 1), self.ensemble_decay, out=weights)
            np.exp(weights, out=weights)
            weights[ages >= h] = 0.0
            ages += whole
            np.minimum(ages, h - 1, out=ages)
            rows = self._chunks[self._slots, ages]
            if fraction:
                rows += fraction * (self._chunks[self._slots, np.minimum(ages + 1, h - 1)] - rows)
            np.dot(weights, rows, out=self._action)
            self._action /= weights.sum()
        return self._action

    def warmup(self, iterations: int) -> None:
        """Run inference on zeros so the first real tick does not pay for lazy initialization."""
        self.observation.vector[:] = 0.0
        for _ in range(iterations):
            self.infer()
        self.reset()
