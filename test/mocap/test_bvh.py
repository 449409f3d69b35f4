"""BVH parsing and writing: channels, rotation orders, translations, and named errors."""
import hashlib
import itertools

import numpy as np
import pytest

from il_policy_node.mocap.bvh import BvhClip, BvhError, BvhJoint, load_bvh
from test.mocap import one_joint, through_file

GOOD = '''HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Arm
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.04
1 2 3 0 0 0 0 0 0
4 5 6 0 0 0 90 0 0
'''.splitlines()


def elementary(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return {'X': np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            'Y': np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            'Z': np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def test_reads_hierarchy_end_sites_and_motion(tmp_path):
    path = tmp_path / 'good.bvh'
    path.write_text('\n'.join(GOOD) + '\n')
    clip = load_bvh(path)
    assert [j.name for j in clip.joints] == ['Hips', 'Arm']
    assert clip.joints[1].parent == 0 and clip.joints[1].offset == (0.0, 10.0, 0.0)
    assert clip.joints[1].end_site == (0.0, 5.0, 0.0) and clip.joints[0].end_site is None
    assert clip.joints[0].channels[:3] == ('Xposition', 'Yposition', 'Zposition')
    assert clip.frame_time == 0.04 and clip.num_frames == 2
    assert clip.times.tolist() == [0.0, 0.04]
    assert clip.root_positions.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert clip.channel_index('Arm', 'Zrotation') == 6
    assert clip.frames[1, clip.channel_index('Arm', 'Zrotation')] == 90
    assert clip.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    rotated = clip.local_rotations('Arm')[1].apply([1.0, 0.0, 0.0])
    np.testing.assert_allclose(rotated, [0, 1, 0], atol=1e-12)


@pytest.mark.parametrize('order', [''.join(p) for p in itertools.permutations('XYZ')])
def test_rotations_are_intrinsic_in_channel_order(tmp_path, order):
    angles = {'X': 30.0, 'Y': -50.0, 'Z': 70.0}
    clip = through_file(tmp_path, one_joint([f'{a}rotation' for a in order]),
                        [[angles[a] for a in order]])
    expected = np.linalg.multi_dot([elementary(a, angles[a]) for a in order])
    np.testing.assert_allclose(clip.local_rotations('J').as_matrix()[0], expected, atol=1e-9)


def test_any_channel_subset_and_position_channels_replace_the_offset(tmp_path):
    joints = one_joint(['Yrotation', 'Zposition', 'Xposition'], offset=(1.0, 2.0, 3.0))
    clip = through_file(tmp_path, joints, [[90.0, -7.0, 5.0]])
    assert clip.local_translations('J').tolist() == [[5.0, 2.0, -7.0]]
    np.testing.assert_allclose(clip.local_rotations('J').as_matrix()[0], elementary('Y', 90),
                               atol=1e-12)
    assert clip.local_translations('Root').tolist() == [[0.0, 0.0, 0.0]]
    assert clip.local_rotations('Root').magnitude().tolist() == [0.0]


def test_write_then_read_keeps_everything(tmp_path):
    joints = one_joint(['Xposition', 'Yposition', 'Zposition', 'Xrotation', 'Zrotation'],
                       offset=(0.5, -1.25, 3.0), end_site=(0.0, 0.0, 7.5))
    frames = np.random.default_rng(0).uniform(-180, 180, (5, 5))
    clip = through_file(tmp_path, joints, frames, frame_time=1 / 120)
    assert clip.joints == tuple(joints)
    assert clip.frame_time == pytest.approx(1 / 120, rel=1e-8)
    np.testing.assert_allclose(clip.frames, frames, rtol=1e-8)


def test_clip_lookups_name_the_joint_and_channel(tmp_path):
    clip = through_file(tmp_path, one_joint(['Xrotation']), [[1.0]])
    with pytest.raises(BvhError, match=r"no joint 'Foo'; joints: Root, J"):
        clip.joint_index('Foo')
    with pytest.raises(BvhError, match=r"joint 'J' has no channel 'Yrotation'; channels: Xrot"):
        clip.channel_index('J', 'Yrotation')


def test_a_clip_checks_its_skeleton_and_frames():
    joints = one_joint(['Xrotation'])
    with pytest.raises(BvhError, match=r'shape \(1, 2\), expected \(n >= 1, 1\)'):
        BvhClip(joints=tuple(joints), frames=[[1.0, 2.0]], frame_time=0.1)
    with pytest.raises(BvhError, match='frame time must be > 0'):
        BvhClip(joints=tuple(joints), frames=[[1.0]], frame_time=0.0)
    with pytest.raises(BvhError, match='not an ancestor in depth-first order'):
        BvhClip(joints=(joints[0], BvhJoint('K', 1, (0, 0, 0), ()), joints[1]),
                frames=[[1.0]], frame_time=0.1)
    with pytest.raises(BvhError, match='must be distinct names'):
        BvhClip(joints=tuple(one_joint(['Wrotation'])), frames=[[1.0]], frame_time=0.1)


def edit(line: int, text: str | None) -> list[str]:
    """GOOD with 1-based ``line`` replaced by ``text`` (removed when None)."""
    lines = list(GOOD)
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    return lines


MALFORMED = {                    # case -> (file lines, line of the error, words of the error)
    'missing_open_brace': (edit(3, None), 3, "joint 'Hips': expected '{', got 'OFFSET'"),
    'missing_close_brace': (edit(14, None), 15,
                            "joint 'Hips': expected JOINT, End Site or '}', got 'MOTION'"),
    'missing_offset': (edit(8, None), 8, "joint 'Arm': expected 'OFFSET', got 'CHANNELS'"),
    'short_offset': (edit(8, '    OFFSET 0 10'), 8, 'OFFSET needs 3 numbers'),
    'offset_not_a_number': (edit(8, '    OFFSET 0 x 0'), 8, "non-numeric value 'x'"),
    'missing_channels': (edit(9, None), 9, "joint 'Arm': expected 'CHANNELS', got 'End'"),
    'unexpected_token': (edit(10, '    Foo Site'), 10,
                         "expected JOINT, End Site or '}', got 'Foo'"),
    'end_site_with_children': (edit(13, '      JOINT Hand'), 13,
                               "got 'JOINT' (an End Site has no children)"),
    'channel_count': (edit(9, '    CHANNELS 3 Zrotation Xrotation'), 9, 'CHANNELS 3 lists 2'),
    'unsupported_channel': (edit(9, '    CHANNELS 3 Zrotation Xrotation Wrotation'), 9,
                            "unsupported channel name 'Wrotation'"),
    'repeated_channel': (edit(9, '    CHANNELS 3 Zrotation Xrotation Xrotation'), 9,
                         'a channel is listed twice'),
    'duplicate_joint': (edit(6, '  JOINT Hips'), 6, "duplicate joint name 'Hips'"),
    'two_roots': (GOOD[:15] + ['ROOT Other'] + GOOD[15:], 16, 'only one ROOT'),
    'no_motion': (GOOD[:15], 15, 'no MOTION section'),
    'truncated': (GOOD[:12], 12, "End Site: expected '}', got 'end of file'"),
    'motion_line_short': (edit(20, '4 5 6 0 0 0 90 0'), 20, 'frame 2 has 8 values, the '
                          'hierarchy has 9 channels'),
    'motion_line_long': (edit(19, '1 2 3 0 0 0 0 0 0 0'), 19, 'frame 1 has 10 values'),
    'more_frames_declared': (edit(17, 'Frames: 3'), 17, 'Frames: 3 but 2 frame lines follow'),
    'fewer_frames_declared': (edit(17, 'Frames: 1'), 20, 'frame line 2 beyond Frames: 1'),
    'empty_motion': (edit(17, 'Frames: 0')[:18], 17, 'empty motion'),
    'frames_not_a_count': (edit(17, 'Frames: two'), 17, 'whole number'),
    'zero_frame_time': (edit(18, 'Frame Time: 0'), 18, 'Frame Time must be > 0'),
    'negative_frame_time': (edit(18, 'Frame Time: -0.01'), 18, 'Frame Time must be > 0'),
    'missing_frame_time': (edit(18, None), 18, "expected 'Frame Time:'"),
    'non_numeric_value': (edit(19, '1 2 3 0 abc 0 0 0 0'), 19,
                          "frame 1, value 5: non-numeric value 'abc'"),
    'non_finite_value': (edit(20, '4 5 6 0 0 0 nan 0 0'), 20,
                         "frame 2, value 7: non-finite value 'nan'"),
}


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_malformed_files_name_file_and_line(tmp_path, case):
    lines, line, words = MALFORMED[case]
    path = tmp_path / f'{case}.bvh'
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(BvhError) as error:
        load_bvh(path)
    assert str(error.value).startswith(f'{path}:{line}: '), str(error.value)
    assert f'{case}.bvh:{line}:' in str(error.value)
    assert words in str(error.value)


def test_a_binary_file_is_named(tmp_path):
    path = tmp_path / 'binary.bvh'
    path.write_bytes(b'\xff\xfe\x00HIERARCHY')
    with pytest.raises(BvhError, match=r'binary\.bvh: not a UTF-8 text file'):
        load_bvh(path)
