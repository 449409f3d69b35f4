"""Export a trained model as the policy artifact (see core/artifact.py for the contract)."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from il_policy_node.core.artifact import (
    METADATA_FILE,
    PolicyMetadata,
    load_policy,
    quiet_torchscript,
    write_checksum,
)
from il_policy_node.core.observation import ObservationSpec

_log = logging.getLogger(__name__)

MIN_STD = 1e-6


class NormalizedPolicy(nn.Module):
    """Wraps a model on normalized data so the artifact maps raw observations to raw targets.

    The wrapped model maps ``[B, obs_size]`` (normalized) to ``[B, H * A]`` or ``[B, H, A]``
    (normalized); statistics are buffers, so they are saved inside the TorchScript file.
    With ``reference_columns`` (relative actions) the model predicts differences to those raw
    observation columns (the newest positions of the action joints), which are added back.
    With ``input_differences`` (relative inputs) each pair's first column is replaced by its
    difference to the second (e.g. goal - position) before normalization.
    """

    def __init__(self, model: nn.Module, *, obs_mean: np.ndarray, obs_std: np.ndarray,
                 action_mean: np.ndarray, action_std: np.ndarray, action_horizon: int,
                 action_size: int, reference_columns: tuple[int, ...] = (),
                 input_differences: tuple[tuple[int, int], ...] = ()) -> None:
        super().__init__()
        self.model = model
        self.horizon = action_horizon
        self.action_size = action_size
        self.register_buffer('obs_mean', _as_tensor(obs_mean))
        self.register_buffer('obs_std', _as_tensor(obs_std).clamp_min(MIN_STD))
        self.register_buffer('action_mean', _as_tensor(action_mean))
        self.register_buffer('action_std', _as_tensor(action_std).clamp_min(MIN_STD))
        self.register_buffer('reference', torch.tensor(list(reference_columns),
                                                       dtype=torch.long))
        self.register_buffer('differenced', torch.tensor([c for c, _ in input_differences],
                                                         dtype=torch.long))
        self.register_buffer('subtracted', torch.tensor([p for _, p in input_differences],
                                                        dtype=torch.long))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        inputs = obs
        if self.differenced.numel() > 0:
            inputs = obs.index_copy(1, self.differenced, obs.index_select(1, self.differenced)
                                    - obs.index_select(1, self.subtracted))
        normalized = (inputs - self.obs_mean) / self.obs_std
        out = self.model(normalized).reshape(obs.shape[0], self.horizon, self.action_size)
        out = out * self.action_std + self.action_mean
        if self.reference.numel() > 0:
            out = out + obs.index_select(1, self.reference).unsqueeze(1)
        return out


def _as_tensor(values: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32)).reshape(-1).clone()


def export_policy(model: nn.Module, path: str | Path, *,
                  joint_names: list[str] | tuple[str, ...], observation: ObservationSpec,
                  action_horizon: int, control_rate_hz: float,
                  obs_mean: np.ndarray | None = None, obs_std: np.ndarray | None = None,
                  action_mean: np.ndarray | None = None, action_std: np.ndarray | None = None,
                  reference_columns: tuple[int, ...] = (),
                  input_differences: tuple[tuple[int, int], ...] = (),
                  dataset_fingerprint: str = '',
                  extra_metadata: Mapping[str, Any] | None = None,
                  check_inputs: np.ndarray | None = None, atol: float = 1e-5) -> Path:
    """Script, freeze and write ``model`` with normalization and metadata; return the path.

    Statistics default to identity (mean 0, std 1). ``reference_columns``: the model predicts
    differences to these observation columns, one per action joint; ``input_differences``:
    (column, subtracted column) pairs the model sees as differences (see NormalizedPolicy).
    Before the file is published (atomically,
    with its sha256 sidecar), the scripted module is compared with the eager one on
    ``check_inputs`` (raw observations; random ones when not given): max abs diff <= atol.
    """
    path = Path(path)
    metadata = PolicyMetadata(
        joint_names=tuple(joint_names), observation=observation, action_horizon=action_horizon,
        control_rate_hz=float(control_rate_hz), dataset_fingerprint=dataset_fingerprint,
        extra=dict(extra_metadata or {}))
    obs_size, action_size = observation.size, metadata.action_size
    chunk_size = action_horizon * action_size
    wrapper = NormalizedPolicy(
        model.cpu().eval(),
        obs_mean=np.zeros(obs_size) if obs_mean is None else obs_mean,
        obs_std=np.ones(obs_size) if obs_std is None else obs_std,
        action_mean=np.zeros(action_size) if action_mean is None else action_mean,
        action_std=np.ones(action_size) if action_std is None else action_std,
        action_horizon=action_horizon, action_size=action_size,
        reference_columns=tuple(reference_columns),
        input_differences=tuple(input_differences)).eval()
    if reference_columns and (len(reference_columns) != action_size or
                              not all(0 <= c < obs_size for c in reference_columns)):
        raise ValueError(f'reference_columns {list(reference_columns)} must be {action_size} '
                         f'observation columns (of {obs_size})')
    if not all(0 <= c < obs_size and 0 <= p < obs_size and c != p for c, p in input_differences):
        raise ValueError(f'input_differences {[list(p) for p in input_differences]} must be '
                         f'pairs of two different observation columns (of {obs_size})')
    for name, size, want in (('obs_mean', wrapper.obs_mean.numel(), obs_size),
                             ('obs_std', wrapper.obs_std.numel(), obs_size)):
        if size != want:
            raise ValueError(f'{name} has {size} values, observation size is {want}')
    for name in ('action_mean', 'action_std'):
        size = getattr(wrapper, name).numel()
        if size not in (action_size, chunk_size):
            raise ValueError(f'{name} has {size} values, expected {action_size} or {chunk_size}')
    if wrapper.action_mean.numel() == chunk_size:
        wrapper.action_mean = wrapper.action_mean.reshape(action_horizon, action_size)
        wrapper.action_std = wrapper.action_std.reshape(action_horizon, action_size)

    with quiet_torchscript():
        scripted = torch.jit.freeze(torch.jit.script(wrapper))
    inputs = torch.as_tensor(
        np.random.default_rng(0).normal(size=(16, obs_size)) if check_inputs is None
        else check_inputs, dtype=torch.float32).reshape(-1, obs_size)
    with torch.inference_mode():
        eager, exported = wrapper(inputs), scripted(inputs)
    diff = float((eager - exported).abs().nan_to_num(0.0).max()) if inputs.numel() else 0.0
    if diff > atol:
        raise ValueError(f'exported module differs from the eager model by {diff:.3g} > {atol}')

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{path.name}.', dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with quiet_torchscript():
            torch.jit.save(scripted, str(tmp),
                           _extra_files={METADATA_FILE: metadata.to_json()})
        with open(tmp, 'rb') as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    write_checksum(path)
    load_policy(path)  # the file must pass the runtime's own validation
    _log.info('exported policy to %s (max abs diff vs eager %.2g)', path, diff)
    return path
