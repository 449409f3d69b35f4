"""Inference on a background thread: one request at a time, the newest result kept.

The control tick submits a copy of the observation with the tick it was observed at and
carries on; the worker runs the module (torch releases the GIL while it computes) and leaves
the chunk for the tick to collect. A request of an older run (``generation``) is dropped on
collection, so a chunk computed before a reset is never executed.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class Finished:
    """A chunk [H, A] computed on the observation of ``observed_tick`` in ``seconds``."""

    chunk: np.ndarray
    observed_tick: int
    generation: int
    seconds: float


class BackgroundInference:
    """A worker thread running ``module`` on submitted observations [1, obs]."""

    def __init__(self, module: Callable[[torch.Tensor], torch.Tensor], obs_size: int) -> None:
        self._module = module
        self._obs = torch.zeros(1, obs_size)
        self._wake = threading.Condition()
        self._request: tuple[int, int] | None = None      # (observed tick, generation)
        self._finished: Finished | None = None
        self._busy = False
        self._closed = False
        self.error = ''                                    # the last failure, '' for none
        self._thread = threading.Thread(target=self._work, name='policy_inference',
                                        daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A request is queued or running."""
        return self._busy

    def submit(self, obs: np.ndarray, observed_tick: int, generation: int) -> bool:
        """Queue ``obs`` (copied) unless a request is in flight; False when busy."""
        with self._wake:
            if self._busy or self._closed:
                return False
            self._obs[0].copy_(torch.from_numpy(obs))
            self._request = (observed_tick, generation)
            self._busy = True
            self._wake.notify()
        return True

    def collect(self) -> Finished | None:
        """The result finished since the last call, if any (the tick never waits)."""
        with self._wake:
            finished, self._finished = self._finished, None
        return finished

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until no request is in flight (False on timeout); for shutdown and tests."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._busy, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout_s)

    def _work(self) -> None:
        while True:
            with self._wake:
                while self._request is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                observed_tick, generation = self._request
                self._request = None
                obs = self._obs.clone()
            started = time.perf_counter()
            try:
                with torch.inference_mode():
                    chunk = self._module(obs)[0].numpy().copy()
            except Exception as exc:  # noqa: BLE001 - the tick holds and reports it
                with self._wake:
                    self.error = f'inference failed: {exc}'
                    self._busy = False
                    self._wake.notify_all()
                continue
            seconds = time.perf_counter() - started
            with self._wake:
                self._finished = Finished(chunk, observed_tick, generation, seconds)
                self._busy = False
                self._wake.notify_all()
