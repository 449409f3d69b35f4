"""The mocap task on the humanoid upper body: human motion capture teaches the policy.

1. clips: N BVH clips of a person waving (synthetic, il_policy_node/mocap/synthetic.py: no
   mocap data ships here), each with its own tempo, amplitude and body sway;
2. import: il-policy mocap import retargets them onto humanoid_upper, one bag per clip;
3. pipeline: dataset (observation: the retargeted positions and velocities; action: the next
   ones) -> train -> export -> eval (open loop);
4. reference: mocap_bridge streams M held-out clips (another seed) to the sim humanoid, which
   follows them as it would follow a suit; recorded;
5. rollouts: policy_node drives the humanoid from each held-out clip's first pose, recorded;
6. scores: the wave criterion against each held-out clip's own cycle (its retargeted motion
   after the arm has risen, folded at its period): period within 10 %, phase-aligned RMS
   error <= 0.1 rad over all 14 joints after 3 s.
"""
from __future__ import annotations

import logging
from pathlib import Path

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
    il_policy,
    load_run,
    plot_runs,
    recorded_runs,
    run_pipeline,
    run_policy,
)
from il_policy_node.demo.scoring import (
    Score,
    WaveReference,
    estimate_period,
    fold_cycle,
    score_wave,
)
from il_policy_node.mocap.bvh import load_bvh, write_bvh
from il_policy_node.mocap.retarget import (
    RetargetedMotion,
    load_retarget_map,
    package_map,
    retarget,
)
from il_policy_node.mocap.synthetic import wave_clip
from il_policy_node.robots.models import model_info

_log = logging.getLogger('il_policy_node.demo')

TASK = 'mocap'
MODEL = 'humanoid_upper'
MOCAP_TOPIC = '/mocap/joint_command'
CLIP_S = 10.0
CLIP_RATE_HZ = 60.0
TEMPO_HZ = 1.2                  # waves per second, each clip within +- TEMPO_JITTER of it
TEMPO_JITTER = 0.05
AMPLITUDE_JITTER = 0.1
SETTLE_S = 3.0                  # the arm has risen and the wave runs: judged from here


def write_clips(folder: Path, seed: int, count: int) -> list[Path]:
    """``count`` waving clips, clip i drawn from (seed, i) only."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        clip = wave_clip(duration_s=CLIP_S, rate_hz=CLIP_RATE_HZ,
                         tempo_hz=TEMPO_HZ * (1.0 + rng.uniform(-1, 1) * TEMPO_JITTER),
                         amplitude=1.0 + rng.uniform(-1, 1) * AMPLITUDE_JITTER,
                         seed=int(rng.integers(2 ** 31)))
        paths.append(folder / f'wave_{i:03d}.bvh')
        write_bvh(paths[-1], clip)
    return paths


def clip_reference(motion: RetargetedMotion) -> WaveReference:
    """The clip's own cycle: its motion after SETTLE_S folded at its period."""
    steady = motion.times >= SETTLE_S
    t, q = motion.times[steady], motion.positions[steady]
    period = estimate_period(t, q, 1.0 / TEMPO_HZ)
    if not np.isfinite(period):
        raise StageError(f'{TASK}: a held-out clip has no periodic motion near '
                         f'{1.0 / TEMPO_HZ:.2f} s')
    return fold_cycle(t, q, period)


def score_runs(folder: Path, references: list[WaveReference], command_topic: str,
               joints: tuple[str, ...], lower: np.ndarray, upper: np.ndarray) -> list[Score]:
    """The wave criterion of every recorded run (bag i = held-out clip i)."""
    bags = recorded_runs(folder, len(references))
    scores = []
    for bag, reference in zip(bags, references):
        t, q, _ = load_run(bag, command_topic, joints)
        scores.append(score_wave(t, q, reference, lower=lower, upper=upper, settle_s=SETTLE_S))
    return scores


def run_mocap_task(settings: Settings) -> TaskResult:
    """Every stage of the mocap task on its own local graph (out/mocap)."""
    info = model_info(MODEL)
    joints = info.joint_names
    lower, upper = np.asarray(info.lower_limits), np.asarray(info.upper_limits)
    folder = settings.out / TASK
    folder.mkdir(parents=True, exist_ok=True)
    retarget_map = package_map(MODEL)
    clips = write_clips(folder / 'clips', settings.seed, settings.episodes)
    il_policy(TASK, 'mocap import', ['-q', 'mocap', 'import', *map(str, clips), '--retarget',
                                     str(retarget_map), '--model', MODEL, '-o', str(folder),
                                     '--session', 'demonstrations', '--task', TASK])
    dataset_config = {'timestamps': 'header',
                      'observation': {'topic': MOCAP_TOPIC, 'fields': ['position', 'velocity']},
                      'action': {'source': 'future_state'}}
    policy, open_loop = run_pipeline(TASK, folder / 'demonstrations', folder, settings,
                                     dataset_config)
    held_out = write_clips(folder / 'held_out_clips', settings.seed + HELD_OUT_SEED_OFFSET,
                           settings.rollouts)
    mapping = load_retarget_map(retarget_map)
    motions = [retarget(load_bvh(path), mapping, joint_names=joints, lower=lower, upper=upper)
               for path in held_out]
    references = [clip_reference(m) for m in motions]
    graph = SimGraph(folder, MODEL, TASK)
    try:
        with EVALUATION:
            _log.info('%s: mocap_bridge streams %d held-out clips to the robot (reference)',
                      TASK, len(held_out))
            graph.start_recorder(TASK, 'reference', ['/joint_states', MOCAP_TOPIC])
            graph.start('mocap_bridge', 'il_policy_node.nodes.mocap_bridge_node', {
                'files': [str(p) for p in held_out], 'retarget_map': str(retarget_map),
                'model': MODEL, 'drive_robot': True, 'recorder': 'demo_recorder',
                'publish_rate_hz': CONTROL_RATE_HZ})
            graph.wait_exit('mocap_bridge', timeout_s=60.0 + len(held_out) * (CLIP_S + 5.0))
            graph.stop('demo_recorder')
            _log.info('%s: policy_node drives the robot from the %d held-out first poses',
                      TASK, len(held_out))
            runs = [HeldOutRun(start=m.positions[0], duration_s=CLIP_S) for m in motions]
            rollouts, loop = run_policy(graph, TASK, policy, runs, joints, lower, upper)
    finally:
        graph.close()
    result = TaskResult(
        task=TASK, policy=policy, open_loop_rmse_rad=open_loop, loop=loop,
        policy_scores=score_runs(rollouts, references, COMMAND_TOPIC, joints, lower, upper),
        reference_scores=score_runs(folder / 'reference', references, MOCAP_TOPIC, joints,
                                    lower, upper))
    plot_runs(folder, TASK, joints, MOCAP_TOPIC)
    return result
