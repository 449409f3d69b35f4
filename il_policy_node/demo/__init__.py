"""The main job: the whole product on simulated robots, real processes over DDS.

Each task runs on its own local ROS graph with its own sim_robot, the tasks side by side:
  wave, reach   the 6-joint arm taught by the scripted demonstrator (demo/arm.py)
  detour        the arm around a post, on the left or the right at random (not in the
                default tasks: a task for generative policies, bench/closed_loop.py --models)
  mocap         the whole-body humanoid taught by motion capture (BVH clips imported by IK,
                demo/mocap.py)
Every task records or imports demonstrations, runs il-policy dataset build -> train -> export
-> eval, lets the demonstration (reference) and policy_node (policy) act from held-out starts,
records both and scores them with demo/scoring.py -> table, PNG plots, summary.json.

    python -m il_policy_node.demo [--out DIR] [--tasks wave,reach] [--episodes N] [--rollouts M]

Exits non-zero when a stage fails (the message names it); the table says whether the
success goals were met.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from il_policy_node.demo.common import (
    COMMAND_TOPIC,
    DEFAULT_MODEL,
    SUCCESS_GOAL,
    Settings,
    StageError,
    TaskResult,
    load_run,
)
from il_policy_node.errors import IlPolicyError
from il_policy_node.policies.options import FAMILY_OPTIONS

TASKS = ('wave', 'reach')           # the main job
ALL_TASKS = TASKS + ('detour', 'mocap')

__all__ = ['ALL_TASKS', 'COMMAND_TOPIC', 'SUCCESS_GOAL', 'TASKS', 'Settings', 'StageError',
           'TaskResult', 'load_run', 'main', 'run_demo']


def run_task(task: str, settings: Settings) -> TaskResult:
    """Every stage of one task (out/<task>: logs, bags, dataset, run, policy, plots)."""
    if task == 'mocap':
        from il_policy_node.demo.mocap import run_mocap_task
        return run_mocap_task(settings)
    from il_policy_node.demo.arm import run_arm_task
    return run_arm_task(task, settings)


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


def format_table(results: list[TaskResult]) -> str:
    lines = [f'{"task":<6} {"model":<9} {"runs":>4} {"policy success":>14} {"policy RMSE":>11} '
             f'{"demo success":>12} {"demo RMSE":>9} {"open-loop RMSE":>14} '
             f'{"loop Hz":>7} {"p99 jitter us":>13} {"compute p50/p99 us":>18}']
    for r in results:
        s, loop = r.summary(), r.loop
        compute = f'{loop.get("compute_p50_us", float("nan")):.0f}/' \
                  f'{loop.get("compute_p99_us", float("nan")):.0f}'
        lines.append(
            f'{r.task:<6} {s.get("model", "mlp"):<9} {s["rollouts"]:>4} '
            f'{100 * s["success_rate"]:>13.0f}% '
            f'{s["rmse_rad"]:>11.3f} {100 * s["demonstrator_success_rate"]:>11.0f}% '
            f'{s["demonstrator_rmse_rad"]:>9.3f} {s["open_loop_rmse_rad"]:>14.4f} '
            f'{loop.get("loop_rate_hz", float("nan")):>7.1f} '
            f'{loop.get("period_error_p99_us", float("nan")):>13.0f} {compute:>18}')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m il_policy_node.demo',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=None,
                        help='output folder (default: out/demo-<time>)')
    parser.add_argument('--tasks', default=','.join(TASKS),
                        help=f'comma-separated, of {",".join(ALL_TASKS)}')
    parser.add_argument('--episodes', type=int, default=10,
                        help='demonstrations (mocap: clips) per task')
    parser.add_argument('--rollouts', type=int, default=10, help='held-out runs per task')
    parser.add_argument('--epochs', type=int, default=None,
                        help="training epochs of every task (default: each task's recipe)")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--drive-noise', type=float, default=None,
                        help='std (rad) of the perturbation of the arm while demonstrating '
                             '(default: per task, wave 0.05, reach 0.1)')
    parser.add_argument('--model', default=DEFAULT_MODEL, choices=sorted(FAMILY_OPTIONS),
                        help=f'policy family of every task (default {DEFAULT_MODEL})')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[demo] %(message)s')
    out = args.out or Path('out') / datetime.now().strftime('demo-%Y%m%d-%H%M%S')
    tasks = tuple(t.strip() for t in args.tasks.split(',') if t.strip())
    unknown = [t for t in tasks if t not in ALL_TASKS]
    if unknown or not tasks:
        parser.error(f'--tasks: unknown task(s) {unknown}; choose from {list(ALL_TASKS)}')
    settings = Settings(out=out.absolute(), tasks=tasks, episodes=args.episodes,
                        rollouts=args.rollouts, epochs=args.epochs, seed=args.seed,
                        drive_noise_rad=args.drive_noise, model=args.model)
    started = time.monotonic()
    try:
        results = run_demo(settings)
    except (IlPolicyError, RuntimeError, TimeoutError) as exc:
        print(f'[demo] FAILED: {exc}', file=sys.stderr)
        return 1
    summary = {r.task: r.summary() for r in results}
    (settings.out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    print(format_table(results))
    met = all(r.summary()['success_rate'] >= SUCCESS_GOAL for r in results)
    for r in results:
        for failure in r.summary()['failures']:
            print(f'[demo] {r.task} rollout failed: {failure}')
        if 'key_body_ratio' in r.extra:
            e = r.extra
            print(f'[demo] {r.task} key-body tracking error (RMS, phase-aligned): policy '
                  f'{e["key_body_error_cm"]} cm, mocap_bridge {e["reference_key_body_error_cm"]} '
                  f'cm, ratio {e["key_body_ratio"]} (goal <= {e["key_body_goal"]}: '
                  f'{"met" if e["key_body_goal_met"] else "NOT met"})')
    print(f'[demo] {time.monotonic() - started:.0f} s; outputs in {settings.out} '
          f'(summary.json, <task>/*_trajectories.png, <task>/run/loss.png, bags)')
    print(f'[demo] success goal (>= {100 * SUCCESS_GOAL:.0f} % per task): '
          f'{"met" if met else "NOT met"}')
    return 0
