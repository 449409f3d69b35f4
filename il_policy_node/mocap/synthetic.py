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
    times = _times(duration_s, rate_hz)
    local = _upper_body(times, wave_angles(times, tempo_hz=tempo_hz, amplitude=amplitude,
                                           seed=seed))
    columns = []
    for joint in skeleton():
        if joint.parent < 0:
            columns.append(_root(times, amplitude))
        rotation = local.get(joint.name, Rotation.identity(len(times)))
        columns.append((_AXES.inv() * rotation * _AXES).as_euler('ZXY', degrees=True))
    return BvhClip(joints=skeleton(), frames=np.hstack(columns), frame_time=1.0 / rate_hz,
                   source='<synthetic wave>')


def _times(duration_s: float, rate_hz: float) -> np.ndarray:
    if not (duration_s > 0 and rate_hz > 0):
        raise MocapError(f'duration_s and rate_hz must be > 0, got {duration_s}, {rate_hz}')
    return np.arange(int(round(duration_s * rate_hz)) + 1) / rate_hz


def _root(times: np.ndarray, amplitude: float) -> np.ndarray:
    bob = np.sin(2 * np.pi * 0.5 * times)
    return np.stack([0.5 * amplitude * bob, HIPS_HEIGHT_CM + amplitude * bob,
                     np.zeros_like(times)], axis=1)


def _rot(axis: str, angle: np.ndarray) -> Rotation:
    return Rotation.from_euler(axis, angle[:, None])


def _upper_body(times: np.ndarray, q: dict[str, np.ndarray]) -> dict[str, Rotation]:
    """Segment rotations (robot axes) relative to the BVH parent, by synthetic joint name."""
    torso = _rot('z', q['torso_yaw_joint']) * _rot('y', q['torso_pitch_joint'])
    head = _rot('z', q['head_yaw_joint']) * _rot('y', q['head_pitch_joint'])
    local = {
        'Hips': _rot('z', 0.05 * np.sin(2 * np.pi * 0.25 * times)),
        'Spine': Rotation.from_rotvec(torso.as_rotvec() / 2),
        'Spine1': Rotation.from_rotvec(torso.as_rotvec() / 2),
        'Neck': Rotation.from_rotvec(head.as_rotvec() / 2),
        'Head': Rotation.from_rotvec(head.as_rotvec() / 2),
    }
    for side, s in _SIDES.items():
        p = side.lower()
        rest = _REST[side]
        shoulder = (_rot('y', q[f'{p}_shoulder_pitch_joint'])
                    * _rot('x', s * q[f'{p}_shoulder_roll_joint'])
                    * _rot('z', s * q[f'{p}_shoulder_yaw_joint']))
        local[f'{side}Arm'] = shoulder * rest.inv()
        local[f'{side}ForeArm'] = rest * _rot('y', -q[f'{p}_elbow_joint']) * rest.inv()
        local[f'{side}Hand'] = rest * _rot('z', s * q[f'{p}_wrist_roll_joint']) * rest.inv()
    return local


# -- whole-body clips in the joint names of the skeleton presets ------------------------------
# role, parent role, offset (cm; BVH axes, x = side sign), End Site offset. Roles a naming
# leaves out (None) pass their offset on to their children.
_BODY = [
    ('hips', None, (0, 0, 0), None),
    ('spine', 'hips', (0, 8, 0), None),
    ('spine1', 'spine', (0, 9, 0), None),
    ('spine2', 'spine1', (0, 9, 0), None),
    ('neck', 'spine2', (0, 22, 0), None),
    ('head', 'neck', (0, 10, 0), (0, 18, 0)),
] + [(f'{side}_{role}', parent.format(side=side), offset, end)        # depth-first order
     for limb in ('arm', 'leg') for side in ('left', 'right') for role, parent, offset, end in {
    'arm': [('collar', 'spine2', (3, 18, 0), None),
            ('arm', '{side}_collar', (14, 0, 0), None),
            ('forearm', '{side}_arm', (29, 0, 0), None),
            ('hand', '{side}_forearm', (25, 0, 0), (8, 0, 0))],
    'leg': [('hipjoint', 'hips', (9, -5, 0), None),
            ('upleg', '{side}_hipjoint', (0, 0, 0), None),
            ('leg', '{side}_upleg', (0, -43, 0), None),
            ('foot', '{side}_leg', (0, -42, 0), None),
            ('toe', '{side}_foot', (0, -6, 12), (0, 0, 5))]}[limb]]
