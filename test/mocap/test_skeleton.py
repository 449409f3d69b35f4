"""Skeleton presets, --skeleton auto, user skeleton files, units and body axes."""
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from il_policy_node.mocap.bvh import BvhClip, BvhJoint, load_bvh
from il_policy_node.mocap.kinematics import world_positions
from il_policy_node.mocap.skeleton import (
    PRESETS,
    SkeletonError,
    body_axes,
    choose,
    load_skeleton,
    rest_frame,
    units,
)
from il_policy_node.mocap.synthetic import NAMINGS, wave_clip, whole_body_clip
from test.support.shared import MIXAMO, MOTIONBUILDER, shared_bvh


@pytest.mark.parametrize('naming', sorted(NAMINGS))
def test_auto_picks_the_preset_of_each_naming(naming):
    match = choose(whole_body_clip(naming, duration_s=0.5))
    assert match.skeleton == naming
    # every key body found; toes only where the naming has them
    assert {'pelvis', 'chest', 'head', 'left_hand', 'right_foot', 'left_knee'} <= set(match.joints)


def test_auto_picks_synthetic_for_the_synthetic_wave():
    match = choose(wave_clip(duration_s=0.5))
    assert match.skeleton == 'synthetic'
    assert match.joints['left_toe'] == 'LeftFoot/End Site'


@pytest.mark.parametrize('name, preset', [(MIXAMO, 'mixamo'), (MOTIONBUILDER, 'motionbuilder')])
def test_auto_on_the_shared_files(name, preset):
    clip = load_bvh(shared_bvh(name))
    match = choose(clip)
    assert match.skeleton == preset
    if preset == 'mixamo':                   # the namespace prefix is ignored, kept in names
        assert match.joints['left_elbow'] == 'mixamorig:LeftForeArm'
    else:                                    # no toe joint: the ankle's End Site
        assert match.joints['left_toe'] == 'LeftAnkle/End Site'


def renamed(clip: BvhClip, prefix: str) -> BvhClip:
    joints = [BvhJoint(prefix + j.name.split(':')[-1], j.parent, j.offset, j.channels,
                       j.end_site) for j in clip.joints]
    return BvhClip(joints, clip.frames, clip.frame_time, source='<renamed>')


def test_a_skeleton_that_fits_no_preset_names_what_it_found_and_what_is_missing():
    clip = renamed(whole_body_clip('lafan1', duration_s=0.2), 'Bone_')
    with pytest.raises(SkeletonError) as error:
        choose(clip)
    message = str(error.value)
    assert '<renamed>: no skeleton preset fits' in message and 'misses' in message
    assert 'Bone_Hips' in message and '--skeleton' in message and '\n' not in message


def test_a_user_skeleton_file_covers_any_other_names(tmp_path):
    clip = renamed(whole_body_clip('lafan1', duration_s=0.2), 'Bone_')
    path = tmp_path / 'bones.yaml'
    path.write_text('''name: bones
bodies:
  pelvis: Bone_Hips
  chest: Bone_Spine2
  neck: Bone_Neck
  head: Bone_Head
  shoulder: ['Bone_{Side}Arm']
  elbow: ['Bone_{Side}ForeArm']
  hand: ['Bone_{Side}Hand']
  hip: ['Bone_{Side}UpLeg']
  knee: ['Bone_{Side}Leg']
  foot: ['Bone_{Side}Foot']
  toe: ['Bone_{Side}Toe']
''')
    match = choose(clip, str(path))
    assert match.skeleton == 'bones' and match.joints['right_knee'] == 'Bone_RightLeg'
    with pytest.raises(SkeletonError, match='skeleton mixamo does not fit: missing'):
        choose(clip, 'mixamo')


@pytest.mark.parametrize('text, problem', [
    ('[1, 2]', 'a mapping with `bodies:`'),
    ('bodies: {pelvis: [Hips], elbows: [X]}', 'bodies.elbows: not a key body'),
    ('bodies: {pelvis: [Hips]}', 'bodies lacks chest'),
    ('bodies: {pelvis: [1]}', 'bodies.pelvis: a list of BVH joint names'),
    ('bodies: {pelvis: [Hips]}\ncolour: red', 'unknown keys colour'),
    ('bodies: [', 'cannot read skeleton file'),
])
def test_a_bad_skeleton_file_names_the_file_and_the_entry(tmp_path, text, problem):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(SkeletonError) as error:
        load_skeleton(path)
    assert str(error.value).startswith(f'{path}: ') and problem in str(error.value)


def test_every_preset_file_loads():
    for name in PRESETS:
        assert load_skeleton(Path(__file__).resolve().parents[2] / 'config' / 'skeletons'
                             / f'{name}.yaml').name == name


def rest_points(clip: BvhClip) -> dict[str, np.ndarray]:
    match = choose(clip)
    rest = BvhClip(clip.joints, rest_frame(clip)[None], clip.frame_time)
    return {k: world_positions(rest, j)[0] for k, j in match.joints.items()}


def scaled(clip: BvhClip, factor: float) -> BvhClip:
    joints = [BvhJoint(j.name, j.parent, tuple(np.multiply(j.offset, factor)), j.channels,
                       None if j.end_site is None else tuple(np.multiply(j.end_site, factor)))
              for j in clip.joints]
    frames = clip.frames.copy()
    frames[:, :3] *= factor                                     # the root's positions
    return BvhClip(joints, frames, clip.frame_time)


@pytest.mark.parametrize('factor, unit', [(1.0, 'cm'), (0.01, 'm'), (1 / 2.54, 'in'),
                                          (10.0, 'mm')])
def test_the_unit_comes_from_the_skeletons_height(factor, unit):
    points = rest_points(scaled(whole_body_clip('cmu', duration_s=0.2), factor))
    found, metres, height = units(points, body_axes(points))
    assert found == unit
    assert height == pytest.approx(1.48, abs=0.01)             # head joint over the ankles
    assert units(points, body_axes(points), 'm')[0] == 'm'      # unless given


def test_body_axes_follow_the_skeleton_not_the_file_axes():
    points = rest_points(whole_body_clip('cmu', duration_s=0.2))
    axes = body_axes(points)                                  # Y up, Z forward, X left
    np.testing.assert_allclose(axes, [[0, 0, 1], [1, 0, 0], [0, 1, 0]], atol=1e-9)
    turn = Rotation.from_euler('xz', [90, 30], degrees=True)  # a Z-up file, turned
    turned = {k: turn.apply(np.array(v)) for k, v in points.items()}
    np.testing.assert_allclose(body_axes(turned), axes @ turn.inv().as_matrix(), atol=1e-9)
