"""Export a trained run as the policy artifact (runtime/artifact.py is the contract).

``export_run``: a run directory's checkpoint -> ``policy.pt`` (or ``policy.onnx``): the run's
Policy (processor + network, as trained) scripted and frozen (or exported to ONNX), checked
against the eager module on validation observations, and written atomically with its
metadata and sha256 sidecar.
``export_policy``: any module mapping raw observations to ``[B, H, A]`` targets.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from il_policy_node.errors import PipelineError, PolicyArtifactError
from il_policy_node.files import atomic_file, atomic_write, file_sha256
from il_policy_node.formats import POLICY_METADATA_FILE
from il_policy_node.pipeline.dataset.format import Dataset, load_dataset
from il_policy_node.pipeline.training.run_dir import load_run
from il_policy_node.pipeline.training.windows import input_groups, window_indices
from il_policy_node.policies.networks import network_passes
from il_policy_node.policies.processor import Policy, Processor, ProcessorLayout
from il_policy_node.policies.statistics import Statistics, with_std_floor
from il_policy_node.runtime.artifact import (
    PolicyMetadata,
    checksum_path,
    load_policy,
    quiet_torchscript,
)
from il_policy_node.runtime.onnx_backend import ONNX_SUFFIX, OnnxModule
from il_policy_node.runtime.ood import STATISTICS_KEY

_log = logging.getLogger(__name__)

CHECK_ATOL = 1e-5
ONNX_ROUNDING = 30.0        # ONNX may differ by this many times float32's own error
COST_CALLS = 50              # forwards timed for the metadata's inference cost ...
COST_BUDGET_S = 1.0          # ... or as many as fit in this time (at least 3)
MAX_CHECK_INPUTS = 2048
BACKENDS = ('torchscript', 'onnx')


def export_policy(policy: nn.Module, path: str | Path, metadata: PolicyMetadata, *,
                  check_inputs: np.ndarray | None = None, atol: float = CHECK_ATOL,
                  backend: str | None = None) -> Path:
    """Write ``policy`` (raw ``[B, obs]`` -> ``[B, H, A]``) as ``backend``; return the path.

    ``backend``: 'torchscript' or 'onnx' (default: onnx for a ``path`` ending in .onnx).
    TorchScript: scripted and frozen; ONNX: torch.onnx's exporter (pipeline/onnx_export.py).
    Before the file is published (atomically, with its sha256 sidecar), the exported module
    is compared with the eager one on ``check_inputs`` (raw observations; random ones when not
    given): max abs diff <= atol; for ONNX, <= atol + ONNX_ROUNDING x the float32 model's own
    error (its distance to the same model in float64): onnxruntime's convolutions round ~3 x
    more than torch's, and a diffusion policy's sampling loop amplifies rounding (a default
    one is 1e-3 from float64 in float32 already); an MLP or ACT stays within atol.
    The written file must pass the runtime's own loader.
    """
    path = Path(path)
    backend = backend or ('onnx' if path.suffix == ONNX_SUFFIX else 'torchscript')
    if backend not in BACKENDS:
        raise PolicyArtifactError(f'backend must be one of {list(BACKENDS)}, got {backend!r}')
    if (backend == 'onnx') != (path.suffix == ONNX_SUFFIX):
        wanted = ONNX_SUFFIX if backend == 'onnx' else '.pt'
        raise PolicyArtifactError(f'{path}: name a {backend} policy *{wanted} (the runtime '
                                  'picks the backend by the suffix)')
    obs_size = metadata.observation.size
    policy = policy.cpu().eval()
    inputs = torch.as_tensor(
        np.random.default_rng(0).normal(size=(16, obs_size)) if check_inputs is None
        else check_inputs, dtype=torch.float32).reshape(-1, obs_size)
    with torch.inference_mode():
        eager = policy(inputs)
    expected = (inputs.shape[0], metadata.action_horizon, metadata.action_size)
    if tuple(eager.shape) != expected:
        raise PolicyArtifactError(f'the policy gives {tuple(eager.shape)} for {inputs.shape[0]} '
                                  f'observations of {obs_size}, the metadata says {expected}')
    if backend == 'onnx':
        from il_policy_node.pipeline.onnx_export import onnx_bytes, onnx_model
        model = onnx_model(policy, obs_size)
        exported_module = OnnxModule(path, content=model.SerializeToString())
    else:
        with quiet_torchscript():
            exported_module = torch.jit.freeze(torch.jit.script(policy))
    with torch.inference_mode():
        exported = exported_module(inputs)
    diff = _max_abs(eager, exported)
    float32_error = _max_abs(eager, _in_float64(policy, inputs)) if backend == 'onnx' else 0.0
    tolerance = atol + ONNX_ROUNDING * float32_error
    if diff > tolerance:
        raise PolicyArtifactError(f'the {backend} module differs from the eager model by '
                                  f'{diff:.3g} > {tolerance:.3g}')
    metadata = replace(metadata, extra={**metadata.extra, 'backend': backend,
                                        'export_max_abs_diff': float(f'{diff:.3g}'),
                                        'export_tolerance': float(f'{tolerance:.3g}'),
                                        'inference': {
        **metadata.extra.get('inference', {}), **forward_us(exported_module, obs_size)}})
    if backend == 'onnx':
        atomic_write(path, onnx_bytes(model, metadata.to_json()))
    else:
        with atomic_file(path) as stream, quiet_torchscript():
            torch.jit.save(exported_module, stream,
                           _extra_files={POLICY_METADATA_FILE: metadata.to_json()})
    write_checksum(path)
    load_policy(path)
    _log.info('exported policy to %s (%s, max abs diff vs eager %.2g)', path, backend, diff)
    return path


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().nan_to_num(0.0).max()) if a.numel() else 0.0


def _in_float64(policy: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The policy's outputs computed in float64 (a copy; the policy stays float32)."""
    with torch.inference_mode():
        return copy.deepcopy(policy).double()(inputs.double())


