"""The main job: the whole product on the simulated arm, real processes over DDS.

For each task (wave, reach; the tasks run at the same time, each on its own local ROS graph
with its own sim_robot):
  1. record     demonstrator + demo_recorder: N demonstrations, one bag per episode
  2. pipeline   il-policy dataset build -> train -> export -> eval (open loop)
  3. reference  the demonstrator performs M held-out episodes (another seed: start poses and
                goals not seen in training), recorded
  4. rollouts   policy_node drives the robot from the same M starts (and goals), recorded
  5. scores     core/closed_loop.py on the recorded runs -> table, PNG plots, summary.json

    python -m il_policy_node.demo [--out DIR] [--tasks wave,reach] [--episodes N] [--rollouts M]

Exits non-zero when a stage fails (the message names it); the table says whether the
success goals were met.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from il_policy_node.core.bags import JOINT_STATE, JOINT_TRAJECTORY, find_bags, read_topics
from il_policy_node.core.closed_loop import (
    Score,
    WaveReference,
    score_reach,
    score_wave,
    summarize,
)
from il_policy_node.sim.demonstrator import (
    DemonstratorConfig,
    Episode,
    make_episode,
    reference_cycle as demonstrated_cycle,
)

_log = logging.getLogger('il_policy_node.demo')

TASKS = ('wave', 'reach')
MODEL = 'arm6'
CONTROL_RATE_HZ = 50.0
SIM_RATE_HZ = 500.0
COMMAND_TOPIC = '/joint_trajectory_controller/joint_trajectory'
DEMO_TOPIC = '/demo/joint_command'
GOAL_TOPIC = '/demo/goal'
HELD_OUT_SEED_OFFSET = 1000      # held-out episodes: seed + this (never used for training)
SUCCESS_GOAL = 0.9
LOOP_KEYS = ('loop_rate_hz', 'missed_ticks', 'period_error_p99_us', 'compute_p50_us',
             'compute_p99_us')


@dataclass(frozen=True)
class TaskRecipe:
    """How the demo demonstrates and trains one task (README, closed loop, says why)."""

    drive_noise_rad: float          # DART perturbation of the robot while demonstrating
    reaches_per_episode: int = 1    # reach: goals per demonstration episode
    relative_inputs: bool = False   # the goal as goal - position


# Both: relative actions, 0.5 s chunks with temporal ensembling, the last epoch (the validation
# loss of 1-2 held-out demonstrations does not predict closed-loop success), demonstrations
# commanded at the policy's control rate (the same command timing in training and in use).
RECIPES = {'wave': TaskRecipe(drive_noise_rad=0.05),
           'reach': TaskRecipe(drive_noise_rad=0.1, reaches_per_episode=3,
                               relative_inputs=True)}
HORIZON = 25


class StageError(RuntimeError):
    """A stage of the demo failed; the message names the stage and the reason."""


@dataclass
class Settings:
    """What the demo does; the defaults are the README's main job."""

    out: Path
    tasks: tuple[str, ...] = TASKS
    episodes: int = 10
    rollouts: int = 10
    seed: int = 0
    epochs: int = 60
    wave_cycles: int = 4
    drive_noise_rad: float | None = None    # None: the task's recipe

    def demonstrator(self, task: str, *, training: bool) -> DemonstratorConfig:
        """Episode settings: held-out episodes are single reaches without perturbation.

        The perturbation is drawn last, and later reaches after the first, so the first reach
        of an episode does not depend on either.
        """
        recipe = RECIPES[task]
        noise = recipe.drive_noise_rad if self.drive_noise_rad is None else self.drive_noise_rad
        return DemonstratorConfig(
            wave_cycles=self.wave_cycles, drive_noise_rad=noise if training else 0.0,
            reaches_per_episode=recipe.reaches_per_episode if training else 1)


