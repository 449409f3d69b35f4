"""Forward kinematics of a BVH skeleton, vectorized over frames.

A joint's world pose is its parent's pose composed with the joint's local translation (the
root's is its position channels) and local rotation: p = p_parent + R_parent t,
R = R_parent R_local. An End Site is named ``'<Joint>/End Site'`` (e.g. ``'Head/End Site'``);
it has the rotation of its joint and sits at the End Site OFFSET in the joint's frame.
Positions are in BVH units and BVH axes.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from il_policy_node.mocap.bvh import BvhClip, BvhError

END_SITE = '/End Site'


def world_pose(clip: BvhClip, name: str) -> tuple[Rotation, np.ndarray]:
    """World rotation [n] and position [n, 3] of a joint or ``'<Joint>/End Site'``."""
    joint = name.removesuffix(END_SITE)
    index = clip.joint_index(joint)
    chain = [index]
    while clip.joints[chain[-1]].parent >= 0:
        chain.append(clip.joints[chain[-1]].parent)
    rotation, position = None, None
    for i in reversed(chain):
        local = clip.joints[i].name
        if rotation is None:
            rotation, position = clip.local_rotations(local), clip.local_translations(local)
        else:
            position = position + rotation.apply(clip.local_translations(local))
            rotation = rotation * clip.local_rotations(local)
    if name.endswith(END_SITE):
        end_site = clip.joints[index].end_site
        if end_site is None:
            raise BvhError(f'{clip.source}: joint {joint!r} has no End Site')
        position = position + rotation.apply(end_site)
    return rotation, position


def world_positions(clip: BvhClip, name: str) -> np.ndarray:
    """[n, 3] world position of a joint or ``'<Joint>/End Site'``, in BVH units."""
    return world_pose(clip, name)[1]
