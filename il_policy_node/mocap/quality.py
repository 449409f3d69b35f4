"""The quality report of one IK-retargeted clip: JSON beside the bag, one line, one PNG.

Figures (over the clip's BVH frames unless said): key-body position error against the
scaled targets (median, p95, max in cm, overall and per body of ik_targets.SCORED); joint
samples clamped to the limits and samples at a limit (output rate); velocity samples over
the model's limits (finite differences at the output rate); frame-to-frame jumps over
``jump_rad``; frames whose robot bodies touch each other (MuJoCo contacts between the
model's group-0 geoms, the floor excluded, the model's <contact><exclude> pairs and
parent-child pairs skipped); with a floating root, foot sliding: the horizontal speed of
each ankle while its sole is within ``contact_height_m`` of the floor (mean and p95, m/s)
and the frames it slid faster than ``slide_m_s``; IK frames that did not reach
``converged_cm``. A clip over a threshold gets the reasons in ``problems``. ROS-free.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import mujoco
import numpy as np

from il_policy_node.files import atomic_write
from il_policy_node.mocap.ik import IkMotion, IkRetargeter
from il_policy_node.mocap.ik_targets import SCORED

REPORT_SUFFIX = '.quality.json'
PLOT_SUFFIX = '.quality.png'


@dataclass(frozen=True)
class QualityThresholds:
    median_cm: float = 3.0
    p95_cm: float = 8.0
    jump_rad: float = 0.3               # per output sample
    velocity_violations: int = 0
    self_collision_frames: int = 0
    contact_height_m: float = 0.03
    slide_m_s: float = 0.3
    sliding_frames: float = 0.1         # share of the clip's frames


def self_collision_frames(model: mujoco.MjModel, qpos: np.ndarray) -> list[int]:
    data = mujoco.MjData(model)
    frames = []
    for f, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_collision(model, data)
        if data.ncon:
            frames.append(f)
    return frames


def _stats(values: np.ndarray) -> dict[str, float]:
    return {'median': round(float(np.median(values)), 2),
            'p95': round(float(np.percentile(values, 95)), 2),
            'max': round(float(np.max(values)), 2)}


def assess(retargeter: IkRetargeter, result: IkMotion, source: str,
           thresholds: QualityThresholds = QualityThresholds()) -> dict:
    """The report of ``result`` (a dict, JSON-ready; ``problems`` lists what is over)."""
    motion, info = result.motion, retargeter.info
    errors = {k: np.linalg.norm(result.achieved[k] - result.targets[k], axis=1) * 100
              for k in SCORED}
    overall = _stats(np.concatenate(list(errors.values())))
    low, high = np.array(info.lower_limits), np.array(info.upper_limits)
    at_limit = (np.isclose(motion.positions, low, atol=1e-4)
                | np.isclose(motion.positions, high, atol=1e-4))
    velocity_limit = np.array(info.velocity_limits)
    speed = np.abs(np.diff(motion.positions, axis=0)) * motion.rate_hz
    over = speed > velocity_limit * (1 + 1e-6)
    jumps = np.abs(np.diff(motion.positions, axis=0))
    big_jumps = jumps > thresholds.jump_rad
    collisions = self_collision_frames(retargeter.model, result.qpos)
    report = {
        'file': source, 'skeleton': result.skeleton, 'unit': result.unit,
        'height_m': round(result.height_m, 3), 'frames': int(len(result.qpos)),
        'samples': int(len(motion.times)), 'rate_hz': motion.rate_hz,
        'floating_root': retargeter.options.floating_root,
        'ik_iterations_per_frame': round(float(result.iterations[1:].mean()), 2)
        if len(result.iterations) > 1 else 0.0,
        'first_frame_iterations': int(result.iterations[0]),
        'key_body_error_cm': {**overall, 'per_body': {k: _stats(v) for k, v in errors.items()}},
        'limit_clamps': int(sum(c.frames for c in motion.clamped.values())),
        'at_limit_samples': {name: int(n) for name, n in zip(info.joint_names, at_limit.sum(0))
                             if n},
        'velocity_violations': int(over.sum()),
        'jumps': {'max_rad': round(float(jumps.max()), 4) if len(jumps) else 0.0,
                  'over_threshold': int(big_jumps.sum())},
        'self_collision_frames': len(collisions),
        'first_self_collision_frames': collisions[:10],
        'unconverged_frames': len(result.unconverged),
        'ik_bound_cm': retargeter.options.converged_cm,
        'first_unconverged_frames': list(result.unconverged[:10]),
        'thresholds': asdict(thresholds),
    }
    if retargeter.options.floating_root:
        report['foot_sliding'] = _sliding(result, thresholds)
    report['problems'] = _problems(report, thresholds)
    return report


def _sliding(result: IkMotion, thresholds: QualityThresholds) -> dict:
    out = {}
    dt = np.diff(result.frame_times)
    for side in ('left', 'right'):
        toe, ankle = result.achieved[f'{side}_toe'], result.achieved[f'{side}_foot']
        sole = np.minimum(toe[:, 2], ankle[:, 2] - 0.06)
        speed = np.linalg.norm(np.diff(ankle[:, :2], axis=0), axis=1) / dt
        contact = sole[1:] < thresholds.contact_height_m
        sliding = contact & (speed > thresholds.slide_m_s)
        out[side] = {'contact_frames': int(contact.sum()),
                     'mean_m_s': round(float(speed[contact].mean()), 3) if contact.any() else 0.0,
                     'p95_m_s': round(float(np.percentile(speed[contact], 95)), 3)
                     if contact.any() else 0.0,
                     'sliding_frames': int(sliding.sum())}
    return out


def _problems(report: dict, t: QualityThresholds) -> list[str]:
    problems = []
    error = report['key_body_error_cm']
    if error['median'] > t.median_cm or error['p95'] > t.p95_cm:
        worst = max(error['per_body'], key=lambda k: error['per_body'][k]['p95'])
        problems.append(f'key-body error median {error["median"]} / p95 {error["p95"]} cm '
                        f'over {t.median_cm} / {t.p95_cm} (worst: {worst}, p95 '
                        f'{error["per_body"][worst]["p95"]} cm)')
    if report['velocity_violations'] > t.velocity_violations:
        problems.append(f'{report["velocity_violations"]} velocity samples over the limits')
    if report['jumps']['over_threshold']:
        problems.append(f'{report["jumps"]["over_threshold"]} jumps over {t.jump_rad} rad')
    if report['self_collision_frames'] > t.self_collision_frames:
        problems.append(f'{report["self_collision_frames"]} frames of self-collision (first: '
                        f'{report["first_self_collision_frames"][0]})')
    for side, slide in report.get('foot_sliding', {}).items():
        if slide['sliding_frames'] > t.sliding_frames * report['frames']:
            problems.append(f'{side} foot slides on {slide["sliding_frames"]} frames')
    return problems


def summary_line(report: dict) -> str:
    e = report['key_body_error_cm']
    line = (f'{report["file"]}: {report["skeleton"]} ({report["unit"]}), {report["frames"]} '
            f'frames, key-body error {e["median"]}/{e["p95"]}/{e["max"]} cm (median/p95/max), '
            f'{report["ik_iterations_per_frame"]} IK iterations per frame, '
            f'{report["self_collision_frames"]} self-collision frames, '
            f'{report["velocity_violations"]} velocity violations')
    if report['unconverged_frames']:
        line += (f', {report["unconverged_frames"]} frames over {report["ik_bound_cm"]:g} cm '
                 f'(first: {report["first_unconverged_frames"][0]})')
    return line + (f'; OVER: {"; ".join(report["problems"])}' if report['problems'] else '')


def write_report(report: dict, stem: Path, result: IkMotion | None = None) -> Path:
    """``stem``.quality.json (and .quality.png when ``result`` is given)."""
    path = stem.with_name(stem.name + REPORT_SUFFIX)
    atomic_write(path, (json.dumps(report, indent=1) + '\n').encode())
    if result is not None:
        plot(report, result, stem.with_name(stem.name + PLOT_SUFFIX))
    return path


def plot(report: dict, result: IkMotion, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for key in SCORED:
        error = np.linalg.norm(result.achieved[key] - result.targets[key], axis=1) * 100
        axes[0].plot(result.frame_times, error, label=key, linewidth=0.8)
    axes[0].set_ylabel('key-body error [cm]')
    axes[0].legend(ncol=3, fontsize=7)
    axes[0].set_title(f'{Path(report["file"]).name}: {report["skeleton"]}, median '
                      f'{report["key_body_error_cm"]["median"]} cm')
    axes[1].plot(result.frame_times, result.iterations, linewidth=0.8)
    axes[1].set_ylabel('IK iterations')
    axes[1].set_xlabel('clip time [s]')
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
