"""Human skeletons by their key bodies: presets, ``--skeleton auto``, units and body axes.

A skeleton file (config/skeletons/<name>.yaml for the presets; a user's own in the same
format) names, for each key body, the BVH joints that can play it, first choice first::

    name: mixamo
    bodies:
      pelvis: [Hips]                 # one entry per key body (see KEY_BODIES)
      chest: [Spine2]
      shoulder: ['{Side}Arm']        # sided bodies: {Side} Left/Right, {side} left/right,
      toe: ['{Side}ToeBase', '{Side}Foot/End Site']   # {S} L/R; '/End Site' as in kinematics
    marks: ['{S}HipJoint']           # optional: joints that must all be present

Names match without a ``namespace:`` prefix (Mixamo's ``mixamorig:``) and without regard to
case. ``auto`` takes the preset whose marks are all there and that resolves every required
body, with the most bodies resolved (then the most first choices, then preset order). Key
bodies are joint origins: ``shoulder`` is the upper arm's joint, ``hand`` the wrist, ``foot``
the ankle, ``toe`` the ball of the foot. ROS-free.
"""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from il_policy_node.errors import MocapError
from il_policy_node.mocap.bvh import POSITION_CHANNELS, BvhClip
from il_policy_node.mocap.kinematics import END_SITE

PACKAGE = 'il_policy_node'
SOURCE_CONFIG = Path(__file__).resolve().parents[2] / 'config'      # the source tree
CENTRAL = ('pelvis', 'chest', 'neck', 'head')
SIDED = ('shoulder', 'elbow', 'hand', 'hip', 'knee', 'foot', 'toe')
SIDES = ('left', 'right')
KEY_BODIES = CENTRAL + tuple(f'{side}_{part}' for side in SIDES for part in SIDED)
OPTIONAL = {'neck', 'left_toe', 'right_toe'}
PRESETS = ('cmu', 'motionbuilder', 'mixamo', 'lafan1', 'synthetic')
AUTO = 'auto'
# metres per unit; the unit is the one that makes the skeleton's head-to-foot height the
# closest (in ratio) to a person's
UNITS = {'m': 1.0, 'cm': 0.01, 'mm': 0.001, 'in': 0.0254}
TYPICAL_HEIGHT_M = 1.5                 # head joint above the ankles of a standing adult


class SkeletonError(MocapError):
    """A skeleton file that is malformed, or a clip that no skeleton fits."""


@dataclass(frozen=True)
class Skeleton:
    """Candidate BVH joint names per key body (sided templates expanded)."""

    name: str
    source: str
    bodies: dict[str, tuple[str, ...]]
    marks: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkeletonMatch:
    """Which BVH joint (or ``'<Joint>/End Site'``) plays each key body of ``clip``."""

    skeleton: str
    joints: dict[str, str]                     # key body -> BVH name; optional ones may lack
    first_choices: int


def package_config(kind: str, name: str) -> Path:
    """config/<kind>/<name>.yaml of the package.

    Installed (AMENT_PREFIX_PATH prefixes, then this Python's prefix), else the source tree;
    MocapError lists where it looked.
    """
    relative = Path('share') / PACKAGE / 'config' / kind / f'{name}.yaml'
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    candidates = [Path(p) / relative for p in [*prefixes, sys.prefix]]
    candidates.append(SOURCE_CONFIG / kind / relative.name)
    for path in candidates:
        if path.is_file():
            return path
    raise MocapError(f'no {kind} file {name!r} (looked for '
                     f'{", ".join(map(str, candidates))})')


def _expand(template: str, side: str) -> str:
    return (template.replace('{Side}', side.capitalize()).replace('{side}', side)
            .replace('{S}', side[0].upper()))


def load_skeleton(path: str | Path) -> Skeleton:
    """Reads a skeleton file; SkeletonError names the file and the bad entry."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SkeletonError(f'{path}: cannot read skeleton file: {exc}') from None
    if not isinstance(raw, dict) or not isinstance(raw.get('bodies'), dict):
        raise SkeletonError(f'{path}: a skeleton file is a mapping with `bodies:` '
                            '(key body -> list of BVH joint names)')
    unknown = set(raw) - {'name', 'bodies', 'marks'}
    if unknown:
        raise SkeletonError(f'{path}: unknown keys {", ".join(sorted(unknown))}')
    bodies: dict[str, tuple[str, ...]] = {}
    for key, names in raw['bodies'].items():
        if isinstance(names, str):
            names = [names]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise SkeletonError(f'{path}: bodies.{key}: a list of BVH joint names')
        if key in CENTRAL:
            bodies[key] = tuple(names)
        elif key in SIDED:
            for side in SIDES:
                bodies[f'{side}_{key}'] = tuple(_expand(n, side) for n in names)
        elif key in KEY_BODIES:
            bodies[key] = tuple(names)
        else:
            raise SkeletonError(f'{path}: bodies.{key}: not a key body; key bodies: '
                                f'{", ".join(CENTRAL + SIDED)} (sided ones for both sides, '
                                'or left_/right_ each)')
    missing = [k for k in KEY_BODIES if k not in bodies and k not in OPTIONAL]
    if missing:
        raise SkeletonError(f'{path}: bodies lacks {", ".join(missing)}')
    marks = raw.get('marks') or []
    if not (isinstance(marks, list) and all(isinstance(m, str) for m in marks)):
        raise SkeletonError(f'{path}: marks: a list of BVH joint names')
    marks = tuple(_expand(m, side) for m in marks for side in SIDES)
    return Skeleton(name=str(raw.get('name') or path.stem), source=str(path), bodies=bodies,
                    marks=tuple(dict.fromkeys(marks)))


@functools.lru_cache(maxsize=None)
def preset(name: str) -> Skeleton:
    """The package's preset ``name`` (read once per process)."""
    return load_skeleton(package_config('skeletons', name))


