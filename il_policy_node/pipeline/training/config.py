"""Training settings (config/train.yaml), validated once; errors name the key."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from il_policy_node.errors import ConfigError
from il_policy_node.policies.options import FAMILY_OPTIONS, family_options, options_dict

LR_SCHEDULES = ('none', 'cosine', 'step')
DEVICES = ('cpu', 'cuda', 'auto')
# Keys that may differ between a run and its --resume (everything else must match).
RESUMABLE_CHANGES = ('epochs', 'patience')
MLP_KEYS = ('hidden', 'dropout')        # top-level keys before the families had sections


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (config/train.yaml documents each key)."""

    model: str = 'mlp'
    mlp: Mapping[str, Any] = field(default_factory=dict)
    act: Mapping[str, Any] = field(default_factory=dict)
    diffusion: Mapping[str, Any] = field(default_factory=dict)
    history: int = 1
    horizon: int = 1
    batch_size: int = 256
    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    obs_noise_std: float = 0.0
    state_noise_rad: float = 0.0
    ema_decay: float = 0.0
    relative_actions: bool = False
    relative_inputs: bool = False
    absolute_positions: bool = True
    lr_schedule: str = 'none'
    lr_step_epochs: int = 30
    lr_gamma: float = 0.1
    lr_min: float = 0.0
    patience: int = 10
    seed: int = 0
    device: str = 'auto'

    def __post_init__(self) -> None:
        for name in FAMILY_OPTIONS:
            section = getattr(self, name)
            if not isinstance(section, Mapping):
                raise ConfigError(f'{name} must be a mapping of its keys, got {section!r}')
            object.__setattr__(self, name, options_dict(family_options(name, section)))
        family_options(self.model, None)
        for key, low in (('history', 1), ('horizon', 1), ('batch_size', 1), ('epochs', 1),
                         ('lr_step_epochs', 1), ('patience', 0), ('seed', 0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f'{key} must be an integer >= {low}, got {value!r}')
        for key in ('lr', 'weight_decay', 'obs_noise_std', 'state_noise_rad', 'ema_decay',
                    'lr_gamma', 'lr_min'):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ConfigError(f'{key} must be a number, got {value!r}')
            object.__setattr__(self, key, float(value))
        if self.lr <= 0:
            raise ConfigError(f'lr must be > 0, got {self.lr}')
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f'ema_decay must be in [0, 1), got {self.ema_decay}')
        if self.weight_decay < 0 or self.lr_min < 0 or self.lr_gamma <= 0 or \
                self.obs_noise_std < 0 or self.state_noise_rad < 0:
            bad = next(k for k in ('weight_decay', 'lr_min', 'lr_gamma', 'obs_noise_std',
                                   'state_noise_rad')
                       if getattr(self, k) < 0 or (k == 'lr_gamma' and self.lr_gamma <= 0))
            raise ConfigError(f'{bad} must be {"> 0" if bad == "lr_gamma" else ">= 0"}, '
                              f'got {getattr(self, bad)}')
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f'lr_schedule must be one of {list(LR_SCHEDULES)}, '
                              f'got {self.lr_schedule!r}')
        if self.device not in DEVICES:
            raise ConfigError(f'device must be one of {list(DEVICES)}, got {self.device!r}')
        for key in ('relative_actions', 'relative_inputs', 'absolute_positions'):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f'{key} must be true or false, got {getattr(self, key)!r}')
        if not self.absolute_positions and not self.relative_actions:
            raise ConfigError('absolute_positions: false needs relative_actions: true (the '
                              'targets are then built on the observed positions)')

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> 'TrainConfig':
        """Build from plain values (missing keys take defaults); unknown keys are refused."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        moved = [k for k in unknown if k in MLP_KEYS]
        if moved:
            raise ConfigError(f'{moved} are keys of the mlp family now: write them under mlp:')
        if unknown:
            raise ConfigError(f'unknown key(s) {unknown} in train config; known: {sorted(known)}')
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> 'TrainConfig':
        """Read a train.yaml (flat mapping of the keys above)."""
        try:
            data = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f'{path} is not valid YAML: {exc}') from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f'{path} must hold a mapping of keys, got {type(data).__name__}')
        try:
            return cls.from_mapping(data)
        except ConfigError as exc:
            raise ConfigError(f'{path}: {exc}') from None

    def to_dict(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in asdict(self).items()}

    def network_options(self) -> dict[str, Any]:
        """The chosen family's keys (its section, defaults filled in)."""
        return dict(getattr(self, self.model))

    def layout_options(self) -> dict[str, bool]:
        """The options that shape the policy processor (ProcessorLayout.plan)."""
        return {'relative_actions': self.relative_actions,
                'relative_inputs': self.relative_inputs,
                'absolute_positions': self.absolute_positions}
