"""What every task of the main job shares.

Settings, the local ROS graph, the il-policy commands, policy rollouts, recorded runs, plots
and the result of a task.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from il_policy_node.demo.scoring import Score, summarize
from il_policy_node.errors import IlPolicyError
from il_policy_node.pipeline.bag_decoding import JOINT_STATE, JOINT_TRAJECTORY
from il_policy_node.pipeline.bags import find_bags, read_topics
from il_policy_node.sim.demonstrator import TEACHING_RATE_HZ

_log = logging.getLogger('il_policy_node.demo')

CONTROL_RATE_HZ = TEACHING_RATE_HZ
SIM_RATE_HZ = 500.0
COMMAND_TOPIC = '/joint_trajectory_controller/joint_trajectory'
HELD_OUT_SEED_OFFSET = 1000      # held-out episodes: seed + this (never used for training)
SUCCESS_GOAL = 0.9
LOOP_KEYS = ('loop_rate_hz', 'missed_ticks', 'period_error_p99_us', 'compute_p50_us',
             'compute_p99_us')
# Every task: relative actions and 0.5 s chunks with temporal ensembling, trained for a fixed
# number of epochs and exported from the last one (the validation loss of one held-out
# demonstration does not predict closed-loop success).
HORIZON = 25
EPOCHS = 60
DEFAULT_MODEL = 'mlp'      # the family of the main job (bench/closed_loop.py --models compares)
TIMING_FILE = 'pipeline_timing.json'


def policy_figures(folder: Path, policy: Path) -> dict[str, Any]:
    """The family, its inference cost (measured at export) and the training time of a task."""
    from il_policy_node.runtime.artifact import load_policy
    extra = load_policy(policy).metadata.extra
    cost = extra.get('inference', {})
    timing = json.loads((folder / TIMING_FILE).read_text())
    return {'model': extra.get('model', 'mlp'), 'train_s': timing['train_s'],
            'inference_us': {'p50': cost.get('forward_us_p50'),
                             'p99': cost.get('forward_us_p99')}}


# The held-out runs (reference and policy) of one task at a time: the tasks record and train
# side by side, but two closed loops at once on 2 cores miss control ticks.
EVALUATION = threading.Lock()


class StageError(IlPolicyError):
    """A stage of the demo failed; the message names the stage and the reason."""


@dataclass
class Settings:
    """What the demo does; the defaults are the README's main job."""

    out: Path
    tasks: tuple[str, ...] = ('wave', 'reach')
    episodes: int = 10
    rollouts: int = 10
    seed: int = 0
    epochs: int | None = None               # None: the task's recipe (arm 60, mocap 200)
    model: str = DEFAULT_MODEL              # the policy family (train.yaml model:)
    wave_cycles: int = 4
    drive_noise_rad: float | None = None    # None: the task's recipe


@dataclass
class TaskResult:
    """Everything the demo measured for one task."""

    task: str
    policy: Path
    policy_scores: list[Score]
    reference_scores: list[Score]
    open_loop_rmse_rad: float
    loop: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)   # the task's own figures

    def summary(self) -> dict[str, Any]:
        policy, reference = summarize(self.policy_scores), summarize(self.reference_scores)
        return {**self.extra, 'rollouts': policy['rollouts'],
                'success_rate': policy['success_rate'],
                'rmse_rad': policy['rmse_rad'],
                'demonstrator_success_rate': reference['success_rate'],
                'demonstrator_rmse_rad': reference['rmse_rad'],
                'open_loop_rmse_rad': self.open_loop_rmse_rad, 'failures': policy['failures'],
                'control_loop': self.loop, 'policy': str(self.policy)}


@dataclass(frozen=True)
class HeldOutRun:
    """One policy rollout: where the robot starts, how long it is watched, the goal if any."""

    start: np.ndarray
    duration_s: float
    goal: np.ndarray | None = None


