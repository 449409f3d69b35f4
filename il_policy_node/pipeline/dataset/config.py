"""The dataset builder's settings (config/dataset.yaml), validated once; errors name the key."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from il_policy_node.errors import ConfigError

FIELDS = ('position', 'velocity')


_DEFAULTS: dict[str, Any] = {
    'control_rate_hz': 50.0,
    'timestamps': 'header',
    'observation': {'topic': '/joint_states', 'joints': [], 'fields': list(FIELDS), 'extra': []},
    'action': {'source': 'future_state', 'topic': None, 'joints': [], 'future_steps': 1},
    'gaps': {'max_gap_s': 0.1, 'policy': 'split'},
    'min_episode_s': 0.5,
    'include_failed': False,
    'split': {'seed': 0, 'val_fraction': 0.2},
}


@dataclass(frozen=True)
class DatasetConfig:
    """The dataset builder's settings (config/dataset.yaml)."""

    control_rate_hz: float = 50.0
    timestamps: str = 'header'                       # 'header' | 'receive'
    observation_topic: str = '/joint_states'
    observation_joints: tuple[str, ...] = ()         # () = the joints of the first episode
    fields: tuple[str, ...] = FIELDS
    # further JointState topics in every frame after the state: (topic, joints, fields)
    extra: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()
    action_source: str = 'future_state'              # 'future_state' | 'command'
    action_topic: str | None = None
    action_joints: tuple[str, ...] = ()              # () = the observation joints
    future_steps: int = 1
    max_gap_s: float = 0.1
    gap_policy: str = 'split'                        # 'split' | 'drop'
    min_episode_s: float = 0.5
    include_failed: bool = False
    seed: int = 0
    val_fraction: float = 0.2

    @property
    def dt(self) -> float:
        return 1.0 / self.control_rate_hz

    @classmethod
    def from_yaml(cls, path: str | Path) -> 'DatasetConfig':
        """Read and validate a dataset.yaml."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f'cannot read {path}: {exc}') from None
        return cls.from_dict(data or {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'DatasetConfig':
        """Validate a nested mapping shaped like dataset.yaml (missing keys take defaults)."""
        merged = _merge(_DEFAULTS, data, '')
        obs, act = merged['observation'], merged['action']
        gaps, split = merged['gaps'], merged['split']
        rate = _number(merged['control_rate_hz'], 'control_rate_hz', low=0.0, open_low=True)
        timestamps = _choice(merged['timestamps'], 'timestamps', ('header', 'receive'))
        fields = _fields(obs['fields'], 'observation.fields')
        source = _choice(act['source'], 'action.source', ('future_state', 'command'))
        topic = act['topic']
        if source == 'command' and not (isinstance(topic, str) and topic):
            raise ConfigError('action.topic must name the command topic when '
                                     'action.source is command')
        steps = act['future_steps']
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ConfigError(f'action.future_steps must be an integer >= 1, got '
                                     f'{steps!r}')
        seed = split['seed']
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f'split.seed must be an integer, got {seed!r}')
        _topic(obs['topic'], 'observation.topic')
        extra = _extra_inputs(obs['extra'], obs['topic'])
        if source == 'command' and topic in [e[0] for e in extra]:
            raise ConfigError(f'action.topic {topic} is also an observation.extra topic')
        return cls(
            control_rate_hz=rate, timestamps=timestamps, observation_topic=obs['topic'],
            observation_joints=tuple(_names(obs['joints'], 'observation.joints')),
            fields=fields, extra=extra, action_source=source,
            action_topic=topic if source == 'command' else None,
            action_joints=tuple(_names(act['joints'], 'action.joints')), future_steps=steps,
            max_gap_s=_number(gaps['max_gap_s'], 'gaps.max_gap_s', low=0.0, open_low=True),
            gap_policy=_choice(gaps['policy'], 'gaps.policy', ('split', 'drop')),
            min_episode_s=_number(merged['min_episode_s'], 'min_episode_s', low=0.0),
            include_failed=_bool(merged['include_failed'], 'include_failed'), seed=seed,
            val_fraction=_number(split['val_fraction'], 'split.val_fraction', low=0.0,
                                 high=1.0, open_high=True))

    def to_dict(self) -> dict[str, Any]:
        """The dataset.yaml content as used (every key, defaults filled in)."""
        return {
            'control_rate_hz': self.control_rate_hz, 'timestamps': self.timestamps,
            'observation': {'topic': self.observation_topic,
                            'joints': list(self.observation_joints), 'fields': list(self.fields),
                            'extra': [{'topic': t, 'joints': list(j), 'fields': list(f)}
                                      for t, j, f in self.extra]},
            'action': {'source': self.action_source, 'topic': self.action_topic,
                       'joints': list(self.action_joints), 'future_steps': self.future_steps},
            'gaps': {'max_gap_s': self.max_gap_s, 'policy': self.gap_policy},
            'min_episode_s': self.min_episode_s, 'include_failed': self.include_failed,
            'split': {'seed': self.seed, 'val_fraction': self.val_fraction}}


def _merge(defaults: Mapping[str, Any], data: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f'{prefix.rstrip(".") or "dataset.yaml"} must be a mapping, '
                                 f'got {data!r}')
    unknown = sorted(set(data) - set(defaults))
    if unknown:
        raise ConfigError(f'unknown key {prefix}{unknown[0]} (known: '
                                 f'{sorted(defaults)})')
    merged = {}
    for key, default in defaults.items():
        value = data.get(key, default)
        merged[key] = _merge(default, value, f'{prefix}{key}.') \
            if isinstance(default, dict) else value
    return merged


def _number(value: Any, key: str, *, low: float | None = None, high: float | None = None,
            open_low: bool = False, open_high: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise ConfigError(f'{key} must be a finite number, got {value!r}')
    if low is not None and (value < low or (open_low and value == low)):
        raise ConfigError(f'{key} must be {">" if open_low else ">="} {low}, got '
                                 f'{value!r}')
    if high is not None and (value > high or (open_high and value == high)):
        raise ConfigError(f'{key} must be {"<" if open_high else "<="} {high}, got '
                                 f'{value!r}')
    return float(value)


def _choice(value: Any, key: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f'{key} must be one of {list(choices)}, got {value!r}')
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f'{key} must be true or false, got {value!r}')
    return value


def _topic(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f'{key} must be a topic name, got {value!r}')
    return value


def _fields(value: Any, key: str) -> tuple[str, ...]:
    fields = tuple(_names(value, key))
    if not fields or any(f not in FIELDS for f in fields):
        raise ConfigError(f'{key} must be a non-empty list of {list(FIELDS)}, got '
                                 f'{value!r}')
    return fields


def _extra_inputs(value: Any, state_topic: str
                  ) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f'observation.extra must be a list, got {value!r}')
    inputs = []
    for i, item in enumerate(value):
        key = f'observation.extra[{i}]'
        if not isinstance(item, Mapping):
            raise ConfigError(f'{key} must be a mapping with topic, joints, fields')
        unknown = sorted(set(item) - {'topic', 'joints', 'fields'})
        if unknown:
            raise ConfigError(f'unknown key {key}.{unknown[0]} (known: fields, joints, '
                                     'topic)')
        topic = _topic(item.get('topic'), f'{key}.topic')
        if topic == state_topic or topic in [t for t, _, _ in inputs]:
            raise ConfigError(f'{key}.topic {topic} is observed twice')
        inputs.append((topic, tuple(_names(item.get('joints'), f'{key}.joints')),
                       _fields(item.get('fields', ['position']), f'{key}.fields')))
    return tuple(inputs)


def _names(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or any(not isinstance(v, str) or not v
                                                   for v in value):
        raise ConfigError(f'{key} must be a list of non-empty names, got {value!r}')
    dups = sorted({v for v in value if list(value).count(v) > 1})
    if dups:
        raise ConfigError(f'{key} lists {dups} more than once')
    return list(value)


