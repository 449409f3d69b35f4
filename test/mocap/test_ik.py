"""IK retargeting onto the whole-body humanoid: accuracy, limits, calibration, robustness."""
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from il_policy_node.mocap.bvh import BvhClip, BvhJoint, load_bvh
from il_policy_node.mocap.ik import IkError, IkOptions, IkRetargeter
from il_policy_node.mocap.ik_targets import SCORED
from il_policy_node.mocap.quality import self_collision_frames
from il_policy_node.mocap.skeleton import choose
from il_policy_node.mocap.synthetic import whole_body_clip
from test.support.shared import MIXAMO, MOTIONBUILDER, shared_bvh

MODEL = 'humanoid'


@pytest.fixture(scope='module')
def pinned():
    return IkRetargeter(MODEL)


@pytest.fixture(scope='module')
def floating():
    return IkRetargeter(MODEL, IkOptions(floating_root=True))


def errors_cm(result) -> np.ndarray:
    """[frames, bodies] distance of each judged site from its target."""
    return np.stack([np.linalg.norm(result.achieved[k] - result.targets[k], axis=1)
                     for k in SCORED], axis=1) * 100


def assert_within_the_model(retargeter, result):
    info, motion = retargeter.info, result.motion
    assert (motion.positions >= np.array(info.lower_limits) - 1e-9).all()
    assert (motion.positions <= np.array(info.upper_limits) + 1e-9).all()
    speed = np.abs(np.diff(motion.positions, axis=0)) * motion.rate_hz
    assert (speed <= np.array(info.velocity_limits) * (1 + 1e-6)).all()
    assert (np.abs(motion.velocities) <= np.array(info.velocity_limits) + 1e-9).all()


def test_a_clip_the_robot_can_do_is_tracked_to_the_millimetre(pinned):
    clip = whole_body_clip('cmu', duration_s=2.0, rate_hz=30.0)
    result = pinned.retarget(clip, choose(clip))
    error = errors_cm(result)
    assert np.median(error) < 0.1 and np.percentile(error[1:], 95) < 0.5
    assert_within_the_model(pinned, result)
    assert self_collision_frames(pinned.model, result.qpos) == []
    assert result.motion.joint_names == pinned.info.joint_names
    assert result.motion.rate_hz == pytest.approx(30.0)
    # the stepping legs are in the joints: the knees bend by about the clip's 1 rad
    knees = result.motion.positions[:, [pinned.info.index()[f'{s}_knee_joint']
                                        for s in ('left', 'right')]]
    assert 0.8 < knees.max() < 1.2 and knees.min() > -1e-9


@pytest.mark.parametrize('name', [MIXAMO, MOTIONBUILDER])
def test_the_shared_files_meet_the_error_goals_within_the_limits(pinned, name):
    clip = load_bvh(shared_bvh(name))
    result = pinned.retarget(clip, choose(clip))
    error = errors_cm(result)
    assert np.median(error) <= 3.0 and np.percentile(error, 95) <= 8.0
    assert_within_the_model(pinned, result)


def transformed(clip: BvhClip, *, turn: Rotation, factor: float) -> BvhClip:
    """The same motion in other file axes (turned) and another size (units)."""
    with warnings.catch_warnings():          # Euler angles at 90 deg: exact all the same
        warnings.simplefilter('ignore', UserWarning)
        return _transformed(clip, turn, factor)


def _transformed(clip: BvhClip, turn: Rotation, factor: float) -> BvhClip:
    joints = []
    for j in clip.joints:
        offset = turn.apply(np.multiply(j.offset, factor))
        end = None if j.end_site is None else tuple(turn.apply(np.multiply(j.end_site, factor)))
        joints.append(BvhJoint(j.name, j.parent, tuple(offset), j.channels, end))
    frames = clip.frames.copy()
    root = clip.joints[0]
    order = ''.join(c[0] for c in root.channels[3:])
    rotation = Rotation.from_euler(order.upper(), frames[:, 3:6], degrees=True)
    frames[:, :3] = turn.apply(frames[:, :3] * factor)
    frames[:, 3:6] = (turn * rotation).as_euler(order.upper(), degrees=True)
    # every other joint: its local rotation seen in the turned axes
    column = 6
    for j in clip.joints[1:]:
        local = Rotation.from_euler(''.join(c[0] for c in j.channels).upper(),
                                    frames[:, column:column + 3], degrees=True)
        frames[:, column:column + 3] = (turn * local * turn.inv()).as_euler(
            ''.join(c[0] for c in j.channels).upper(), degrees=True)
        column += 3
    return BvhClip(joints, frames, clip.frame_time, source='<transformed>')


