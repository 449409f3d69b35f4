"""Integration-test harness: node processes on a private ROS domain and a receiving test node.

One :class:`Graph` per test: it starts policy_node and joint-state sources as separate
processes (logs in files), and holds a :class:`Receiver` (an rclpy node in its own Context,
spun in a background thread) that records what policy_node publishes and drives it.
"""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from il_policy_node.ros.conversions import seconds
from il_policy_node.ros.diagnostics import parse_values
from il_policy_node.ros.lifecycle_client import LifecycleClient
from il_policy_node.ros.local_graph import local_ros_env, ros_args, spawn, stop
from il_policy_node.ros.operator import BackgroundNode
from il_policy_node.ros.qos import COMMAND_QOS, ESTOP_QOS, MONITOR_QOS

REPO = Path(__file__).resolve().parents[2]
NODE = '/policy_node'
JOINTS = ('j0', 'j1', 'j2')
RATE_HZ = 100.0
START = np.array([0.1, -0.4, 0.7])   # where the static test robot stands


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout_s`` passes; returns its last truth."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def policy_params(model_path: Path, **overrides: Any) -> dict[str, Any]:
    """policy_node parameters for the 3-joint test robot; keyword arguments override.

    state_timeout_s is long (1 s) so that a loaded 2-core machine stalling a process for a few
    hundred milliseconds does not trip the watchdog in tests that count holds.
    """
    params = {
        'model_path': str(model_path), 'joint_names': list(JOINTS),
        'control_rate_hz': RATE_HZ, 'state_timeout_s': 1.0, 'ramp_in_s': 0.2,
        'position_lower_limits': [-3.0] * 3, 'position_upper_limits': [3.0] * 3,
        'max_velocity_rad_s': [2.0], 'publish_velocities': True, 'warmup_iterations': 2,
        'diagnostics_period_s': 0.2,
    }
    params.update(overrides)
    return params


@dataclass(frozen=True)
class Trajectory:
    """One received JointTrajectory as arrays; ``positions`` is [points, joints]."""

    t: float                         # monotonic receive time (s)
    joint_names: tuple[str, ...]
    stamp_ns: int
    positions: np.ndarray
    velocities: tuple[np.ndarray, ...]  # per point (empty arrays when absent)
    times: np.ndarray                # time_from_start of each point (s)

    @classmethod
    def of(cls, msg: JointTrajectory) -> 'Trajectory':
        points = msg.points
        return cls(
            t=time.monotonic(), joint_names=tuple(msg.joint_names),
            stamp_ns=msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec,
            positions=np.array([list(p.positions) for p in points], np.float64),
            velocities=tuple(np.array(p.velocities, np.float64) for p in points),
            times=np.array([seconds(p.time_from_start)
                            for p in points]))

    @property
    def target(self) -> np.ndarray:
        """The commanded positions (first point)."""
        return self.positions[0]

    @property
    def hold(self) -> bool:
        """A hold: one point (only meaningful with publish_velocities: commands have two)."""
        return len(self.times) == 1


