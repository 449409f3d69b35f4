"""humanoid_upper: metadata, the URDF twin, the documented sign conventions, and physics."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree

import mujoco
import numpy as np
import pytest

from il_policy_node.robots.models import available_models, load_model, model_info, urdf_path
from il_policy_node.runtime.urdf import urdf_joint_limits
from il_policy_node.sim.physics import RobotSimulation
from il_policy_node.sim.trajectory import TrajectoryCommand, TrajectoryPoint
from test.support.physics import run

MODEL = 'humanoid_upper'
JOINTS = ('torso_yaw_joint', 'torso_pitch_joint', 'head_yaw_joint', 'head_pitch_joint',
          'left_shoulder_pitch_joint', 'left_shoulder_roll_joint', 'left_shoulder_yaw_joint',
          'left_elbow_joint', 'left_wrist_roll_joint',
          'right_shoulder_pitch_joint', 'right_shoulder_roll_joint', 'right_shoulder_yaw_joint',
          'right_elbow_joint', 'right_wrist_roll_joint')
ARM_LOWER = (-3.0, -0.5, -1.5, 0.0, -1.5)
ARM_UPPER = (1.0, 2.8, 1.5, 2.5, 1.5)
ARM_VELOCITY = (4.0, 4.0, 4.0, 4.0, 5.0)
UPPER_ARM_M, FOREARM_M, WRIST_TO_PALM_M = 0.3, 0.25, 0.08
ARM_M = UPPER_ARM_M + FOREARM_M + WRIST_TO_PALM_M
# A pose away from home with the arms raised forward and out (gravity loads every joint).
RAISED = np.array([0.3, 0.3, 0.5, 0.3, -1.2, 0.6, 0.3, 1.2, 0.5, -1.2, 0.6, 0.3, 1.2, 0.5])


# -- metadata and the URDF twin --------------------------------------------------------------

def test_metadata():
    assert MODEL in available_models() and 'arm6' in available_models()
    info = model_info(MODEL)
    assert info.joint_names == JOINTS
    assert info.lower_limits == (-1.0, -0.3, -1.2, -0.7) + ARM_LOWER * 2
    assert info.upper_limits == (1.0, 0.8, 1.2, 0.9) + ARM_UPPER * 2
    assert info.velocity_limits == (2.0, 2.0, 3.0, 3.0) + ARM_VELOCITY * 2
    home = dict(zip(info.joint_names, info.home))
    assert home == {**dict.fromkeys(JOINTS, 0.0), 'left_elbow_joint': 0.3,
                    'right_elbow_joint': 0.3}
    assert all(lo < q < hi for lo, q, hi in zip(info.lower_limits, info.home, info.upper_limits))
    model = load_model(MODEL)          # ctrlrange = joint range (inheritrange: to rounding)
    np.testing.assert_allclose(model.actuator_ctrlrange,
                               np.column_stack([info.lower_limits, info.upper_limits]),
                               rtol=0, atol=1e-12)


def test_urdf_limits_equal_the_mjcf():
    info = model_info(MODEL)
    limits = urdf_joint_limits(urdf_path(MODEL).read_text())
    assert set(limits) == set(JOINTS)
    for i, name in enumerate(JOINTS):
        assert (limits[name].lower, limits[name].upper, limits[name].velocity) == (
            info.lower_limits[i], info.upper_limits[i], info.velocity_limits[i]), name


def urdf_tree() -> tuple[set[str], dict[str, ElementTree.Element]]:
    root = ElementTree.fromstring(urdf_path(MODEL).read_text())
    return {link.get('name') for link in root.iter('link')}, \
        {joint.get('name'): joint for joint in root.iter('joint')}


def floats(element: ElementTree.Element | None, attribute: str) -> np.ndarray:
    return np.array([float(v) for v in element.get(attribute).split()])


def test_urdf_has_the_mjcf_links_joints_origins_and_axes():
    model = load_model(MODEL)
    links, joints = urdf_tree()
    children = [joint.find('child').get('link') for joint in joints.values()]
    assert len(children) == len(set(children)) and links - set(children) == {'world'}
    revolute = [name for name, joint in joints.items() if joint.get('type') == 'revolute']
    assert tuple(revolute) == JOINTS
    bodies = {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(model.nbody)}
    assert bodies | {'head', 'gaze', 'left_hand', 'right_hand'} == links
    by_child = {joint.find('child').get('link'): joint for joint in joints.values()}
    for body in range(1, model.nbody):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body)
        joint = by_child[name]
        parent = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, model.body_parentid[body])
        assert joint.find('parent').get('link') == parent, name
        np.testing.assert_allclose(floats(joint.find('origin'), 'xyz'), model.body_pos[body],
                                   atol=1e-9, err_msg=name)
        np.testing.assert_allclose(model.body_quat[body], [1, 0, 0, 0], err_msg=name)
        if model.body_jntnum[body] == 0:
            assert joint.get('type') == 'fixed', name
            continue
        j = model.body_jntadr[body]
        assert joint.get('name') == mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        np.testing.assert_allclose(model.jnt_pos[j], 0.0)
        np.testing.assert_allclose(floats(joint.find('axis'), 'xyz'), model.jnt_axis[j],
                                   err_msg=name)
        assert float(joint.find('limit').get('effort')) == model.jnt_actfrcrange[j, 1], name
    for site in ('head', 'gaze', 'left_hand', 'right_hand'):
        s = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        joint = joints[f'{site}_joint']
        assert joint.find('parent').get('link') == mujoco.mj_id2name(
            model, mujoco.mjtObj.mjOBJ_BODY, model.site_bodyid[s])
        np.testing.assert_allclose(floats(joint.find('origin'), 'xyz'), model.site_pos[s])


def inertia_tensor(model: mujoco.MjModel, body: str) -> np.ndarray:
    """The inertia tensor about the centre of mass, in the body frame."""
    rotation = np.zeros(9)
    mujoco.mju_quat2Mat(rotation, model.body(body).iquat)
    rotation = rotation.reshape(3, 3)
    return rotation @ np.diag(model.body(body).inertia) @ rotation.T


def test_urdf_inertials_equal_the_mjcf():
    model = load_model(MODEL)
    root = ElementTree.fromstring(urdf_path(MODEL).read_text())
    for link in root.iter('link'):
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, link.get('name'))
        inertial = link.find('inertial')
        if body <= 0:
            assert inertial is None, link.get('name')            # world and site frames
            continue
        assert math.isclose(float(inertial.find('mass').get('value')), model.body_mass[body])
        np.testing.assert_allclose(floats(inertial.find('origin'), 'xyz'), model.body_ipos[body],
                                   atol=1e-6)
        i = {key: float(value) for key, value in inertial.find('inertia').attrib.items()}
        tensor = np.array([[i['ixx'], i['ixy'], i['ixz']], [i['ixy'], i['iyy'], i['iyz']],
                           [i['ixz'], i['iyz'], i['izz']]])
        np.testing.assert_allclose(tensor, inertia_tensor(model, link.get('name')), rtol=1e-5,
                                   atol=1e-9, err_msg=link.get('name'))
    masses = {name: model.body_mass[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)]
              for name in ('torso_link', 'head_link', 'left_upper_arm_link',
                           'left_forearm_link', 'left_hand_link')}
    assert masses == {'torso_link': 15.0, 'head_link': 4.0, 'left_upper_arm_link': 2.0,
                      'left_forearm_link': 1.2, 'left_hand_link': 0.4}


def test_urdf_loaded_by_mujoco_has_the_same_kinematics_and_masses():
    """MuJoCo's URDF importer (a second reader of the file, rpy and axes included)."""
    mjcf = load_model(MODEL)
    urdf = mujoco.MjModel.from_xml_string(urdf_path(MODEL).read_text())
    assert tuple(mujoco.mj_id2name(urdf, mujoco.mjtObj.mjOBJ_JOINT, j)
                 for j in range(urdf.njnt)) == JOINTS
    np.testing.assert_array_equal(urdf.jnt_range, mjcf.jnt_range)
    links = [mujoco.mj_id2name(urdf, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(1, urdf.nbody)]
    assert len(links) == len(JOINTS)                      # the moving links (static ones fuse)
    for link in links:
        np.testing.assert_allclose(urdf.body(link).mass, mjcf.body(link).mass, rtol=1e-6)
        np.testing.assert_allclose(urdf.body(link).ipos, mjcf.body(link).ipos, atol=1e-6)
        np.testing.assert_allclose(inertia_tensor(urdf, link), inertia_tensor(mjcf, link),
                                   rtol=1e-5, atol=1e-9, err_msg=link)
    info = model_info(MODEL)
    urdf_data, mjcf_data = mujoco.MjData(urdf), mujoco.MjData(mjcf)
    rng = np.random.default_rng(2)
    for _ in range(20):
        q = rng.uniform(info.lower_limits, info.upper_limits)
        urdf_data.qpos[:] = mjcf_data.qpos[:] = q
        mujoco.mj_kinematics(urdf, urdf_data)
        mujoco.mj_kinematics(mjcf, mjcf_data)
        for link in links:
            np.testing.assert_allclose(urdf_data.body(link).xpos, mjcf_data.body(link).xpos,
                                       atol=1e-9, err_msg=link)
            np.testing.assert_allclose(urdf_data.body(link).xmat, mjcf_data.body(link).xmat,
                                       atol=1e-9, err_msg=link)


# -- the documented sign conventions (humanoid_upper.xml) ------------------------------------

class Kinematics:
    """Forward kinematics of the model: site positions and body axes for named joint angles."""

    def __init__(self) -> None:
        self.model = load_model(MODEL)
        self.data = mujoco.MjData(self.model)
        self.qpos = {name: self.model.jnt_qposadr[mujoco.mj_name2id(
            self.model, mujoco.mjtObj.mjOBJ_JOINT, name)] for name in JOINTS}

    def pose(self, **angles: float) -> Kinematics:
        """Every joint at zero but ``angles`` (keyword = joint name without ``_joint``)."""
        self.data.qpos[:] = 0.0
        for name, angle in angles.items():
            self.data.qpos[self.qpos[f'{name}_joint']] = angle
        mujoco.mj_kinematics(self.model, self.data)
        return self

    def site(self, name: str) -> np.ndarray:
        return self.data.site(name).xpos.copy()

    def axis(self, body: str, column: int | slice) -> np.ndarray:
        """Column(s) (0 x, 1 y, 2 z) of a body's orientation: its axes in the world."""
        return self.data.body(body).xmat.reshape(3, 3)[:, column].copy()


@pytest.fixture
def kin() -> Kinematics:
    return Kinematics()


def test_zero_pose_stands_upright_with_the_arms_hanging(kin):
    kin.pose()
    for side, y in (('left', 0.2), ('right', -0.2)):
        shoulder = kin.site(f'{side}_shoulder')
        np.testing.assert_allclose(shoulder, [0.0, y, 1.55], atol=1e-9)
        np.testing.assert_allclose(kin.site(f'{side}_elbow') - shoulder, [0, 0, -UPPER_ARM_M])
        np.testing.assert_allclose(kin.site(f'{side}_hand') - shoulder, [0, 0, -ARM_M])
    np.testing.assert_allclose(kin.axis('left_hand_link', 1), [0, 1, 0], atol=1e-12)
    gaze = kin.site('gaze') - kin.site('head')
    np.testing.assert_allclose(gaze, [0.3, 0, 0], atol=1e-12)     # facing +x


def direction(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_torso_yaw_turns_the_chest_left(kin):
    gaze = kin.pose(torso_yaw=math.pi / 4).site('gaze') - kin.site('head')
    np.testing.assert_allclose(direction(gaze), [math.sqrt(0.5), math.sqrt(0.5), 0], atol=1e-9)
    assert kin.site('left_shoulder')[0] < -0.1 and kin.site('right_shoulder')[0] > 0.1


def test_torso_pitch_leans_forward(kin):
    head0 = kin.pose().site('head')
    head = kin.pose(torso_pitch=0.5).site('head')
    assert head[0] > head0[0] + 0.2 and head[2] < head0[2] - 0.05


def test_head_yaw_turns_the_face_left_about_z(kin):
    head0 = kin.pose().site('head')
    gaze = kin.pose(head_yaw=math.pi / 2).site('gaze') - kin.site('head')
    np.testing.assert_allclose(gaze, [0, 0.3, 0], atol=1e-9)
    np.testing.assert_allclose(kin.site('head'), head0, atol=1e-12)   # about the neck axis


def test_head_pitch_nods_down(kin):
    gaze = kin.pose(head_pitch=0.5).site('gaze') - kin.site('head')
    np.testing.assert_allclose(direction(gaze), [math.cos(0.5), 0, -math.sin(0.5)], atol=1e-9)


@pytest.mark.parametrize('side, outward', [('left', 1.0), ('right', -1.0)])
def test_arm_conventions(kin, side, outward):
    def hand(**angles: float) -> np.ndarray:
        kin.pose(**{f'{side}_{name}': angle for name, angle in angles.items()})
        return kin.site(f'{side}_hand') - kin.site(f'{side}_shoulder')

    # Shoulder pitch: negative raises the arm forward, positive swings it backward.
    np.testing.assert_allclose(hand(shoulder_pitch=-math.pi / 2), [ARM_M, 0, 0], atol=1e-9)
    np.testing.assert_allclose(hand(shoulder_pitch=-math.pi), [0, 0, ARM_M], atol=1e-9)
    assert hand(shoulder_pitch=0.5)[0] < -0.25
    # Shoulder roll: positive abducts, out to the side of the arm (+y left, -y right).
    np.testing.assert_allclose(hand(shoulder_roll=math.pi / 2), [0, outward * ARM_M, 0],
                               atol=1e-9)
    assert hand(shoulder_roll=0.3)[1] * outward > 0.1
    # Elbow: positive flexes the forearm forward and up; pi/2 points it forward.
    kin.pose(**{f'{side}_elbow': math.pi / 2})
    forearm = kin.site(f'{side}_wrist') - kin.site(f'{side}_elbow')
    np.testing.assert_allclose(forearm, [FOREARM_M, 0, 0], atol=1e-9)
    assert hand(elbow=0.3)[0] > 0.05
    # Shoulder yaw: positive rotates externally; with the elbow at pi/2 the forearm swings out.
    kin.pose(**{f'{side}_elbow': math.pi / 2, f'{side}_shoulder_yaw': math.pi / 2})
    forearm = kin.site(f'{side}_wrist') - kin.site(f'{side}_elbow')
    np.testing.assert_allclose(forearm, [0, outward * FOREARM_M, 0], atol=1e-9)
    # Wrist roll: positive supinates; the palm turns from facing the body to facing forward.
    palm = -outward            # the palm normal is -y of the left hand, +y of the right hand
    kin.pose()
    np.testing.assert_allclose(palm * kin.axis(f'{side}_hand_link', 1), [0, -outward, 0],
                               atol=1e-12)
    kin.pose(**{f'{side}_wrist_roll': math.pi / 2})
    np.testing.assert_allclose(palm * kin.axis(f'{side}_hand_link', 1), [1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(hand(wrist_roll=1.0), [0, 0, -ARM_M], atol=1e-9)


def rotation(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return {'x': np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            'y': np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            'z': np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def test_chain_rotations_are_the_documented_products(kin):
    """The rotation matrices the MJCF comment gives (what a retargeting map solves for)."""
    rng = np.random.default_rng(1)
    info = model_info(MODEL)
    for _ in range(10):
        q = dict(zip(JOINTS, rng.uniform(info.lower_limits, info.upper_limits)))
        kin.pose(**{name.removesuffix('_joint'): angle for name, angle in q.items()})
        torso = rotation('z', q['torso_yaw_joint']) @ rotation('y', q['torso_pitch_joint'])
        np.testing.assert_allclose(kin.axis('torso_link', slice(None)), torso, atol=1e-12)
        head = torso @ rotation('z', q['head_yaw_joint']) @ rotation('y', q['head_pitch_joint'])
        np.testing.assert_allclose(kin.axis('head_link', slice(None)), head, atol=1e-12)
        for side, sign in (('left', 1.0), ('right', -1.0)):
            arm = {name.removeprefix(f'{side}_').removesuffix('_joint'): angle
                   for name, angle in q.items() if name.startswith(side)}
            hand = (torso @ rotation('y', arm['shoulder_pitch'])
                    @ rotation('x', sign * arm['shoulder_roll'])
                    @ rotation('z', sign * arm['shoulder_yaw']) @ rotation('y', -arm['elbow'])
                    @ rotation('z', sign * arm['wrist_roll']))
            np.testing.assert_allclose(kin.axis(f'{side}_hand_link', slice(None)), hand,
                                       atol=1e-12)


def mirrored(q: np.ndarray) -> np.ndarray:
    """The mirror-image pose through the x-z plane: yaws change sign, left and right swap."""
    names = list(JOINTS)
    out = q.copy()
    for i, name in enumerate(names):
        if name in ('torso_yaw_joint', 'head_yaw_joint'):
            out[i] = -q[i]
        elif name.startswith('left_'):
            out[names.index(name.replace('left_', 'right_'))] = q[i]
            out[i] = q[names.index(name.replace('left_', 'right_'))]
    return out


def test_left_and_right_are_mirror_images_for_the_same_angles(kin):
    """One positive angle means the same motion on both sides: the conventions are mirrored."""
    info = model_info(MODEL)
    rng = np.random.default_rng(0)
    flip = np.array([1.0, -1.0, 1.0])
    for _ in range(20):
        q = rng.uniform(info.lower_limits, info.upper_limits)
        kin.data.qpos[:] = q
        mujoco.mj_kinematics(kin.model, kin.data)
        sites = {s: kin.site(s) for s in ('left_hand', 'right_hand', 'left_elbow', 'gaze')}
        left_palm = -kin.axis('left_hand_link', 1)               # the palm normals
        kin.data.qpos[:] = mirrored(q)
        mujoco.mj_kinematics(kin.model, kin.data)
        np.testing.assert_allclose(kin.site('right_hand'), flip * sites['left_hand'], atol=1e-9)
        np.testing.assert_allclose(kin.site('left_hand'), flip * sites['right_hand'], atol=1e-9)
        np.testing.assert_allclose(kin.site('right_elbow'), flip * sites['left_elbow'], atol=1e-9)
        np.testing.assert_allclose(kin.site('gaze'), flip * sites['gaze'], atol=1e-9)
        np.testing.assert_allclose(kin.axis('right_hand_link', 1), flip * left_palm, atol=1e-9)


# -- physics ---------------------------------------------------------------------------------



def sine_command(sim: RobotSimulation, center: np.ndarray, amplitude: np.ndarray, *,
                 frequency_hz: float, duration_s: float, dt: float = 0.02) -> TrajectoryCommand:
    """Points of center + amplitude * sin(w t) with velocities, ending at rest."""
    w = 2 * math.pi * frequency_hz
    times = np.arange(1, int(round(duration_s / dt)) + 1) * dt
    points = [TrajectoryPoint(positions=list(center + amplitude * math.sin(w * t)),
                              velocities=list(amplitude * w * math.cos(w * t)),
                              time_from_start=float(t)) for t in times]
    points[-1] = TrajectoryPoint(points[-1].positions, [0.0] * len(center),
                                 time_from_start=points[-1].time_from_start)
    return TrajectoryCommand(sim.joint_names, points)


@pytest.mark.parametrize('pose', ['home', 'raised'])
def test_holds_a_pose_under_gravity_with_gravity_torques_as_efforts(pose):
    sim = RobotSimulation(MODEL)
    q = np.array(sim.info.home) if pose == 'home' else RAISED
    sim.reset(q)
    positions = run(sim, 2.0)
    assert np.abs(positions - q).max() < 1e-3
    efforts = sim.joint_states().efforts
    gravity = sim.data.qfrc_bias[sim.model.jnt_dofadr]           # at rest: gravity only
    np.testing.assert_allclose(efforts, gravity, atol=1e-3)
    if pose == 'raised':                     # leaning torso and forward arms carry real loads
        index = sim.info.index()
        assert abs(efforts[index['torso_pitch_joint']]) > 30.0
        assert abs(efforts[index['left_shoulder_pitch_joint']]) > 5.0
        assert abs(efforts[index['right_shoulder_pitch_joint']]) > 5.0


@pytest.mark.parametrize('pose', ['home', 'raised'])
def test_tracks_a_half_hertz_sine_on_every_joint(pose):
    sim = RobotSimulation(MODEL)
    center = np.array(sim.info.home) if pose == 'home' else RAISED
    lower, upper = np.array(sim.info.lower_limits), np.array(sim.info.upper_limits)
    amplitude = np.minimum(0.5, 0.9 * np.minimum(center - lower, upper - center))
    assert amplitude.min() > 0.25
    sim.reset(center)
    sim.command(sine_command(sim, center, amplitude, frequency_hz=0.5, duration_s=6.0))
    positions = run(sim, 5.0)
    times = np.arange(1, len(positions) + 1) * sim.timestep
    error = positions - (center + amplitude * np.sin(math.pi * times)[:, None])
    rms = np.sqrt(np.mean(error[times >= 1.0] ** 2, axis=0))    # after the start from rest
    print(f'{pose}: 0.5 Hz sine, amplitudes {amplitude.min():.2f}..{amplitude.max():.2f} rad: '
          f'RMS error {np.sqrt(np.mean(rms ** 2)):.4f} rad (worst joint {rms.max():.4f}), '
          f'max {np.abs(error).max():.4f} rad')
    assert rms.max() < 0.01
    assert np.abs(error).max() < 0.03
    assert sim.limit_violations == 0
    assert ((positions >= lower - 1e-3) & (positions <= upper + 1e-3)).all()


def test_moves_across_the_range_and_settles():
    sim = RobotSimulation(MODEL)
    lower, upper = np.array(sim.info.lower_limits), np.array(sim.info.upper_limits)
    target = lower + 0.9 * (upper - lower)            # near the upper limit of every joint
    target[4] = target[9] = -2.5                      # both arms raised high forward
    sim.command(TrajectoryCommand(sim.joint_names, [TrajectoryPoint(list(target),
                                                                    time_from_start=2.0)]))
    positions = run(sim, 3.0)
    np.testing.assert_allclose(positions[-1], target, atol=1e-3)
    assert np.abs(sim.joint_states().velocities).max() < 1e-2
    assert sim.limit_violations == 0
    assert ((positions >= lower - 1e-3) & (positions <= upper + 1e-3)).all()
