"""Retargeting a BVH clip onto robot joints with a YAML map.

The map (see config/retarget/humanoid_upper.yaml)::

    rate_hz: 50.0            # output rate: the clip is resampled to this uniform grid
    scale: 0.01              # BVH units -> metres (end effectors, position channels)
    axes: [y, z, x]          # robot axis of BVH x, y, z (signs allowed: -x); a rotation
    rest:                    # optional: BVH joint -> rotation vector [deg, robot axes] from the
      LeftArm: [90, 0, 0]    #   robot's zero pose of that segment to the BVH rest pose
    joints:                  # every robot joint, exactly once
      left_elbow_joint: {bvh_joint: LeftForeArm, axis: y, euler: YZX, sign: -1.0}
      torso_yaw_joint: {bvh_joint: Spine, channel: Yrotation}
    limits:                  # optional, rad: narrows the robot's limits
      left_elbow_joint: [0.0, 2.0]
    end_effectors:           # name -> joint or '<Joint>/End Site', in a frame joint's frame
      left_hand: {bvh_joint: LeftHand/End Site, relative_to: Hips}

An ``axis`` entry takes the rotation of ``bvh_joint`` relative to ``relative_to`` (default:
its BVH parent) in robot axes, R = rest(ref)^-1 C R_w(ref)^-1 R_w(joint) C^T rest(joint) (C
from ``axes``, R_w world rotations), decomposes R into intrinsic Euler angles in the order
``euler`` (default: ``axis`` first, the others cyclic: x -> XYZ, y -> YZX, z -> ZXY) and
keeps the angle about ``axis`` (right-hand rule about the robot axis). Robot joints on one
segment use one ``euler`` order, the order of the robot's joint chain, so that their angles
compose back to R. Where the middle angle reaches +-90 deg the split between the other two
is arbitrary (gimbal lock; scipy warns) and so is the robot chain's there. A ``channel``
entry takes a raw channel (rotation degrees -> rad, positions -> metres with ``scale``).
Either way robot value = sign * scale * value + offset (per-joint ``scale`` default 1,
``sign`` +-1, ``offset`` rad). Angles are unwrapped over the clip, then a cubic spline
through the clip's frame times gives positions and velocities (its derivative) on the
uniform grid. Positions outside the limits are clamped, velocities there set to 0, and
:class:`RetargetedMotion` reports per joint how many frames and by how much.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation

from il_policy_node.errors import MocapError
from il_policy_node.mocap.bvh import CHANNELS, POSITION_CHANNELS, BvhClip
from il_policy_node.mocap.kinematics import END_SITE, world_pose
from il_policy_node.mocap.skeleton import package_config

_AXES = ('x', 'y', 'z')
_TOP_KEYS = {'rate_hz', 'scale', 'axes', 'rest', 'joints', 'limits', 'end_effectors'}
_JOINT_KEYS = {'bvh_joint', 'axis', 'euler', 'relative_to', 'channel', 'sign', 'scale',
               'offset'}


class RetargetError(MocapError):
    """A bad retarget map, or a map that does not fit the clip or the robot; names the file."""


@dataclass(frozen=True)
class JointSource:
    """Where one robot joint's value comes from (one entry of ``joints``)."""

    robot_joint: str
    bvh_joint: str
    axis: str | None = None                   # robot axis x/y/z, or None with channel
    euler: str | None = None                  # intrinsic order, e.g. 'YXZ'
    relative_to: str | None = None            # BVH joint; None: the BVH parent
    channel: str | None = None
    sign: float = 1.0
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class EndEffector:
    name: str
    bvh_joint: str                            # a joint or '<Joint>/End Site'
    relative_to: str


@dataclass(frozen=True)
class RetargetMap:
    source: str
    rate_hz: float
    scale: float
    axes: Rotation                            # C: BVH vectors -> robot axes
    rest: dict[str, Rotation]
    joints: dict[str, JointSource]
    limits: dict[str, tuple[float, float]]
    end_effectors: tuple[EndEffector, ...]
    sha256: str                               # of the map's canonical JSON content


@dataclass(frozen=True)
class JointClamp:
    frames: int                               # output frames clamped
    worst_excess: float                       # rad beyond the limit, the largest


@dataclass(frozen=True, eq=False)
class RetargetedMotion:
    times: np.ndarray                         # [n] s from the clip's first frame
    rate_hz: float
    joint_names: tuple[str, ...]              # the robot's, in the caller's order
    positions: np.ndarray                     # [n, J] rad, within the limits
    velocities: np.ndarray                    # [n, J] rad/s
    end_effectors: dict[str, np.ndarray]      # name -> [n, 3] m, robot axes
    clamped: dict[str, JointClamp]            # only the joints that were clamped
    source_sha256: str                        # of the BVH file
    map_sha256: str


