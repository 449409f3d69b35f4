"""What an episode is, as its bag's ``custom_data`` and its line in ``episodes.jsonl`` say.

``EpisodeMetadata`` is the one owner of those keys: the recorder and the mocap importer write
it, the dataset builder and the recovery read it. Bags from other writers (a plain
``ros2 bag record``) carry none: every field then has its "unknown" value. The partial-episode
rule lives here too: an episode folder that still holds the RECORDING marker was never closed.
"""
from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from il_policy_node.formats import BAG_METADATA_FILE, RECORDING_MARKER

MARKER_NOTE = 'bag not closed: a partial episode while this file is here'
PARTIAL_EPISODE = (f'partial episode: {RECORDING_MARKER} marker present (the recorder did not '
                   'close this bag; `il-policy bag recover` salvages what reached the disk)')


def recorder_name(tool: str) -> str:
    """The ``recorder`` value of an episode written by ``tool``: name, tool and version."""
    try:
        version = importlib.metadata.version('il_policy_node')
    except importlib.metadata.PackageNotFoundError:
        version = 'unknown'
    return f'il_policy_node {tool} {version}'


def partial_reason(folder: Path) -> str | None:
    """Why ``folder`` is an episode that was never closed, or None."""
    return PARTIAL_EPISODE if (Path(folder) / RECORDING_MARKER).exists() else None


def is_closed_episode(folder: Path) -> bool:
    """An episode folder whose bag was closed with its metadata."""
    folder = Path(folder)
    return (folder / BAG_METADATA_FILE).is_file() and partial_reason(folder) is None


@dataclass(frozen=True)
class MocapClip:
    """Where an imported episode came from (the ``mocap_*`` keys)."""

    source_file: str
    source_sha256: str
    clip: str
    clip_frame_rate_hz: float
    clip_frames: int
    clip_duration_s: float
    retarget_map: str
    retarget_map_sha256: str
    rate_hz: float
    samples: int
    start_time_ns: int
    robot: str
    joints: tuple[str, ...]
    command_topic: str
    end_effectors: Mapping[str, Mapping[str, str]]      # name -> {topic, frame_id}
    clamped: Mapping[str, Mapping[str, float]]          # joint -> {frames, worst_excess_rad}

    def to_custom_data(self) -> dict[str, str]:
        data = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float):
                text = f'{value:.9g}'
            elif isinstance(value, (tuple, list)):
                text = json.dumps(list(value))
            elif isinstance(value, Mapping):
                text = json.dumps(value, sort_keys=True)
            else:
                text = str(value)
            data[f'mocap_{item.name}'] = text
        return data

    @classmethod
    def from_custom_data(cls, data: Mapping[str, str]) -> 'MocapClip | None':
        if 'mocap_source_sha256' not in data:
            return None
        values: dict[str, Any] = {}
        for item in fields(cls):
            text = data.get(f'mocap_{item.name}', '')
            kind = item.type
            if kind == 'float':
                values[item.name] = float(text or 'nan')
            elif kind == 'int':
                values[item.name] = int(text or 0)
            elif kind == 'str':
                values[item.name] = text
            else:
                parsed = _json(text, [] if 'tuple' in kind else {})
                values[item.name] = tuple(parsed) if 'tuple' in kind else parsed
        return cls(**values)

    def index_entry(self) -> dict[str, Any]:
        """What episodes.jsonl keeps of the clip (enough to see a clip is already imported)."""
        return {'source_file': self.source_file, 'source_sha256': self.source_sha256,
                'retarget_map_sha256': self.retarget_map_sha256, 'clamped': dict(self.clamped)}


@dataclass(frozen=True)
class EpisodeMetadata:
    """An episode's labels and bookkeeping; ``to_custom_data`` gives the bag's custom_data."""

    task: str = ''
    operator: str = ''
    success: bool | None = None            # None: not labelled (e.g. ros2 bag record)
    episode_index: int | None = None
    start_wall_time: str = ''
    stop_wall_time: str = ''
    stop_reason: str = ''                  # service, keyboard, max_duration, shutdown, ...
    lost_counts: Mapping[str, int] = field(default_factory=dict)
    recorder: str = ''                     # what wrote the bag, with its version
    message_counts: Mapping[str, int] = field(default_factory=dict)
    partial: bool = False                  # salvaged from an episode that was never closed
    mocap: MocapClip | None = None

    def to_custom_data(self) -> dict[str, str]:
        data = {'task': self.task, 'operator': self.operator,
                'episode_index': '' if self.episode_index is None else str(self.episode_index),
                'start_wall_time': self.start_wall_time, 'stop_wall_time': self.stop_wall_time,
                'stop_reason': self.stop_reason,
                'lost_counts': json.dumps(dict(self.lost_counts), sort_keys=True),
                'recorder': self.recorder,
                'message_counts': json.dumps(dict(self.message_counts), sort_keys=True)}
        if self.success is not None:
            data['success'] = 'true' if self.success else 'false'
        if self.partial:
            data['partial'] = 'true'
        if self.mocap is not None:
            data.update(self.mocap.to_custom_data())
        return data

    @classmethod
    def from_custom_data(cls, data: Mapping[str, Any] | None) -> 'EpisodeMetadata':
        """From a bag's custom_data; missing or unreadable keys take their unknown value."""
        data = {str(k): str(v) for k, v in (data or {}).items()}
        success = data.get('success', '').strip().lower()
        index = data.get('episode_index', '')
        return cls(
            task=data.get('task', ''), operator=data.get('operator', ''),
            success={'true': True, 'false': False}.get(success),
            episode_index=int(index) if index.isdigit() else None,
            start_wall_time=data.get('start_wall_time', ''),
            stop_wall_time=data.get('stop_wall_time', ''),
            stop_reason=data.get('stop_reason', ''),
            lost_counts=_json(data.get('lost_counts', ''), {}),
            recorder=data.get('recorder', ''),
            message_counts=_json(data.get('message_counts', ''), {}),
            partial=data.get('partial', '').strip().lower() == 'true',
            mocap=MocapClip.from_custom_data(data))

    def to_marker(self) -> str:
        """The RECORDING marker's text: a note, then what is known while recording (JSON)."""
        return (f'{MARKER_NOTE}\n' +
                json.dumps(self.to_custom_data(), sort_keys=True) + '\n')

    @classmethod
    def from_marker(cls, path: Path) -> 'EpisodeMetadata':
        """What a RECORDING marker says (the unknown values when it says nothing)."""
        try:
            lines = Path(path).read_text(encoding='utf-8').splitlines()
        except (OSError, UnicodeDecodeError):
            lines = []
        data = _json(lines[1], {}) if len(lines) > 1 else {}
        return cls.from_custom_data(data)

    def index_entry(self, path: str, *, duration_s: float, storage: str) -> dict[str, Any]:
        """The episode's line in the session's episodes.jsonl."""
        entry = {'index': self.episode_index, 'path': path, 'task': self.task,
                 'operator': self.operator, 'success': self.success,
                 'start_wall_time': self.start_wall_time, 'stop_wall_time': self.stop_wall_time,
                 'duration_s': round(duration_s, 3), 'stop_reason': self.stop_reason,
                 'message_counts': dict(self.message_counts),
                 'lost_counts': dict(self.lost_counts), 'storage': storage}
        if self.partial:
            entry['partial'] = True
        if self.mocap is not None:
            entry['mocap'] = self.mocap.index_entry()
        return entry


def _json(text: str, fallback: Any) -> Any:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return fallback
    return value if isinstance(value, type(fallback)) else fallback
