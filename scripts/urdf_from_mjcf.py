#!/usr/bin/env python3
"""Write the URDF twin of a sim model's MJCF: il_policy_node/robots/<MODEL>.urdf.

For models built of primitive geoms with hinge joints and bodies that are not rotated (as
the models of this package are): one link per body (inertial as MuJoCo computes it, one
visual per geom, a capsule drawn as a cylinder and two spheres), one joint per body (fixed
when the body has no joint; revolute with the MJCF axis, range, effort limit and the
model's velocity_limits otherwise), one fixed frame per site named in --frames. The tests
in test/sim check the result against the MJCF. Usage:
``python scripts/urdf_from_mjcf.py humanoid --frames head,left_hand,right_hand,...``.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from il_policy_node.robots.models import MODELS_DIR, load_model, model_info  # noqa: E402


def _number(value: float) -> str:
    text = f'{value:.6g}'
    return '0' if text in ('-0', '0') else text


def _vector(values) -> str:
    return ' '.join(_number(v) for v in values)


def _origin(pos, quat=(1, 0, 0, 0)) -> str:
    w, x, y, z = quat
    with warnings.catch_warnings():              # gimbal lock: the third angle is 0, still exact
        warnings.simplefilter('ignore', UserWarning)
        rpy = Rotation.from_quat([x, y, z, w]).as_euler('xyz')
    return f'<origin xyz="{_vector(pos)}" rpy="{_vector(np.round(rpy, 4))}"/>'


def _visuals(model: mujoco.MjModel, body: int, colour) -> list[str]:
    out = []
    for g in range(model.body_geomadr[body], model.body_geomadr[body] + model.body_geomnum[body]):
        kind, size = int(model.geom_type[g]), model.geom_size[g]
        pos, quat = model.geom_pos[g], model.geom_quat[g]
        material = f'<material name="{colour(model.geom_rgba[g])}"/>'
        shapes = []
        if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
            shapes.append((pos, quat, f'<sphere radius="{_number(size[0])}"/>'))
        elif kind == mujoco.mjtGeom.mjGEOM_BOX:
            shapes.append((pos, quat, f'<box size="{_vector(2 * size[:3])}"/>'))
        elif kind in (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_CYLINDER):
            shapes.append((pos, quat, f'<cylinder radius="{_number(size[0])}" '
                                      f'length="{_number(2 * size[1])}"/>'))
            if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
                axis = np.zeros(3)
                mujoco.mju_rotVecQuat(axis, np.array([0.0, 0.0, size[1]]), quat)
                for end in (pos + axis, pos - axis):
                    shapes.append((end, (1, 0, 0, 0), f'<sphere radius="{_number(size[0])}"/>'))
        else:
            raise SystemExit(f'geom {g} of body {body}: type {kind} has no URDF primitive here')
        out += [f'    <visual>{_origin(p, q)}<geometry>{shape}</geometry>{material}</visual>'
                for p, q, shape in shapes]
    return out


def _inertial(model: mujoco.MjModel, body: int) -> str:
    rotation = np.zeros(9)
    mujoco.mju_quat2Mat(rotation, model.body_iquat[body])
    rotation = rotation.reshape(3, 3)
    i = rotation @ np.diag(model.body_inertia[body]) @ rotation.T
    return (f'    <inertial>{_origin(model.body_ipos[body])}'
            f'<mass value="{_number(model.body_mass[body])}"/>'
            f'<inertia ixx="{_number(i[0, 0])}" ixy="{_number(i[0, 1])}" '
            f'ixz="{_number(i[0, 2])}" iyy="{_number(i[1, 1])}" iyz="{_number(i[1, 2])}" '
            f'izz="{_number(i[2, 2])}"/></inertial>')


def urdf(name: str, frames: list[str]) -> str:
    model, info = load_model(name), model_info(name)
    velocity = dict(zip(info.joint_names, info.velocity_limits))
    colours: dict[tuple, str] = {}

    def colour(rgba) -> str:
        return colours.setdefault(tuple(np.round(rgba, 3)), f'colour{len(colours)}')

    links, joints = ['  <link name="world"/>'], []
    body_name = lambda b: mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b)  # noqa: E731
    for body in range(1, model.nbody):
        if not np.allclose(model.body_quat[body], [1, 0, 0, 0]):
            raise SystemExit(f'body {body_name(body)}: rotated bodies are not supported')
        links += [f'  <link name="{body_name(body)}">', *_visuals(model, body, colour),
                  _inertial(model, body), '  </link>']
        parent = body_name(model.body_parentid[body])
        origin = _origin(model.body_pos[body])
        if model.body_jntnum[body] == 0:
            joints.append(f'  <joint name="{body_name(body)}_joint" type="fixed"><parent '
                          f'link="{parent}"/><child link="{body_name(body)}"/>{origin}</joint>')
            continue
        j = model.body_jntadr[body]
        joint = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        if model.body_jntnum[body] != 1 or model.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE:
            raise SystemExit(f'body {body_name(body)}: only one hinge joint per body')
        low, high = model.jnt_range[j]
        joints.append(
            f'  <joint name="{joint}" type="revolute"><parent link="{parent}"/>'
            f'<child link="{body_name(body)}"/>{origin}<axis xyz="{_vector(model.jnt_axis[j])}"/>'
            f'<limit lower="{_number(low)}" upper="{_number(high)}" '
            f'velocity="{_number(velocity[joint])}" '
            f'effort="{_number(model.jnt_actfrcrange[j, 1])}"/></joint>')
    for site in frames:
        s = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        if s < 0:
            raise SystemExit(f'no site {site!r} in model {name}')
        links.append(f'  <link name="{site}"/>')
        joints.append(f'  <joint name="{site}_joint" type="fixed"><parent '
                      f'link="{body_name(model.site_bodyid[s])}"/><child link="{site}"/>'
                      f'{_origin(model.site_pos[s])}</joint>')
    materials = [f'  <material name="{n}"><color rgba="{_vector(rgba)}"/></material>'
                 for rgba, n in colours.items()]
    return '\n'.join([
        '<?xml version="1.0"?>',
        f'<!-- {name}: the URDF twin of {name}.xml, written by scripts/urdf_from_mjcf.py (same',
        '     links, joints, origins, axes and limits; inertials as MuJoCo computes them from',
        '     the geoms; primitive visuals, each capsule a cylinder and two spheres). The sign',
        f'     convention of every joint is in the comment at the top of {name}.xml; the',
        '     frames without inertia are the MJCF sites of the same names. -->',
        f'<robot name="{name}">', *materials, *links, *joints, '</robot>', ''])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model')
    parser.add_argument('--frames', default='', help='sites written as frames, comma separated')
    args = parser.parse_args()
    target = MODELS_DIR / f'{args.model}.urdf'
    target.write_text(urdf(args.model, [f for f in args.frames.split(',') if f]))
    print(target)


if __name__ == '__main__':
    main()