@dataclass
class TaskResult:
    """Everything the demo measured for one task."""

    task: str
    policy: Path
    policy_scores: list[Score]
    reference_scores: list[Score]
    open_loop_rmse_rad: float
    loop: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        policy, reference = summarize(self.policy_scores), summarize(self.reference_scores)
        return {'rollouts': policy['rollouts'], 'success_rate': policy['success_rate'],
                'rmse_rad': policy['rmse_rad'],
                'demonstrator_success_rate': reference['success_rate'],
                'demonstrator_rmse_rad': reference['rmse_rad'],
                'open_loop_rmse_rad': self.open_loop_rmse_rad, 'failures': policy['failures'],
                'control_loop': self.loop, 'policy': str(self.policy)}


# -- the local graph ---------------------------------------------------------------------------
class SimGraph:
    """sim_robot and the other nodes as processes on a private domain, plus an operator node."""

    def __init__(self, out: Path) -> None:
        """``out``: the folder of the node logs and of the bags."""
        from domain_coordinator import domain_id

        from il_policy_node.ros.local_graph import local_ros_env
        from il_policy_node.ros.operator import Operator
        self.out = out
        self._domain = domain_id()
        self.domain = self._domain.__enter__()
        self.env = local_ros_env(self.domain)
        self.processes: dict[str, subprocess.Popen] = {}
        self.operator = Operator(self.domain, 'demo_operator')
        self.start('sim_robot', 'il_policy_node.nodes.sim_robot_node',
                   {'model': MODEL, 'publish_rate_hz': SIM_RATE_HZ})

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
        """Teleport the simulated arm to ``pose``, at rest (sim_robot ~/reset)."""
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


# -- stages ------------------------------------------------------------------------------------
def record_demonstrations(graph: SimGraph, task: str, session: str, seed: int, episodes: int,
                          config: DemonstratorConfig) -> Path:
    """The demonstrator performs ``episodes`` episodes of ``task`` while the recorder records."""
    topics = ['/joint_states', DEMO_TOPIC, COMMAND_TOPIC] + \
        ([GOAL_TOPIC] if task == 'reach' else [])
    graph.start_recorder(task, session, topics)
    longest = max(make_episode(task, seed, i, config).duration_s for i in range(episodes))
    graph.start('demonstrator', 'il_policy_node.nodes.demonstrator_node', {
        'task': task, 'seed': seed, 'episodes': episodes, 'wave_cycles': config.wave_cycles,
        'reaches_per_episode': config.reaches_per_episode, 'recorder': 'demo_recorder',
        'command_rate_hz': CONTROL_RATE_HZ, 'drive_noise_rad': config.drive_noise_rad})
    graph.wait_exit('demonstrator', timeout_s=60.0 + episodes * (longest + 5.0))
    graph.stop('demo_recorder')
    bags = find_bags([graph.out / session])
    if len(bags) != episodes:
        raise StageError(f'{task} {session}: {len(bags)} bags recorded, expected {episodes}')
    return graph.out / session


def run_pipeline(task: str, bags: Path, folder: Path, settings: Settings) -> tuple[Path, float]:
    """il-policy dataset build, train, export and eval as commands; (policy.pt, open-loop RMSE)."""
    dataset_config = {
        'control_rate_hz': CONTROL_RATE_HZ, 'timestamps': 'receive',
        'observation': {'topic': '/joint_states', 'fields': ['position', 'velocity'],
                        'extra': [{'topic': GOAL_TOPIC}] if task == 'reach' else []},
        'action': {'source': 'command', 'topic': DEMO_TOPIC},
        'split': {'seed': settings.seed, 'val_fraction': 0.1}}
    train_config = {'epochs': settings.epochs, 'patience': 0, 'lr_schedule': 'cosine',
                    'seed': settings.seed, 'device': 'cpu', 'horizon': HORIZON,
                    'relative_actions': True, 'relative_inputs': RECIPES[task].relative_inputs}
    (folder / 'dataset.yaml').write_text(yaml.safe_dump(dataset_config))
    (folder / 'train.yaml').write_text(yaml.safe_dump(train_config))
    dataset, run, policy = folder / 'dataset', folder / 'run', folder / 'policy.pt'
    steps = [
        ('dataset build', ['dataset', 'build', str(bags), '--config', str(folder / 'dataset.yaml'),
                           '-o', str(dataset), '--overwrite']),
        ('train', ['train', '--dataset', str(dataset), '--config', str(folder / 'train.yaml'),
                   '-o', str(run)]),
        ('export', ['export', str(run), '-o', str(policy), '--checkpoint', 'last']),
        ('eval', ['eval', '--model', str(policy), '--dataset', str(dataset), '--plots',
                  str(folder / 'open_loop'), '--json', str(folder / 'open_loop.json')]),
    ]
    for name, args in steps:
        _log.info('%s: il-policy %s', task, ' '.join(args))
        # One thread: the other task's simulation runs in real time beside it.
        result = subprocess.run([sys.executable, '-m', 'il_policy_node.cli', *args],
                                env={**os.environ, 'OMP_NUM_THREADS': '1'})
        if result.returncode != 0:
            raise StageError(f'{task}: il-policy {name} failed (exit {result.returncode})')
    rmse = json.loads((folder / 'open_loop.json').read_text())['overall_rmse_rad']
    return policy, float(rmse)


