"""humanoid (whole body): metadata, the URDF twin, the standing zero pose, contacts, physics."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree

import mujoco
import numpy as np
import pytest

from il_policy_node.mocap.ik import ik_model
from il_policy_node.robots.models import available_models, load_model, model_info, urdf_path
from il_policy_node.runtime.urdf import urdf_joint_limits
from il_policy_node.sim.physics import RobotSimulation
from il_policy_node.sim.trajectory import TrajectoryCommand, TrajectoryPoint
from test.support.physics import run

MODEL = 'humanoid'
LEG = ('hip_pitch', 'hip_roll', 'hip_yaw', 'knee', 'ankle_pitch', 'ankle_roll')
ARM = ('shoulder_pitch', 'shoulder_roll', 'shoulder_yaw', 'elbow', 'wrist_roll', 'wrist_pitch',
       'wrist_yaw')
JOINTS = tuple(f'{s}_{j}_joint' for s in ('left', 'right') for j in LEG) + (
    'waist_yaw_joint', 'waist_roll_joint', 'waist_pitch_joint', 'head_yaw_joint',
    'head_pitch_joint') + tuple(f'{s}_{j}_joint' for s in ('left', 'right') for j in ARM)
SITES = ('pelvis', 'torso', 'neck', 'head') + tuple(
    f'{s}_{p}' for s in ('left', 'right') for p in
    ('hip', 'knee', 'ankle', 'foot', 'toe', 'shoulder', 'elbow', 'wrist', 'hand'))


def test_metadata():
    assert MODEL in available_models() and 'humanoid_upper' in available_models()
    info = model_info(MODEL)
    assert info.joint_names == JOINTS and len(JOINTS) == 31
    assert all(lo < 0 < hi or lo == 0 for lo, hi in zip(info.lower_limits, info.upper_limits))
    assert all(lo <= q <= hi for lo, q, hi in zip(info.lower_limits, info.home,
                                                   info.upper_limits))
    assert all(2.0 <= v <= 10.0 for v in info.velocity_limits)
    model = load_model(MODEL)
    np.testing.assert_allclose(model.actuator_ctrlrange,
                               np.column_stack([info.lower_limits, info.upper_limits]),
                               rtol=0, atol=1e-12)
    for site in SITES:
        assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site) >= 0, site
    assert 50 < model.body_mass.sum() < 65


def test_left_and_right_are_mirror_images():
    model = load_model(MODEL)
    for joint in JOINTS:
        if not joint.startswith('left_'):
            continue
        left, right = model.joint(joint), model.joint(joint.replace('left_', 'right_'))
        mirrored = left.axis * [-1, 1, -1]                   # through the x-z plane
        np.testing.assert_allclose(right.axis, mirrored, err_msg=joint)
        np.testing.assert_allclose(right.range, left.range, err_msg=joint)


def test_urdf_matches_the_mjcf():
    info, model = model_info(MODEL), load_model(MODEL)
    limits = urdf_joint_limits(urdf_path(MODEL).read_text())
    assert tuple(limits) == JOINTS
    for i, name in enumerate(JOINTS):
        assert (limits[name].lower, limits[name].upper, limits[name].velocity) == (
            info.lower_limits[i], info.upper_limits[i], info.velocity_limits[i]), name
    root = ElementTree.fromstring(urdf_path(MODEL).read_text())
    links = {link.get('name') for link in root.iter('link')}
    assert {'head', 'left_hand', 'right_foot', 'left_toe'} <= links
    urdf = mujoco.MjModel.from_xml_string(urdf_path(MODEL).read_text())
    urdf_data, mjcf_data = mujoco.MjData(urdf), mujoco.MjData(model)
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.uniform(model.jnt_range[:, 0], model.jnt_range[:, 1])
        urdf_data.qpos[:] = mjcf_data.qpos[:] = q
        mujoco.mj_kinematics(urdf, urdf_data)
        mujoco.mj_kinematics(model, mjcf_data)
        for body in range(2, model.nbody):       # MuJoCo fuses the fixed pelvis into world
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body)
            np.testing.assert_allclose(urdf_data.body(name).xpos, mjcf_data.body(name).xpos,
                                       atol=1e-9, err_msg=name)
            np.testing.assert_allclose(urdf_data.body(name).xmat, mjcf_data.body(name).xmat,
                                       atol=1e-9, err_msg=name)
            assert math.isclose(urdf.body(name).mass[0], model.body(name).mass[0],
                                rel_tol=1e-5), name


def test_zero_pose_stands_upright_on_the_floor_without_touching_itself():
    model = ik_model(MODEL, floating_root=False)            # contacts on, as the IK checks
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    site = {name: data.site(name).xpos for name in SITES}
    assert site['pelvis'][2] == pytest.approx(0.95)
    assert site['left_foot'][2] == pytest.approx(0.0, abs=1e-9)      # soles on the floor
    assert site['head'][2] > 1.6 and site['head'][:2] == pytest.approx([0, 0])
    for part in ('hip', 'knee', 'ankle', 'shoulder', 'elbow', 'wrist'):
        left, right = site[f'left_{part}'], site[f'right_{part}']
        assert left[1] > 0 and right == pytest.approx(left * [1, -1, 1]), part
        assert left[2] < site['pelvis'][2] or part in ('shoulder', 'elbow', 'wrist')
    assert data.ncon == 0


def test_floating_model_has_a_free_pelvis():
    model = ik_model(MODEL, floating_root=True)
    assert model.nq == 31 + 7 and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE




def test_holds_home_and_moves_across_the_range_under_gravity():
    sim = RobotSimulation(MODEL)
    home = np.array(sim.info.home)
    sim.reset(home)
    assert np.abs(run(sim, 1.0) - home).max() < 1e-3
    lower, upper = np.array(sim.info.lower_limits), np.array(sim.info.upper_limits)
    target = lower + 0.8 * (upper - lower)
    sim.command(TrajectoryCommand(sim.joint_names, [TrajectoryPoint(list(target),
                                                                    time_from_start=2.0)]))
    positions = run(sim, 3.0)
    np.testing.assert_allclose(positions[-1], target, atol=2e-3)
    assert sim.limit_violations == 0
    assert ((positions >= lower - 1e-3) & (positions <= upper + 1e-3)).all()
