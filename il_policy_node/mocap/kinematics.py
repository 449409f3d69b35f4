"""Forward kinematics of a BVH skeleton, vectorized over frames.

A joint's world pose is its parent's pose composed with the joint's local translation (the
root's is its position channels) and local rotation: p = p_parent + R_parent t,
R = R_parent R_local. An End Site is named ``'<Joint>/End Site'`` (e.g. ``'Head/End Site'``);
it has the rotation of its joint and sits at the End Site OFFSET in the joint's frame.
Positions are in BVH units and BVH axes.
"""
from __future__ import annotations

from weakref import WeakKeyDictionary

import numpy as np
from scipy.spatial.transform import Rotation

from il_policy_node.mocap.bvh import BvhClip, BvhError

END_SITE = '/End Site'
_POSES: WeakKeyDictionary = WeakKeyDictionary()


def world_pose(clip: BvhClip, name: str) -> tuple[Rotation, np.ndarray]:
    """World rotation [n] and position [n, 3] of a joint or ``'<Joint>/End Site'``."""
    joint = name.removesuffix(END_SITE)
    rotation, position = _joint_pose(clip, clip.joint_index(joint))
    if name.endswith(END_SITE):
        end_site = clip.joints[clip.joint_index(joint)].end_site
        if end_site is None:
            raise BvhError(f'{clip.source}: joint {joint!r} has no End Site')
        position = position + rotation.apply(end_site)
    return rotation, position


def _joint_pose(clip: BvhClip, index: int) -> tuple[Rotation, np.ndarray]:
    """Memoized per clip (clips are immutable; the arrays are read-only): a map asks often."""
    poses = _POSES.setdefault(clip, {})
    if index not in poses:
        joint = clip.joints[index]
        rotation, position = (clip.local_rotations(joint.name),
                              clip.local_translations(joint.name))
        if joint.parent >= 0:
            parent_rotation, parent_position = _joint_pose(clip, joint.parent)
            position = parent_position + parent_rotation.apply(position)
            rotation = parent_rotation * rotation
        position.setflags(write=False)
        poses[index] = rotation, position
    return poses[index]


def world_positions(clip: BvhClip, name: str) -> np.ndarray:
    """[n, 3] world position of a joint or ``'<Joint>/End Site'``, in BVH units."""
    return world_pose(clip, name)[1]
