"""Read rosbag2 bags back in tests, with three independent decoders.

- rosbags: its Reader and the Jazzy typestore (the library the recorder writes with);
- mcap + mcap-ros2-support: the MCAP file alone, decoded with the schemas stored in it;
- sqlite3 + rclpy: the .db3 rows, decoded by rclpy's own CDR deserializer.

Each returns ``{topic: [sequence numbers in file order]}`` for messages published by
test.support.seq_publisher, checking on the way that every message is what it published.
"""
from __future__ import annotations

import sqlite3
from collections import defaultdict
from contextlib import closing
from pathlib import Path
from typing import Any

import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from test.support.seq_publisher import JOINTS

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
RCLPY_TYPES = {'sensor_msgs/msg/JointState': JointState,
               'trajectory_msgs/msg/JointTrajectory': JointTrajectory}


def seq_of(msg: Any) -> int:
    """The sequence number of a seq_publisher message (any decoder's object); checks content."""
    seq = int(msg.header.frame_id)
    if hasattr(msg, 'position'):                                # JointState
        names, first = msg.name, msg.position[0]
    else:                                                       # JointTrajectory
        names, first = msg.joint_names, msg.points[0].positions[0]
    assert list(names) == list(JOINTS[:len(names)]), f'message {seq}: joint names {names}'
    assert float(first) == seq, f'message {seq}: first position {first}'
    return seq


def metadata(bag: Path) -> dict:
    """rosbag2_bagfile_information of a bag's metadata.yaml."""
    return yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']


def data_files(bag: Path, suffix: str) -> list[Path]:
    return sorted(p for p in bag.iterdir() if p.name.endswith(suffix))


def read_rosbags(bag: Path) -> dict[str, list[int]]:
    """Sequence numbers per topic, read with rosbags (metadata.yaml and the data file)."""
    seqs: dict[str, list[int]] = defaultdict(list)
    with Reader(bag) as reader:
        for connection, _, raw in reader.messages():
            msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            seqs[connection.topic].append(seq_of(msg))
    return dict(seqs)


def read_mcap(path: Path) -> tuple[dict[str, list[int]], set[str]]:
    """Sequence numbers per topic in one .mcap file (file order) and its chunk compressions."""
    seqs: dict[str, list[int]] = defaultdict(list)
    with open(path, 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for _, channel, _, decoded in reader.iter_decoded_messages(log_time_order=False):
            seqs[channel.topic].append(seq_of(decoded))
        summary = reader.get_summary()
    compressions = {c.compression for c in summary.chunk_indexes} if summary else set()
    return dict(seqs), compressions


def read_sqlite(path: Path) -> dict[str, list[int]]:
    """Sequence numbers per topic in one .db3 file (insertion order), decoded by rclpy."""
    seqs: dict[str, list[int]] = defaultdict(list)
    with closing(sqlite3.connect(f'file:{path}?mode=ro', uri=True)) as db:
        rows = db.execute('SELECT topics.name, topics.type, messages.data FROM messages '
                          'JOIN topics ON messages.topic_id = topics.id ORDER BY messages.id')
        for topic, msgtype, data in rows:
            seqs[topic].append(seq_of(deserialize_message(bytes(data), RCLPY_TYPES[msgtype])))
    return dict(seqs)
