"""Where the robot's key sites should be, frame by frame, for a human clip (IK targets).

Per-segment scaling: each limb starts at the robot's own hip or shoulder (carried by the
pelvis or torso target pose) and each segment keeps the human segment's direction with the
robot's length (thigh, shin, foot, upper arm, forearm, neck to head); the human's bone
lengths only set the directions. Orientations of pelvis, torso, hands and feet follow the
human's through a calibration at the rest pose: the robot is solved onto the rest pose's
positions (upright pelvis and torso), and each oriented body keeps the rotation between its
human and its robot rest orientation, R_target(t) = R_human(t) R_human(rest)^-1 R_robot(rest)
(in robot axes). Nothing is tuned per skeleton: the body axes and the unit come from the rest
pose (il_policy_node.mocap.skeleton). Fixed base: everything relative to the human pelvis,
the robot's pelvis upright where the model pins it. Floating root: the pelvis follows the
clip's root, scaled by the ratio of leg lengths, the lowest foot point of the clip on the
floor. ROS-free; numpy only (the rest-pose solve is the caller's).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from il_policy_node.errors import MocapError
from il_policy_node.mocap.bvh import BvhClip
from il_policy_node.mocap.kinematics import world_pose
from il_policy_node.mocap.skeleton import (
    KEY_BODIES,
    SIDES,
    SkeletonMatch,
    body_axes,
    rest_frame,
    units,
)

# key body -> robot site ({side}: left or right)
SITES = {'pelvis': 'pelvis', 'chest': 'torso', 'neck': 'neck', 'head': 'head',
         'shoulder': '{side}_shoulder', 'elbow': '{side}_elbow', 'hand': '{side}_wrist',
         'hip': '{side}_hip', 'knee': '{side}_knee', 'foot': '{side}_ankle',
         'toe': '{side}_toe'}
SEGMENTS = (('hip', 'knee'), ('knee', 'foot'), ('foot', 'toe'), ('shoulder', 'elbow'),
            ('elbow', 'hand'))
ORIENTED = ('pelvis', 'chest', 'left_hand', 'right_hand', 'left_foot', 'right_foot')
# the key bodies over which the position error is judged
SCORED = ('head', 'left_elbow', 'right_elbow', 'left_hand', 'right_hand', 'left_knee',
          'right_knee', 'left_foot', 'right_foot')
_ON_PELVIS = ('pelvis', 'left_hip', 'right_hip')
_ON_TORSO = ('chest', 'neck', 'left_shoulder', 'right_shoulder')


def part(key: str) -> str:
    """'left_knee' -> 'knee'; 'head' -> 'head'."""
    return key.split('_', 1)[1] if key.startswith(SIDES) else key


def site(key: str) -> str:
    """The robot site that plays key body ``key``."""
    side = key.split('_', 1)[0] if key.startswith(SIDES) else ''
    return SITES[part(key)].format(side=side)


class IkError(MocapError):
    """A model IK cannot follow, options that cannot work, a rest frame outside the clip."""


@dataclass(frozen=True)
class RobotGeometry:
    """The robot's key sites at its zero pose, as the target chain needs them."""

    on_pelvis: dict[str, np.ndarray]        # site offsets from the pelvis body origin
    on_torso: dict[str, np.ndarray]         # from the torso body origin
    torso_in_pelvis: np.ndarray
    lengths: dict[str, float]               # segment end key -> its length (m)
    pelvis_height: float                    # m above the floor
    sole: float                             # height of the lowest foot site (m)

    @classmethod
    def of(cls, model: mujoco.MjModel, name: str) -> 'RobotGeometry':
        missing = [site(k) for k in KEY_BODIES
                   if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site(k)) < 0]
        if missing:
            raise IkError(f'model {name} lacks the sites {", ".join(missing)} that IK '
                                'retargeting follows')
        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)
        pos = {k: data.site(site(k)).xpos.copy() for k in KEY_BODIES}
        pelvis = data.xpos[model.site('pelvis').bodyid[0]].copy()
        torso = data.xpos[model.site('torso').bodyid[0]].copy()
        lengths = {f'{s}_{b}': float(np.linalg.norm(pos[f'{s}_{b}'] - pos[f'{s}_{a}']))
                   for s in SIDES for a, b in SEGMENTS}
        lengths['head'] = float(np.linalg.norm(pos['head'] - pos['neck']))
        return cls(on_pelvis={k: pos[k] - pelvis for k in _ON_PELVIS},
                   on_torso={k: pos[k] - torso for k in _ON_TORSO},
                   torso_in_pelvis=torso - pelvis, lengths=lengths,
                   pelvis_height=float(pelvis[2]),
                   sole=float(min(pos['left_toe'][2], pos['right_toe'][2])))

    @property
    def leg_length(self) -> float:
        return float(np.mean([self.lengths[f'{s}_knee'] + self.lengths[f'{s}_foot']
                              for s in SIDES]))

    def chain(self, human: dict[str, np.ndarray], pelvis: Rotation, torso: Rotation,
              root: np.ndarray) -> dict[str, np.ndarray]:
        """Site targets [f, 3]: anchors on the pelvis and torso, segments along the human's."""
        out = {k: root + pelvis.apply(self.on_pelvis[k]) for k in _ON_PELVIS}
        torso_origin = root + pelvis.apply(self.torso_in_pelvis)
        out.update({k: torso_origin + torso.apply(self.on_torso[k]) for k in _ON_TORSO})
        segments = [(f'{s}_{a}', f'{s}_{b}') for s in SIDES for a, b in SEGMENTS]
        segments.append(('neck' if 'neck' in human else 'chest', 'head'))
        for a, b in segments:
            if b not in human:                       # a skeleton without toes
                continue
            direction = human[b] - human[a]
            norm = np.linalg.norm(direction, axis=-1, keepdims=True)
            start = out['neck'] if b == 'head' else out[a]
            out[b] = start + self.lengths[b] * direction / np.maximum(norm, 1e-9)
        return out


