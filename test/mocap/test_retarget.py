"""Retargeting with a YAML map: angles about axes, channels, limits, resampling, errors."""
import itertools

import numpy as np
import pytest

from il_policy_node.mocap.bvh import BvhJoint
from il_policy_node.mocap.retarget import RetargetError, load_retarget_map, retarget
from test.mocap import one_joint, through_file, write_map

ORDERS = [''.join(p) for p in itertools.permutations('XYZ')]


def run(tmp_path, clip, joints, robot=None, lower=None, upper=None, **top):
    """Retargets ``clip`` with a map of ``joints`` (rate = the clip's rate unless given)."""
    content = {'rate_hz': 1.0 / clip.frame_time, 'joints': joints, **top}
    mapping = load_retarget_map(write_map(tmp_path, content))
    return retarget(clip, mapping, joint_names=robot or list(joints), lower=lower, upper=upper)


@pytest.mark.parametrize('order', ORDERS)
def test_euler_angles_in_the_channel_order_come_back(tmp_path, order):
    channels = [f'{a}rotation' for a in order]
    frames = np.array([[10.0, -20.0, 30.0], [-60.0, 45.0, 120.0], [-120.0, -70.0, 170.0]])
    clip = through_file(tmp_path, one_joint(channels), frames, frame_time=0.1)
    joints = {f'q{a}': {'bvh_joint': 'J', 'axis': a.lower(), 'euler': order} for a in order}
    motion = run(tmp_path, clip, joints)
    assert motion.joint_names == tuple(f'q{a}' for a in order)
    np.testing.assert_allclose(motion.positions, np.radians(frames), atol=1e-9)


@pytest.mark.parametrize('order', ORDERS)
@pytest.mark.parametrize('axis', 'xyz')
def test_a_rotation_about_one_axis_is_its_angle_whatever_the_channel_order(tmp_path, order,
                                                                            axis):
    degrees = np.array([0.0, 25.0, -80.0, -170.0])
    channels = [f'{a}rotation' for a in order]
    frames = np.zeros((4, 3))
    frames[:, channels.index(f'{axis.upper()}rotation')] = degrees
    clip = through_file(tmp_path, one_joint(channels), frames, frame_time=0.1)
    motion = run(tmp_path, clip, {'q': {'bvh_joint': 'J', 'axis': axis}})
    np.testing.assert_allclose(motion.positions[:, 0], np.radians(degrees), atol=1e-9)


def test_axes_map_bvh_axes_to_robot_axes_and_rest_offsets_the_zero(tmp_path):
    clip = through_file(tmp_path, one_joint(['Xrotation', 'Yrotation', 'Zrotation']),
                        [[30.0, 0.0, 0.0], [0.0, 40.0, 0.0], [0.0, 0.0, 50.0]], frame_time=0.5)
    joints = {'about_y': {'bvh_joint': 'J', 'axis': 'y'},      # BVH x is robot y
              'about_z': {'bvh_joint': 'J', 'axis': 'z'},      # BVH y is robot z
              'about_x': {'bvh_joint': 'J', 'axis': 'x'}}      # BVH z is robot x
    motion = run(tmp_path, clip, joints, axes=['y', 'z', 'x'])
    np.testing.assert_allclose(np.degrees(motion.positions), np.diag([30.0, 40.0, 50.0]),
                               atol=1e-9)
    turning = through_file(tmp_path, one_joint(['Yrotation']), [[0.0], [40.0]], frame_time=0.5)
    rested = run(tmp_path, turning, {'about_z': {'bvh_joint': 'J', 'axis': 'z'}},
                 axes=['y', 'z', 'x'], rest={'J': [0, 0, 90], 'Root': [0, 0, 30]})
    # R = rest(Root)^-1 R_rel rest(J): -30 + 40 + 90 degrees about z
    np.testing.assert_allclose(np.degrees(rested.positions[:, 0]), [60.0, 100.0], atol=1e-9)