# naming -> role -> joint name ({Side}: Left/Right, {S}: L/R); a role not named is left out
NAMINGS = {
    'mixamo': {'hips': 'mixamorig:Hips', 'spine': 'mixamorig:Spine',
               'spine1': 'mixamorig:Spine1', 'spine2': 'mixamorig:Spine2',
               'neck': 'mixamorig:Neck', 'head': 'mixamorig:Head',
               'collar': 'mixamorig:{Side}Shoulder', 'arm': 'mixamorig:{Side}Arm',
               'forearm': 'mixamorig:{Side}ForeArm', 'hand': 'mixamorig:{Side}Hand',
               'upleg': 'mixamorig:{Side}UpLeg', 'leg': 'mixamorig:{Side}Leg',
               'foot': 'mixamorig:{Side}Foot', 'toe': 'mixamorig:{Side}ToeBase'},
    'lafan1': {'hips': 'Hips', 'spine': 'Spine', 'spine1': 'Spine1', 'spine2': 'Spine2',
               'neck': 'Neck', 'head': 'Head', 'collar': '{Side}Shoulder', 'arm': '{Side}Arm',
               'forearm': '{Side}ForeArm', 'hand': '{Side}Hand', 'upleg': '{Side}UpLeg',
               'leg': '{Side}Leg', 'foot': '{Side}Foot', 'toe': '{Side}Toe'},
    'cmu': {'hips': 'Hips', 'spine': 'lowerback', 'spine1': 'Chest', 'spine2': 'Chest2',
            'neck': 'Neck', 'head': 'Head', 'collar': '{Side}Collar',
            'arm': '{Side}Shoulder', 'forearm': '{Side}Elbow', 'hand': '{Side}Wrist',
            'hipjoint': '{S}HipJoint', 'upleg': '{Side}Hip', 'leg': '{Side}Knee',
            'foot': '{Side}Ankle', 'toe': '{Side}Toe'},
    'motionbuilder': {'hips': 'Hips', 'spine1': 'Chest', 'spine2': 'Chest2', 'neck': 'Neck',
                      'head': 'Head', 'collar': '{Side}Collar', 'arm': '{Side}Shoulder',
                      'forearm': '{Side}Elbow', 'hand': '{Side}Wrist', 'upleg': '{Side}Hip',
                      'leg': '{Side}Knee', 'foot': '{Side}Ankle'},
}
# the roles that move, by the synthetic (wave_clip) joint that gives their rotation
_MOVES = {'hips': 'Hips', 'spine': 'Spine', 'spine1': 'Spine1', 'neck': 'Neck',
          'head': 'Head', 'arm': '{Side}Arm', 'forearm': '{Side}ForeArm',
          'hand': '{Side}Hand'}


def _name(naming: dict[str, str], role: str) -> str | None:
    side, _, base = role.partition('_') if role.startswith(('left_', 'right_')) else ('', '', role)
    template = naming.get(base)
    if template is None:
        return None
    return template.replace('{Side}', side.capitalize()).replace('{S}', side[:1].upper())


def whole_body_skeleton(naming: str) -> tuple[tuple[BvhJoint, ...], dict[str, str]]:
    """The joints of a whole-body skeleton in ``naming``, and role -> joint name (in order)."""
    if naming not in NAMINGS:
        raise MocapError(f'unknown naming {naming!r}; one of {", ".join(NAMINGS)}')
    parent_of = {role: parent for role, parent, *_ in _BODY}
    joints, index, carried, roles = [], {}, {}, {}
    for role, parent, offset, end in _BODY:
        mirror = np.array([-1.0 if role.startswith('right_') else 1.0, 1.0, 1.0])
        offset = np.array(offset, dtype=float) * mirror
        while parent is not None and parent not in index:     # a role left out
            offset, parent = offset + carried[parent], parent_of[parent]
        name = _name(NAMINGS[naming], role)
        if name is None:
            carried[role] = offset
            continue
        index[role] = len(joints)
        roles[role] = name
        joints.append(BvhJoint(name, -1 if parent is None else index[parent], tuple(offset),
                               ROOT_CHANNELS if parent is None else ROTATION,
                               None if end is None else tuple(np.array(end) * mirror)))
    return tuple(joints), roles


def whole_body_clip(naming: str = 'cmu', *, duration_s: float = 4.0, rate_hz: float = 60.0,
                    tempo_hz: float = 1.2, amplitude: float = 1.0, step_hz: float = 0.5,
                    step_rad: float = 1.0, seed: int = 0) -> BvhClip:
    """A person waving with the right arm while stepping in place, as a BVH clip.

    In the joint names, proportions and T-pose rest of skeleton ``naming`` (cm, Y up,
    Z forward). ``step_rad``: how far a step bends the knee (the hip and ankle follow).
    """
    times = _times(duration_s, rate_hz)
    upper = _upper_body(times, wave_angles(times, tempo_hz=tempo_hz, amplitude=amplitude,
                                           seed=seed))
    joints, roles = whole_body_skeleton(naming)
    local = {}
    for role in roles:
        side, _, base = role.partition('_') if role.startswith(('left_', 'right_')) \
            else ('', '', role)
        source = _MOVES.get(base)
        if source is not None:
            local[role] = upper[source.replace('{Side}', side.capitalize())]
    rise = np.clip(times / 1.0, 0, 1)
    rise = rise * rise * (3 - 2 * rise)          # the steps start as the arm rises, from rest
    step = amplitude * rise * np.sin(2 * np.pi * step_hz * times)
    for side, sign in (('left', 1.0), ('right', -1.0)):
        lift = np.clip(sign * step, 0, None)                 # one foot at a time
        local[f'{side}_upleg'] = _rot('y', -0.6 * step_rad * lift)   # the thigh forward
        local[f'{side}_leg'] = _rot('y', step_rad * lift)            # the knee bends back
        local[f'{side}_foot'] = _rot('y', -0.3 * step_rad * lift)
    columns = []
    identity = Rotation.identity(len(times))
    for role, joint in zip(roles, joints):
        if joint.parent < 0:
            columns.append(_root(times, amplitude))
        rotation = local.get(role, identity)
        columns.append((_AXES.inv() * rotation * _AXES).as_euler('ZXY', degrees=True))
    return BvhClip(joints=joints, frames=np.hstack(columns), frame_time=1.0 / rate_hz,
                   source=f'<synthetic {naming} wave>')