def package_map(model: str) -> Path:
    """The package's retarget map for sim model ``model`` (config/retarget/<model>.yaml).

    Installed (every AMENT_PREFIX_PATH prefix, then this Python's prefix), else the source
    tree. RetargetError lists where it looked.
    """
    if not model:
        raise RetargetError('a retarget map is needed when no model is given')
    try:
        return package_config('retarget', model)
    except MocapError as exc:
        raise RetargetError(f'no retarget map for model {model!r} ({exc}); give one') from None


def load_retarget_map(path: str | Path) -> RetargetMap:
    """Reads and checks a retarget map; RetargetError names the file and the bad entry."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding='utf-8'))
    except yaml.YAMLError as exc:
        raise RetargetError(f'{path}: not valid YAML: {exc}') from None
    return _parse_map(raw, source=str(path))


def _parse_map(raw: object, *, source: str) -> RetargetMap:
    def fail(message: str) -> RetargetError:
        return RetargetError(f'{source}: {message}')

    if not isinstance(raw, dict):
        raise fail('a retarget map is a mapping with rate_hz and joints')
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise fail(f'unknown keys {unknown}; known: {sorted(_TOP_KEYS)}')
    if 'rate_hz' not in raw or 'joints' not in raw:
        raise fail('rate_hz and joints are required')
    rate_hz = _positive(raw['rate_hz'], 'rate_hz', fail)
    scale = _positive(raw.get('scale', 1.0), 'scale', fail)
    axes = _axes(raw.get('axes', list(_AXES)), fail)
    rest = {}
    for joint, rotvec in _mapping(raw.get('rest', {}), 'rest', fail).items():
        rest[str(joint)] = Rotation.from_rotvec(_floats(rotvec, 3, f'rest.{joint}', fail),
                                                degrees=True)
    joints = {str(name): _joint_source(str(name), entry, fail)
              for name, entry in _mapping(raw['joints'], 'joints', fail).items()}
    if not joints:
        raise fail('joints is empty')
    limits = {}
    for name, pair in _mapping(raw.get('limits', {}), 'limits', fail).items():
        if name not in joints:
            raise fail(f'limits names {name!r}, which is not in joints')
        lower, upper = _floats(pair, 2, f'limits.{name}', fail)
        if lower > upper:
            raise fail(f'limits.{name}: lower {lower} > upper {upper}')
        limits[str(name)] = (lower, upper)
    end_effectors = []
    for name, entry in _mapping(raw.get('end_effectors', {}), 'end_effectors', fail).items():
        if not isinstance(entry, dict) or set(entry) != {'bvh_joint', 'relative_to'}:
            raise fail(f'end_effectors.{name} needs exactly bvh_joint and relative_to')
        end_effectors.append(EndEffector(str(name), str(entry['bvh_joint']),
                                         str(entry['relative_to'])))
    canonical = json.dumps(raw, sort_keys=True, separators=(',', ':'), default=str)
    return RetargetMap(source=source, rate_hz=rate_hz, scale=scale, axes=axes, rest=rest,
                       joints=joints, limits=limits, end_effectors=tuple(end_effectors),
                       sha256=hashlib.sha256(canonical.encode()).hexdigest())


def retarget(clip: BvhClip, mapping: RetargetMap, *, joint_names: Sequence[str],
             lower: Sequence[float] | None = None,
             upper: Sequence[float] | None = None,
             rate_hz: float | None = None) -> RetargetedMotion:
    """Robot joint trajectories (and end effectors) at ``mapping.rate_hz`` from ``clip``.

    ``joint_names`` are the robot's joints (output order); ``lower``/``upper`` its limits
    (rad), narrowed by the map's ``limits``. The map must name exactly these joints.
    ``rate_hz`` replaces the map's output rate (e.g. the clip's own, 1 / frame_time).
    """
    joint_names = check_fit(clip, mapping, joint_names)
    if rate_hz is None:
        rate_hz = mapping.rate_hz
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise RetargetError(f'rate_hz must be > 0, got {rate_hz}')
    if clip.num_frames < 2:
        raise RetargetError(f'{clip.source}: one frame; retargeting needs at least 2')
    raw, angular = source_values(clip, mapping, joint_names)
    raw[:, angular] = np.unwrap(raw[:, angular], axis=0)
    values = apply_sources(mapping, joint_names, raw)
    times = output_times(clip, rate_hz)
    spline = CubicSpline(clip.times, values, axis=0)
    low, high = joint_limits(mapping, joint_names, lower, upper)
    clipped, velocities, clamped = clamp_to_limits(spline(times), spline(times, 1),
                                                   joint_names, low, high)
    end_effectors = {name: CubicSpline(clip.times, points, axis=0)(times)
                     for name, points in end_effector_positions(clip, mapping).items()}
    return RetargetedMotion(times=times, rate_hz=rate_hz, joint_names=joint_names,
                            positions=clipped, velocities=velocities,
                            end_effectors=end_effectors, clamped=clamped,
                            source_sha256=clip.sha256, map_sha256=mapping.sha256)


def output_times(clip: BvhClip, rate_hz: float) -> np.ndarray:
    """The uniform output grid of ``clip`` at ``rate_hz`` (s from the first frame).

    The last grid time is within the clip, up to floating-point slack.
    """
    count = int(np.floor((clip.num_frames - 1) * clip.frame_time * rate_hz + 1e-6)) + 1
    return np.arange(count) / rate_hz


def clamp_to_limits(positions: np.ndarray, velocities: np.ndarray,
                    joint_names: Sequence[str], low: np.ndarray, high: np.ndarray, *,
                    slack: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict[str, JointClamp]]:
    """Positions within [low, high], velocities 0 where clamped, and the clamp report.

    The report names the joints clamped by more than ``slack`` (samples, worst excess).
    """
    clipped = np.clip(positions, low, high)
    velocities = np.where(clipped != positions, 0.0, velocities)
    excess = np.abs(positions - clipped)
    outside = excess > slack
    clamped = {joint_names[j]: JointClamp(int(outside[:, j].sum()), float(excess[:, j].max()))
               for j in np.flatnonzero(outside.any(axis=0))}
    return clipped, velocities, clamped


# -- per-frame pieces of retarget (il_policy_node.mocap.stream retargets frames as they come) --
def check_fit(clip: BvhClip, mapping: RetargetMap,
              joint_names: Sequence[str]) -> tuple[str, ...]:
    """``joint_names`` as a tuple; RetargetError unless the map fits the robot and the clip.

    The map must name exactly the robot's joints, and every BVH joint, End Site and channel
    the map reads must be in the clip's skeleton (the frames are not looked at).
    """
    joint_names = check_robot(mapping, joint_names)
    _check_bvh_joints(mapping, clip)
    return joint_names


def check_robot(mapping: RetargetMap, joint_names: Sequence[str]) -> tuple[str, ...]:
    """``joint_names`` as a tuple; RetargetError unless the map names exactly these joints."""
    joint_names = tuple(joint_names)
    _check_names(mapping, joint_names)
    return joint_names


def source_values(clip: BvhClip, mapping: RetargetMap,
                  joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """What each robot joint's map entry reads at the clip's frames, before sign/scale/offset.

    Returns ``raw`` [n, J] (angles in rad, not unwrapped; position channels in metres) and
    ``angular`` [J] bool, the columns to unwrap before :func:`apply_sources`.
    """
    cache: dict[tuple, np.ndarray] = {}
    raw = np.empty((clip.num_frames, len(joint_names)))
    angular = np.zeros(len(joint_names), dtype=bool)
    for j, name in enumerate(joint_names):
        raw[:, j], angular[j] = _raw_values(clip, mapping, mapping.joints[name], cache)
    return raw, angular


def apply_sources(mapping: RetargetMap, joint_names: Sequence[str],
                  raw: np.ndarray) -> np.ndarray:
    """Robot values before limits, sign * scale * raw + offset, from unwrapped ``raw``."""
    sources = [mapping.joints[name] for name in joint_names]
    factor = np.array([s.sign * s.scale for s in sources])
    offset = np.array([s.offset for s in sources])
    return raw * factor + offset


def end_effector_positions(clip: BvhClip, mapping: RetargetMap) -> dict[str, np.ndarray]:
    """Name -> [n, 3] metres (robot axes, in the frame of its ``relative_to``) at the frames."""
    return {ee.name: _end_effector(clip, mapping, ee) for ee in mapping.end_effectors}


def joint_limits(mapping: RetargetMap, joint_names: Sequence[str],
                 lower: Sequence[float] | None,
                 upper: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """[J] lower and upper limits: the robot's (None: none) narrowed by the map's ``limits``."""
    return _limits(mapping, tuple(joint_names), lower, upper)


def _segment_rotation(clip: BvhClip, mapping: RetargetMap, joint: str,
                     relative_to: str | None) -> Rotation:
    """[n] rotation of ``joint`` relative to ``relative_to`` (None: its parent), robot axes."""
    parent = clip.joints[clip.joint_index(joint)].parent
    if relative_to is None and parent >= 0:
        relative_to = clip.joints[parent].name
    rotation = world_pose(clip, joint)[0]
    if relative_to is not None:
        rotation = world_pose(clip, relative_to)[0].inv() * rotation
    identity = Rotation.identity()
    return (mapping.rest.get(relative_to, identity).inv() * mapping.axes * rotation
            * mapping.axes.inv() * mapping.rest.get(joint, identity))


def _raw_values(clip: BvhClip, mapping: RetargetMap, source: JointSource,
                cache: dict[tuple, np.ndarray]) -> tuple[np.ndarray, bool]:
    """[n] what ``source`` reads at the clip's frames, and whether it is an angle (rad)."""
    if source.channel is not None:
        raw = clip.frames[:, clip.channel_index(source.bvh_joint, source.channel)]
        if source.channel in POSITION_CHANNELS:
            return raw * mapping.scale, False
        return np.radians(raw), True
    key = (source.bvh_joint, source.relative_to, source.euler)
    if key not in cache:
        rotation = _segment_rotation(clip, mapping, source.bvh_joint, source.relative_to)
        cache[key] = rotation.as_euler(source.euler)
    return cache[key][:, source.euler.index(source.axis.upper())], True


