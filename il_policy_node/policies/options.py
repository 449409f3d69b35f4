"""The policy families' options (train.yaml sections), typed and validated; no torch here.

Each family has one dataclass of its keys with their defaults and ranges (config/train.yaml
documents them); errors name ``family.key``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

from il_policy_node.errors import ConfigError

T = TypeVar('T')


def options_from_mapping(cls: type[T], section: str, data: Mapping[str, Any] | None) -> T:
    """``cls`` (a dataclass of ints, floats, bools, strings and int tuples) from ``data``.

    Missing keys take the dataclass defaults; an unknown key, a wrong type, a value outside
    the field's ``metadata['range']`` ([low, high], None: open) or a string not among its
    ``metadata['choices']`` is a ConfigError naming ``section.key``.
    """
    data = dict(data or {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f'unknown key(s) {[f"{section}.{k}" for k in unknown]}; known: '
                          f'{sorted(known)}')
    values = {}
    for name, spec in known.items():
        default = spec.default if spec.default is not dataclasses.MISSING else None
        value = data.get(name, default)
        key = f'{section}.{name}'
        if isinstance(default, str):
            values[name] = _choice(key, value, spec.metadata['choices'])
            continue
        values[name] = _checked(key, value, default, spec.metadata.get('range', (None, None)))
    return cls(**values)


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f'{key} must be one of {list(choices)}, got {value!r}')
    return value


def _checked(key: str, value: Any, default: Any, bounds: tuple[Any, Any]) -> Any:
    low, high = bounds
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f'{key} must be true or false, got {value!r}')
        return value
    if isinstance(default, tuple):
        if isinstance(value, (str, int)) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise ConfigError(f'{key} must be a list of positive integers, got {value!r}')
        return tuple(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{key} must be an integer, got {value!r}')
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise ConfigError(f'{key} must be a number, got {value!r}')
    else:
        value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f'{key} must be in [{low}, {"inf" if high is None else high}], '
                          f'got {value}')
    return value


def bounded(default: Any, low: Any = None, high: Any = None) -> Any:
    """A dataclass field with a default and a closed range."""
    return dataclasses.field(default=default, metadata={'range': (low, high)})


def one_of(default: str, *others: str) -> Any:
    """A dataclass string field that takes ``default`` or one of ``others``."""
    return dataclasses.field(default=default, metadata={'choices': (default,) + others})


@dataclass(frozen=True)
class MlpOptions:
    """The ``mlp:`` keys of train.yaml (config/train.yaml documents each)."""

    hidden: tuple[int, ...] = (256, 256)
    dropout: float = bounded(0.0, 0.0, 0.99)


@dataclass(frozen=True)
class ActOptions:
    """The ``act:`` keys of train.yaml (config/train.yaml documents each)."""

    d_model: int = bounded(64, 8)
    heads: int = bounded(4, 1)
    encoder_layers: int = bounded(1, 1)
    decoder_layers: int = bounded(1, 1)
    feedforward: int = bounded(128, 8)
    dropout: float = bounded(0.1, 0.0, 0.9)
    cvae: bool = False
    latent_size: int = bounded(16, 1)
    kl_weight: float = bounded(10.0, 0.0)

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ConfigError(f'act.d_model ({self.d_model}) must be a multiple of act.heads '
                              f'({self.heads})')


@dataclass(frozen=True)
class DiffusionOptions:
    """The ``diffusion:`` keys of train.yaml (config/train.yaml documents each)."""

    channels: tuple[int, ...] = (32, 64)
    kernel_size: int = bounded(5, 1)
    groups: int = bounded(8, 1)
    condition_size: int = bounded(64, 1)
    train_steps: int = bounded(100, 2)
    inference_steps: int = bounded(10, 1)
    prediction: str = one_of('sample', 'epsilon')
    clip_sample: float = bounded(5.0, 0.0)
    noise_seed: int = bounded(0, 0)

    def __post_init__(self) -> None:
        if self.inference_steps > self.train_steps:
            raise ConfigError(f'diffusion.inference_steps ({self.inference_steps}) must be <= '
                              f'diffusion.train_steps ({self.train_steps})')
        if not self.channels:
            raise ConfigError('diffusion.channels must name at least one level')
        bad = [c for c in self.channels if c % self.groups]
        if bad:
            raise ConfigError(f'diffusion.channels {list(self.channels)} must be multiples of '
                              f'diffusion.groups ({self.groups})')
        if self.kernel_size % 2 == 0:
            raise ConfigError(f'diffusion.kernel_size must be odd, got {self.kernel_size}')


FAMILY_OPTIONS = {'mlp': MlpOptions, 'act': ActOptions, 'diffusion': DiffusionOptions}


def family_options(name: str, section: Mapping[str, Any] | None) -> Any:
    """The validated options of family ``name`` from its train.yaml section."""
    if name not in FAMILY_OPTIONS:
        raise ConfigError(f'model must be one of {sorted(FAMILY_OPTIONS)}, got {name!r}')
    return options_from_mapping(FAMILY_OPTIONS[name], name, section)


def options_dict(options: Any) -> dict[str, Any]:
    """Plain values of an options dataclass (lists for tuples), as YAML and JSON hold them."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(options).items()}
