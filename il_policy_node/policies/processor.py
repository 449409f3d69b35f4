"""The policy processor: raw observations in, normalized tensors to the network, raw targets out.

A policy is ``Policy(processor, network)``. The processor is one torch module, built once from
the dataset statistics when training starts, applied to every training batch, and scripted as
it is into the artifact, so training and the robot compute the same thing:

- ``encode(obs [B, k*F])``: frame by frame, input differences (a column minus another, e.g.
  goal - position: relative inputs), then ``(x - mean) / std``, then the columns the network
  sees (all, or all but the absolute positions); ``[B, C]``. Training applies the same steps
  (``encode_frames``, ``scale_actions``, ``action_offsets``) to the dataset's rows once.
- ``decode(out [B, H*A], obs)``: ``out * std + mean`` per action joint, plus the newest
  observed position of each action joint (relative actions); ``[B, H, A]`` joint targets.
- ``targets(chunk [B, H, A], obs)``: the inverse of ``decode``: what the network should output
  for a demonstrated chunk; ``[B, H*A]``.

``ProcessorLayout`` says which frame columns play which role, from the observation spec and the
training options; statistics are per frame column (tiled over the history here).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from il_policy_node.errors import ConfigError
from il_policy_node.policies.statistics import Statistics, normalization_std
from il_policy_node.runtime.observation import ObservationSpec, StateField


@dataclass(frozen=True)
class ProcessorLayout:
    """The role of each column of one observation frame (see the module doc)."""

    frame_size: int
    history: int
    reference: tuple[int, ...] = ()                    # per action joint (relative actions)
    differences: tuple[tuple[int, int], ...] = ()      # (column, subtracted column)
    hidden: tuple[int, ...] = ()                       # columns the network does not see

    @classmethod
    def plan(cls, spec: ObservationSpec, action_joints: Sequence[str], *,
             relative_actions: bool = False, relative_inputs: bool = False,
             absolute_positions: bool = True) -> 'ProcessorLayout':
        """The layout for these options; ConfigError names what the observation lacks."""
        positions = spec.position_columns()
        reference: tuple[int, ...] = ()
        if relative_actions:
            if not positions:
                raise ConfigError(
                    'relative_actions needs the observed positions, the observation has '
                    f'{[f.value for f in spec.fields]}')
            missing = [j for j in action_joints if j not in positions]
            if missing:
                raise ConfigError(f'relative_actions needs observed positions of the action '
                                  f'joints; {missing} are not observed')
            reference = tuple(positions[j] for j in action_joints)
        differences: tuple[tuple[int, int], ...] = ()
        if relative_inputs:
            pairs = []
            for topic, field, start, joints in spec.blocks():
                if topic is not None and field is StateField.POSITION:
                    pairs += [(start + i, positions[j]) for i, j in enumerate(joints)
                              if j in positions]
            if not pairs:
                inputs = [(e.topic, [f.value for f in e.fields], list(e.joints))
                          for e in spec.extra]
                raise ConfigError(
                    'relative_inputs needs a further observed topic with positions of observed '
                    f'joints (e.g. a goal pose); the further inputs are {inputs}')
            differences = tuple(pairs)
        hidden: tuple[int, ...] = ()
        if not absolute_positions:
            hidden = tuple(sorted(positions.values()))
            if len(hidden) == spec.frame_size:
                raise ConfigError('absolute_positions: false leaves the network no input: the '
                                  'observation holds only positions (observe velocity or a '
                                  'further input such as a goal)')
        return cls(frame_size=spec.frame_size, history=spec.history, reference=reference,
                   differences=differences, hidden=hidden)

    @property
    def input_size(self) -> int:
        """Columns of the network's input (all frames)."""
        return self.history * (self.frame_size - len(self.hidden))

    def to_dict(self) -> dict[str, Any]:
        return {'frame_size': self.frame_size, 'history': self.history,
                'reference': list(self.reference),
                'differences': [list(p) for p in self.differences],
                'hidden': list(self.hidden)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'ProcessorLayout':
        return cls(frame_size=int(data['frame_size']), history=int(data['history']),
                   reference=tuple(int(c) for c in data['reference']),
                   differences=tuple((int(c), int(p)) for c, p in data['differences']),
                   hidden=tuple(int(c) for c in data['hidden']))


def _buffer(values: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=dtype).clone()


class Processor(nn.Module):
    """Normalization, input differences, input selection and reference add-back (module doc)."""

    def __init__(self, layout: ProcessorLayout, *, horizon: int, action_size: int,
                 inputs: Statistics | None = None, actions: Statistics | None = None) -> None:
        """The processor of ``layout`` with these statistics (None: mean 0, std 1).

        ``inputs``: of the frame columns (after the input differences); ``actions``: of the
        action joints (of the differences to the reference, with relative actions).
        """
        super().__init__()
        k, frame = layout.history, layout.frame_size
        self.layout = layout
        self.horizon = horizon
        self.action_size = action_size
        obs_mean = np.zeros(frame) if inputs is None else inputs.mean
        obs_std = np.ones(frame) if inputs is None else normalization_std(inputs.std)
        act_mean = np.zeros(action_size) if actions is None else actions.mean
        act_std = np.ones(action_size) if actions is None else normalization_std(actions.std)
        if len(obs_mean) != frame or len(obs_std) != frame:
            raise ConfigError(f'input statistics have {len(obs_mean)} columns, a frame has '
                              f'{frame}')
        if len(act_mean) != action_size or len(act_std) != action_size:
            raise ConfigError(f'action statistics have {len(act_mean)} columns, the action has '
                              f'{action_size} joints')
        if layout.reference and len(layout.reference) != action_size:
            raise ConfigError(f'{len(layout.reference)} reference columns for {action_size} '
                              'action joints')
        self.history, self.frame_size = k, frame
        self.register_buffer('obs_mean', _buffer(obs_mean))
        self.register_buffer('obs_std', _buffer(obs_std))
        self.register_buffer('action_mean', _buffer(act_mean))
        self.register_buffer('action_std', _buffer(act_std))
        self.register_buffer('reference', _buffer(layout.reference, torch.long))
        self.register_buffer('differenced', _buffer([c for c, _ in layout.differences],
                                                    torch.long))
        self.register_buffer('subtracted', _buffer([p for _, p in layout.differences],
                                                   torch.long))
        hidden = set(layout.hidden)
        self.register_buffer('inputs', _buffer([c for c in range(frame) if c not in hidden],
                                               torch.long))
        self.selects = bool(hidden)

    @property
    def obs_size(self) -> int:
        return self.history * self.frame_size

    @property
    def input_size(self) -> int:
        return self.history * self.inputs.numel()

    @property
    def output_size(self) -> int:
        return self.horizon * self.action_size

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Raw frames [N, F] -> what the network sees of each [N, C / k] (frame by frame)."""
        x = frames
        if self.differenced.numel() > 0:
            x = frames.index_copy(1, self.differenced, frames.index_select(1, self.differenced)
                                  - frames.index_select(1, self.subtracted))
        x = (x - self.obs_mean) / self.obs_std
        if self.selects:
            x = x.index_select(1, self.inputs)
        return x

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations [B, k*F] (frames oldest first) -> the network's input [B, C]."""
        batch = obs.shape[0]
        frames = obs.reshape(batch * self.history, self.frame_size)
        return self.encode_frames(frames).reshape(batch, -1)

    def newest(self, obs: torch.Tensor) -> torch.Tensor:
        """The newest frame [B, F] of observations [B, k*F]."""
        return obs[:, (self.history - 1) * self.frame_size:]

    def scale_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Joint positions [..., A] divided by the action spread."""
        return actions / self.action_std

    def action_offsets(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, A] to subtract from scaled actions for frames [N, F]: (reference + mean) / std."""
        offset = self.action_mean.expand(frames.shape[0], self.action_size)
        if self.reference.numel() > 0:
            offset = offset + frames.index_select(1, self.reference)
        return offset / self.action_std

    def decode(self, out: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """The network's output [B, H*A] -> joint targets [B, H, A]."""
        targets = out.reshape(obs.shape[0], self.horizon, self.action_size)
        targets = targets * self.action_std + self.action_mean
        if self.reference.numel() > 0:
            targets = targets + self.newest(obs).index_select(1, self.reference).unsqueeze(1)
        return targets

    def targets(self, chunk: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Demonstrated chunks [B, H, A] -> what the network should output [B, H*A]."""
        offsets = self.action_offsets(self.newest(obs)).unsqueeze(1)
        return (self.scale_actions(chunk) - offsets).reshape(chunk.shape[0], -1)

    def state_shifts(self, columns: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """How the network's input [P, C] and target [P, H*A] move per radian of each column.

        A shift of the observed position columns ``columns`` (the same in every history
        frame) moves both linearly: this processor is affine. With relative actions the
        target moves too (a demonstrated target seen from a moved position), so state noise
        built from these keeps its corrective label (see TrainConfig.state_noise_rad).
        """
        probe = torch.zeros(len(columns) + 1, self.history, self.frame_size,
                            dtype=self.obs_mean.dtype, device=self.obs_mean.device)
        for row, column in enumerate(columns):
            probe[row + 1, :, column] = 1.0
        obs = probe.reshape(probe.shape[0], -1)
        inputs = self.encode(obs)
        chunk = torch.zeros(obs.shape[0], self.horizon, self.action_size, dtype=obs.dtype,
                            device=obs.device)
        targets = self.targets(chunk, obs)
        return inputs[1:] - inputs[:1], targets[1:] - targets[:1]

    def describe(self) -> dict[str, Any]:
        """What rebuilds this module's shape (its values are in the state dict)."""
        return {'layout': self.layout.to_dict(), 'horizon': self.horizon,
                'action_size': self.action_size}

    @classmethod
    def from_description(cls, data: Mapping[str, Any]) -> 'Processor':
        return cls(ProcessorLayout.from_dict(data['layout']), horizon=int(data['horizon']),
                   action_size=int(data['action_size']))


class Policy(nn.Module):
    """A policy: raw observations [B, k*F] -> joint position targets [B, H, A]."""

    def __init__(self, processor: Processor, network: nn.Module) -> None:
        super().__init__()
        self.processor = processor
        self.network = network

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.processor.decode(self.network(self.processor.encode(obs)), obs)