def _end_effector(clip: BvhClip, mapping: RetargetMap, ee: EndEffector) -> np.ndarray:
    """[n, 3] metres, in the robot-axes frame of ``ee.relative_to``."""
    rotation, origin = world_pose(clip, ee.relative_to)
    frame = mapping.axes * rotation * mapping.axes.inv() * mapping.rest.get(
        ee.relative_to, Rotation.identity())
    world = mapping.axes.apply(world_pose(clip, ee.bvh_joint)[1] - origin)
    return frame.inv().apply(world) * mapping.scale


def _check_names(mapping: RetargetMap, joint_names: tuple[str, ...]) -> None:
    missing = [n for n in joint_names if n not in mapping.joints]
    extra = [n for n in mapping.joints if n not in joint_names]
    if len(set(joint_names)) != len(joint_names):
        raise RetargetError(f'{mapping.source}: the robot joint names repeat: {joint_names}')
    if missing or extra:
        raise RetargetError(
            f'{mapping.source}: the map does not fit the robot: '
            + (f'no entry for robot joints {missing}; ' if missing else '')
            + (f'entries for joints the robot does not have {extra}; ' if extra else '')
            + f'robot joints: {list(joint_names)}')


def _check_bvh_joints(mapping: RetargetMap, clip: BvhClip) -> None:
    """RetargetError naming the map entry and the missing BVH joint (or End Site, channel)."""
    names = [joint.name for joint in clip.joints]
    refs = [(f'rest.{joint}', joint) for joint in mapping.rest]
    for s in mapping.joints.values():
        refs.append((f'joints.{s.robot_joint}', s.bvh_joint))
        if s.relative_to is not None:
            refs.append((f'joints.{s.robot_joint}.relative_to', s.relative_to))
    for ee in mapping.end_effectors:
        refs += [(f'end_effectors.{ee.name}', ee.bvh_joint),
                 (f'end_effectors.{ee.name}.relative_to', ee.relative_to)]
    for where, ref in refs:
        joint = ref.removesuffix(END_SITE)
        if joint not in names:
            raise RetargetError(f'{mapping.source}: {where}: BVH joint {joint!r} is not in '
                                f'{clip.source}; its joints: {", ".join(names)}')
        if ref != joint and not where.startswith('end_effectors'):
            raise RetargetError(f'{mapping.source}: {where}: an End Site has no rotation of '
                                'its own; name a joint')
        if ref != joint and clip.joints[names.index(joint)].end_site is None:
            raise RetargetError(f'{mapping.source}: {where}: BVH joint {joint!r} has no End '
                                f'Site in {clip.source}')
    for s in mapping.joints.values():
        channels = clip.joints[names.index(s.bvh_joint)].channels
        if s.channel is not None and s.channel not in channels:
            raise RetargetError(f'{mapping.source}: joints.{s.robot_joint}: BVH joint '
                                f'{s.bvh_joint!r} has no channel {s.channel!r} in '
                                f'{clip.source}; its channels: {" ".join(channels) or "none"}')


