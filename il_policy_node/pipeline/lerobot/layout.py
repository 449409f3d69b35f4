"""LeRobotDataset v3.0: its file names and keys, and how our observation blocks map to features.

A dataset frame of ours is the robot state's fields, then each further input's fields
(``ObservationSpec.parts``). In LeRobot each block is a feature of its own:

- the state's positions: ``observation.state``, its velocities: ``observation.velocity`` (the
  names LeRobot's ALOHA datasets use), ``names`` = the joints;
- a further input on topic ``/a/b``: ``observation.a.b`` (its velocities:
  ``observation.a.b_velocity``), ``names`` = ``b_<joint>`` (``b_velocity_<joint>``): the
  topic comes back from the key, the joints from the names;
- the actions: ``action``, ``names`` = the action joints.
"""
from __future__ import annotations

from dataclasses import dataclass

from il_policy_node.runtime.observation import ObservationSpec, StateField

CODEBASE_VERSION = 'v3.0'
INFO_FILE = 'meta/info.json'
STATS_FILE = 'meta/stats.json'
TASKS_FILE = 'meta/tasks.parquet'
DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
EPISODES_PATH = 'meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
EPISODES_GLOB = 'meta/episodes/*/*.parquet'
CHUNKS_SIZE = 1000                 # files per chunk folder, as LeRobot writes
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200

STATE = 'observation.state'
VELOCITY = 'observation.velocity'
ACTION = 'action'
OBSERVATION_PREFIX = 'observation.'
VELOCITY_SUFFIX = '_velocity'
# the per-frame bookkeeping columns every v3.0 data file ends with, and their dtypes
INDEX_FEATURES = {'timestamp': 'float32', 'frame_index': 'int64', 'episode_index': 'int64',
                  'index': 'int64', 'task_index': 'int64'}
VISUAL_DTYPES = ('image', 'video')
QUANTILES = {'q01': 0.01, 'q10': 0.10, 'q50': 0.50, 'q90': 0.90, 'q99': 0.99}
STATISTICS = ('min', 'max', 'mean', 'std', 'count', *QUANTILES)
# the split names LeRobot and the Hugging Face hub use for our validation split
VAL_SPLIT_NAMES = ('val', 'validation', 'test')


@dataclass(frozen=True)
class Block:
    """One observation block of our frame as one LeRobot feature."""

    key: str
    topic: str | None            # None: the robot's state
    field: StateField
    joints: tuple[str, ...]
    start: int                   # first column in our frame

    @property
    def names(self) -> list[str]:
        if self.topic is None:
            return list(self.joints)
        prefix = self.key.rsplit('.', 1)[-1]
        return [f'{prefix}_{joint}' for joint in self.joints]

    @property
    def columns(self) -> slice:
        return slice(self.start, self.start + len(self.joints))


def input_key(topic: str, field: StateField) -> str:
    """The feature key of a further input's field (topic ``/a/b`` -> ``observation.a.b``)."""
    key = OBSERVATION_PREFIX + topic.strip('/').replace('/', '.')
    return key + VELOCITY_SUFFIX if field is StateField.VELOCITY else key


def key_topic(key: str) -> str:
    """The topic of a further input's feature key (the inverse of ``input_key``)."""
    return '/' + key[len(OBSERVATION_PREFIX):].replace('.', '/')


def blocks_of(spec: ObservationSpec) -> list[Block]:
    """Our frame's blocks in layout order, each with its feature key."""
    blocks = []
    for topic, field, start, joints in spec.blocks():
        if topic is None:
            key = STATE if field is StateField.POSITION else VELOCITY
        else:
            key = input_key(topic, field)
        blocks.append(Block(key=key, topic=topic, field=field, joints=joints, start=start))
    return blocks


def strip_prefix(names: list[str], key: str) -> tuple[str, ...]:
    """Joint names of a further input's feature: ``names`` without the key's ``<last>_``."""
    prefix = key.rsplit('.', 1)[-1] + '_'
    if names and all(n.startswith(prefix) and len(n) > len(prefix) for n in names):
        return tuple(n[len(prefix):] for n in names)
    return tuple(names)


def format_ranges(indices: list[int]) -> str:
    """Episode indices as LeRobot's split string: ``"0:8"``, or ranges joined by commas."""
    ranges: list[list[int]] = []
    for i in indices:
        if ranges and ranges[-1][1] == i:
            ranges[-1][1] = i + 1
        else:
            ranges.append([i, i + 1])
    return ','.join(f'{a}:{b}' for a, b in ranges)


def parse_ranges(text: str) -> list[int]:
    """The episode indices of a split string (``"0:8"`` or ``"0:2,3:8"``); ValueError if bad."""
    indices: list[int] = []
    for part in str(text).split(','):
        start, end = part.split(':')
        indices.extend(range(int(start), int(end)))
    return indices
