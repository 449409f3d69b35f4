"""Forward kinematics against trigonometry: a 2-link arm, root motion, End Sites."""
import numpy as np
import pytest

from il_policy_node.mocap.bvh import BvhError, BvhJoint
from il_policy_node.mocap.kinematics import world_pose, world_positions
from test.mocap import through_file

L1, L2 = 30.0, 25.0
ROOT = ('Xposition', 'Yposition', 'Zposition', 'Zrotation', 'Xrotation', 'Yrotation')


def two_link(tmp_path, shoulder_deg, elbow_deg, root_position=(1.0, 2.0, 3.0)):
    """A planar arm in the x-y plane: shoulder and elbow turn about z, links along x."""
    joints = [BvhJoint('Shoulder', -1, (0.0, 0.0, 0.0), ROOT),
              BvhJoint('Elbow', 0, (L1, 0.0, 0.0), ('Zrotation',), (L2, 0.0, 0.0))]
    n = len(shoulder_deg)
    frames = np.column_stack([np.tile(root_position, (n, 1)), shoulder_deg, np.zeros((n, 2)),
                              elbow_deg])
    return through_file(tmp_path, joints, frames)


def test_two_link_hand_position_matches_trigonometry(tmp_path):
    shoulder = np.array([0.0, 30.0, 90.0, -45.0, 170.0])
    elbow = np.array([0.0, 60.0, -90.0, 20.0, 35.0])
    clip = two_link(tmp_path, shoulder, elbow)
    a, b = np.radians(shoulder), np.radians(shoulder + elbow)
    hand = np.column_stack([1 + L1 * np.cos(a) + L2 * np.cos(b),
                            2 + L1 * np.sin(a) + L2 * np.sin(b), np.full(5, 3.0)])
    elbow_at = np.column_stack([1 + L1 * np.cos(a), 2 + L1 * np.sin(a), np.full(5, 3.0)])
    np.testing.assert_allclose(world_positions(clip, 'Elbow/End Site'), hand, atol=1e-9)
    np.testing.assert_allclose(world_positions(clip, 'Elbow'), elbow_at, atol=1e-9)
    np.testing.assert_allclose(world_positions(clip, 'Shoulder'), np.tile([1, 2, 3], (5, 1)))
    rotation, _ = world_pose(clip, 'Elbow/End Site')
    np.testing.assert_allclose(rotation.as_rotvec()[:, 2], np.radians((shoulder + elbow + 180)
                                                                      % 360 - 180), atol=1e-9)


def test_root_rotation_and_translation_carry_the_children(tmp_path):
    joints = [BvhJoint('Hips', -1, (0.0, 90.0, 0.0), ROOT),
              BvhJoint('Chest', 0, (0.0, 20.0, 0.0), ('Yrotation', 'Xrotation'), (0.0, 10.0, 0.0))]
    # root at (5, 95, -2) turned 90 deg about Y; the chest tilts 90 deg about its X
    clip = through_file(tmp_path, joints, [[5, 95, -2, 0, 0, 90, 0, 90]])
    np.testing.assert_allclose(world_positions(clip, 'Chest'), [[5, 115, -2]], atol=1e-9)
    # the head-end: +Y turned by Rx(90) is +Z, then by Ry(90) is +X
    np.testing.assert_allclose(world_positions(clip, 'Chest/End Site'), [[15, 115, -2]],
                               atol=1e-9)


def test_unknown_joint_and_missing_end_site_are_named(tmp_path):
    clip = two_link(tmp_path, [0.0], [0.0])
    with pytest.raises(BvhError, match=r"joint 'Shoulder' has no End Site"):
        world_positions(clip, 'Shoulder/End Site')
    with pytest.raises(BvhError, match=r"no joint 'Wrist'; joints: Shoulder, Elbow"):
        world_positions(clip, 'Wrist')