@dataclass(frozen=True, eq=False)
class Targets:
    positions: dict[str, np.ndarray]        # key body -> [f, 3] m, world
    rotations: dict[str, np.ndarray]        # oriented key body -> [f, 3, 3]
    rest_q: np.ndarray                      # the robot on the rest pose (IK model qpos)
    unit: str
    height_m: float


def rest_clip(clip: BvhClip, frame: int | None) -> BvhClip:
    """One frame: the BVH zero pose (None) or frame ``frame`` of the clip."""
    if frame is None:
        values = rest_frame(clip)
    elif 0 <= frame < clip.num_frames:
        values = clip.frames[frame]
    else:
        raise IkError(f'{clip.source}: rest frame {frame} is not in the clip '
                            f'(0..{clip.num_frames - 1})')
    return BvhClip(clip.joints, values[None], clip.frame_time, source=clip.source)


def human_bodies(clip: BvhClip, match: SkeletonMatch, axes: np.ndarray, scale: float):
    """Key-body positions [f, 3] (m, robot axes) and world rotations (robot axes)."""
    positions, rotations = {}, {}
    to_robot = Rotation.from_matrix(axes)
    for key, joint in match.joints.items():
        rotation, position = world_pose(clip, joint)
        positions[key] = (position * scale) @ axes.T
        rotations[key] = to_robot * rotation
    return positions, rotations


def build_targets(geometry: RobotGeometry, clip: BvhClip, match: SkeletonMatch, *,
                  rest: int | None, unit: str | None, floating_root: bool,
                  solve_rest: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, dict]]
                  ) -> Targets:
    """The targets of every frame.

    ``solve_rest`` puts the robot on the rest positions and returns its qpos and the rest
    rotation matrix of each oriented site.
    """
    pose = rest_clip(clip, rest)
    raw = {k: world_pose(pose, j)[1][0] for k, j in match.joints.items()}
    axes = body_axes(raw)
    unit, scale, height = units(raw, axes, unit)
    human_rest, rotation_rest = human_bodies(pose, match, axes, scale)
    human, rotation = human_bodies(clip, match, axes, scale)
    upright = Rotation.identity(1)
    rest_q, robot_rest = solve_rest(geometry.chain(
        human_rest, upright, upright, np.array([[0.0, 0.0, geometry.pelvis_height]])))
    robot_rest = {**robot_rest, 'pelvis': np.eye(3), 'chest': np.eye(3)}
    orientation = {k: rotation[k] * Rotation.from_matrix(
        rotation_rest[k].as_matrix()[0].T @ robot_rest[k]) for k in ORIENTED}
    frames = clip.num_frames
    if floating_root:
        ratio = geometry.leg_length / _leg_length(human_rest)
        feet = [human[k][:, 2] for k in ('left_toe', 'right_toe', 'left_foot', 'right_foot')
                if k in human]
        floor = float(np.percentile(np.minimum.reduce(feet), 1))
        # the pelvis over the lowest foot point: the robot's standing height at the human's
        # standing height (rest pose), the difference scaled
        standing = human_rest['pelvis'][0, 2] - min(
            human_rest[k][0, 2] for k in ('left_toe', 'right_toe', 'left_foot', 'right_foot')
            if k in human_rest)
        root = np.empty((frames, 3))
        root[:, :2] = ratio * (human['pelvis'][:, :2] - human['pelvis'][0, :2])
        root[:, 2] = geometry.pelvis_height + ratio * (human['pelvis'][:, 2] - floor - standing)
    else:
        root = np.tile([0.0, 0.0, geometry.pelvis_height], (frames, 1))
        inverse = orientation['pelvis'].inv()
        human = {k: inverse.apply(v - human['pelvis']) + root for k, v in human.items()}
        orientation = {k: inverse * v for k, v in orientation.items()}
        orientation['pelvis'] = Rotation.identity(frames)
    positions = geometry.chain(human, orientation['pelvis'], orientation['chest'], root)
    return Targets(positions=positions,
                   rotations={k: v.as_matrix() for k, v in orientation.items()},
                   rest_q=rest_q, unit=unit, height_m=height)


def _leg_length(human_rest: dict[str, np.ndarray]) -> float:
    return float(np.mean([np.linalg.norm(human_rest[f'{s}_knee'] - human_rest[f'{s}_hip'])
                          + np.linalg.norm(human_rest[f'{s}_foot'] - human_rest[f'{s}_knee'])
                          for s in SIDES]))