def _limits(mapping: RetargetMap, joint_names: tuple[str, ...], lower, upper):
    n = len(joint_names)
    low = np.full(n, -np.inf) if lower is None else np.array(lower, dtype=np.float64)
    high = np.full(n, np.inf) if upper is None else np.array(upper, dtype=np.float64)
    if low.shape != (n,) or high.shape != (n,):
        raise RetargetError(f'lower and upper need one value per robot joint ({n})')
    for j, name in enumerate(joint_names):
        if name in mapping.limits:
            low[j] = max(low[j], mapping.limits[name][0])
            high[j] = min(high[j], mapping.limits[name][1])
        if not low[j] <= high[j]:
            raise RetargetError(f'{mapping.source}: joint {name!r}: no value within the limits '
                                f'[{low[j]}, {high[j]}] (robot and map together)')
    return low, high


def _joint_source(name: str, entry: object, fail) -> JointSource:
    where = f'joints.{name}'
    if not isinstance(entry, dict) or 'bvh_joint' not in entry:
        raise fail(f'{where} needs a mapping with bvh_joint')
    unknown = sorted(set(entry) - _JOINT_KEYS)
    if unknown:
        raise fail(f'{where}: unknown keys {unknown}; known: {sorted(_JOINT_KEYS)}')
    if ('axis' in entry) == ('channel' in entry):
        raise fail(f'{where} needs either axis or channel')
    sign = _float(entry.get('sign', 1.0), f'{where}.sign', fail)
    if sign not in (-1.0, 1.0):
        raise fail(f'{where}.sign must be 1 or -1, got {sign}')
    common = dict(robot_joint=name, bvh_joint=str(entry['bvh_joint']), sign=sign,
                  scale=_float(entry.get('scale', 1.0), f'{where}.scale', fail),
                  offset=_float(entry.get('offset', 0.0), f'{where}.offset', fail))
    if 'channel' in entry:
        if set(entry) & {'euler', 'relative_to'}:
            raise fail(f'{where}: euler and relative_to go with axis, not channel')
        if entry['channel'] not in CHANNELS:
            raise fail(f'{where}: unknown channel {entry["channel"]!r}; '
                       f'channels: {" ".join(CHANNELS)}')
        return JointSource(channel=entry['channel'], **common)
    axis = entry['axis']
    if axis not in _AXES:
        raise fail(f'{where}: unknown axis {axis!r}; axes: x, y, z (robot axes)')
    first = _AXES.index(axis)
    euler = entry.get('euler', ''.join(_AXES[(first + k) % 3] for k in range(3)).upper())
    if not isinstance(euler, str) or sorted(euler) != ['X', 'Y', 'Z']:
        raise fail(f'{where}: euler {euler!r} must order X, Y and Z (intrinsic), e.g. YXZ')
    relative_to = entry.get('relative_to')
    return JointSource(axis=axis, euler=euler,
                       relative_to=None if relative_to is None else str(relative_to), **common)


