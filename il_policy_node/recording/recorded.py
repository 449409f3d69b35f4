"""What demo_recorder tracks while it runs, and the status it reports (ROS-free).

:class:`RecordedTopic` is one recorded topic (type, subscription, counters), :class:`OpenEpisode`
the episode being written, :func:`recorder_status` the level, message and values of the
recorder's /diagnostics from them. The node (nodes/demo_recorder_node.py) wires these to rclpy.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from il_policy_node.recording.metadata import EpisodeMetadata
from il_policy_node.recording.writer import EpisodeWriter, TopicInfo


@dataclass
class RecordedTopic:
    """One recorded topic: its type, subscription and counters."""

    name: str
    msgtype: str                        # '' until discovered
    subscription: object = None
    qos: object = None                  # the plain Qos subscribed with
    info: TopicInfo | None = None       # for bag connections
    error: str = ''                     # type changed / cannot be recorded: not recorded
    publishers: int = 0
    received: int = 0                   # all messages, idle or recording
    window_received: int = 0
    last_received: float | None = None  # monotonic s
    lost: int = 0                       # lost in the episode (QoS event message_lost)
    publishers_lost: bool = False       # had publishers in the episode, now none
    in_episode: bool = False            # a connection of the open bag
    msg_class: type | None = None
    latched: bytes | None = None         # transient local: last message, for each episode
    latching: bool = False               # subscribed transient local


@dataclass
class OpenEpisode:
    metadata: EpisodeMetadata          # what is known at its start
    writer: EpisodeWriter
    start_monotonic: float
    timer: object = None

    @property
    def index(self) -> int:
        return self.metadata.episode_index


def recorder_status(topics: Iterable[RecordedTopic], episode: OpenEpisode | None, *,
                    now: float, elapsed_s: float, free_disk_mb: float,
                    config_error: str | None) -> tuple[str, str, dict[str, object]]:
    """(level, message, values) of the recorder's status; resets each topic's rate window.

    ``elapsed_s``: since the last status (the rate window); ``config_error``: None when the
    parameters are good.
    """
    values: dict[str, object] = {
        'state': 'recording' if episode else 'idle',
        'episode_index': episode.index if episode else 0,
        'episode_path': str(episode.writer.path) if episode else '',
        'elapsed_s': now - episode.start_monotonic if episode else 0.0,
        'bytes_written': episode.writer.bytes_on_disk() if episode else 0,
        'write_queue': episode.writer.pending if episode else 0,
    }
    level, message = 'ok', values['state']
    if config_error is not None:
        level, message = 'error', f'bad parameters: {config_error}'
    values['free_disk_mb'] = free_disk_mb
    warnings, errors = [], []
    for topic in topics:
        values[f'rate_hz {topic.name}'] = topic.window_received / max(elapsed_s, 1e-9)
        values[f'count {topic.name}'] = episode.writer.counts.get(topic.name, 0) \
            if episode else 0
        values[f'lost {topic.name}'] = topic.lost
        values[f'publishers {topic.name}'] = topic.publishers
        topic.window_received = 0
        if topic.error:
            errors.append(topic.error)
        elif episode and topic.publishers_lost:
            warnings.append(f'{topic.name} lost its publishers')
        elif episode and topic.lost:
            warnings.append(f'{topic.name} lost {topic.lost} messages')
    if episode and episode.writer.error:
        errors.append(f'writing the bag failed: {episode.writer.error}')
    if errors:
        level, message = 'error', '; '.join(errors)
    elif warnings and level == 'ok':
        level, message = 'warn', f'{message}: ' + '; '.join(warnings)
    return level, message, values