# -- the local graph ---------------------------------------------------------------------------
class SimGraph:
    """sim_robot and the other nodes as processes on a private domain, plus an operator node."""

    def __init__(self, out: Path, model: str, name: str,
                 sim_params: dict[str, Any] | None = None) -> None:
        """The graph's sim_robot runs ``model``; node logs and bags go to ``out``.

        ``sim_params``: more sim_robot parameters (e.g. the detour task's obstacle).
        """
        from domain_coordinator import domain_id

        from il_policy_node.ros.local_graph import local_ros_env
        from il_policy_node.ros.operator import Operator
        self.out = out
        self._domain = domain_id()
        self.domain = self._domain.__enter__()
        self.env = local_ros_env(self.domain)
        self.processes: dict[str, subprocess.Popen] = {}
        self.operator = Operator(self.domain, f'demo_operator_{name}')
        self.start('sim_robot', 'il_policy_node.nodes.sim_robot_node',
                   {'model': model, 'publish_rate_hz': SIM_RATE_HZ, **(sim_params or {})})

    def start(self, name: str, module: str, params: dict[str, Any],
              remaps: dict[str, str] | None = None) -> subprocess.Popen:
        from il_policy_node.ros.local_graph import ros_args, spawn
        self.stop(name)
        process = spawn(module, env=self.env, log_path=self.out / f'{name}.log',
                        args=ros_args(params, remaps={'__node': name, **(remaps or {})}))
        self.processes[name] = process
        return process

    def wait_exit(self, name: str, timeout_s: float) -> int:
        """Wait for a node that ends by itself; StageError with its log's tail on failure."""
        process = self.processes.pop(name)
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            from il_policy_node.ros.local_graph import stop
            stop(process)
            raise StageError(f'{name} did not finish within {timeout_s:.0f} s '
                             f'(log: {self.out / f"{name}.log"})') from None
        if code != 0:
            raise StageError(f'{name} exited with {code}: {self.log_tail(name)}')
        return code

    def log_tail(self, name: str, lines: int = 5) -> str:
        path = self.out / f'{name}.log'
        text = path.read_text(errors='replace').strip().splitlines() if path.exists() else []
        return ' | '.join(text[-lines:]) + f' (log: {path})'

    def stop(self, name: str) -> None:
        from il_policy_node.ros.local_graph import stop
        process = self.processes.pop(name, None)
        if process is not None:
            stop(process)

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)
        self.operator.close()
        self._domain.__exit__(None, None, None)

    def reset_robot(self, pose: np.ndarray) -> None:
        """Teleport the simulated robot to ``pose``, at rest (sim_robot ~/reset)."""
        self.operator.set_parameters('/sim_robot', {'initial_positions': [float(p) for p in pose]})
        self.operator.trigger('/sim_robot/reset')

    def start_recorder(self, task: str, session: str, topics: list[str]) -> None:
        self.start('demo_recorder', 'il_policy_node.nodes.demo_recorder_node', {
            'output_dir': str(self.out), 'session': session, 'topics': topics,
            'topic_types': [''] * len(topics), 'required_topics': ['/joint_states'],
            'task': task, 'operator': 'il_policy_node.demo'})
        from std_srvs.srv import Trigger
        if not self.operator.wait_for_service(Trigger, '/demo_recorder/start_episode', 30.0):
            raise StageError(f'demo_recorder did not come up: {self.log_tail("demo_recorder")}')


