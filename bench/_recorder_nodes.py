"""The processes bench/recorder.py drives: paced publishers and the floor subscriber.

``python -m bench._recorder_nodes publisher --kind joint_states --rate 2000 --duration 10
--out P.jsonl --ros-args ...`` publishes nothing until SIGUSR1; each SIGUSR1 starts one phase:
wait for a matched subscription, settle, publish ``rate * duration`` messages paced on the
monotonic clock (several per wake-up when a sleep overshoots), wait for the acknowledgements,
append one JSON line of totals to ``--out``. SIGINT ends the process.

Messages are serialized once and published as bytes; per message only the sequence number
(``header.frame_id``, ten ASCII digits, CDR bytes 16..26) and ``header.stamp`` (publish wall
time, bytes 4..12) are written into the buffer, so one Python process reaches 5 kHz with
little CPU and the subscribers can read both without deserializing.

``python -m bench._recorder_nodes floor --out F.json --topics /a,/b`` is the floor: a bare
rclpy node with raw subscriptions (reliable, volatile, the recorder's depth) on a
SingleThreadedExecutor that only keeps the sequence bytes of each message; on SIGINT it
writes counts and sequence numbers per topic to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import signal
import struct
import sys
import threading
import time

import psutil
import rclpy
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

JOINTS = [f'joint_{i:02d}' for i in range(30)]
SEQ_SLICE = slice(16, 26)   # header.frame_id characters in the CDR bytes (little endian)
STAMP_OFFSET = 4            # header.stamp (int32 sec, uint32 nanosec)
SEQ_DIGITS = 10
MATCH_TIMEOUT_S = 30.0
ACK_TIMEOUT_S = 30.0
MSG_TYPES = {'joint_states': JointState, 'joint_trajectory': JointTrajectory}
TYPE_NAMES = {'joint_states': 'sensor_msgs/msg/JointState',
              'joint_trajectory': 'trajectory_msgs/msg/JointTrajectory'}


def qos(depth: int) -> QoSProfile:
    """Reliable, volatile, keep last ``depth``."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def seq_of(raw: bytes) -> int:
    """The sequence number of a bench message, read from its CDR bytes."""
    return int(raw[SEQ_SLICE])


def stamp_ns(raw: bytes) -> int:
    """header.stamp of a bench message in ns, read from its CDR bytes."""
    sec, nanosec = struct.unpack_from('<iI', raw, STAMP_OFFSET)
    return sec * 10**9 + nanosec


def template(kind: str) -> bytearray:
    """A 30-joint message of ``kind`` with a ten-digit frame_id, serialized; layout checked."""
    values = [0.1 * i for i in range(len(JOINTS))]
    if kind == 'joint_states':
        msg = JointState(name=JOINTS, position=values, velocity=values, effort=values)
    else:
        msg = JointTrajectory(joint_names=JOINTS, points=[
            JointTrajectoryPoint(positions=values, velocities=values)])
    msg.header.frame_id = '0' * SEQ_DIGITS
    buffer = bytearray(serialize_message(msg))
    buffer[SEQ_SLICE] = b'%0*d' % (SEQ_DIGITS, 1234567890)
    struct.pack_into('<iI', buffer, STAMP_OFFSET, 12, 34)
    check = deserialize_message(bytes(buffer), MSG_TYPES[kind])
    if check.header.frame_id != '1234567890' or (check.header.stamp.sec,
                                                 check.header.stamp.nanosec) != (12, 34):
        raise RuntimeError(f'unexpected CDR layout of {kind}')
    return buffer


class PacedPublisher:
    """Publishes pre-serialized messages at a rate in phases started by SIGUSR1."""

    def __init__(self, node: Node, *, kind: str, topic: str, rate_hz: float, duration_s: float,
                 depth: int, settle_s: float) -> None:
        self.node, self.kind, self.rate_hz = node, kind, rate_hz
        self.total = int(round(rate_hz * duration_s))
        self.settle_s = settle_s
        self.publisher = node.create_publisher(MSG_TYPES[kind], topic, qos(depth))
        self.topic = self.publisher.topic_name
        self.buffer = template(kind)
        self.next_seq = 1
        self.phases = 0

    def _publish(self, seq: int) -> None:
        buffer = self.buffer
        buffer[SEQ_SLICE] = b'%010d' % seq
        sec, nanosec = divmod(time.time_ns(), 10**9)
        struct.pack_into('<iI', buffer, STAMP_OFFSET, sec, nanosec)
        self.publisher.publish(bytes(buffer))

    def phase(self) -> dict:
        """Wait for a subscriber, publish one window, wait for the acknowledgements."""
        self.phases += 1
        wait_start = time.monotonic()
        while self.publisher.get_subscription_count() < 1:
            if time.monotonic() - wait_start > MATCH_TIMEOUT_S:
                return {'kind': self.kind, 'phase': self.phases, 'error': 'no subscriber'}
            time.sleep(0.01)
        matched_wait_s = time.monotonic() - wait_start
        time.sleep(self.settle_s)
        process = psutil.Process()
        cpu_start = process.cpu_times()
        first_seq, rate, total = self.next_seq, self.rate_hz, self.total
        batches = late = 0
        max_batch = 0
        sent = 0
        wall_start = time.time()
        start = time.perf_counter()
        first_ns = time.perf_counter_ns()
        while sent < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            batch = due - sent
            for _ in range(batch):
                self._publish(first_seq + sent)
                sent += 1
            last_ns = time.perf_counter_ns()
            batches += 1
            if batch > 1:
                late += batch - 1
                max_batch = max(max_batch, batch)
            wait = start + sent / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        wall_end = time.time()
        cpu_end = process.cpu_times()
        self.next_seq += sent
        ack_start = time.monotonic()
        acked = self.publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        span_s = (last_ns - first_ns) / 1e9
        cpu_s = (cpu_end.user + cpu_end.system) - (cpu_start.user + cpu_start.system)
        return {
            'kind': self.kind, 'topic': self.topic, 'phase': self.phases,
            'first_seq': first_seq, 'count': sent, 'span_s': round(span_s, 4),
            'wall_start': wall_start, 'wall_end': wall_end,
            'achieved_hz': round((sent - 1) / span_s, 1) if span_s > 0 else None,
            'wakeups': batches, 'max_batch': max_batch, 'batched_messages': late,
            'acked': bool(acked), 'ack_wait_s': round(time.monotonic() - ack_start, 3),
            'matched_wait_s': round(matched_wait_s, 3),
            'cpu_percent': round(100.0 * cpu_s / max(span_s, 1e-9), 1),
            'message_bytes': len(self.buffer),
        }