class Receiver(BackgroundNode):
    """A test node in its own Context: records trajectories and diagnostics, calls services."""

    def __init__(self, domain_id: int, target: str = NODE) -> None:
        super().__init__(domain_id, 'test_receiver')
        self.trajectories: list[Trajectory] = []
        self.targets: list[JointState] = []
        self.diagnostics: list[dict[str, str]] = []   # values of target's statuses, in order
        self._status_name = f'il_policy_node: {target.rsplit("/", 1)[-1]}'
        node = self.node
        self.trajectory_sub = node.create_subscription(
            JointTrajectory, '/joint_trajectory',
            lambda m: self.trajectories.append(Trajectory.of(m)), _deep(COMMAND_QOS))
        node.create_subscription(JointState, f'{target}/target_joint_states',
                                 self.targets.append, _deep(MONITOR_QOS))
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                 _deep(MONITOR_QOS))
        self.estop_pub = node.create_publisher(Bool, '/estop', ESTOP_QOS)
        self._reset = node.create_client(Trigger, f'{target}/reset_estop')
        self._set_params = node.create_client(SetParameters, f'{target}/set_parameters')
        self.lifecycle = LifecycleClient(node, target)
        self._target = target
        self.start()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == self._status_name:
                self.diagnostics.append(dict(parse_values(status), _message=status.message,
                                             _level=str(ord(status.level))))

    # -- reading ---------------------------------------------------------------------------
    def since(self, mark: int) -> list[Trajectory]:
        """Trajectories received after the first ``mark`` ones."""
        return list(self.trajectories[mark:])

    def diagnostic(self, key: str, default: str = '') -> str:
        """The latest value of ``key`` on the node's diagnostics ('' before the first)."""
        return self.diagnostics[-1].get(key, default) if self.diagnostics else default

    def wait_for_diagnostic(self, key: str, predicate: Callable[[str], bool],
                            timeout_s: float = 5.0) -> bool:
        return wait_until(lambda: bool(self.diagnostics) and
                          predicate(self.diagnostics[-1].get(key, '')), timeout_s)

    # -- driving ---------------------------------------------------------------------------
    def _call(self, client, request, timeout_s: float = 10.0, attempts: int = 1):
        """Call and wait for the answer.

        Idempotent requests may be sent ``attempts`` times: a response can be lost while the
        client's response reader is still being matched (DDS discovery).
        """
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f'service {client.srv_name} not available')
        for _ in range(attempts):
            future = client.call_async(request)
            if wait_until(future.done, timeout_s / attempts, 0.005):
                return future.result()
            client.remove_pending_request(future)
        raise TimeoutError(f'no answer from {client.srv_name} within {timeout_s} s')

    def client(self, srv_type, service: str):
        """A (cached) client of ``service``; a name starting with ``~/`` is the target's."""
        name = f'{self._target}/{service[2:]}' if service.startswith('~/') else service
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv_type, name)
        return self._clients[name]

    def trigger(self, service: str, *, timeout_s: float = 10.0,
                attempts: int = 1) -> Trigger.Response:
        """Call a std_srvs/Trigger service (retry only idempotent ones with ``attempts``)."""
        return self._call(self.client(Trigger, service), Trigger.Request(), timeout_s, attempts)

    def set_bool(self, service: str, data: bool, *, timeout_s: float = 10.0,
                 attempts: int = 1) -> SetBool.Response:
        """Call a std_srvs/SetBool service (retry only idempotent ones with ``attempts``)."""
        return self._call(self.client(SetBool, service), SetBool.Request(data=data),
                          timeout_s, attempts)

    def reset_estop(self) -> Trigger.Response:
        return self._call(self._reset, Trigger.Request())

    def set_parameters(self, params: dict[str, Any]) -> list:
        """Set parameters on the target; returns the SetParametersResult of each."""
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()
                        for name, value in params.items()])
        return list(self._call(self._set_params, request, attempts=3).results)

    def estop(self, value: bool) -> None:
        if not wait_until(lambda: self.estop_pub.get_subscription_count() > 0, 10.0):
            raise TimeoutError('nobody subscribes /estop')
        self.estop_pub.publish(Bool(data=value))


def assert_controller_contract(msgs: list[Trajectory], velocities: bool) -> None:
    """joint_trajectory_controller's contract, on every message."""
    assert msgs
    for msg in msgs:
        assert msg.stamp_ns == 0
        assert msg.joint_names == JOINTS
        assert msg.positions.shape[1] == len(JOINTS) and np.isfinite(msg.positions).all()
        assert msg.times[0] > 0 and (np.diff(msg.times) > 0).all()
        if velocities:
            assert all(len(v) == len(JOINTS) and np.isfinite(v).all() for v in msg.velocities)
            assert (msg.velocities[-1] == 0.0).all()
        else:
            assert all(len(v) == 0 for v in msg.velocities)


def max_step(msgs: list[Trajectory]) -> float:
    targets = np.array([m.target for m in msgs])
    return float(np.abs(np.diff(targets, axis=0)).max()) if len(targets) > 1 else 0.0


