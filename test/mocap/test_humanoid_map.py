"""config/retarget/humanoid_upper.yaml against the sim model humanoid_upper (MuJoCo)."""
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from il_policy_node.mocap.bvh import load_bvh, write_bvh
from il_policy_node.mocap.kinematics import world_pose
from il_policy_node.mocap.retarget import load_retarget_map, retarget
from il_policy_node.mocap.synthetic import skeleton, wave_angles, wave_clip
from il_policy_node.robots.models import model_info, model_path
from test.mocap import through_file

MAP = Path(__file__).resolve().parents[2] / 'config' / 'retarget' / 'humanoid_upper.yaml'
INFO = model_info('humanoid_upper')
C = Rotation.from_matrix([[0, 0, 1], [1, 0, 0], [0, 1, 0]])      # BVH -> robot axes
REST = {'Left': Rotation.from_rotvec([np.pi / 2, 0, 0]),
        'Right': Rotation.from_rotvec([-np.pi / 2, 0, 0])}
# robot body -> BVH joint whose frame it follows (with that side's rest rotation)
BODIES = {'torso_link': ('Spine1', None), 'head_link': ('Head', None)} | {
    f'{side.lower()}_{body}_link': (f'{side}{joint}', side) for side in REST
    for body, joint in [('upper_arm', 'Arm'), ('forearm', 'ForeArm'), ('hand', 'Hand')]}


def bvh_rotation(axis_angles):
    """Intrinsic rotation from [(BVH axis, rad), ...], in that order."""
    return Rotation.from_euler(''.join(a for a, _ in axis_angles).upper(),
                               [angle for _, angle in axis_angles])


def random_poses(count, seed=7):
    """BVH local rotations of poses the robot can take.

    The torso and head turn then nod, each arm hangs then turns freely, the clavicle lifts,
    the elbow bends, the forearm twists.
    """
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(count):
        u = rng.uniform
        pose = {'Spine1': bvh_rotation([('y', u(-0.5, 0.5)), ('x', u(-0.2, 0.5))]),
                'Head': bvh_rotation([('y', u(-0.8, 0.8)), ('x', u(-0.5, 0.6))])}
        for side, s in (('Left', 1.0), ('Right', -1.0)):
            hang = bvh_rotation([('z', -s * np.pi / 2)])
            pose[f'{side}Shoulder'] = bvh_rotation([('z', s * u(0.0, 0.2))])
            pose[f'{side}Arm'] = Rotation.from_rotvec(rng.normal(0, 0.5, 3)) * hang
            pose[f'{side}ForeArm'] = bvh_rotation([('y', -s * u(0.1, 2.2))])
            pose[f'{side}Hand'] = bvh_rotation([('x', u(-1.2, 1.2))])
        poses.append(pose)
    return poses


def test_retargeted_joints_put_the_model_in_the_human_pose(tmp_path):
    poses = random_poses(6)
    joints = skeleton()
    frames = np.zeros((len(poses), sum(len(j.channels) for j in joints)))
    column = 0
    for joint in joints:
        if joint.parent < 0:
            frames[:, column + 1] = 96.0
            column += 3
        for k, pose in enumerate(poses):
            rotation = pose.get(joint.name, Rotation.identity())
            frames[k, column:column + 3] = rotation.as_euler('ZXY', degrees=True)
        column += 3
    clip = through_file(tmp_path, joints, frames, frame_time=0.02)     # the map's 50 Hz
    motion = retarget(clip, load_retarget_map(MAP), joint_names=INFO.joint_names)
    assert len(motion.times) == len(poses)
    elbows = [INFO.index()[f'{side}_elbow_joint'] for side in ('left', 'right')]
    assert (motion.positions[:, elbows] > 0.09).all()              # flexion is positive
    model = mujoco.MjModel.from_xml_path(str(model_path('humanoid_upper')))
    data = mujoco.MjData(model)
    human = {body: world_pose(clip, joint)[0] for body, (joint, _) in BODIES.items()}
    for k in range(len(poses)):
        for j, name in enumerate(motion.joint_names):
            data.qpos[model.jnt_qposadr[model.joint(name).id]] = motion.positions[k, j]
        mujoco.mj_kinematics(model, data)
        for body, (_, side) in BODIES.items():
            expected = C * human[body][k] * C.inv() * REST.get(side, Rotation.identity())
            np.testing.assert_allclose(data.body(body).xmat.reshape(3, 3),
                                       expected.as_matrix(), atol=1e-6, err_msg=body)


def test_the_synthetic_wave_comes_back_within_the_model_limits(tmp_path):
    write_bvh(tmp_path / 'wave.bvh', wave_clip(duration_s=3.0, rate_hz=120.0, seed=4))
    clip = load_bvh(tmp_path / 'wave.bvh')
    motion = retarget(clip, load_retarget_map(MAP), joint_names=INFO.joint_names,
                      lower=INFO.lower_limits, upper=INFO.upper_limits)
    assert motion.clamped == {} and motion.positions.shape == (151, 14)
    truth = wave_angles(motion.times, seed=4)
    for j, name in enumerate(motion.joint_names):
        np.testing.assert_allclose(motion.positions[:, j], truth[name], atol=1e-5, err_msg=name)
    hand = motion.end_effectors['right_hand']                   # m from the hips, robot axes
    assert hand[0, 2] < 0.0 and hand[-1, 2] > 0.44                  # raised above the shoulder
    assert hand[-1, 1] < -0.3 and motion.end_effectors['left_hand'][-1, 1] > 0.15
    assert motion.end_effectors['head'][-1, 2] > 0.7