def rollout_duration(episode: Episode) -> float:
    """How long a policy run is watched: the whole demonstration (reach: its deadline too)."""
    return episode.duration_s if episode.task.value == 'wave' else \
        max(episode.duration_s, 1.5 * episode.move_s + 0.5)


def run_policy(graph: SimGraph, task: str, policy: Path, episodes: list[Episode],
               lower: np.ndarray, upper: np.ndarray) -> tuple[Path, dict[str, float]]:
    """policy_node drives the robot from each episode's start (toward its goal), recorded."""
    topics = ['/joint_states', COMMAND_TOPIC] + ([GOAL_TOPIC] if task == 'reach' else [])
    graph.start_recorder(task, 'rollouts', topics)
    graph.start('policy_node', 'il_policy_node.nodes.policy_node', {
        'model_path': str(policy), 'joint_names': list(episodes[0].joint_names),
        'control_rate_hz': CONTROL_RATE_HZ, 'state_timeout_s': 0.25, 'ramp_in_s': 0.2,
        'position_lower_limits': lower.tolist(), 'position_upper_limits': upper.tolist(),
        'max_velocity_rad_s': [3.0], 'diagnostics_period_s': 0.5},
        remaps={'joint_trajectory': COMMAND_TOPIC})
    operator = graph.operator
    lifecycle = operator.lifecycle('/policy_node')
    if not lifecycle.wait_for_services(30.0) or not lifecycle.change('configure'):
        raise StageError(f'{task}: policy_node did not configure: {graph.log_tail("policy_node")}')
    loop: list[dict[str, str]] = []
    for episode in episodes:
        graph.reset_robot(episode.start)
        if episode.goal is not None:
            operator.publish_input(GOAL_TOPIC, episode.joint_names, episode.goal)
        time.sleep(0.3)
        operator.trigger('/demo_recorder/start_episode')
        if not lifecycle.change('activate'):
            raise StageError(f'{task}: policy_node did not activate')
        time.sleep(rollout_duration(episode))
        loop.append(dict(operator.diagnostics.get('policy_node', {})))
        lifecycle.change('deactivate')
        operator.set_bool('/demo_recorder/stop_episode', True)
        operator.publish_input(GOAL_TOPIC, (), None)
    graph.stop('policy_node')
    graph.stop('demo_recorder')
    figures = {}
    for key in LOOP_KEYS:
        values = [float(d[key]) for d in loop if d.get(key) not in (None, '', 'nan')]
        if values:
            figures[key] = float(np.max(values) if key == 'missed_ticks' else np.mean(values))
    return graph.out / 'rollouts', figures