# -- the il-policy commands --------------------------------------------------------------------
def il_policy(task: str, stage: str, args: list[str]) -> None:
    """One il-policy command as a process; StageError names the stage when it fails."""
    _log.info('%s: il-policy %s', task, ' '.join(args))
    # One thread: the other tasks' simulations run in real time beside it.
    result = subprocess.run([sys.executable, '-m', 'il_policy_node.cli', *args],
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    if result.returncode != 0:
        raise StageError(f'{task}: il-policy {stage} failed (exit {result.returncode})')


def run_pipeline(task: str, bags: Path, folder: Path, settings: Settings,
                 dataset_config: Mapping[str, Any], train_config: Mapping[str, Any] | None = None
                 ) -> tuple[Path, float]:
    """il-policy dataset build, train, export and eval; (policy.pt, open-loop RMSE).

    ``dataset_config``: the task's observation, action and timestamps (dataset.yaml keys);
    ``train_config``: the task's train.yaml keys over the demo's.
    """
    dataset_config = {'control_rate_hz': CONTROL_RATE_HZ,
                      'split': {'seed': settings.seed, 'val_fraction': 0.1}, **dataset_config}
    train_config = {'model': settings.model, 'epochs': EPOCHS, 'patience': 0,
                    'lr_schedule': 'cosine',
                    'seed': settings.seed, 'device': 'cpu', 'horizon': HORIZON,
                    'relative_actions': True, **(train_config or {})}
    if settings.epochs is not None:                 # --epochs: every task
        train_config['epochs'] = settings.epochs
    (folder / 'dataset.yaml').write_text(yaml.safe_dump(dataset_config))
    (folder / 'train.yaml').write_text(yaml.safe_dump(train_config))
    dataset, run, policy = folder / 'dataset', folder / 'run', folder / 'policy.pt'
    il_policy(task, 'dataset build', ['dataset', 'build', str(bags), '--config',
                                      str(folder / 'dataset.yaml'), '-o', str(dataset),
                                      '--overwrite'])
    started = time.monotonic()
    il_policy(task, 'train', ['train', '--dataset', str(dataset), '--config',
                              str(folder / 'train.yaml'), '-o', str(run)])
    (folder / TIMING_FILE).write_text(json.dumps({'train_s': round(time.monotonic() - started,
                                                                   1)}))
    il_policy(task, 'export', ['export', str(run), '-o', str(policy), '--checkpoint', 'last'])
    il_policy(task, 'eval', ['eval', '--model', str(policy), '--dataset', str(dataset),
                             '--plots', str(folder / 'open_loop'), '--json',
                             str(folder / 'open_loop.json')])
    rmse = json.loads((folder / 'open_loop.json').read_text())['overall_rmse_rad']
    return policy, float(rmse)


# -- policy rollouts ---------------------------------------------------------------------------
def run_policy(graph: SimGraph, task: str, policy: Path, runs: list[HeldOutRun],
               joint_names: tuple[str, ...], lower: np.ndarray, upper: np.ndarray,
               goal_topic: str | None = None, max_velocity: tuple[float, ...] = (3.0,)
               ) -> tuple[Path, dict[str, float]]:
    """policy_node drives the robot from each run's start (toward its goal), recorded.

    ``max_velocity``: the safety layer's velocity limits (rad/s; one for all, or per joint).
    """
    topics = ['/joint_states', COMMAND_TOPIC] + ([goal_topic] if goal_topic else [])
    graph.start_recorder(task, 'rollouts', topics)
    graph.start('policy_node', 'il_policy_node.nodes.policy_node', {
        'model_path': str(policy), 'joint_names': list(joint_names),
        'control_rate_hz': CONTROL_RATE_HZ, 'state_timeout_s': 0.25, 'ramp_in_s': 0.2,
        'position_lower_limits': lower.tolist(), 'position_upper_limits': upper.tolist(),
        'max_velocity_rad_s': list(max_velocity), 'diagnostics_period_s': 0.5},
        remaps={'joint_trajectory': COMMAND_TOPIC})
    operator = graph.operator
    lifecycle = operator.lifecycle('/policy_node')
    if not lifecycle.wait_for_services(30.0) or not lifecycle.change('configure'):
        raise StageError(f'{task}: policy_node did not configure: {graph.log_tail("policy_node")}')
    loop: list[dict[str, str]] = []
    for run in runs:
        graph.reset_robot(run.start)
        if goal_topic:
            operator.publish_input(goal_topic, joint_names, run.goal)
        time.sleep(0.3)
        operator.trigger('/demo_recorder/start_episode')
        if not lifecycle.change('activate'):
            raise StageError(f'{task}: policy_node did not activate')
        time.sleep(run.duration_s)
        loop.append(dict(operator.diagnostics.get('policy_node', {})))
        lifecycle.change('deactivate')
        operator.set_bool('/demo_recorder/stop_episode', True)
        if goal_topic:
            operator.publish_input(goal_topic, (), None)
    graph.stop('policy_node')
    graph.stop('demo_recorder')
    figures = {}
    for key in LOOP_KEYS:
        values = [float(d[key]) for d in loop if d.get(key) not in (None, '', 'nan')]
        if values:
            figures[key] = float(np.max(values) if key == 'missed_ticks' else np.mean(values))
    return graph.out / 'rollouts', figures


# -- recorded runs and plots -------------------------------------------------------------------
def load_run(bag: Path, command_topic: str, joints: tuple[str, ...] | None = None
             ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(t from the first command (s), joint positions, joint names) of a recorded run.

    ``joints``: the positions in this order (default: as recorded).
    """
    kind = JOINT_TRAJECTORY if command_topic == COMMAND_TOPIC else JOINT_STATE
    series = read_topics(bag, {'/joint_states': (JOINT_STATE,), command_topic: (kind,)})
    states, commands = series['/joint_states'], series[command_topic]
    t = (states.receive_ns - commands.receive_ns[0]) * 1e-9
    keep = t >= 0.0
    q, names = states.position[keep], list(states.names)
    if joints is not None:
        q, names = q[:, [names.index(j) for j in joints]], list(joints)
    return t[keep], q, names


def recorded_runs(folder: Path, expected: int) -> list[Path]:
    """The bags of a session in episode order; StageError when their number is not expected."""
    bags = sorted(find_bags([folder]))
    if len(bags) != expected:
        raise StageError(f'{folder}: {len(bags)} runs recorded, expected {expected}')
    return bags


def plot_runs(folder: Path, task: str, joints: tuple[str, ...], reference_topic: str,
              goal: np.ndarray | None = None) -> list[Path]:
    """Demonstrated vs policy joint trajectories of held-out run 0, and the loss curve."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    runs = {'demonstration': load_run(sorted(find_bags([folder / 'reference']))[0],
                                      reference_topic, joints),
            'policy': load_run(sorted(find_bags([folder / 'rollouts']))[0], COMMAND_TOPIC,
                               joints)}
    fig, axes = plt.subplots(len(joints), 1, figsize=(9, 1.4 * len(joints) + 0.6),
                             sharex=True)
    for label, (t, q, _) in runs.items():
        for j, ax in enumerate(axes):
            ax.plot(t, q[:, j], label=label, linewidth=1.0)
    for j, (ax, joint) in enumerate(zip(axes, joints)):
        if goal is not None:
            ax.axhline(goal[j], color='gray', linestyle=':', linewidth=0.8)
        ax.set_ylabel(joint.replace('_joint', ''), fontsize='small')
    axes[0].legend(loc='upper right', fontsize='small')
    axes[0].set_title(f'{task}: held-out run 0, robot joint positions (rad)')
    axes[-1].set_xlabel('time since the first command (s)')
    fig.tight_layout()
    target = folder / f'{task}_trajectories.png'
    fig.savefig(target, dpi=80)
    plt.close(fig)
    loss = folder / 'run' / 'loss.png'
    return [target] + ([loss] if loss.exists() else [])