def test_sign_scale_and_offset(tmp_path):
    clip = through_file(tmp_path, one_joint(['Zrotation']), [[0.0], [30.0]], frame_time=0.5)
    joints = {'q': {'bvh_joint': 'J', 'axis': 'z', 'sign': -1.0, 'scale': 2.0, 'offset': 0.1}}
    motion = run(tmp_path, clip, joints)
    np.testing.assert_allclose(motion.positions[:, 0], [0.1, 0.1 - 2 * np.radians(30)])


def test_raw_channels_degrees_to_radians_and_positions_to_metres(tmp_path):
    joints = [BvhJoint('Hips', -1, (0.0, 0.0, 0.0), ('Xposition', 'Yrotation'))]
    clip = through_file(tmp_path, joints, [[150.0, 90.0], [-50.0, -45.0], [0.0, -175.0],
                                           [0.0, 175.0]], frame_time=0.5)
    entries = {'slide': {'bvh_joint': 'Hips', 'channel': 'Xposition'},
               'turn': {'bvh_joint': 'Hips', 'channel': 'Yrotation', 'sign': -1.0}}
    motion = run(tmp_path, clip, entries, scale=0.01)
    np.testing.assert_allclose(motion.positions[:, 0], [1.5, -0.5, 0.0, 0.0])
    # a rotation channel wrapped from -175 to 175 degrees is unwrapped to -185
    np.testing.assert_allclose(np.degrees(motion.positions[:, 1]), [-90, 45, 175, 185])


def test_resampling_gives_the_sine_and_its_analytic_derivative(tmp_path):
    rate, hz, amplitude = 120.0, 1.5, 40.0
    t = np.arange(241) / rate
    clip = through_file(tmp_path, one_joint(['Yrotation']),
                        (amplitude * np.sin(2 * np.pi * hz * t) + 10.0)[:, None],
                        frame_time=1 / rate)
    content = {'rate_hz': 50.0, 'joints': {'q': {'bvh_joint': 'J', 'axis': 'y'}}}
    motion = retarget(clip, load_retarget_map(write_map(tmp_path, content)), joint_names=['q'])
    assert motion.rate_hz == 50.0 and len(motion.times) == 101
    np.testing.assert_allclose(motion.times, np.arange(101) * 0.02, atol=1e-12)
    w, a = 2 * np.pi * hz, np.radians(amplitude)
    np.testing.assert_allclose(motion.positions[:, 0],
                               a * np.sin(w * motion.times) + np.radians(10), atol=2e-6)
    np.testing.assert_allclose(motion.velocities[:, 0], a * w * np.cos(w * motion.times),
                               atol=2e-3 * a * w)


def test_angles_are_unwrapped_across_half_turns(tmp_path):
    degrees = np.linspace(0.0, 340.0, 35)
    clip = through_file(tmp_path, one_joint(['Zrotation']), degrees[:, None], frame_time=0.1)
    motion = run(tmp_path, clip, {'q': {'bvh_joint': 'J', 'axis': 'z'}})
    np.testing.assert_allclose(motion.positions[:, 0], np.radians(degrees), atol=1e-9)
    np.testing.assert_allclose(motion.velocities[:, 0], np.radians(100.0), rtol=1e-6)


