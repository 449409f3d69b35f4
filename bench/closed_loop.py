"""Closed-loop success of the trained policies on the simulated robots (the main job's figures).

Runs il_policy_node.demo: for each task, N demonstrations recorded over DDS (sim_robot,
demonstrator, demo_recorder), il-policy dataset build / train / export, then the demonstrator
(reference) and policy_node (policy) on the same --rollouts held-out start poses (and goals),
all recorded and scored by demo/scoring.py. The demonstrator's figures are the reference
the policy is compared with. Goal: success >= 90 % per task over 20 held-out starts.
``--tasks mocap``: the whole-body humanoid taught by motion capture (IK import); its figures
add the key-body tracking error of the policy and of mocap_bridge (the reference), and the
goal ratio policy / reference <= 1.5.
Progress goes to stderr; the last stdout line is one JSON object.

    python bench/closed_loop.py --rollouts 20 [--episodes 10] [--tasks wave,reach,mocap]
        [--models mlp,act,diffusion]

``--models``: every task trained and run with each family (out/<model>/<task>); ``runs`` in
the JSON holds one row per family and task (success, RMSE, inference time at export, missed
ticks, training time).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from il_policy_node.demo import SUCCESS_GOAL, TASKS, Settings, run_demo
from il_policy_node.demo.common import DEFAULT_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rollouts', type=int, default=20, help='held-out starts per task')
    parser.add_argument('--episodes', type=int, default=10, help='demonstrations per task')
    parser.add_argument('--epochs', type=int, default=None,
                        help="training epochs of every task (default: each task's recipe)")
    parser.add_argument('--tasks', default=','.join(TASKS))
    parser.add_argument('--models', default=DEFAULT_MODEL,
                        help='policy families, comma separated (each trains every task)')
    parser.add_argument('--out', type=Path, default=None,
                        help='keep the bags, policies and plots here (default: a temp dir)')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='[bench] %(message)s', stream=sys.stderr)
    started = time.monotonic()
    models = [m for m in args.models.split(',') if m]
    tasks, runs = {}, []
    with contextlib.ExitStack() as stack:
        out = args.out or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for model in models:
            with contextlib.redirect_stdout(sys.stderr):
                results = run_demo(Settings(
                    out=(out / model).absolute(), tasks=tuple(args.tasks.split(',')),
                    episodes=args.episodes, rollouts=args.rollouts, epochs=args.epochs,
                    model=model))
            for result in results:
                figures = task_figures(result)
                tasks[result.task if len(models) == 1 else f'{model}/{result.task}'] = figures
                runs.append({'model': model, 'task': result.task, **{
                    k: figures[k] for k in ('rollouts', 'success_rate', 'rmse_rad',
                                            'inference_us', 'train_s')},
                    'missed_ticks': figures['control_loop'].get('missed_ticks')})
    print(json.dumps({'tasks': tasks, 'episodes': args.episodes,
                      'seconds': round(time.monotonic() - started, 1), 'runs': runs}))


def task_figures(result) -> dict:
    summary = result.summary()
    return {**result.extra, 'rollouts': summary['rollouts'],
            'success_rate': summary['success_rate'], 'rmse_rad': summary['rmse_rad'],
            'demonstrator_rmse_rad': summary['demonstrator_rmse_rad'],
            'demonstrator_success_rate': summary['demonstrator_success_rate'],
            'open_loop_rmse_rad': summary['open_loop_rmse_rad'],
            'goal_met': summary['success_rate'] >= SUCCESS_GOAL,
            'failures': summary['failures'], 'control_loop': summary['control_loop']}


if __name__ == '__main__':
    main()