# -- scoring -----------------------------------------------------------------------------------
def load_run(bag: Path, command_topic: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(t from the first command (s), joint positions, joint names) of a recorded run."""
    kind = JOINT_TRAJECTORY if command_topic == COMMAND_TOPIC else JOINT_STATE
    series = read_topics(bag, {'/joint_states': (JOINT_STATE,), command_topic: (kind,)})
    states, commands = series['/joint_states'], series[command_topic]
    t = (states.receive_ns - commands.receive_ns[0]) * 1e-9
    keep = t >= 0.0
    return t[keep], states.position[keep], list(states.names)


def score_runs(folder: Path, episodes: list[Episode], command_topic: str, config:
               DemonstratorConfig, lower: np.ndarray, upper: np.ndarray) -> list[Score]:
    """The task's closed-loop score of every recorded run (bag i = episode i)."""
    bags = sorted(find_bags([folder]))
    if len(bags) != len(episodes):
        raise StageError(f'{folder}: {len(bags)} runs recorded, expected {len(episodes)}')
    _, cycle, _ = demonstrated_cycle(config, 200)
    reference = WaveReference(config.wave_period_s, cycle)
    scores = []
    for bag, episode in zip(bags, episodes):
        t, q, names = load_run(bag, command_topic)
        q = q[:, [names.index(j) for j in episode.joint_names]]
        if episode.task.value == 'wave':
            scores.append(score_wave(t, q, reference, lower=lower, upper=upper))
        else:
            scores.append(score_reach(
                t, q, episode.goal, episode.move_s, lower=lower, upper=upper,
                demonstration=lambda times, e=episode: e.sample(times)[0]))
    return scores


# -- report ------------------------------------------------------------------------------------
def plot_task(folder: Path, task: str, episode: Episode) -> list[Path]:
    """Demonstrated vs policy joint trajectories of one held-out start, and the loss curve."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    reference = sorted(find_bags([folder / 'reference']))[0]
    policy = sorted(find_bags([folder / 'rollouts']))[0]
    runs = {'demonstrator': load_run(reference, DEMO_TOPIC),
            'policy': load_run(policy, COMMAND_TOPIC)}
    joints = episode.joint_names
    fig, axes = plt.subplots(len(joints), 1, figsize=(9, 1.6 * len(joints)), sharex=True)
    for label, (t, q, names) in runs.items():
        for ax, joint in zip(axes, joints):
            ax.plot(t, q[:, names.index(joint)], label=label, linewidth=1.0)
    for ax, joint in zip(axes, joints):
        if episode.goal is not None:
            ax.axhline(episode.goal[joints.index(joint)], color='gray', linestyle=':',
                       linewidth=0.8)
        ax.set_ylabel(joint.replace('_joint', ''), fontsize='small')
    axes[0].legend(loc='upper right', fontsize='small')
    axes[0].set_title(f'{task}: held-out episode 0, robot joint positions (rad)')
    axes[-1].set_xlabel('time since the first command (s)')
    fig.tight_layout()
    target = folder / f'{task}_trajectories.png'
    fig.savefig(target, dpi=80)
    plt.close(fig)
    loss = folder / 'run' / 'loss.png'
    return [target] + ([loss] if loss.exists() else [])


def format_table(results: list[TaskResult]) -> str:
    lines = [f'{"task":<6} {"runs":>4} {"policy success":>14} {"policy RMSE":>11} '
             f'{"demo success":>12} {"demo RMSE":>9} {"open-loop RMSE":>14} '
             f'{"loop Hz":>7} {"p99 jitter us":>13} {"compute p50/p99 us":>18}']
    for r in results:
        s, loop = r.summary(), r.loop
        compute = f'{loop.get("compute_p50_us", float("nan")):.0f}/' \
                  f'{loop.get("compute_p99_us", float("nan")):.0f}'
        lines.append(
            f'{r.task:<6} {s["rollouts"]:>4} {100 * s["success_rate"]:>13.0f}% '
            f'{s["rmse_rad"]:>11.3f} {100 * s["demonstrator_success_rate"]:>11.0f}% '
            f'{s["demonstrator_rmse_rad"]:>9.3f} {s["open_loop_rmse_rad"]:>14.4f} '
            f'{loop.get("loop_rate_hz", float("nan")):>7.1f} '
            f'{loop.get("period_error_p99_us", float("nan")):>13.0f} {compute:>18}')
    return '\n'.join(lines)


def run_task(task: str, settings: Settings) -> TaskResult:
    """Every stage of one task on its own local graph (out/<task>: logs, bags, policy, plots)."""
    from il_policy_node.sim.models import model_info
    info = model_info(MODEL)
    lower, upper = np.asarray(info.lower_limits), np.asarray(info.upper_limits)
    folder = settings.out / task
    folder.mkdir(parents=True, exist_ok=True)
    graph = SimGraph(folder)
    try:
        _log.info('%s: recording %d demonstrations', task, settings.episodes)
        bags = record_demonstrations(graph, task, 'demonstrations', settings.seed,
                                     settings.episodes,
                                     settings.demonstrator(task, training=True))
        policy, open_loop = run_pipeline(task, bags, folder, settings)
        held_out_seed = settings.seed + HELD_OUT_SEED_OFFSET
        config = settings.demonstrator(task, training=False)
        held_out = [make_episode(task, held_out_seed, i, config)
                    for i in range(settings.rollouts)]
        _log.info('%s: the demonstrator on %d held-out episodes (reference)', task,
                  settings.rollouts)
        reference = record_demonstrations(graph, task, 'reference', held_out_seed,
                                          settings.rollouts, config)
        _log.info('%s: policy_node drives the robot from the %d held-out starts', task,
                  settings.rollouts)
        rollouts, loop = run_policy(graph, task, policy, held_out, lower, upper)
    finally:
        graph.close()
    result = TaskResult(
        task=task, policy=policy, open_loop_rmse_rad=open_loop, loop=loop,
        policy_scores=score_runs(rollouts, held_out, COMMAND_TOPIC, config, lower, upper),
        reference_scores=score_runs(reference, held_out, DEMO_TOPIC, config, lower, upper))
    plot_task(folder, task, held_out[0])
    return result


def run_demo(settings: Settings) -> list[TaskResult]:
    """Every stage for every task, the tasks side by side; StageError when a stage fails."""
    settings.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=len(settings.tasks)) as pool:
        futures = [pool.submit(run_task, task, settings) for task in settings.tasks]
        errors = [f.exception() for f in futures]
    failed = [e for e in errors if e is not None]
    if failed:
        raise failed[0]
    return [f.result() for f in futures]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m il_policy_node.demo',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=None,
                        help='output folder (default: out/demo-<time>)')
    parser.add_argument('--tasks', default=','.join(TASKS), help='comma-separated: wave,reach')
    parser.add_argument('--episodes', type=int, default=10, help='demonstrations per task')
    parser.add_argument('--rollouts', type=int, default=10, help='held-out runs per task')
    parser.add_argument('--epochs', type=int, default=Settings.epochs, help='training epochs')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--drive-noise', type=float, default=None,
                        help='std (rad) of the perturbation of the robot while demonstrating '
                             '(default: per task, wave 0.05, reach 0.1)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[demo] %(message)s')
    out = args.out or Path('out') / datetime.now().strftime('demo-%Y%m%d-%H%M%S')
    tasks = tuple(t.strip() for t in args.tasks.split(',') if t.strip())
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        parser.error(f'--tasks: unknown task(s) {unknown}; choose from {list(TASKS)}')
    settings = Settings(out=out.absolute(), tasks=tasks, episodes=args.episodes,
                        rollouts=args.rollouts, epochs=args.epochs, seed=args.seed,
                        drive_noise_rad=args.drive_noise)
    started = time.monotonic()
    try:
        results = run_demo(settings)
    except (StageError, RuntimeError, TimeoutError) as exc:
        print(f'[demo] FAILED: {exc}', file=sys.stderr)
        return 1
    summary = {r.task: r.summary() for r in results}
    (settings.out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    print(format_table(results))
    met = all(r.summary()['success_rate'] >= SUCCESS_GOAL for r in results)
    for r in results:
        for failure in r.summary()['failures']:
            print(f'[demo] {r.task} rollout failed: {failure}')
    print(f'[demo] {time.monotonic() - started:.0f} s; outputs in {settings.out} '
          f'(summary.json, <task>/*_trajectories.png, <task>/run/loss.png, bags)')
    print(f'[demo] success goal (>= {100 * SUCCESS_GOAL:.0f} % per task): '
          f'{"met" if met else "NOT met"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