def forward_us(module: Callable[[torch.Tensor], torch.Tensor], obs_size: int,
               calls: int = COST_CALLS, budget_s: float = COST_BUDGET_S) -> dict[str, float]:
    """``forward_us_p50`` and ``forward_us_p99`` of one forward at batch 1 on one CPU thread.

    ``calls`` timed forwards after 3 untimed ones (lazy initialization), fewer (at least 3)
    when they take longer than ``budget_s`` together.
    """
    threads = torch.get_num_threads()
    obs = torch.zeros(1, obs_size)
    times: list[float] = []
    try:
        torch.set_num_threads(1)
        with torch.inference_mode():
            for _ in range(3):
                module(obs)
            while len(times) < calls and (len(times) < 3 or sum(times) < budget_s):
                started = time.perf_counter()
                module(obs)
                times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    p50, p99 = np.percentile(np.asarray(times) * 1e6, [50, 99])
    return {'forward_us_p50': round(float(p50), 1), 'forward_us_p99': round(float(p99), 1)}


def write_checksum(path: Path) -> str:
    """Write ``<path>.sha256`` in sha256sum format; return the hex digest."""
    digest = file_sha256(path)
    atomic_write(checksum_path(path), f'{digest}  {path.name}\n')
    return digest


def raw_policy(network: nn.Module, metadata: PolicyMetadata) -> Policy:
    """``network`` on raw observations (an identity processor): ``[B, obs] -> [B, H, A]``.

    For networks whose weights were not trained on normalized data (benchmarks, tests).
    """
    spec = metadata.observation
    layout = ProcessorLayout(frame_size=spec.frame_size, history=spec.history)
    return Policy(Processor(layout, horizon=metadata.action_horizon,
                            action_size=metadata.action_size), network)


def validation_observations(dataset: Dataset, history: int,
                            limit: int = MAX_CHECK_INPUTS) -> np.ndarray:
    """Stacked observations of validation rows (training rows when there is no validation)."""
    episodes = dataset.episodes('val') or dataset.episodes('train')
    if not episodes:
        raise PipelineError(f'{dataset.path}: the dataset has no rows')
    index, _ = window_indices([e['start'] for _, e in episodes],
                              [e['length'] for _, e in episodes], history, 1)
    stacked = dataset.observations[index].reshape(len(index), -1)
    if len(stacked) > limit:
        stacked = stacked[np.linspace(0, len(stacked) - 1, limit).astype(int)]
    return stacked.astype(np.float32)


def observation_statistics(dataset: Dataset) -> dict[str, list[float]]:
    """Per frame column of the training rows: mean, std, min and max (runtime/ood.py).

    The std is the normalization's (floored per block, as training normalizes).
    """
    episodes = dataset.episodes('train') or dataset.episodes('val')
    rows = np.concatenate([np.arange(e['start'], e['start'] + e['length'])
                           for _, e in episodes])
    frames = dataset.observations[rows]
    stats = dataset.manifest['stats']['observation']
    floored = with_std_floor(Statistics(np.asarray(stats['mean'], np.float64),
                                        np.asarray(stats['std'], np.float64), len(rows)),
                             input_groups(dataset))
    return {'mean': floored.mean.tolist(), 'std': floored.std.tolist(),
            'min': frames.min(axis=0).astype(np.float64).tolist(),
            'max': frames.max(axis=0).astype(np.float64).tolist()}


def export_run(run_dir: str | Path, output: str | Path, *,
               dataset_dir: str | Path | None = None, checkpoint: str = 'best',
               backend: str | None = None,
               extra_metadata: Mapping[str, Any] | None = None) -> Path:
    """Export a run's checkpoint (``best`` or ``last``) as the artifact ``output`` (+ .sha256).

    The run's dataset (``dataset_dir`` when it moved) gives the validation observations the
    exported module is checked on; it must be the dataset the run was trained on. ``backend``
    as ``export_policy`` takes it.
    """
    run = load_run(run_dir, checkpoint=checkpoint)
    description = run.description
    dataset = load_dataset(dataset_dir or description.dataset)
    if dataset.fingerprint != description.dataset_fingerprint:
        raise PipelineError(f'{dataset.path}: fingerprint {dataset.fingerprint} differs from '
                            f'the one the run was trained on ({description.dataset_fingerprint})'
                            '; the dataset was rebuilt')
    train = description.train
    metadata = PolicyMetadata(
        joint_names=description.action_joints, observation=description.observation,
        action_horizon=train.horizon, control_rate_hz=description.control_rate_hz,
        dataset_fingerprint=description.dataset_fingerprint,
        extra={'run': str(Path(run_dir).resolve()), 'dataset': str(dataset.path),
               'checkpoint': checkpoint, 'epoch': run.epoch, 'seed': train.seed,
               'model': description.network['family'], 'network': dict(description.network),
               'inference': {'network_passes': network_passes(description.network)},
               STATISTICS_KEY: observation_statistics(dataset),
               **train.layout_options(), **(extra_metadata or {})})
    return export_policy(run.policy, output, metadata, backend=backend,
                         check_inputs=validation_observations(dataset, train.history))