def expect_one_hold_then_silence(rx: Receiver, mark: int, silence_s: float = 1.0,
                                 timeout_s: float = 10.0) -> tuple[list[Trajectory], Trajectory]:
    """Wait for a hold after ``mark``, watch ``silence_s``; exactly one hold, nothing after it."""
    assert wait_until(lambda: any(m.hold for m in rx.since(mark)), timeout_s), 'no hold'
    time.sleep(silence_s)                               # the observation window for silence
    msgs = rx.since(mark)
    holds = [i for i, m in enumerate(msgs) if m.hold]
    assert len(holds) == 1, f'{len(holds)} holds'
    assert holds[0] == len(msgs) - 1, f'{len(msgs) - 1 - holds[0]} messages after the hold'
    hold = msgs[-1]
    assert np.isfinite(hold.positions).all() and (hold.velocities[0] == 0.0).all()
    return msgs, hold


def _deep(qos: QoSProfile) -> QoSProfile:
    """The same QoS with a long history, so the test never drops what it checks."""
    return QoSProfile(history=qos.history, depth=10000, reliability=qos.reliability,
                      durability=qos.durability)


@dataclass
class Process:
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors='replace') if self.log_path.exists() else ''


class Graph:
    """The processes and the receiver of one test; :meth:`close` stops them all."""

    def __init__(self, domain_id: int, workdir: Path, target: str = NODE) -> None:
        self.workdir = workdir
        self.env = local_ros_env(domain_id)
        self.env['PYTHONPATH'] = os.pathsep.join(
            p for p in (str(REPO), self.env.get('PYTHONPATH', '')) if p)
        self.processes: list[Process] = []
        self.receiver = Receiver(domain_id, target)

    def spawn(self, module: str, args: Sequence[str], name: str) -> Process:
        """Run ``python -m module args`` on this graph; its output goes to a log file."""
        log_path = self.workdir / f'{name}-{len(self.processes)}.log'
        process = Process(spawn(module, env=self.env, args=args, log_path=log_path), log_path)
        self.processes.append(process)
        return process

    def policy_node(self, params: dict[str, Any], *, configure: bool = True) -> Process:
        """Start policy_node with ``params``; wait for its lifecycle services (and configure)."""
        process = self.spawn('il_policy_node.nodes.policy_node', ros_args(params),
                              'policy_node')
        if not self.receiver.lifecycle.wait_for_services(30.0):
            raise TimeoutError(f'policy_node did not come up:\n{process.log()}')
        if configure:
            assert self.receiver.lifecycle.change('configure'), process.log()
            # Matched before anything is published, so the test sees the first command.
            assert wait_until(lambda: self.receiver.trajectory_sub.get_publisher_count(), 10.0)
        return process

    def source(self, positions: Sequence[float], *options: str,
               joints: Sequence[str] = JOINTS, rate_hz: float = 200.0,
               name: str = 'source') -> Process:
        """Start a joint-state source (test.support.joint_state_source) holding ``positions``."""
        params = {'joint_names': list(joints), 'initial_positions': [float(p) for p in positions],
                  'publish_rate_hz': rate_hz, 'follow_commands': False}
        return self.spawn('test.support.joint_state_source', [*options, *ros_args(params)], name)

    def seq_publisher(self, topic: str, *options: str, name: str = 'publisher') -> Process:
        """Start test.support.seq_publisher on ``topic`` with its command-line ``options``."""
        return self.spawn('test.support.seq_publisher', ['--topic', topic, *options], name)

    def activate(self, model: Path, *source_options: str, **params: Any) -> 'Receiver':
        """policy_node on ``model`` (configured), a source holding START, then activate."""
        self.policy_node(policy_params(model, **params))
        self.source(START, *source_options)
        assert self.receiver.lifecycle.change('activate')
        return self.receiver

    def stop(self, process: Process) -> None:
        stop(process.popen)

    def close(self) -> None:
        try:
            for process in reversed(self.processes):
                stop(process.popen)
        finally:
            self.receiver.close()
            for process in self.processes:   # shown by pytest when the test failed
                print(f'----- {process.log_path.name} -----\n{process.log()[-4000:]}')
            rx = self.receiver
            print(f'----- received {len(rx.trajectories)} trajectories; last diagnostics: '
                  f'{rx.diagnostics[-1] if rx.diagnostics else None}')
