"""The per-clip quality report of IK retargeting."""
import json

import numpy as np
import pytest

from il_policy_node.mocap.ik import IkOptions, IkRetargeter
from il_policy_node.mocap.quality import (
    QualityThresholds,
    assess,
    self_collision_frames,
    summary_line,
    write_report,
)
from il_policy_node.mocap.skeleton import choose
from il_policy_node.mocap.synthetic import whole_body_clip


@pytest.fixture(scope='module')
def retargeted():
    retargeter = IkRetargeter('humanoid', IkOptions(floating_root=True))
    clip = whole_body_clip('mixamo', duration_s=1.5, rate_hz=30.0)
    return retargeter, retargeter.retarget(clip, choose(clip))


def test_a_good_clip_has_no_problems(retargeted, tmp_path):
    retargeter, result = retargeted
    report = assess(retargeter, result, 'clip.bvh')
    assert report['problems'] == [] and report['skeleton'] == 'mixamo'
    assert report['key_body_error_cm']['median'] < 0.1
    assert set(report['key_body_error_cm']['per_body']) >= {'left_hand', 'right_foot', 'head'}
    assert report['velocity_violations'] == 0 and report['self_collision_frames'] == 0
    assert report['ik_iterations_per_frame'] >= 1 and report['first_frame_iterations'] >= 1
    assert set(report['foot_sliding']) == {'left', 'right'}
    line = summary_line(report)
    assert line.startswith('clip.bvh: mixamo (cm), 46 frames') and 'OVER' not in line
    path = write_report(report, tmp_path / 'episode_0001', result)
    assert json.loads(path.read_text())['frames'] == 46
    assert (tmp_path / 'episode_0001.quality.png').stat().st_size > 0


def test_thresholds_name_what_is_over(retargeted):
    retargeter, result = retargeted
    strict = QualityThresholds(median_cm=0.0, p95_cm=0.0, jump_rad=0.01, slide_m_s=0.0,
                               sliding_frames=0.0)
    report = assess(retargeter, result, 'clip.bvh', strict)
    problems = ' | '.join(report['problems'])
    assert 'key-body error median' in problems and 'worst:' in problems
    assert 'jumps over 0.01 rad' in problems
    assert 'OVER: ' in summary_line(report)


def test_self_collision_is_counted_per_frame(retargeted):
    retargeter, result = retargeted
    model = retargeter.model
    q = np.tile(result.qpos[0], (3, 1))
    # frame 1: the left leg swung across the right one (hip roll inward, yaw)
    q[1, model.joint('left_hip_roll_joint').qposadr[0]] = -0.4
    q[1, model.joint('left_hip_pitch_joint').qposadr[0]] = -0.3
    q[1, model.joint('right_hip_roll_joint').qposadr[0]] = -0.4
    assert self_collision_frames(model, q) == [1]
