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


_FEET = ('left_toe', 'right_toe', 'left_foot', 'right_foot')


@dataclass(frozen=True, eq=False)
class Calibration:
    """What the rest pose fixes for a skeleton.

    Axes, unit, orientation offsets, the robot's rest configuration, and (floating root) the
    scale of the root trajectory.
    """

    match: SkeletonMatch
    axes: np.ndarray                        # rows: forward, left, up in BVH axes
    unit: str
    scale: float                            # metres per BVH unit
    height_m: float
    offsets: dict[str, Rotation]            # oriented key body -> R_human(rest)^-1 R_robot
    rest_q: np.ndarray                      # the robot on the rest pose (IK model qpos)
    leg_ratio: float                        # robot / human leg length
    standing: float                         # human pelvis over its lowest foot point, rest (m)


def calibrate(geometry: RobotGeometry, clip: BvhClip, match: SkeletonMatch, *,
              rest: int | None, unit: str | None,
              solve_rest: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, dict]]
              ) -> Calibration:
    """The calibration of ``clip``'s skeleton (only the skeleton, or frame ``rest``, is read).

    ``solve_rest`` puts the robot on the rest positions and returns its qpos and the rest
    rotation matrix of each oriented site (hands, feet; the pelvis and torso are upright).
    """
    pose = rest_clip(clip, rest)
    raw = {k: world_pose(pose, j)[1][0] for k, j in match.joints.items()}
    axes = body_axes(raw)
    unit, scale, height = units(raw, axes, unit)
    human, rotation = human_bodies(pose, match, axes, scale)
    upright = Rotation.identity(1)
    rest_q, robot = solve_rest(geometry.chain(
        human, upright, upright, np.array([[0.0, 0.0, geometry.pelvis_height]])))
    robot = {**robot, 'pelvis': np.eye(3), 'chest': np.eye(3)}
    offsets = {k: Rotation.from_matrix(rotation[k].as_matrix()[0].T @ robot[k])
               for k in ORIENTED}
    feet = min(human[k][0, 2] for k in _FEET if k in human)
    return Calibration(match=match, axes=axes, unit=unit, scale=scale, height_m=height,
                       offsets=offsets, rest_q=rest_q,
                       leg_ratio=geometry.leg_length / _leg_length(human),
                       standing=float(human['pelvis'][0, 2] - feet))


@dataclass(frozen=True)
class RootOrigin:
    """Where the floating root's trajectory starts.

    The clip's first pelvis position across the floor, and the floor's height (the clip's
    lowest foot point), metres, robot axes.
    """

    xy: np.ndarray
    floor: float


def root_origin(calibration: Calibration, clip: BvhClip, *, percentile: float = 1.0
                ) -> RootOrigin:
    """From the frames given (the whole clip on import, the first ones when streaming)."""
    human, _ = human_bodies(clip, calibration.match, calibration.axes, calibration.scale)
    feet = np.minimum.reduce([human[k][:, 2] for k in _FEET if k in human])
    return RootOrigin(xy=human['pelvis'][0, :2].copy(),
                      floor=float(np.percentile(feet, percentile)))


def frame_targets(geometry: RobotGeometry, calibration: Calibration, clip: BvhClip, *,
                  origin: RootOrigin | None) -> Targets:
    """The targets of the frames of ``clip``; ``origin`` None: the pelvis is pinned."""
    human, rotation = human_bodies(clip, calibration.match, calibration.axes,
                                   calibration.scale)
    orientation = {k: rotation[k] * calibration.offsets[k] for k in ORIENTED}
    frames = clip.num_frames
    if origin is not None:
        # the pelvis over the lowest foot point: the robot's standing height at the human's
        # standing height (rest pose), the difference scaled by the legs
        ratio = calibration.leg_ratio
        root = np.empty((frames, 3))
        root[:, :2] = ratio * (human['pelvis'][:, :2] - origin.xy)
        root[:, 2] = geometry.pelvis_height + ratio * (
            human['pelvis'][:, 2] - origin.floor - calibration.standing)
    else:
        root = np.tile([0.0, 0.0, geometry.pelvis_height], (frames, 1))
        inverse = orientation['pelvis'].inv()
        human = {k: inverse.apply(v - human['pelvis']) + root for k, v in human.items()}
        orientation = {k: inverse * v for k, v in orientation.items()}
        orientation['pelvis'] = Rotation.identity(frames)
    positions = geometry.chain(human, orientation['pelvis'], orientation['chest'], root)
    return Targets(positions=positions,
                   rotations={k: v.as_matrix() for k, v in orientation.items()})


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


def _leg_length(human_rest: dict[str, np.ndarray]) -> float:
    return float(np.mean([np.linalg.norm(human_rest[f'{s}_knee'] - human_rest[f'{s}_hip'])
                          + np.linalg.norm(human_rest[f'{s}_foot'] - human_rest[f'{s}_knee'])
                          for s in SIDES]))