def run_publisher(args: argparse.Namespace) -> None:
    go = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: go.set())
    node = Node(f'bench_{args.kind}_publisher')
    paced = PacedPublisher(node, kind=args.kind, topic=args.topic, rate_hz=args.rate,
                           duration_s=args.duration, depth=args.depth, settle_s=args.settle)
    print(f'{paced.topic}: ready, {args.rate:g} Hz, {len(paced.buffer)} B', file=sys.stderr)
    try:
        while True:
            if not go.wait(timeout=0.2):
                continue
            go.clear()
            result = paced.phase()
            with open(args.out, 'a') as stream:
                stream.write(json.dumps(result) + '\n')
            print(json.dumps(result), file=sys.stderr)
    finally:
        node.destroy_node()


class Floor(Node):
    """Raw subscriptions that only keep the sequence bytes of each message.

    With ``drain`` (an experiment, not the floor) each callback also takes every message
    already waiting on its subscription, bypassing the executor for all but the first.
    """

    def __init__(self, topics: list[str], depth: int, *, drain: bool = False) -> None:
        super().__init__('bench_floor')
        self.seqs: dict[str, list[bytes]] = {}
        for topic, kind in (t.split('=') for t in topics):
            seqs = self.seqs.setdefault(topic, [])
            holder: list = []
            callback = self._draining(seqs, holder) if drain else self._callback(seqs)
            holder.append(self.create_subscription(MSG_TYPES[kind], topic, callback,
                                                   qos(depth), raw=True))

    @staticmethod
    def _callback(seqs: list[bytes]):
        append = seqs.append

        def on_message(raw: bytes) -> None:
            append(raw[SEQ_SLICE])
        return on_message

    @staticmethod
    def _draining(seqs: list[bytes], holder: list):
        append = seqs.append

        def on_message(raw: bytes) -> None:
            append(raw[SEQ_SLICE])
            sub = holder[0]
            take, msg_type = sub.handle.take_message, sub.msg_type
            with sub.handle:
                while (taken := take(msg_type, True)) is not None:
                    append(taken[0][SEQ_SLICE])
        return on_message


def run_floor(args: argparse.Namespace) -> None:
    node = Floor(args.topics.split(','), args.depth, drain=args.executor == 'drain')
    if args.executor == 'events':
        from rclpy.experimental import EventsExecutor
        executor = EventsExecutor()
    else:
        executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while True:     # a timeout, so SIGINT (a Python exception) is seen when idle
            executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        result = {topic: [int(s) for s in seqs] for topic, seqs in node.seqs.items()}
        with open(args.out, 'w') as stream:
            json.dump(result, stream)
        executor.shutdown()
        node.destroy_node()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='role', required=True)
    pub = sub.add_parser('publisher')
    pub.add_argument('--kind', choices=sorted(MSG_TYPES), required=True)
    pub.add_argument('--topic', required=True)
    pub.add_argument('--rate', type=float, required=True, help='messages per second')
    pub.add_argument('--duration', type=float, required=True, help='seconds per phase')
    pub.add_argument('--depth', type=int, default=10, help='publisher history depth')
    pub.add_argument('--settle', type=float, default=1.0,
                     help='seconds between the match and the first message')
    pub.add_argument('--out', required=True, help='JSON lines, one per phase')
    floor = sub.add_parser('floor')
    floor.add_argument('--topics', required=True, help='topic=kind,topic=kind')
    floor.add_argument('--depth', type=int, required=True, help='subscription history depth')
    floor.add_argument('--out', required=True, help='JSON file written at SIGINT')
    floor.add_argument('--executor', choices=('single', 'events', 'drain'), default='single',
                       help='single: SingleThreadedExecutor as rclpy.spin (the floor); '
                            'events: rclpy.experimental.EventsExecutor; drain: single, and '
                            'each callback takes all waiting messages (experiments)')
    args = parser.parse_args(remove_ros_args(argv)[1:])
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    try:
        if args.role == 'publisher':
            run_publisher(args)
        else:
            run_floor(args)
    except KeyboardInterrupt:
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
