"""Robot models of the simulated robot: where their files lie and what they declare.

Each model ``<name>`` is an MJCF file ``models/<name>.xml`` (the physics) with a URDF
``models/<name>.urdf`` beside it (same joints and limits; the ``robot_description``). The
metadata below is read from the MJCF with MuJoCo, so the model file is the one source:
the controlled joints are those driven by an actuator (in actuator order), their position
limits are the joint ranges, velocity limits come from ``<custom><numeric
name="velocity_limits">`` and the home pose from ``<keyframe><key name="home">``.
ROS-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from il_policy_node.errors import SimError
from il_policy_node.runtime.robot import RobotJoints

MODELS_DIR = Path(__file__).resolve().parent
VELOCITY_LIMITS = 'velocity_limits'
HOME_KEY = 'home'


class UnknownModelError(SimError):
    """No model of that name in il_policy_node/robots."""


def available_models() -> list[str]:
    """Names of the models that have both an MJCF and a URDF file."""
    return sorted(p.stem for p in MODELS_DIR.glob('*.xml') if p.with_suffix('.urdf').is_file())


def _path(name: str, suffix: str) -> Path:
    path = MODELS_DIR / f'{name}{suffix}'
    if not name or '/' in name or '\\' in name or not path.is_file():
        raise UnknownModelError(f'unknown robot model {name!r}: no {path.name} in {MODELS_DIR}; '
                                f'available: {", ".join(available_models()) or "none"}')
    return path


def model_path(name: str) -> Path:
    """The MJCF file of model ``name``; UnknownModelError names the model when it is missing."""
    return _path(name, '.xml')


def urdf_path(name: str) -> Path:
    """The URDF file of model ``name`` (same joints and limits as the MJCF)."""
    return _path(name, '.urdf')


@dataclass(frozen=True)
class RobotModelInfo:
    """The controlled joints of a model and their limits, in actuator order."""

    name: str
    joint_names: tuple[str, ...]
    lower_limits: tuple[float, ...]          # rad (m for slide joints)
    upper_limits: tuple[float, ...]
    velocity_limits: tuple[float, ...]       # rad/s (m/s)
    home: tuple[float, ...]

    def index(self) -> dict[str, int]:
        """Joint name -> position in ``joint_names``."""
        return {name: i for i, name in enumerate(self.joint_names)}


def actuated_joints(name: str, model: mujoco.MjModel) -> list[int]:
    """Joint ids driven by the actuators of model ``name``, in actuator order (one each)."""
    joints = []
    movable = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    for actuator in range(model.nu):
        if int(model.actuator_trntype[actuator]) != int(mujoco.mjtTrn.mjTRN_JOINT):
            raise SimError(f'robot model {name!r}: actuator {actuator} does not act on a joint')
        joint = int(model.actuator_trnid[actuator, 0])
        if int(model.jnt_type[joint]) not in movable:
            raise SimError(f'robot model {name!r}: actuator {actuator} drives a joint that is '
                             'neither hinge nor slide')
        if joint in joints:
            raise SimError(f'robot model {name!r}: two actuators drive joint '
                             f'{mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint)!r}')
        joints.append(joint)
    return joints


def info_from_mujoco(name: str, model: mujoco.MjModel) -> RobotModelInfo:
    """The metadata of an already loaded model (see the module docstring for the sources)."""
    joints = actuated_joints(name, model)
    if not joints:
        raise SimError(f'robot model {name!r} has no actuated joints')
    names = tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in joints)
    limited = model.jnt_limited[joints].astype(bool)
    lower = np.where(limited, model.jnt_range[joints, 0], -np.inf)
    upper = np.where(limited, model.jnt_range[joints, 1], np.inf)
    numeric = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, VELOCITY_LIMITS)
    if numeric < 0:
        raise SimError(f'robot model {name!r}: no <numeric name="{VELOCITY_LIMITS}">')
    start, size = model.numeric_adr[numeric], model.numeric_size[numeric]
    velocity = model.numeric_data[start:start + size]
    if size != len(joints):
        raise SimError(f'robot model {name!r}: {VELOCITY_LIMITS} has {size} values for '
                         f'{len(joints)} actuated joints')
    qpos = model.qpos0
    key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, HOME_KEY)
    if key >= 0:
        qpos = model.key_qpos[key]
    home = qpos[model.jnt_qposadr[joints]]
    return RobotModelInfo(
        name=name, joint_names=names,
        lower_limits=tuple(float(v) for v in lower), upper_limits=tuple(float(v) for v in upper),
        velocity_limits=tuple(float(v) for v in velocity), home=tuple(float(v) for v in home))


@dataclass(frozen=True)
class Obstacle:
    """A fixed upright cylinder in the scene (world frame, m) that the robot's links touch.

    ``parameters`` is its sim_robot parameter: [x, y, z, radius, half_height].
    """

    x: float
    y: float
    z: float
    radius: float
    half_height: float

    @classmethod
    def of(cls, values) -> 'Obstacle | None':
        """From a parameter value: 5 numbers, or empty for none; SimError otherwise."""
        values = [float(v) for v in values]
        if not values:
            return None
        if len(values) != 5 or min(values[3:]) <= 0 or not np.isfinite(values).all():
            raise SimError(f'obstacle must be [x, y, z, radius, half_height] with radius and '
                           f'half_height > 0, got {values}')
        return cls(*values)

    @property
    def parameters(self) -> list[float]:
        return [self.x, self.y, self.z, self.radius, self.half_height]


OBSTACLE_GEOM = 'obstacle'


def load_model(name: str, obstacle: Obstacle | None = None) -> mujoco.MjModel:
    """The compiled MuJoCo model ``name``, with ``obstacle`` in its scene.

    With an obstacle, the robot's links collide with it (and still with nothing else: the
    models' links collide with nothing by default).
    """
    if obstacle is None:
        return mujoco.MjModel.from_xml_path(str(model_path(name)))
    spec = mujoco.MjSpec.from_file(str(model_path(name)))
    for geom in spec.geoms:
        if geom.parent.name != 'world':
            geom.contype, geom.conaffinity = 2, 0      # links: collide with conaffinity 2
    spec.worldbody.add_geom(
        name=OBSTACLE_GEOM, type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[obstacle.radius, obstacle.half_height, 0.0],
        pos=[obstacle.x, obstacle.y, obstacle.z], contype=0, conaffinity=2,
        rgba=[0.8, 0.3, 0.2, 1.0])
    return spec.compile()


def obstacle_contacts(model: mujoco.MjModel, data: mujoco.MjData) -> int:
    """Contacts of the robot with the obstacle geometry in ``data`` (after a forward pass)."""
    geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, OBSTACLE_GEOM)
    contacts = data.contact[:data.ncon]
    return int(np.count_nonzero((contacts.geom1 == geom) | (contacts.geom2 == geom)))


def model_info(name: str) -> RobotModelInfo:
    """The metadata of model ``name``, read from its MJCF."""
    return info_from_mujoco(name, load_model(name))


def robot_joints(name: str) -> RobotJoints:
    """Model ``name``'s actuated joints (actuator order) with their limits."""
    info = model_info(name)
    return RobotJoints(f'model {name}', info.joint_names, info.lower_limits, info.upper_limits,
                       info.velocity_limits)