def test_file_axes_and_units_do_not_change_the_robot_motion(pinned):
    """Calibration is computed from the rest pose: a Z-up file in metres gives the same."""
    clip = whole_body_clip('mixamo', duration_s=1.0, rate_hz=30.0)
    other = transformed(clip, turn=Rotation.from_euler('x', 90, degrees=True), factor=0.01)
    a = pinned.retarget(clip, choose(clip))
    b = pinned.retarget(other, choose(other))
    assert b.unit == 'm' and a.unit == 'cm'
    np.testing.assert_allclose(b.motion.positions, a.motion.positions, atol=1e-4)


def test_a_bad_first_frame_does_not_collapse_the_clip(pinned):
    clip = whole_body_clip('lafan1', duration_s=2.0, rate_hz=30.0)
    good = pinned.retarget(clip, choose(clip))
    frames = clip.frames.copy()
    frames[0, 3:] = np.random.default_rng(3).uniform(-180, 180, frames.shape[1] - 3)
    bad_clip = BvhClip(clip.joints, frames, clip.frame_time, source='<bad first frame>')
    bad = pinned.retarget(bad_clip, choose(bad_clip))
    assert_within_the_model(pinned, bad)
    # within a second the robot is back on the clip, as close as without the bad frame
    later = slice(int(1.0 / clip.frame_time), None)
    assert np.percentile(errors_cm(bad)[later], 95) < 0.5
    np.testing.assert_allclose(bad.motion.positions[later], good.motion.positions[later],
                               atol=0.01)


def test_the_floating_root_follows_the_clip_with_the_feet_on_the_floor(floating):
    clip = whole_body_clip('cmu', duration_s=2.0, rate_hz=30.0)
    result = floating.retarget(clip, choose(clip))
    assert result.root_poses is not None and result.root_poses.shape == (
        len(result.motion.times), 7)
    assert np.median(errors_cm(result)) < 0.1
    # the clip's hips bob by +-1 cm (x and height): the pelvis follows, scaled by the legs
    height = result.root_poses[:, 2]
    assert 0.9 < height.mean() < 1.0 and 0.01 < height.max() - height.min() < 0.04
    soles = np.minimum(result.achieved['left_toe'][:, 2], result.achieved['right_toe'][:, 2])
    assert abs(soles.min() - floating.geometry.sole) < 0.01
    np.testing.assert_allclose(np.linalg.norm(result.root_poses[:, 3:], axis=1), 1.0)


def test_an_unreachable_frame_is_reported_by_number_and_the_clip_finishes(pinned):
    clip = whole_body_clip('cmu', duration_s=1.0, rate_hz=30.0)
    frames = clip.frames.copy()
    elbow = clip.channel_index('LeftElbow', 'Yrotation')
    frames[10:15, elbow] = 170.0             # the forearm bent backwards: past the elbow
    odd = BvhClip(clip.joints, frames, clip.frame_time, source='<odd>')
    result = pinned.retarget(odd, choose(odd))
    assert set(range(11, 15)) <= set(result.unconverged) and 0 not in result.unconverged
    assert len(result.motion.times) == clip.num_frames
    assert_within_the_model(pinned, result)


def test_a_rest_frame_outside_the_clip_is_named():
    clip = whole_body_clip('cmu', duration_s=0.2)
    with pytest.raises(IkError, match=r'rest frame 99 is not in the clip \(0\.\.12\)'):
        IkRetargeter(MODEL, IkOptions(rest=99)).retarget(clip, choose(clip))


def test_a_model_without_the_key_sites_is_refused():
    with pytest.raises(IkError, match='model humanoid_upper lacks the sites pelvis, torso'):
        IkRetargeter('humanoid_upper')
