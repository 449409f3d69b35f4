"""The ONNX backend: ``policy.onnx`` run by onnxruntime behind the same call as TorchScript.

The file holds the same module (processor + network, raw observations ``[B, obs_size]`` ->
targets ``[B, action_horizon, joints]``) and the same metadata JSON, in the model's
metadata_props under METADATA_PROP. ``OnnxModule`` is called with a torch tensor and returns
one, so the runtime, its background thread and the safety layer do not know which backend
runs. onnxruntime is imported only when an ONNX policy is loaded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from il_policy_node.errors import PolicyArtifactError

ONNX_SUFFIX = '.onnx'
METADATA_PROP = 'il_policy_node.metadata'
INPUT_NAME = 'observation'
OUTPUT_NAME = 'actions'


class OnnxModule:
    """An onnxruntime session on the CPU, callable as the TorchScript module is."""

    def __init__(self, path: Path, *, threads: int = 1, content: bytes | None = None) -> None:
        """Run the model in ``path`` (or ``content``, the bytes of a file still to write)."""
        try:
            import onnxruntime
        except ModuleNotFoundError:
            raise PolicyArtifactError(f'{path}: an ONNX policy needs the Python package '
                                      'onnxruntime (pip install onnxruntime)') from None
        options = onnxruntime.SessionOptions()
        self.threads = threads
        options.intra_op_num_threads = threads      # small models at 50-200 Hz stutter with more
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(
                str(path) if content is None else content, options,
                providers=['CPUExecutionProvider'])
        except Exception as exc:   # onnxruntime raises its own classes for bad files
            raise PolicyArtifactError(f'{path}: ONNX model failed to load: '
                                      f'{" ".join(str(exc).split())[:300]}') from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise PolicyArtifactError(f'{path}: the ONNX model has {len(inputs)} inputs, a '
                                      'policy has one (the observation)')
        self._input = inputs[0].name
        self.metadata_json = self._session.get_modelmeta().custom_metadata_map.get(
            METADATA_PROP, '')

    def __call__(self, observation: torch.Tensor) -> torch.Tensor:
        obs = np.ascontiguousarray(observation.detach().numpy(), dtype=np.float32)
        return torch.from_numpy(self._session.run(None, {self._input: obs})[0])

    def eval(self) -> 'OnnxModule':
        return self