def test_positions_outside_the_limits_are_clamped_and_reported(tmp_path):
    t = np.arange(101) / 100
    truth = np.sin(2 * np.pi * t)                     # rad, peaks +-1 at t = 0.25, 0.75
    clip = through_file(tmp_path, one_joint(['Xrotation', 'Yrotation']),
                        np.degrees(np.column_stack([truth, 0.3 * truth])), frame_time=0.01)
    joints = {'a': {'bvh_joint': 'J', 'axis': 'x', 'euler': 'XYZ'},
              'b': {'bvh_joint': 'J', 'axis': 'y', 'euler': 'XYZ'}}
    motion = run(tmp_path, clip, joints, lower=[-0.5, -1.0], upper=[0.8, 1.0],
                 limits={'a': [-0.4, 2.0]})
    low, high = -0.4, 0.8                              # the map narrows the robot's lower limit
    outside = (truth < low) | (truth > high)
    assert set(motion.clamped) == {'a'}
    assert motion.clamped['a'].frames == outside.sum() > 0
    assert motion.clamped['a'].worst_excess == pytest.approx(1.0 - 0.4, abs=1e-9)
    np.testing.assert_allclose(motion.positions[:, 0], np.clip(truth, low, high), atol=1e-9)
    assert (motion.velocities[outside, 0] == 0).all()
    assert np.abs(motion.velocities[~outside, 0]).min() > 0
    np.testing.assert_allclose(motion.positions[:, 1], 0.3 * truth, atol=1e-9)


def test_end_effectors_in_the_frame_joint_scaled_to_robot_axes(tmp_path):
    joints = one_joint(['Yrotation'], offset=(0.0, 10.0, 0.0), end_site=(0.0, 0.0, 20.0))
    clip = through_file(tmp_path, joints, [[0.0], [90.0]], frame_time=0.5)
    motion = run(tmp_path, clip, {'q': {'bvh_joint': 'J', 'axis': 'z'}}, scale=0.01,
                 axes=['y', 'z', 'x'],
                 end_effectors={'tip': {'bvh_joint': 'J/End Site', 'relative_to': 'Root'},
                                'tip_in_j': {'bvh_joint': 'J/End Site', 'relative_to': 'J'}})
    # BVH: (0, 10, 20) then (20, 10, 0); robot axes (z, x, y of BVH) in metres
    np.testing.assert_allclose(motion.end_effectors['tip'], [[0.2, 0, 0.1], [0, 0.2, 0.1]],
                               atol=1e-12)
    np.testing.assert_allclose(motion.end_effectors['tip_in_j'], [[0.2, 0, 0]] * 2, atol=1e-12)


def test_fingerprints_follow_content_not_layout(tmp_path):
    clip = through_file(tmp_path, one_joint(['Zrotation']), [[0.0], [1.0]], frame_time=0.5)
    a = tmp_path / 'a.yaml'
    a.write_text('joints: {q: {bvh_joint: J, axis: z, sign: 1.0}}\nrate_hz: 2.0\n')
    b = tmp_path / 'b.yaml'
    b.write_text('# same map\nrate_hz: 2.0\njoints:\n  q: {sign: 1.0, axis: z, bvh_joint: J}\n')
    c = tmp_path / 'c.yaml'
    c.write_text('rate_hz: 2.0\njoints:\n  q: {sign: -1.0, axis: z, bvh_joint: J}\n')
    maps = [load_retarget_map(p) for p in (a, b, c)]
    assert maps[0].sha256 == maps[1].sha256 != maps[2].sha256
    motion = retarget(clip, maps[0], joint_names=['q'])
    assert (motion.map_sha256, motion.source_sha256) == (maps[0].sha256, clip.sha256)
    assert len(clip.sha256) == 64


def test_unknown_bvh_joint_names_map_robot_joint_and_available_joints(tmp_path):
    clip = through_file(tmp_path, one_joint(['Zrotation']), [[0.0], [1.0]])
    with pytest.raises(RetargetError) as error:
        run(tmp_path, clip, {'elbow': {'bvh_joint': 'LeftForeArm', 'axis': 'z'}})
    message = str(error.value)
    assert message.startswith(f'{tmp_path / "map.yaml"}: joints.elbow: ')
    assert "BVH joint 'LeftForeArm' is not in" in message and 'clip.bvh' in message
    assert message.endswith('its joints: Root, J')
    with pytest.raises(RetargetError, match=r"relative_to: BVH joint 'Chest' is not in"):
        run(tmp_path, clip, {'q': {'bvh_joint': 'J', 'axis': 'z', 'relative_to': 'Chest'}})
    with pytest.raises(RetargetError, match=r"end_effectors.hand: BVH joint 'J' has no End"):
        run(tmp_path, clip, {'q': {'bvh_joint': 'J', 'axis': 'z'}},
            end_effectors={'hand': {'bvh_joint': 'J/End Site', 'relative_to': 'Root'}})
    with pytest.raises(RetargetError, match=r"joints.q: BVH joint 'J' has no channel 'Xrot"):
        run(tmp_path, clip, {'q': {'bvh_joint': 'J', 'channel': 'Xrotation'}})


