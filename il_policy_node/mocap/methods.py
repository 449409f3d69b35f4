"""The two ways a clip becomes robot joints: an angle map (YAML) or inverse kinematics.

Both give a :class:`Retargeted`: the motion (joint positions and velocities at the output
rate, end effectors), the root pose (IK), and the quality report (IK). ``il-policy mocap
import`` and ``mocap_bridge`` take either. ROS-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from il_policy_node.mocap.bvh import BvhClip, BvhHeader
from il_policy_node.mocap.ik import END_EFFECTORS, IkMotion, IkOptions, IkRetargeter, IkSolver
from il_policy_node.mocap.ik_targets import IkError, root_origin
from il_policy_node.mocap.quality import QualityThresholds, assess
from il_policy_node.mocap.retarget import (
    RetargetedMotion,
    RetargetMap,
    check_robot,
    load_retarget_map,
    retarget,
)
from il_policy_node.mocap.skeleton import AUTO, choose
from il_policy_node.mocap.stream import MapValues
from il_policy_node.runtime.robot import RobotJoints

WORLD_FRAME = 'world'
PELVIS_FRAME = 'pelvis'


@dataclass(frozen=True, eq=False)
class Retargeted:
    motion: RetargetedMotion
    root_poses: np.ndarray | None = None      # [n, 7] xyz + quaternion wxyz, WORLD_FRAME
    report: dict | None = None                # the quality report (IK)
    ik: IkMotion | None = None


class MapMethod:
    """The YAML angle map (il_policy_node.mocap.retarget): exact joint correspondences."""

    def __init__(self, path: str | Path, robot: RobotJoints | None = None) -> None:
        self.mapping: RetargetMap = load_retarget_map(path)
        self.robot = robot or RobotJoints.unlimited(tuple(self.mapping.joints), 'map')
        check_robot(self.mapping, self.robot.joint_names)
        self.source = str(Path(self.mapping.source).absolute())
        self.end_effectors = {ee.name: ee.relative_to for ee in self.mapping.end_effectors}
        self.has_root = False

    def fingerprint(self, clip: BvhClip) -> str:
        """sha256 of what decides the output for ``clip`` (the re-import check)."""
        return self.mapping.sha256

    def retarget(self, clip: BvhClip) -> Retargeted:
        motion = retarget(clip, self.mapping, joint_names=self.robot.joint_names,
                          lower=self.robot.lower, upper=self.robot.upper)
        return Retargeted(motion=motion)

    def frame_values(self, header: BvhHeader) -> MapValues:
        """The map frame by frame, for a clip streamed (mocap_bridge)."""
        return MapValues(header, self.mapping, joint_names=self.robot.joint_names,
                         lower=self.robot.lower, upper=self.robot.upper)


@dataclass(frozen=True)
class IkSettings:
    model: str
    skeleton: str = AUTO                      # preset name, skeleton file or auto
    options: IkOptions = field(default_factory=IkOptions)
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)


class IkMethod:
    """Inverse kinematics onto a sim model (il_policy_node.mocap.ik), with a quality report."""

    def __init__(self, settings: IkSettings) -> None:
        self.settings = settings
        self.retargeter = IkRetargeter(settings.model, settings.options)
        info = self.retargeter.info
        self.robot = RobotJoints(f'model {settings.model}', info.joint_names,
                                 info.lower_limits, info.upper_limits, info.velocity_limits)
        self.source = f'ik:{settings.model}:{settings.skeleton}'
        frame = WORLD_FRAME if settings.options.floating_root else PELVIS_FRAME
        self.end_effectors = {name: frame for name in END_EFFECTORS.values()}
        self.has_root = True

    def fingerprint(self, clip: BvhClip) -> str:
        skeleton = choose(clip, self.settings.skeleton).skeleton
        return self.settings.options.fingerprint(skeleton, self.settings.model)

    def retarget(self, clip: BvhClip) -> Retargeted:
        match = choose(clip, self.settings.skeleton)
        result = self.retargeter.retarget(clip, match)
        report = assess(self.retargeter, result, clip.source, self.settings.thresholds)
        root = result.root_poses
        if root is None:                      # pinned: where the model holds the pelvis
            pin = [0.0, 0.0, self.retargeter.geometry.pelvis_height, 1.0, 0.0, 0.0, 0.0]
            root = np.tile(pin, (len(result.motion.times), 1))
        return Retargeted(motion=result.motion, root_poses=root, report=report, ik=result)

    def frame_values(self, header: BvhHeader) -> 'IkValues':
        """Inverse kinematics frame by frame, for a clip streamed (mocap_bridge)."""
        return IkValues(self, header)


class IkValues:
    """IK over a streamed clip, batch after batch.

    Calibrated on the header's zero pose; the robot is carried from batch to batch; with a
    floating root the trajectory starts at the first batch.
    """

    def __init__(self, method: IkMethod, header: BvhHeader) -> None:
        retargeter = method.retargeter
        if retargeter.options.rest is not None:
            raise IkError(f'{header.source}: a rest frame needs the whole clip; a streamed '
                          'clip calibrates on its zero pose')
        probe = BvhClip(joints=header.joints, frames=np.zeros((1, header.width)),
                        frame_time=header.frame_time, source=header.source)
        match = choose(probe, method.settings.skeleton)
        self.retargeter = retargeter
        self.calibration = retargeter.calibrate(probe, match)
        self.frame_time = header.frame_time
        info = retargeter.info
        self.joint_names = info.joint_names
        self.lower, self.upper = np.array(info.lower_limits), np.array(info.upper_limits)
        self.effectors = tuple(END_EFFECTORS.values())
        self.source = method.source
        self.fingerprint = method.settings.options.fingerprint(match.skeleton,
                                                               method.settings.model)
        self.solver: IkSolver | None = None

    def __call__(self, clip: BvhClip) -> np.ndarray:
        if self.solver is None:
            origin = root_origin(self.calibration, clip, percentile=0.0) \
                if self.retargeter.options.floating_root else None
            self.solver = IkSolver(self.retargeter, self.calibration, origin, self.frame_time)
        frames = self.solver.solve(clip)
        return np.hstack([frames.qpos[:, self.retargeter.joint_qpos],
                          *(frames.achieved[key] for key in END_EFFECTORS)])