def _axes(names: object, fail) -> Rotation:
    units = {'x': (1, 0, 0), 'y': (0, 1, 0), 'z': (0, 0, 1)}
    if not isinstance(names, list) or len(names) != 3:
        raise fail(f'axes must list the robot axis of BVH x, y and z, got {names!r}')
    columns = []
    for name in names:
        text = str(name)
        if text.lstrip('+-') not in units:
            raise fail(f'axes: unknown axis {text!r}; use x, y, z with an optional sign')
        columns.append(np.multiply(units[text.lstrip('+-')], -1 if text.startswith('-') else 1))
    matrix = np.array(columns, dtype=np.float64).T
    if not np.isclose(np.linalg.det(matrix), 1.0):
        raise fail(f'axes {names} is not a rotation (a mirror or a repeated axis)')
    return Rotation.from_matrix(matrix)


def _mapping(value: object, where: str, fail) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f'{where} must be a mapping')
    return value


def _float(value: object, where: str, fail) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise fail(f'{where} must be a finite number, got {value!r}')
    return float(value)


def _positive(value: object, where: str, fail) -> float:
    number = _float(value, where, fail)
    if number <= 0:
        raise fail(f'{where} must be > 0, got {number}')
    return number


def _floats(values: object, count: int, where: str, fail) -> list[float]:
    if not isinstance(values, list) or len(values) != count:
        raise fail(f'{where} must be a list of {count} numbers, got {values!r}')
    return [_float(v, where, fail) for v in values]
