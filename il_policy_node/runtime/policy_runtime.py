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

Asynchronous inference (``inference: async``, or ``auto`` when the warm-up inference takes
more than a quarter of the period): the model runs on a background thread on the newest
observation while the ticks keep executing the chunks they have. A finished chunk is spliced
in at the tick it arrives, read from the tick it was observed at (the prefix that elapsed
during inference is skipped): in ensemble mode it joins the ensemble with its observation
tick, in chunk mode it fades in over SEAM_TICKS ticks. ``step`` returns None when no chunk
covers the tick (the first ticks of a run, or inference slower than the horizon):
``hold_reason`` says why.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np
import torch

from il_policy_node.errors import ConfigError
from il_policy_node.runtime.artifact import LoadedPolicy, quiet_torchscript
from il_policy_node.runtime.background import BackgroundInference
from il_policy_node.runtime.chunks import (
    AUTO_ASYNC_FRACTION,
    SEAM_TICKS,
    ChunkExecution,
    ChunkOptions,
    InferenceMode,
)
from il_policy_node.runtime.observation import ObservationBuilder

_log = logging.getLogger(__name__)
OPTIMIZED_ATOL = 1e-5
NEVER = -(2 ** 62)         # the query tick of an empty chunk slot


def optimized_for_inference(policy: LoadedPolicy) -> Callable[[torch.Tensor], torch.Tensor]:
    """The module after torch's inference passes (fused, prepacked linear layers).

    Used only when its outputs match the artifact's within OPTIMIZED_ATOL; otherwise the
    artifact's module runs as exported. An ONNX module is onnxruntime's (optimized on load).
    """
    module = policy.module
    if not isinstance(module, torch.jit.ScriptModule):
        return module
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
        self._chunk_tick = NEVER                         # chunk mode: tick of the chunk
        self.inferences = 0                              # of runs (warm-up not counted)
        self.inference_s = 0.0                           # the last inference's duration
        self.inference_mode = options.inference
        self.period_s = 1.0 / meta.control_rate_hz
        self._background: BackgroundInference | None = None
        self._generation = 0                             # runs since construction
        self._previous_chunk = np.zeros((h, a), np.float32)   # chunk mode: fading out
        self._fading = np.zeros(a, np.float64)                 # its row at this tick
        self._previous_tick = NEVER
        self._spliced_at = NEVER
        self._late_in_run = False     # async: a result of this run came after its chunk
        self.late_inferences = 0      # async: results that arrived after their whole chunk
        self.hold_reason = ''         # why the last step returned None

    @property
    def asynchronous(self) -> bool:
        return self._background is not None

    def start_background(self, module: Callable[[torch.Tensor], torch.Tensor] | None = None
                         ) -> BackgroundInference:
        """Run inference on a background thread from now on (idempotent); returns it.

        ``module``: what the thread runs instead of the policy's module (tests gate it).
        """
        if self._background is None:
            self._background = BackgroundInference(module or self._module,
                                                   self.policy.metadata.observation.size)
        return self._background

    def close(self) -> None:
        """Stop the background thread, if any."""
        if self._background is not None:
            self._background.close()
            self._background = None

    def reset(self) -> None:
        """Start a new run: empty history, no chunk carried over (never replay old actions)."""
        self.observation.reset()
        self._tick = -1
        self._queried_at[:] = NEVER
        self._generation += 1
        self._chunk_tick = NEVER
        self._previous_tick = NEVER
        self._spliced_at = NEVER
        self._late_in_run = False

    def infer(self) -> np.ndarray:
        """Run the model on the current observation vector; returns the chunk [H, A]."""
        started = time.perf_counter()
        with torch.inference_mode():
            out = self._module(self._obs)
        self.inferences += 1
        self.inference_s = time.perf_counter() - started
        return out[0].numpy()

    def step(self, fields: Sequence[np.ndarray], ticks: int = 1,
             lookahead: float = 0.0) -> np.ndarray | None:
        """Push this tick's state (one array per observed field) and return the target [A].

        ``ticks``: control periods since the previous step (more than 1 after missed ticks;
        ignored on the first step of a run). ``lookahead``: read the chunks this many periods
        later (linear interpolation between steps), to make up for the time from observing
        the state to the robot receiving the target. The returned array is reused on the
        next call; copy it to keep it. None (asynchronous inference only): no chunk covers
        this tick yet or any more (``hold_reason``).
        """
        if ticks < 1:
            raise ValueError(f'ticks must be >= 1, got {ticks}')
        if not 0.0 <= lookahead < self.horizon:
            raise ValueError(f'lookahead must be in [0, {self.horizon}), got {lookahead}')
        self.observation.push(fields)
        first = self._tick < 0
        tick = self._tick = 0 if first else self._tick + ticks
        if self._background is not None:
            return self._step_async(tick, lookahead)
        if self.horizon == 1:
            self._action[:] = self.infer()[0]
        elif self.execution is ChunkExecution.CHUNK:
            if first or tick - self._chunk_tick >= self.replan_every:
                self._chunks[0] = self.infer()
                self._chunk_tick = tick
            self._read_chunk(self._chunks[0], tick - self._chunk_tick + lookahead, self._action)
        else:
            slot = tick % self.horizon
            self._chunks[slot] = self.infer()
            self._queried_at[slot] = tick
            self._ensembled(tick, lookahead)
        return self._action

    def _read_chunk(self, chunk: np.ndarray, at: float, out: np.ndarray) -> None:
        """``chunk`` at fractional index ``at`` (clamped to its last row), into ``out``."""
        h = self.horizon
        i = min(int(at), h - 1)
        fraction = at - int(at) if i < h - 1 else 0.0
        out[:] = chunk[i] + fraction * (chunk[min(i + 1, h - 1)] - chunk[i])

    def _ensembled(self, tick: int, lookahead: float) -> bool:
        """The ensemble of the chunks covering ``tick`` into the action; False when none."""
        h = self.horizon
        whole = int(lookahead)
        fraction = lookahead - whole
        ages, weights = self._ages, self._weights
        np.subtract(tick, self._queried_at, out=ages)      # >= h: stale or never queried
        # exp(-decay * i), i = 0 for the oldest prediction, is proportional to
        # exp(decay * age); predictions older than the horizon get no weight
        np.multiply(np.minimum(ages, h - 1), self.ensemble_decay, out=weights)
        np.exp(weights, out=weights)
        weights[(ages >= h) | (ages < 0)] = 0.0
        total = weights.sum()
        if total == 0.0:
            return False
        ages += whole
        np.clip(ages, 0, h - 1, out=ages)
        rows = self._chunks[self._slots, ages]
        if fraction:
            rows += fraction * (self._chunks[self._slots, np.minimum(ages + 1, h - 1)] - rows)
        np.dot(weights, rows, out=self._action)
        self._action /= total
        return True

    def _step_async(self, tick: int, lookahead: float) -> np.ndarray | None:
        background = self._background
        finished = background.collect()
        if finished is not None and finished.generation == self._generation:
            self.inferences += 1
            self.inference_s = finished.seconds
            self._splice(finished.chunk, finished.observed_tick, tick)
        if not background.busy and self._due(tick):
            background.submit(self.observation.vector, tick, self._generation)
        h = self.horizon
        if self.execution is ChunkExecution.ENSEMBLE and h > 1:
            if self._ensembled(tick, lookahead):
                return self._action
        elif tick - self._chunk_tick < h:
            self._read_chunk(self._chunks[0], tick - self._chunk_tick + lookahead, self._action)
            faded = tick - self._spliced_at
            if faded < SEAM_TICKS and tick - self._previous_tick < h:
                weight = (faded + 1) / (SEAM_TICKS + 1)
                old = self._fading
                self._read_chunk(self._previous_chunk, tick - self._previous_tick + lookahead,
                                 old)
                self._action *= weight
                old *= 1.0 - weight
                self._action += old
            return self._action
        self.hold_reason = background.error or (
            'waiting for the first chunk' if self._spliced_at == NEVER and not self._late_in_run
            else
            f'no chunk covers this tick: the last inference took {self.inference_s * 1e3:.0f} '
            f'ms, the chunk lasts {h * self.period_s * 1e3:.0f} ms')
        return None

    def _due(self, tick: int) -> bool:
        """Async: start an inference now? Ensemble: always; chunk: before the chunk runs out."""
        if self.execution is ChunkExecution.ENSEMBLE or self._chunk_tick == NEVER:
            return True
        latency = int(np.ceil(self.inference_s / self.period_s))
        return tick - self._chunk_tick + latency >= self.replan_every

    def _splice(self, chunk: np.ndarray, observed: int, tick: int) -> None:
        """A finished chunk into the store, read from its observation tick on."""
        h = self.horizon
        if tick - observed >= h:
            self.late_inferences += 1        # its whole chunk elapsed during inference
            self._late_in_run = True
            return
        if self.execution is ChunkExecution.ENSEMBLE and h > 1:
            slot = observed % h
            self._chunks[slot] = chunk
            self._queried_at[slot] = observed
        else:
            self._previous_chunk[:] = self._chunks[0]
            self._previous_tick = self._chunk_tick
            self._chunks[0] = chunk
            self._chunk_tick = observed
        self._spliced_at = tick

    def warmup(self, iterations: int) -> None:
        """Run inference on zeros so the first real tick does not pay for lazy initialization.

        Then chooses where inference runs: with ``inference: auto``, on a background thread
        when the median warm-up inference exceeds AUTO_ASYNC_FRACTION of the period.
        """
        self.observation.vector[:] = 0.0
        times = []
        for _ in range(iterations):
            self.infer()
            times.append(self.inference_s)
        self.reset()
        self.inferences = 0
        slow = bool(times) and float(np.median(times)) > AUTO_ASYNC_FRACTION * self.period_s
        if self.inference_mode is InferenceMode.ASYNC and self.horizon == 1:
            raise ConfigError('inference async needs an action chunk (horizon > 1) to execute '
                              'while the next one is computed; this policy has horizon 1')
        if self.inference_mode is InferenceMode.ASYNC or \
                (self.inference_mode is InferenceMode.AUTO and slow and self.horizon > 1):
            self.start_background()
        elif slow and self.horizon == 1:
            _log.warning('inference takes %.1f ms of a %.1f ms period and the policy has no '
                         'chunk to run meanwhile (horizon 1): running it in the tick',
                         float(np.median(times)) * 1e3, self.period_s * 1e3)
