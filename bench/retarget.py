"""Retargeting benchmark: IK retargeting frames/s and quality per clip, against a floor.

For each clip (default: the BVH files of ../shared/mocap and one whole-body synthetic clip in
the names of each skeleton preset, il_policy_node.mocap.synthetic): the skeleton (--skeleton,
default auto), IK retargeting onto --model (il_policy_node.mocap.ik: warm-started, joint and
velocity limits and self-collision avoidance as constraints) and its quality report
(il_policy_node.mocap.quality). frames_per_s: clip frames over the wall time of the
retargeting (targets and solving), the best of --repeats runs, this process pinned to one
core with one BLAS thread. The floor is the angle-map retarget (config/retarget/
humanoid_upper.yaml onto humanoid_upper) of a clip with as many frames at the same rate: the
map fits only the synthetic skeleton, so for other clips the floor runs on the synthetic wave
of the same length (the map's cost depends on the frame count, not on the skeleton).
limit_violations: output samples outside the model's joint limits; velocity_violations:
finite-difference velocities over the model's limits. --strict: a clip over the quality
thresholds counts as failed. Progress goes to stderr; the last stdout line is one JSON
object. Usage: ``python bench/retarget.py [--model humanoid] [BVH ...]``.
"""
from __future__ import annotations

import os

os.environ.setdefault('OMP_NUM_THREADS', '1')       # one core: no BLAS threads
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from il_policy_node.mocap.bvh import BvhClip, load_bvh  # noqa: E402
from il_policy_node.mocap.ik import IkOptions, IkRetargeter  # noqa: E402
from il_policy_node.mocap.quality import QualityThresholds, assess, summary_line  # noqa: E402
from il_policy_node.mocap.retarget import load_retarget_map, package_map, retarget  # noqa: E402
from il_policy_node.mocap.skeleton import choose  # noqa: E402
from il_policy_node.mocap.synthetic import NAMINGS, wave_clip, whole_body_clip  # noqa: E402
from il_policy_node.robots.models import model_info  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'mocap'
FLOOR_MODEL = 'humanoid_upper'
GOAL_FRAMES_PER_S = 200.0


def default_clips() -> list[tuple[str, BvhClip]]:
    clips = [(str(path), load_bvh(path)) for path in sorted(SHARED.glob('*.bvh'))]
    if not clips:
        print(f'note: {SHARED} is absent: synthetic clips only', file=sys.stderr)
    clips += [(f'<synthetic {n}>', whole_body_clip(n, duration_s=8.0, rate_hz=30.0))
              for n in sorted(NAMINGS)]
    return clips


def best_time(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def floor_frames_per_s(clip: BvhClip, repeats: int) -> float:
    """The angle-map retarget of a synthetic clip as long as ``clip`` at its rate."""
    info = model_info(FLOOR_MODEL)
    mapping = load_retarget_map(package_map(FLOOR_MODEL))
    rate = 1.0 / clip.frame_time
    wave = wave_clip(duration_s=(clip.num_frames - 1) / rate, rate_hz=rate)
    seconds = best_time(lambda: retarget(wave, mapping, joint_names=info.joint_names,
                                         lower=info.lower_limits, upper=info.upper_limits,
                                         rate_hz=rate), max(repeats, 5))
    return wave.num_frames / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('clips', nargs='*', metavar='BVH')
    parser.add_argument('--model', default='humanoid')
    parser.add_argument('--skeleton', default='auto')
    parser.add_argument('--floating-root', action='store_true')
    parser.add_argument('--strict', action='store_true')
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    clips = [(str(p), load_bvh(p)) for p in args.clips] if args.clips else default_clips()
    retargeter = IkRetargeter(args.model, IkOptions(floating_root=args.floating_root))
    info = retargeter.info
    low, high = np.array(info.lower_limits), np.array(info.upper_limits)
    runs, failed = [], 0
    for name, clip in clips:
        match = choose(clip, args.skeleton)
        result = None

        def once():
            nonlocal result
            result = retargeter.retarget(clip, match)

        seconds = best_time(once, args.repeats)
        report = assess(retargeter, result, name, QualityThresholds())
        print(summary_line(report), file=sys.stderr)
        positions = result.motion.positions
        outside = int(((positions < low - 1e-9) | (positions > high + 1e-9)).sum())
        failed += bool(args.strict and report['problems'])
        runs.append({
            'file': name, 'skeleton': match.skeleton, 'frames': clip.num_frames,
            'frames_per_s': round(clip.num_frames / seconds, 1),
            'floor_frames_per_s': round(floor_frames_per_s(clip, args.repeats), 1),
            'ik_iterations_per_frame': report['ik_iterations_per_frame'],
            'first_frame_iterations': report['first_frame_iterations'],
            'key_body_error_cm': {k: report['key_body_error_cm'][k]
                                  for k in ('median', 'p95', 'max')},
            'per_body_p95_cm': {k: v['p95'] for k, v in
                                report['key_body_error_cm']['per_body'].items()},
            'limit_violations': outside,
            'velocity_violations': report['velocity_violations'],
            'self_collision_frames': report['self_collision_frames'],
            'unconverged_frames': report['unconverged_frames'],
            'problems': report['problems'],
        })
    slowest = min(r['frames_per_s'] for r in runs)
    print(json.dumps({'clips': runs, 'model': args.model,
                      'goals': {'frames_per_s': {'value': slowest, 'limit': GOAL_FRAMES_PER_S,
                                                 'pass': slowest >= GOAL_FRAMES_PER_S}},
                      'strict_failures': failed}))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
