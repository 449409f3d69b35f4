"""The arm's tasks (wave, reach, detour): the scripted demonstrator teaches the policy.

1. record: demonstrator + demo_recorder, N demonstrations, one bag per episode;
2. pipeline: il-policy dataset build -> train -> export -> eval (open loop);
3. reference: the demonstrator performs M held-out episodes (another seed: start poses and
   goals not seen in training), recorded;
4. rollouts: policy_node drives the robot from the same M starts (and goals), recorded;
5. scores: demo/scoring.py on the recorded runs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from il_policy_node.demo.common import (
    COMMAND_TOPIC,
    CONTROL_RATE_HZ,
    EVALUATION,
    HELD_OUT_SEED_OFFSET,
    HeldOutRun,
    Settings,
    SimGraph,
    StageError,
    TaskResult,
    load_run,
    plot_runs,
    policy_figures,
    recorded_runs,
    run_pipeline,
    run_policy,
)
from il_policy_node.demo.scoring import (
    Score,
    WaveReference,
    obstacle_frames,
    score_detour,
    score_reach,
    score_wave,
)
from il_policy_node.robots.models import model_info
from il_policy_node.sim.demonstrator import (
    DETOUR_OBSTACLE,
    GOAL_TASKS,
    TEACHING,
    DemonstratorConfig,
    Episode,
    Task,
    make_episode,
    reference_cycle,
)

_log = logging.getLogger('il_policy_node.demo')

MODEL = 'arm6'
DEMO_TOPIC = '/demo/joint_command'
GOAL_TOPIC = '/demo/goal'


@dataclass(frozen=True)
class TaskRecipe:
    """How the demo trains one task (README, closed loop, says why).

    How it is demonstrated is sim/demonstrator.py's TEACHING.
    """

    observed_fields: tuple[str, ...] = ('position', 'velocity')    # of /joint_states
    train: Mapping[str, Any] = field(default_factory=dict)         # train.yaml keys


# Reach: the network sees only goal - position (no velocity: a policy that sees it learns to
# keep going the way it moves, and an early wrong move then runs away; no absolute positions:
# the same reach from any start), with input noise against over-fitting the few demonstrated
# reaches.
# Detour: where the arm is matters (the post stands at one place), so the network sees the
# absolute positions too, and goal - position; state noise (with the label seen from the
# moved pose) rather than input noise, which made the policies stop short of the goal.
RECIPES = {'wave': TaskRecipe(),
           'reach': TaskRecipe(observed_fields=('position',),
                               train={'relative_inputs': True, 'absolute_positions': False,
                                      'obs_noise_std': 0.2}),
           'detour': TaskRecipe(observed_fields=('position',),
                                train={'relative_inputs': True, 'state_noise_rad': 0.05})}
SCENES = {'detour': DETOUR_OBSTACLE}     # sim_robot's obstacle per task (none: no entry)


def demonstrator_config(settings: Settings, task: str, *, training: bool) -> DemonstratorConfig:
    """Episode settings: held-out episodes are single reaches without perturbation.

    The perturbation is drawn last, and the reaches after the first after it, so the first
    reach of an episode depends on neither.
    """
    teaching = TEACHING[Task(task)]
    noise = teaching.drive_noise_rad if settings.drive_noise_rad is None \
        else settings.drive_noise_rad
    return DemonstratorConfig(
        wave_cycles=settings.wave_cycles, drive_noise_rad=noise if training else 0.0,
        reaches_per_episode=teaching.reaches_per_episode if training else 1)


def record_demonstrations(graph: SimGraph, task: str, session: str, seed: int, episodes: int,
                          config: DemonstratorConfig) -> Path:
    """The demonstrator performs ``episodes`` episodes of ``task`` while the recorder records."""
    topics = ['/joint_states', DEMO_TOPIC, COMMAND_TOPIC] + \
        ([GOAL_TOPIC] if Task(task) in GOAL_TASKS else [])
    graph.start_recorder(task, session, topics)
    longest = max(make_episode(task, seed, i, config).duration_s for i in range(episodes))
    graph.start('demonstrator', 'il_policy_node.nodes.demonstrator_node', {
        'task': task, 'seed': seed, 'episodes': episodes, 'wave_cycles': config.wave_cycles,
        'reaches_per_episode': config.reaches_per_episode, 'recorder': 'demo_recorder',
        'command_rate_hz': CONTROL_RATE_HZ, 'drive_noise_rad': config.drive_noise_rad})
    graph.wait_exit('demonstrator', timeout_s=60.0 + episodes * (longest + 5.0))
    graph.stop('demo_recorder')
    recorded_runs(graph.out / session, episodes)
    return graph.out / session


def held_out_run(episode: Episode) -> HeldOutRun:
    """A policy run from the episode's start, watched as long as the demonstration lasts.

    Reach: at least until the deadline of the success criterion.
    """
    duration = episode.duration_s if episode.task.value == 'wave' else \
        max(episode.duration_s, 1.5 * episode.move_s + 0.5)
    return HeldOutRun(start=episode.start, duration_s=duration, goal=episode.goal)


def score_runs(folder: Path, episodes: list[Episode], command_topic: str,
               config: DemonstratorConfig, lower: np.ndarray, upper: np.ndarray
               ) -> list[Score]:
    """The task's closed-loop score of every recorded run (bag i = episode i)."""
    bags = recorded_runs(folder, len(episodes))
    _, cycle, _ = reference_cycle(config, 200)
    reference = WaveReference(config.wave_period_s, cycle)
    scores = []
    for bag, episode in zip(bags, episodes):
        t, q, _ = load_run(bag, command_topic, episode.joint_names)
        if episode.task.value == 'wave':
            scores.append(score_wave(t, q, reference, lower=lower, upper=upper))
        elif episode.task.value == 'detour':
            scores.append(score_detour(
                t, q, episode.goal, episode.move_s, lower=lower, upper=upper,
                touching=obstacle_frames(MODEL, SCENES['detour'], q),
                demonstration=lambda times, e=episode: e.sample(times)[0]))
        else:
            scores.append(score_reach(
                t, q, episode.goal, episode.move_s, lower=lower, upper=upper,
                demonstration=lambda times, e=episode: e.sample(times)[0]))
    return scores


