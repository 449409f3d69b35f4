"""Observation spec and the observation vector built from joint-name-keyed state.

Layout of the observation vector (the contract between training and runtime):
frames oldest first; within a frame, fields in spec order; within a field, joints in spec order.
So ``obs[(h * len(fields) + f) * len(joints) + j]`` is field ``f`` of joint ``j``, ``h`` frames
after the oldest one.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Sequence

import numpy as np


class StateField(str, Enum):
    """Joint state fields a policy may observe."""

    POSITION = 'position'
    VELOCITY = 'velocity'


@dataclass(frozen=True)
class ObservationSpec:
    """Which joints and fields the policy observes, and how many past frames."""

    joints: tuple[str, ...]
    fields: tuple[StateField, ...] = (StateField.POSITION, StateField.VELOCITY)
    history: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, 'joints', tuple(self.joints))
        object.__setattr__(self, 'fields', tuple(StateField(f) for f in self.fields))
        if not self.joints:
            raise ValueError('observation spec lists no joints')
        if any(not isinstance(j, str) or not j for j in self.joints):
            raise ValueError(f'observation joint names must be non-empty strings: {self.joints}')
        duplicates = sorted({j for j in self.joints if self.joints.count(j) > 1})
        if duplicates:
            raise ValueError(f'duplicate joint names in observation spec: {duplicates}')
        if not self.fields:
            raise ValueError('observation spec lists no fields')
        if len(set(self.fields)) != len(self.fields):
            raise ValueError(f'duplicate fields in observation spec: {self.fields}')
        if not isinstance(self.history, int) or self.history < 1:
            raise ValueError(f'observation history must be an integer >= 1, got {self.history!r}')

    @property
    def frame_size(self) -> int:
        return len(self.fields) * len(self.joints)

    @property
    def size(self) -> int:
        return self.history * self.frame_size

    def to_dict(self) -> dict[str, Any]:
        return {'joints': list(self.joints), 'fields': [f.value for f in self.fields],
                'history': self.history}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'ObservationSpec':
        unknown = set(data) - {'joints', 'fields', 'history'}
        if unknown:
            raise ValueError(f'unknown keys in observation spec: {sorted(unknown)}')
        try:
            return cls(joints=tuple(data['joints']), fields=tuple(data['fields']),
                       history=data['history'])
        except KeyError as exc:
            raise ValueError(f'observation spec is missing {exc.args[0]!r}') from None


class ObservationBuilder:
    """Keeps the observation history and writes the policy input into one reused buffer."""

    def __init__(self, spec: ObservationSpec) -> None:
        self.spec = spec
        self._frames = np.zeros((spec.history, len(spec.fields), len(spec.joints)), np.float32)
        self._filled = 0
        self.vector = self._frames.reshape(-1)  # a view: the buffer handed to the model

    def reset(self) -> None:
        """Forget the history; the next frame fills every slot."""
        self._filled = 0

    def push(self, fields: Sequence[np.ndarray]) -> np.ndarray:
        """Append one frame (one array per spec field, joints in spec order); return the vector.

        After a reset the first frame is repeated over the whole history, as at training time.
        """
        frames = self._frames
        if self.spec.history > 1:
            frames[:-1] = frames[1:]
        for f, values in enumerate(fields):
            frames[-1, f] = values
        if self._filled == 0:
            frames[:-1] = frames[-1]
        self._filled = min(self._filled + 1, self.spec.history)
        return self.vector
