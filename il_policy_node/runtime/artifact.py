"""The policy artifact: one file with normalization inside and metadata beside it.

This is the one contract between training and runtime. ``policy.pt`` is a TorchScript archive
(a zip) whose module maps a batch of observation vectors ``[B, obs_size]`` to a batch of action
chunks ``[B, action_horizon, len(joint_names)]`` of joint position targets in radians (meters
for prismatic joints). ``metadata.json`` travels inside the archive (``_extra_files``), and
``policy.pt.sha256`` beside it holds the checksum in ``sha256sum`` format. ``policy.onnx`` is
the same module and metadata as ONNX (runtime/onnx_backend.py); the suffix picks the backend.
"""
from __future__ import annotations

import contextlib
import json
import logging
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from il_policy_node.errors import IlPolicyError, PolicyArtifactError
from il_policy_node.files import file_sha256
from il_policy_node.formats import (
    CHECKSUM_SUFFIX,
    POLICY_FORMAT_VERSION,
    POLICY_METADATA_FILE,
    POLICY_METADATA_KEYS,
)
from il_policy_node.runtime.observation import ObservationSpec
from il_policy_node.runtime.onnx_backend import ONNX_SUFFIX, OnnxModule

_log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_torchscript():
    """Silence torch's deprecation notices for TorchScript: it is this artifact's format."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=DeprecationWarning, module=r'torch\.jit')
        yield


@dataclass(frozen=True)
class PolicyMetadata:
    """What the runtime must know about a policy, stored as JSON inside policy.pt."""

    joint_names: tuple[str, ...]
    observation: ObservationSpec
    action_horizon: int
    control_rate_hz: float
    dataset_fingerprint: str
    torch_version: str = torch.__version__
    format_version: int = POLICY_FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'joint_names', tuple(self.joint_names))
        if not self.joint_names or any(not isinstance(j, str) or not j for j in self.joint_names):
            raise PolicyArtifactError(f'joint_names must be non-empty strings: '
                                      f'{self.joint_names}')
        duplicates = sorted({j for j in self.joint_names if self.joint_names.count(j) > 1})
        if duplicates:
            raise PolicyArtifactError(f'duplicate action joint names: {duplicates}')
        if not isinstance(self.action_horizon, int) or self.action_horizon < 1:
            raise PolicyArtifactError(
                f'action_horizon must be an integer >= 1, got {self.action_horizon!r}')
        if not isinstance(self.control_rate_hz, (int, float)) or not self.control_rate_hz > 0:
            raise PolicyArtifactError(f'control_rate_hz must be > 0, got '
                                      f'{self.control_rate_hz!r}')
        if not isinstance(self.dataset_fingerprint, str):
            raise PolicyArtifactError('dataset_fingerprint must be a string')
        if self.format_version != POLICY_FORMAT_VERSION:
            raise PolicyArtifactError(
                f'format_version {self.format_version!r} is not supported (this runtime reads '
                f'version {POLICY_FORMAT_VERSION})')

    @property
    def action_size(self) -> int:
        return len(self.joint_names)

    def to_json(self) -> str:
        return json.dumps({
            'format_version': self.format_version,
            'joint_names': list(self.joint_names),
            'observation': self.observation.to_dict(),
            'action_horizon': self.action_horizon,
            'control_rate_hz': float(self.control_rate_hz),
            'dataset_fingerprint': self.dataset_fingerprint,
            'torch_version': self.torch_version,
            'extra': dict(self.extra),
        }, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'PolicyMetadata':
        """Parse and validate; PolicyArtifactError names the first problem."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyArtifactError(f'metadata is not valid JSON: {exc}') from None
        if not isinstance(data, dict):
            raise PolicyArtifactError('metadata must be a JSON object')
        missing = [key for key in POLICY_METADATA_KEYS if key not in data]
        if missing:
            raise PolicyArtifactError(f'metadata is missing {missing}')
        if not isinstance(data['joint_names'], list):
            raise PolicyArtifactError('metadata joint_names must be a list')
        if not isinstance(data['observation'], dict):
            raise PolicyArtifactError('metadata observation must be an object')
        try:
            observation = ObservationSpec.from_dict(data['observation'])
        except IlPolicyError as exc:
            raise PolicyArtifactError(str(exc)) from None
        return cls(
            format_version=data['format_version'],
            joint_names=tuple(data['joint_names']),
            observation=observation,
            action_horizon=data['action_horizon'],
            control_rate_hz=data['control_rate_hz'],
            dataset_fingerprint=data['dataset_fingerprint'],
            torch_version=str(data['torch_version']),
            extra=data.get('extra', {}),
        )


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy: the module (TorchScript or ONNX), its metadata, the file's checksum."""

    module: torch.jit.ScriptModule | OnnxModule
    metadata: PolicyMetadata
    sha256: str
    path: Path

    @property
    def backend(self) -> str:
        return 'onnx' if isinstance(self.module, OnnxModule) else 'torchscript'