def run_arm_task(task: str, settings: Settings) -> TaskResult:
    """Every stage of wave or reach on its own local graph (out/<task>)."""
    info = model_info(MODEL)
    lower, upper = np.asarray(info.lower_limits), np.asarray(info.upper_limits)
    folder = settings.out / task
    folder.mkdir(parents=True, exist_ok=True)
    if task not in RECIPES:
        raise StageError(f'unknown arm task {task!r}; known: {sorted(RECIPES)}')
    scene = SCENES.get(task)
    graph = SimGraph(folder, MODEL, task,
                     {'obstacle': scene.parameters} if scene is not None else None)
    try:
        _log.info('%s: recording %d demonstrations', task, settings.episodes)
        bags = record_demonstrations(graph, task, 'demonstrations', settings.seed,
                                     settings.episodes,
                                     demonstrator_config(settings, task, training=True))
        dataset_config = {
            'timestamps': 'receive',
            'observation': {'topic': '/joint_states',
                            'fields': list(RECIPES[task].observed_fields),
                            'extra': [{'topic': GOAL_TOPIC}] if Task(task) in GOAL_TASKS
                            else []},
            'action': {'source': 'command', 'topic': DEMO_TOPIC}}
        policy, open_loop = run_pipeline(task, bags, folder, settings, dataset_config,
                                         RECIPES[task].train)
        held_out_seed = settings.seed + HELD_OUT_SEED_OFFSET
        config = demonstrator_config(settings, task, training=False)
        held_out = [make_episode(task, held_out_seed, i, config)
                    for i in range(settings.rollouts)]
        with EVALUATION:
            _log.info('%s: the demonstrator on %d held-out episodes (reference)', task,
                      settings.rollouts)
            reference = record_demonstrations(graph, task, 'reference', held_out_seed,
                                              settings.rollouts, config)
            _log.info('%s: policy_node drives the robot from the %d held-out starts', task,
                      settings.rollouts)
            rollouts, loop = run_policy(graph, task, policy,
                                        [held_out_run(e) for e in held_out], info.joint_names,
                                        lower, upper,
                                        GOAL_TOPIC if Task(task) in GOAL_TASKS else None)
    finally:
        graph.close()
    result = TaskResult(
        task=task, policy=policy, open_loop_rmse_rad=open_loop, loop=loop,
        policy_scores=score_runs(rollouts, held_out, COMMAND_TOPIC, config, lower, upper),
        reference_scores=score_runs(reference, held_out, DEMO_TOPIC, config, lower, upper),
        extra=policy_figures(folder, policy))
    plot_runs(folder, task, info.joint_names, DEMO_TOPIC, held_out[0].goal)
    return result
