"""Observation spec and the observation vector built from joint-name-keyed state.

Layout of the observation vector (the contract between training and runtime):
frames oldest first; within a frame, the robot's state fields in spec order (within a field,
joints in spec order), then each extra input (a further JointState topic, e.g. a goal pose) in
spec order, laid out the same way. Without extra inputs,
``obs[(h * len(fields) + f) * len(joints) + j]`` is field ``f`` of joint ``j``, ``h`` frames
after the oldest one.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Sequence

import numpy as np

from il_policy_node.errors import ConfigError


class StateField(str, Enum):
    """Joint state fields a policy may observe."""

    POSITION = 'position'
    VELOCITY = 'velocity'


def _fields(values, what: str) -> tuple[StateField, ...]:
    try:
        return tuple(StateField(f) for f in values)
    except ValueError:
        raise ConfigError(f'{what}: fields must be of {[f.value for f in StateField]}, got '
                          f'{list(values)}') from None


def check_joint_names(what: str, joints: tuple[str, ...]) -> None:
    """ConfigError naming ``what`` unless ``joints`` are non-empty, unique, non-empty names."""
    if not joints:
        raise ConfigError(f'{what} lists no joints')
    if any(not isinstance(j, str) or not j for j in joints):
        raise ConfigError(f'{what}: joint names must be non-empty strings: {joints}')
    duplicates = sorted({j for j in joints if joints.count(j) > 1})
    if duplicates:
        raise ConfigError(f'duplicate joint names in {what}: {duplicates}')


def _check_joints_fields(what: str, joints: tuple[str, ...],
                         fields: tuple['StateField', ...]) -> None:
    check_joint_names(what, joints)
    if not fields:
        raise ConfigError(f'{what} lists no fields')
    if len(set(fields)) != len(fields):
        raise ConfigError(f'duplicate fields in {what}: {fields}')


def _unknown_keys(data: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f'unknown keys in {what}: {sorted(unknown)}')


@dataclass(frozen=True)
class ObservationInput:
    """A further JointState topic the policy observes beside the robot's state (e.g. a goal)."""

    topic: str
    joints: tuple[str, ...]
    fields: tuple[StateField, ...] = (StateField.POSITION,)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'joints', tuple(self.joints))
        object.__setattr__(self, 'fields', _fields(self.fields, f'observation input {self.topic}'))
        if not isinstance(self.topic, str) or not self.topic:
            raise ConfigError(f'observation input topic must be a topic name, got {self.topic!r}')
        _check_joints_fields(f'observation input {self.topic}', self.joints, self.fields)

    @property
    def size(self) -> int:
        return len(self.fields) * len(self.joints)

    def to_dict(self) -> dict[str, Any]:
        return {'topic': self.topic, 'joints': list(self.joints),
                'fields': [f.value for f in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'ObservationInput':
        _unknown_keys(data, {'topic', 'joints', 'fields'}, 'observation input')
        try:
            return cls(topic=data['topic'], joints=tuple(data['joints']),
                       fields=tuple(data.get('fields', ('position',))))
        except KeyError as exc:
            raise ConfigError(f'observation input is missing {exc.args[0]!r}') from None


@dataclass(frozen=True)
class ObservationSpec:
    """Which joints and fields the policy observes, further inputs, and how many past frames."""

    joints: tuple[str, ...]
    fields: tuple[StateField, ...] = (StateField.POSITION, StateField.VELOCITY)
    history: int = 1
    extra: tuple[ObservationInput, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, 'joints', tuple(self.joints))
        object.__setattr__(self, 'fields', _fields(self.fields, 'observation spec'))
        object.__setattr__(self, 'extra', tuple(
            e if isinstance(e, ObservationInput) else ObservationInput.from_dict(e)
            for e in self.extra))
        _check_joints_fields('observation spec', self.joints, self.fields)
        if not isinstance(self.history, int) or self.history < 1:
            raise ConfigError(f'observation history must be an integer >= 1, got {self.history!r}')
        topics = [e.topic for e in self.extra]
        duplicates = sorted({t for t in topics if topics.count(t) > 1})
        if duplicates:
            raise ConfigError(f'observation inputs list topic(s) {duplicates} more than once')

    @property
    def parts(self) -> list[tuple[str | None, StateField, tuple[str, ...]]]:
        """(topic, field, joints) of every block of a frame in layout order (topic None: state)."""
        blocks: list[tuple[str | None, StateField, tuple[str, ...]]] = [
            (None, f, self.joints) for f in self.fields]
        for extra in self.extra:
            blocks += [(extra.topic, f, extra.joints) for f in extra.fields]
        return blocks

    def blocks(self) -> list[tuple[str | None, StateField, int, tuple[str, ...]]]:
        """(topic, field, first frame column, joints) of every block, as ``parts``."""
        blocks, start = [], 0
        for topic, field, joints in self.parts:
            blocks.append((topic, field, start, joints))
            start += len(joints)
        return blocks

    def position_columns(self) -> dict[str, int]:
        """The frame column of each joint's position on the state topic ({} without)."""
        return {joint: start + i for topic, field, start, joints in self.blocks()
                if topic is None and field is StateField.POSITION
                for i, joint in enumerate(joints)}

    @property
    def frame_size(self) -> int:
        return len(self.fields) * len(self.joints) + sum(e.size for e in self.extra)

    @property
    def size(self) -> int:
        return self.history * self.frame_size

    def to_dict(self) -> dict[str, Any]:
        data = {'joints': list(self.joints), 'fields': [f.value for f in self.fields],
                'history': self.history}
        if self.extra:
            data['extra'] = [e.to_dict() for e in self.extra]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'ObservationSpec':
        _unknown_keys(data, {'joints', 'fields', 'history', 'extra'}, 'observation spec')
        try:
            return cls(joints=tuple(data['joints']), fields=tuple(data['fields']),
                       history=data['history'],
                       extra=tuple(ObservationInput.from_dict(e) for e in data.get('extra', ())))
        except KeyError as exc:
            raise ConfigError(f'observation spec is missing {exc.args[0]!r}') from None


def frame_columns(source: ObservationSpec, target: ObservationSpec) -> list[np.ndarray]:
    """Columns of a ``source`` frame that give each block of a ``target`` frame (``parts``).

    Lets a policy read recorded frames laid out differently (a subset or another order);
    ConfigError names the joint, field or topic the source frame does not have.
    """
    offsets: dict[tuple[str | None, StateField], tuple[int, tuple[str, ...]]] = {}
    offset = 0
    for topic, field, joints in source.parts:
        offsets[(topic, field)] = (offset, joints)
        offset += len(joints)
    columns = []
    for topic, field, joints in target.parts:
        where = 'the robot state' if topic is None else f'input {topic}'
        if (topic, field) not in offsets:
            raise ConfigError(f'the recorded frames have no {field.value} of {where}')
        start, have = offsets[(topic, field)]
        missing = [j for j in joints if j not in have]
        if missing:
            raise ConfigError(f'the recorded frames have no {field.value} of joint(s) {missing} '
                             f'in {where}')
        columns.append(np.array([start + have.index(j) for j in joints], np.int64))
    return columns


class ObservationBuilder:
    """Keeps the observation history and writes the policy input into one reused buffer."""

    def __init__(self, spec: ObservationSpec) -> None:
        self.spec = spec
        self._frames = np.zeros((spec.history, spec.frame_size), np.float32)
        bounds = np.cumsum([0] + [len(joints) for _, _, joints in spec.parts])
        self._slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        self._filled = 0
        self.vector = self._frames.reshape(-1)  # a view: the buffer handed to the model

    def reset(self) -> None:
        """Forget the history; the next frame fills every slot."""
        self._filled = 0

    def push(self, blocks: Sequence[np.ndarray]) -> np.ndarray:
        """Append one frame (one array per block of ``spec.parts``, in order); return the vector.

        After a reset the first frame is repeated over the whole history, as at training time.
        """
        frames = self._frames
        if self.spec.history > 1:
            frames[:-1] = frames[1:]
        last = frames[-1]
        for where, values in zip(self._slices, blocks):
            last[where] = values
        if self._filled == 0:
            frames[:-1] = last
        self._filled = min(self._filled + 1, self.spec.history)
        return self.vector
