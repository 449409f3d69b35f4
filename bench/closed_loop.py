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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rollouts', type=int, default=20, help='held-out starts per task')
    parser.add_argument('--episodes', type=int, default=10, help='demonstrations per task')
    parser.add_argument('--epochs', type=int, default=None,
                        help="training epochs of every task (default: each task's recipe)")
    parser.add_argument('--tasks', default=','.join(TASKS))
    parser.add_argument('--out', type=Path, default=None,
                        help='keep the bags, policies and plots here (default: a temp dir)')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='[bench] %(message)s', stream=sys.stderr)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        out = args.out or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        with contextlib.redirect_stdout(sys.stderr):
            results = run_demo(Settings(
                out=out.absolute(), tasks=tuple(args.tasks.split(',')), episodes=args.episodes,
                rollouts=args.rollouts, epochs=args.epochs))
    tasks = {}
    for result in results:
        summary = result.summary()
        tasks[result.task] = {
            **result.extra, 'rollouts': summary['rollouts'],
            'success_rate': summary['success_rate'], 'rmse_rad': summary['rmse_rad'],
            'demonstrator_rmse_rad': summary['demonstrator_rmse_rad'],
            'demonstrator_success_rate': summary['demonstrator_success_rate'],
            'open_loop_rmse_rad': summary['open_loop_rmse_rad'],
            'goal_met': summary['success_rate'] >= SUCCESS_GOAL,
            'failures': summary['failures'], 'control_loop': summary['control_loop']}
    print(json.dumps({'tasks': tasks, 'episodes': args.episodes,
                      'seconds': round(time.monotonic() - started, 1)}))


if __name__ == '__main__':
    main()
