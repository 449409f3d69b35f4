"""The recorder's parameters as one frozen dataclass, validated once.

The field defaults are the defaults of demo_recorder's parameters (its ParamSpecs read them).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from il_policy_node.errors import ConfigError
from il_policy_node.recording.writer import (
    COMPRESSION,
    COMPRESSIONS,
    STORAGE,
    STORAGES,
    FlushPolicy,
)

EXECUTORS = ('single', 'events')         # how the node is spun (ros/spin.py make_executor)


@dataclass(frozen=True)
class RecorderConfig:
    """The recorder's parameters, validated; topic names resolved."""

    output_dir: Path
    session: str
    topics: tuple[str, ...]
    topic_types: tuple[str, ...]         # one per topic; '' = discover from the graph
    required_topics: tuple[str, ...] = ()
    required_timeout_s: float = 2.0
    storage: str = STORAGE
    compression: str = COMPRESSION
    max_episode_duration_s: float = 0.0
    task: str = ''
    operator: str = ''
    keyboard: bool = False
    min_free_disk_mb: float = 200.0
    flush_period_s: float = FlushPolicy().period_s
    executor: str = 'single'             # or 'events' (ros/spin.py make_executor)

    @property
    def session_dir(self) -> Path:
        return self.output_dir / self.session

    @property
    def flush(self) -> FlushPolicy:
        return FlushPolicy(self.flush_period_s)

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *,
                        resolve: Callable[[str], str] = str,
                        now: datetime | None = None) -> 'RecorderConfig':
        """Validate plain parameter values (``resolve`` maps a topic to its full name)."""
        topics = tuple(_resolve_all(params.get('topics') or (), resolve, 'topics'))
        if not topics:
            raise ConfigError('parameter topics is empty: list the topics to record')
        duplicates = sorted({t for t in topics if topics.count(t) > 1})
        if duplicates:
            raise ConfigError(f'parameter topics lists {duplicates} more than once')
        types = tuple(params.get('topic_types') or ('',) * len(topics))
        if len(types) != len(topics):
            raise ConfigError(f'parameter topic_types has {len(types)} entries, topics has '
                              f"{len(topics)} (use '' to discover a type)")
        for topic, msgtype in zip(topics, types):
            if msgtype and not _is_msgtype(msgtype):
                raise ConfigError(f'parameter topic_types: {msgtype!r} (for {topic}) is not of '
                                  'the form pkg/msg/Type')
        required = tuple(_resolve_all(params.get('required_topics') or (), resolve,
                                      'required_topics'))
        unknown = [t for t in required if t not in topics]
        if unknown:
            raise ConfigError(f'parameter required_topics: {unknown} are not in topics')
        storage = str(params.get('storage', default('storage')))
        if storage not in STORAGES:
            raise ConfigError(f'parameter storage must be one of {sorted(STORAGES)}, got '
                              f'{storage!r}')
        compression = str(params.get('compression', default('compression')))
        if compression not in COMPRESSIONS:
            raise ConfigError(f'parameter compression must be one of {list(COMPRESSIONS)}, '
                              f'got {compression!r}')
        session = str(params.get('session') or '') or \
            (now or datetime.now()).strftime('session_%Y%m%d_%H%M%S')
        if '/' in session or session in ('.', '..'):
            raise ConfigError(f'parameter session must be a folder name, got {session!r}')
        output_dir = str(params.get('output_dir') or '')
        if not output_dir:
            raise ConfigError('parameter output_dir is empty')
        executor = str(params.get('executor', default('executor')))
        if executor not in EXECUTORS:
            raise ConfigError(f'parameter executor must be one of {list(EXECUTORS)}, got '
                              f'{executor!r}')
        flush = _non_negative(params, 'flush_period_s')
        if flush <= 0:
            raise ConfigError(f'parameter flush_period_s must be > 0, got {flush}')
        return cls(
            output_dir=Path(os.path.expanduser(output_dir)), session=session, topics=topics,
            topic_types=types, required_topics=required,
            required_timeout_s=_non_negative(params, 'required_timeout_s'),
            storage=storage, compression=compression,
            max_episode_duration_s=_non_negative(params, 'max_episode_duration_s'),
            task=str(params.get('task') or ''), operator=str(params.get('operator') or ''),
            keyboard=bool(params.get('keyboard', default('keyboard'))),
            min_free_disk_mb=_non_negative(params, 'min_free_disk_mb'), flush_period_s=flush,
            executor=executor)


def default(name: str) -> Any:
    """The default of a RecorderConfig field (the parameter's default)."""
    return next(f for f in fields(RecorderConfig) if f.name == name).default


def _resolve_all(topics: Sequence[str], resolve: Callable[[str], str], name: str) -> list[str]:
    resolved = []
    for topic in topics:
        try:
            resolved.append(resolve(str(topic)))
        except Exception as exc:   # rclpy raises its own name validation exceptions
            raise ConfigError(f'parameter {name}: invalid topic {topic!r}: {exc}') from None
    return resolved


def _non_negative(params: Mapping[str, Any], name: str) -> float:
    value = float(params.get(name, default(name)))
    if not value >= 0.0 or value == float('inf'):
        raise ConfigError(f'parameter {name} must be finite and >= 0, got {value}')
    return value


def _is_msgtype(name: str) -> bool:
    parts = name.split('/')
    return len(parts) == 3 and parts[1] == 'msg' and all(parts)
