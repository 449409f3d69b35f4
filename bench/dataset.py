"""Dataset build benchmark: messages/s of build_dataset against the floor of reading the bags.

Writes MCAP bags totalling N 30-joint JointState messages (500 Hz, several episodes) into a
temp folder, then measures in this run:
- floor: iterating the same bags with rosbags' Reader without deserializing (messages/s);
- the build (future-state actions, 50 Hz grid) with 1 worker and with 2 worker processes.
peak_rss_mb: the largest resident set of this process and of any child (getrusage).
Progress goes to stderr; the last stdout line is one JSON object.
Usage: ``python bench/dataset.py --messages 1000000``.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_typestore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from il_policy_node.pipeline.dataset.build import build_dataset  # noqa: E402
from il_policy_node.pipeline.dataset.config import DatasetConfig  # noqa: E402

JOINT_STATE = 'sensor_msgs/msg/JointState'
JOINTS = [f'joint_{i}' for i in range(30)]
RATE_HZ = 500.0
FLOOR_FRACTION = 0.5
SCALING = 1.8


def write_bags(folder: Path, messages: int, episodes: int) -> list[Path]:
    store = get_typestore(Stores.ROS2_JAZZY)
    msg_type, header, stamp = (store.types[JOINT_STATE], store.types['std_msgs/msg/Header'],
                               store.types['builtin_interfaces/msg/Time'])
    per = [messages // episodes + (i < messages % episodes) for i in range(episodes)]
    bags = []
    phases = np.linspace(0, 1, 30)
    for e, count in enumerate(per):
        path = folder / f'episode_{e + 1:04d}'
        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.set_custom_data('success', 'true')
        writer.open()
        conn = writer.add_connection('/joint_states', JOINT_STATE, typestore=store)
        t0 = 1_700_000_000_000_000_000 + e * 10**12
        for i in range(count):
            t = i / RATE_HZ
            ns = t0 + int(i * 1e9 / RATE_HZ)
            msg = msg_type(header=header(stamp=stamp(sec=ns // 10**9, nanosec=ns % 10**9),
                                         frame_id='base'),
                           name=JOINTS, position=np.sin(t + phases),
                           velocity=np.cos(t + phases), effort=np.zeros(0))
            writer.write(conn, ns + 200_000, store.serialize_cdr(msg, JOINT_STATE))
        writer.close()
        bags.append(path)
        print(f'wrote {path.name}: {count} messages', file=sys.stderr)
    return bags


def floor(bags: list[Path]) -> tuple[int, float]:
    start = time.perf_counter()
    count = 0
    for bag in bags:
        with Reader(bag) as reader:
            for _ in reader.messages():
                count += 1
    return count, time.perf_counter() - start


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--messages', type=int, default=1_000_000)
    parser.add_argument('--episodes', type=int, default=20)
    args = parser.parse_args()
    config = DatasetConfig.from_dict({'control_rate_hz': 50.0, 'split': {'val_fraction': 0.1}})
    with tempfile.TemporaryDirectory(prefix='bench_dataset_') as tmp:
        folder = Path(tmp)
        bags = write_bags(folder / 'bags', args.messages, args.episodes)
        count, floor_s = floor(bags)
        print(f'floor: {count} messages in {floor_s:.2f} s', file=sys.stderr)
        result = {'messages': count, 'episodes': len(bags),
                  'floor_msgs_per_s': round(count / floor_s)}
        for workers in (1, 2):
            start = time.perf_counter()
            report = build_dataset([str(folder / 'bags')], config=config,
                                   output_dir=folder / f'dataset_{workers}', workers=workers,
                                   progress=False)
            seconds = time.perf_counter() - start
            assert report.messages == count and not report.errors, report.errors
            print(f'{workers} worker(s): {seconds:.2f} s, {report.rows} rows', file=sys.stderr)
            result[f'msgs_per_s_{workers}_worker{"s" if workers > 1 else ""}'] = \
                round(count / seconds)
            result[f'seconds_{workers}'] = round(seconds, 3)
        result['rows'] = report.rows
    result['peak_rss_mb'] = round(peak_rss_mb(), 1)
    one, two = result['msgs_per_s_1_worker'], result['msgs_per_s_2_workers']
    result['ratio_1_worker_to_floor'] = round(one / result['floor_msgs_per_s'], 3)
    result['ratio_2_to_1_workers'] = round(two / one, 3)
    result['goal_1_worker_ge_0_5_floor'] = one >= FLOOR_FRACTION * result['floor_msgs_per_s']
    result['goal_2_workers_ge_1_8x'] = two >= SCALING * one
    print(json.dumps(result))


if __name__ == '__main__':
    main()