def test_the_map_must_name_exactly_the_robot_joints(tmp_path):
    clip = through_file(tmp_path, one_joint(['Zrotation']), [[0.0], [1.0]])
    joints = {'a': {'bvh_joint': 'J', 'axis': 'z'}, 'b': {'bvh_joint': 'J', 'axis': 'x'}}
    with pytest.raises(RetargetError) as error:
        run(tmp_path, clip, joints, robot=['b', 'c'])
    assert "no entry for robot joints ['c']" in str(error.value)
    assert "joints the robot does not have ['a']" in str(error.value)


def test_a_single_frame_is_not_enough(tmp_path):
    clip = through_file(tmp_path, one_joint(['Zrotation']), [[0.0]])
    with pytest.raises(RetargetError, match=r'clip\.bvh: one frame; retargeting needs at least'):
        run(tmp_path, clip, {'q': {'bvh_joint': 'J', 'axis': 'z'}})


@pytest.mark.parametrize('entry, words', [
    ({'bvh_joint': 'J', 'axis': 'w'}, "joints.q: unknown axis 'w'"),
    ({'bvh_joint': 'J', 'channel': 'Yrot'}, "joints.q: unknown channel 'Yrot'"),
    ({'bvh_joint': 'J', 'axis': 'x', 'euler': 'XXY'}, "euler 'XXY' must order X, Y and Z"),
    ({'bvh_joint': 'J', 'axis': 'x', 'sign': 2}, 'joints.q.sign must be 1 or -1'),
    ({'bvh_joint': 'J', 'axis': 'x', 'channel': 'Xrotation'}, 'needs either axis or channel'),
    ({'bvh_joint': 'J', 'axes': 'x'}, "joints.q: unknown keys ['axes']"),
    ({'axis': 'x'}, 'joints.q needs a mapping with bvh_joint'),
])
def test_bad_entries_are_named(tmp_path, entry, words):
    path = write_map(tmp_path, {'rate_hz': 50.0, 'joints': {'q': entry}}, name='bad.yaml')
    with pytest.raises(RetargetError) as error:
        load_retarget_map(path)
    assert str(error.value).startswith(f'{path}: ') and words in str(error.value)


@pytest.mark.parametrize('top, words', [
    ({'axes': ['x', 'x', 'z']}, 'is not a rotation'),
    ({'axes': ['-x', 'y', 'z']}, 'is not a rotation'),
    ({'axes': ['x', 'y', 'q']}, "axes: unknown axis 'q'"),
    ({'rate_hz': 0}, 'rate_hz must be > 0'),
    ({'limits': {'q': [1.0, -1.0]}}, 'limits.q: lower 1.0 > upper -1.0'),
    ({'limits': {'p': [0.0, 1.0]}}, "limits names 'p', which is not in joints"),
    ({'rest': {'J': [90, 0]}}, 'rest.J must be a list of 3 numbers'),
    ({'frame': 'robot'}, "unknown keys ['frame']"),
])
def test_bad_maps_are_named(tmp_path, top, words):
    content = {'rate_hz': 50.0, 'joints': {'q': {'bvh_joint': 'J', 'axis': 'x'}}, **top}
    path = write_map(tmp_path, content, name='bad.yaml')
    with pytest.raises(RetargetError) as error:
        load_retarget_map(path)
    assert str(error.value).startswith(f'{path}: ') and words in str(error.value)
