"""Synthetic BVH clips of a known human-like motion (there is no real mocap data here).

:func:`wave_clip` is a CMU/Mixamo-like skeleton (centimetres; Y up, Z forward, X to the
actor's left; T-pose rest, palms down) that raises its right arm and waves (elbow
oscillation, a little shoulder yaw) while the torso and head sway, the left arm hangs and
the hips bob. The motion is :func:`wave_angles`, given in the joint conventions of the sim
model humanoid_upper, and is turned into BVH rotations with the conventions of
config/retarget/humanoid_upper.yaml, so retargeting the clip with that map returns it.
Deterministic for a seed (which sets the phases of the sways).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from il_policy_node.errors import MocapError
from il_policy_node.mocap.bvh import BvhClip, BvhJoint

ROTATION = ('Zrotation', 'Xrotation', 'Yrotation')
ROOT_CHANNELS = ('Xposition', 'Yposition', 'Zposition') + ROTATION
HIPS_HEIGHT_CM = 96.0
_SIDES = {'Left': 1.0, 'Right': -1.0}
_SKELETON = [                               # name, parent, offset (cm), End Site offset
    ('Hips', None, (0, 0, 0), None),
    ('Spine', 'Hips', (0, 8, 0), None),
    ('Spine1', 'Spine', (0, 18, 0), None),
    ('Neck', 'Spine1', (0, 22, 0), None),
    ('Head', 'Neck', (0, 10, 0), (0, 18, 0)),
] + [joint for side, x in _SIDES.items() for joint in [
    (f'{side}Shoulder', 'Spine1', (3 * x, 18, 0), None),
    (f'{side}Arm', f'{side}Shoulder', (14 * x, 0, 0), None),
    (f'{side}ForeArm', f'{side}Arm', (29 * x, 0, 0), None),
    (f'{side}Hand', f'{side}ForeArm', (25 * x, 0, 0), (8 * x, 0, 0)),
]] + [joint for side, x in _SIDES.items() for joint in [
    (f'{side}UpLeg', 'Hips', (9 * x, -5, 0), None),
    (f'{side}Leg', f'{side}UpLeg', (0, -43, 0), None),
    (f'{side}Foot', f'{side}Leg', (0, -42, 0), (0, -6, 14)),
]]
# BVH -> robot axes, and each arm's rest rotation (robot axes), as in humanoid_upper.yaml
_AXES = Rotation.from_matrix([[0, 0, 1], [1, 0, 0], [0, 1, 0]])
_REST = {side: Rotation.from_rotvec([90.0 * x, 0, 0], degrees=True) for side, x in _SIDES.items()}


def skeleton() -> tuple[BvhJoint, ...]:
    """The clip's joints: a 6-channel root, 3 rotation channels (ZXY) on every other joint."""
    names = [name for name, *_ in _SKELETON]
    return tuple(BvhJoint(name, -1 if parent is None else names.index(parent),
                          tuple(map(float, offset)), ROTATION if parent else ROOT_CHANNELS,
                          None if end is None else tuple(map(float, end)))
                 for name, parent, offset, end in _SKELETON)


def wave_angles(times: np.ndarray, *, tempo_hz: float = 1.2, amplitude: float = 1.0,
                seed: int = 0) -> dict[str, np.ndarray]:
    """humanoid_upper joint angles (rad) of the wave at ``times`` (s); the arm rises in 1 s."""
    t = np.asarray(times, dtype=np.float64)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=4)
    rise = np.clip(t / 1.0, 0, 1)
    rise = rise * rise * (3 - 2 * rise)                      # smoothstep
    wave = amplitude * np.sin(2 * np.pi * tempo_hz * t)

    def sway(hz: float, k: int) -> np.ndarray:
        return amplitude * np.sin(2 * np.pi * hz * t + phase[k])

    return {
        'torso_yaw_joint': 0.08 * sway(0.25, 0),
        'torso_pitch_joint': 0.05 + 0.02 * sway(0.4, 1),
        'head_yaw_joint': 0.15 * sway(0.2, 2),
        'head_pitch_joint': -0.1 + 0.05 * sway(0.3, 3),
        'left_shoulder_pitch_joint': 0.06 * sway(0.5, 0),
        'left_shoulder_roll_joint': np.full_like(t, 0.12),
        'left_shoulder_yaw_joint': np.zeros_like(t),
        'left_elbow_joint': 0.3 + 0.05 * sway(0.5, 1),
        'left_wrist_roll_joint': np.zeros_like(t),
        'right_shoulder_pitch_joint': -0.4 * rise,
        'right_shoulder_roll_joint': 1.3 * rise,
        'right_shoulder_yaw_joint': (1.2 + 0.15 * wave) * rise,
        'right_elbow_joint': (1.5 + 0.35 * wave) * rise,
        'right_wrist_roll_joint': 0.3 * rise,
    }


def wave_clip(*, duration_s: float = 4.0, rate_hz: float = 60.0, tempo_hz: float = 1.2,
              amplitude: float = 1.0, seed: int = 0) -> BvhClip:
    """The wave as a BVH clip at ``rate_hz`` (write it with bvh.write_bvh)."""
    if not (duration_s > 0 and rate_hz > 0):
        raise MocapError(f'duration_s and rate_hz must be > 0, got {duration_s}, {rate_hz}')
    times = np.arange(int(round(duration_s * rate_hz)) + 1) / rate_hz
    q = wave_angles(times, tempo_hz=tempo_hz, amplitude=amplitude, seed=seed)

    def rot(axis: str, angle: np.ndarray) -> Rotation:
        return Rotation.from_euler(axis, angle[:, None])

    torso = rot('z', q['torso_yaw_joint']) * rot('y', q['torso_pitch_joint'])
    head = rot('z', q['head_yaw_joint']) * rot('y', q['head_pitch_joint'])
    robot = {                                # segment rotations relative to the BVH parent
        'Hips': rot('z', 0.05 * np.sin(2 * np.pi * 0.25 * times)),
        'Spine': Rotation.from_rotvec(torso.as_rotvec() / 2),
        'Spine1': Rotation.from_rotvec(torso.as_rotvec() / 2),
        'Neck': Rotation.from_rotvec(head.as_rotvec() / 2),
        'Head': Rotation.from_rotvec(head.as_rotvec() / 2),
    }
    for side, s in _SIDES.items():
        p = side.lower()
        rest = _REST[side]
        shoulder = (rot('y', q[f'{p}_shoulder_pitch_joint'])
                    * rot('x', s * q[f'{p}_shoulder_roll_joint'])
                    * rot('z', s * q[f'{p}_shoulder_yaw_joint']))
        robot[f'{side}Arm'] = shoulder * rest.inv()
        robot[f'{side}ForeArm'] = rest * rot('y', -q[f'{p}_elbow_joint']) * rest.inv()
        robot[f'{side}Hand'] = rest * rot('z', s * q[f'{p}_wrist_roll_joint']) * rest.inv()
    columns = []
    for joint in skeleton():
        if joint.parent < 0:
            bob = np.sin(2 * np.pi * 0.5 * times)
            columns.append(np.stack([0.5 * amplitude * bob, HIPS_HEIGHT_CM + amplitude * bob,
                                     np.zeros_like(times)], axis=1))
        local = robot.get(joint.name, Rotation.identity(len(times)))
        columns.append((_AXES.inv() * local * _AXES).as_euler('ZXY', degrees=True))
    return BvhClip(joints=skeleton(), frames=np.hstack(columns), frame_time=1.0 / rate_hz,
                   source='<synthetic wave>')
