"""The one exception root of il_policy_node and its kinds.

Every error that is about the user's input (a file, a parameter, a bag, a model) is an
``IlPolicyError`` whose message names the thing and the problem in one line: the CLI prints it
and exits 1, a node logs it and refuses the request. Anything else is a bug and shows its
traceback.
"""
from __future__ import annotations


class IlPolicyError(Exception):
    """A problem with what the user gave us; the message names it (file, key, joint, topic)."""


class ConfigError(IlPolicyError):
    """A bad setting: a node parameter, a key of a YAML config, a command-line option."""


class PolicyArtifactError(IlPolicyError):
    """A policy file that cannot be used (missing, not TorchScript, corrupt, bad metadata)."""


class StateError(IlPolicyError):
    """A joint state message that cannot be used (a joint listed twice, sizes that differ)."""


class BagError(IlPolicyError):
    """A bag that cannot be read or used."""


class PipelineError(IlPolicyError):
    """A dataset, run directory or checkpoint of the offline pipeline that cannot be used."""


class DatasetError(PipelineError):
    """A dataset that cannot be built or read."""


class CheckpointError(PipelineError):
    """A training checkpoint that is missing, damaged, or not one of ours."""


class RecordingError(IlPolicyError):
    """A recording that cannot start, be written or be closed; or a recorder that fails."""


class MocapError(IlPolicyError):
    """A motion-capture clip, skeleton or retarget map that cannot be used."""


class SimError(IlPolicyError):
    """A simulated robot model or command that cannot be used."""
