"""A policy module as ONNX (torch.onnx's torch.export-based exporter), with our metadata inside.

The graph takes ``observation [batch, obs_size]`` and gives ``actions [batch, H, A]`` with a
dynamic batch; a generative family's sampling loop is unrolled over its fixed step count,
its starting noise a constant (the buffer drawn from ``noise_seed``), so ONNX gives the chunk
TorchScript gives.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator

import torch
from torch import nn

from il_policy_node.errors import PolicyArtifactError
from il_policy_node.runtime.onnx_backend import INPUT_NAME, METADATA_PROP, OUTPUT_NAME

MAX_BATCH = 4096
_EXPORTER_LOGGERS = ('torch.onnx', 'torch.export', 'torch._export', 'onnxscript')


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's notices (skipped torchvision ops, constant folding) off the console."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter('ignore')
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def onnx_model(policy: nn.Module, obs_size: int):
    """The ONNX ModelProto of ``policy`` (raw ``[B, obs]`` -> ``[B, H, A]``, B dynamic)."""
    example = torch.zeros(2, obs_size)       # batch 2: a batch of 1 would be specialized
    batch = torch.export.Dim('batch', min=1, max=MAX_BATCH)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(policy, (example,), dynamo=True,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=({0: batch},), verbose=False)
    except ModuleNotFoundError:
        raise
    except Exception as exc:   # the exporter raises many kinds for what it cannot trace
        detail = ' '.join(str(exc).split())[:300]
        raise PolicyArtifactError(f'the policy cannot be exported to ONNX: {detail}') from None
    return program.model_proto


def onnx_bytes(model, metadata_json: str) -> bytes:
    """The model's file content with our metadata in its metadata_props."""
    import onnx
    onnx.helper.set_model_props(model, {METADATA_PROP: metadata_json})
    return model.SerializeToString()