def _bare(name: str) -> str:
    return name.rsplit(':', 1)[-1].casefold()


def _lookup(clip: BvhClip) -> dict[str, str]:
    """Bare lower-case names (joints and End Sites) -> names in the clip."""
    names = {}
    for joint in clip.joints:
        names.setdefault(_bare(joint.name), joint.name)
        if joint.end_site is not None:
            names.setdefault(_bare(joint.name) + END_SITE.casefold(), joint.name + END_SITE)
    return names


def match(skeleton: Skeleton, clip: BvhClip) -> tuple[SkeletonMatch | None, list[str]]:
    """The match of ``skeleton`` on ``clip``, or None and what is missing."""
    names = _lookup(clip)
    missing = [m for m in skeleton.marks if _bare(m) not in names]
    joints, first = {}, 0
    for key, candidates in skeleton.bodies.items():
        for k, candidate in enumerate(candidates):
            found = names.get(_bare(candidate.removesuffix(END_SITE)) +
                              (END_SITE.casefold() if candidate.endswith(END_SITE) else ''))
            if found is not None:
                joints[key], first = found, first + (k == 0)
                break
        else:
            if key not in OPTIONAL:
                missing.append(f'{key} ({" or ".join(candidates)})')
    if missing:
        return None, missing
    return SkeletonMatch(skeleton.name, joints, first), []


def choose(clip: BvhClip, spec: str = AUTO) -> SkeletonMatch:
    """The key bodies of ``clip`` by preset name, skeleton file or ``auto``."""
    if spec != AUTO:
        skeleton = preset(spec) if spec in PRESETS else load_skeleton(spec)
        found, missing = match(skeleton, clip)
        if found is None:
            raise SkeletonError(f'{clip.source}: skeleton {skeleton.name} does not fit: '
                                f'missing {"; ".join(missing)}')
        return found
    best, closest = None, None
    for name in PRESETS:
        skeleton = preset(name)
        found, missing = match(skeleton, clip)
        if found is None:
            if closest is None or len(missing) < len(closest[1]):
                closest = name, missing
            continue
        score = (len(skeleton.marks), len(found.joints), found.first_choices)
        if best is None or score > best[0]:
            best = score, found
    if best is None:
        joints = ', '.join(j.name for j in clip.joints[:40])
        raise SkeletonError(
            f'{clip.source}: no skeleton preset fits ({", ".join(PRESETS)}); the closest, '
            f'{closest[0]}, misses {"; ".join(closest[1])}; the file has: {joints}'
            f'{" ..." if len(clip.joints) > 40 else ""}; write a skeleton file '
            '(config/skeletons/*.yaml shows the format) and pass it as --skeleton')
    return best[1]


def rest_frame(clip: BvhClip) -> np.ndarray:
    """The clip's zero pose as one frame: rotations 0, position channels at the OFFSETs."""
    frame = np.zeros(clip.frames.shape[1])
    column = 0
    for joint in clip.joints:
        for channel in joint.channels:
            if channel in POSITION_CHANNELS and joint.parent >= 0:
                frame[column] = joint.offset[POSITION_CHANNELS.index(channel)]
            column += 1
    return frame


def body_axes(points: dict[str, np.ndarray]) -> np.ndarray:
    """Rows forward, left, up of the body in BVH axes, from key-body positions at rest.

    up: pelvis to head; left: right hip to left hip plus right to left shoulder, made
    orthogonal to up; forward = left x up. The matrix turns BVH vectors into robot axes.
    """
    up = points['head'] - points['pelvis']
    left = (points['left_hip'] - points['right_hip']
            + points['left_shoulder'] - points['right_shoulder'])
    up = up / np.linalg.norm(up)
    left = left - up * (left @ up)
    left = left / np.linalg.norm(left)
    return np.stack([np.cross(left, up), left, up])


def units(points: dict[str, np.ndarray], axes: np.ndarray, given: str | None = None
          ) -> tuple[str, float, float]:
    """(unit, metres per unit, height in metres) from the rest pose, unless ``given``."""
    height = float(axes[2] @ (points['head'] - (points['left_foot'] + points['right_foot']) / 2))
    if height <= 0:
        raise SkeletonError('the rest pose has the head below the feet; pick a rest frame '
                            'where the actor stands (--rest-frame)')
    if given is not None:
        if given not in UNITS:
            raise SkeletonError(f'unknown unit {given!r}; one of {", ".join(UNITS)}')
        unit = given
    else:
        unit = min(UNITS, key=lambda u: abs(np.log(height * UNITS[u] / TYPICAL_HEIGHT_M)))
    return unit, UNITS[unit], height * UNITS[unit]