def checksum_path(path: Path) -> Path:
    """``<path>.sha256``, the sidecar in sha256sum format."""
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _verify_checksum(path: Path) -> str:
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        raise PolicyArtifactError(f'{path}: checksum file {sidecar.name} is missing')
    words = sidecar.read_text().split()
    if not words or len(words[0]) != 64:
        raise PolicyArtifactError(f'{sidecar}: not a sha256sum line')
    actual = file_sha256(path)
    if words[0].lower() != actual:
        raise PolicyArtifactError(
            f'{path}: sha256 mismatch (file {actual[:12]}..., {sidecar.name} says '
            f'{words[0][:12]}...); the file changed or is corrupt')
    return actual


def _refuse_pickle(path: Path) -> bytes:
    """The first bytes of ``path``; PolicyArtifactError for a pickle, which is never loaded."""
    with open(path, 'rb') as stream:
        head = stream.read(4)
    if head[:1] == b'\x80':
        raise PolicyArtifactError(
            f'{path}: is a Python pickle, not a policy; refused without loading it '
            '(export the policy with il-policy export)')
    return head


def _check_archive(path: Path) -> None:
    """Refuse anything that is not an intact TorchScript zip, without unpickling it."""
    head = _refuse_pickle(path)
    if head != b'PK\x03\x04':
        raise PolicyArtifactError(f'{path}: not a TorchScript archive (no zip header)')
    if not zipfile.is_zipfile(path):
        raise PolicyArtifactError(f'{path}: truncated or corrupt archive (no zip end record)')
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise PolicyArtifactError(f'{path}: truncated or corrupt archive ({exc})') from None
    if bad is not None:
        raise PolicyArtifactError(f'{path}: corrupt archive member {bad}')
    if not any(name.endswith('/constants.pkl') for name in names) or \
            not any('/code/' in name for name in names):
        raise PolicyArtifactError(
            f'{path}: a zip archive but not TorchScript (torch.save checkpoint?); '
            'export it with torch.jit')


def load_policy(path: str | Path, *, verify_checksum: bool = True,
                map_location: str = 'cpu', threads: int = 1) -> LoadedPolicy:
    """Load and validate ``policy.pt`` or ``policy.onnx``; PolicyArtifactError names the problem.

    ``threads``: onnxruntime's intra-op threads (TorchScript follows torch.set_num_threads).
    """
    path = Path(path)
    if not path.is_file():
        raise PolicyArtifactError(f'{path}: no such file')
    if path.suffix == ONNX_SUFFIX:
        _refuse_pickle(path)
        digest = _verify_checksum(path) if verify_checksum else file_sha256(path)
        module = OnnxModule(path, threads=threads)
        text, where = module.metadata_json, 'the ONNX metadata_props'
    else:
        _check_archive(path)
        digest = _verify_checksum(path) if verify_checksum else file_sha256(path)
        module, text = _load_torchscript(path, map_location)
        where = 'the archive'
    if not text:
        raise PolicyArtifactError(f'{path}: {POLICY_METADATA_FILE} is missing from {where}')
    try:
        metadata = PolicyMetadata.from_json(text)
    except (PolicyArtifactError, TypeError) as exc:
        raise PolicyArtifactError(f'{path}: malformed {POLICY_METADATA_FILE}: {exc}') from None
    module.eval()
    _check_io(path, module, metadata)
    _log.info('loaded policy %s (sha256 %s..., %d joints, horizon %d)', path, digest[:12],
              metadata.action_size, metadata.action_horizon)
    return LoadedPolicy(module=module, metadata=metadata, sha256=digest, path=path)


def _load_torchscript(path: Path, map_location: str) -> tuple[torch.jit.ScriptModule, str]:
    extra = {POLICY_METADATA_FILE: ''}
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError and friends for broken archives
        raise PolicyArtifactError(f'{path}: TorchScript failed to load: {exc}') from None
    return module, extra[POLICY_METADATA_FILE]


def _check_io(path: Path, module: torch.jit.ScriptModule | OnnxModule,
              metadata: PolicyMetadata) -> None:
    obs_size = metadata.observation.size
    try:
        with torch.inference_mode():
            out = module(torch.zeros(1, obs_size))
    except Exception as exc:
        raise PolicyArtifactError(
            f'{path}: model rejects an observation of size {obs_size} (from metadata): '
            f'{str(exc).strip().splitlines()[-1]}') from None
    expected = (1, metadata.action_horizon, metadata.action_size)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PolicyArtifactError(
            f'{path}: model output shape {got} does not match metadata {expected} '
            '(batch, action_horizon, joints)')
