"""Retargeting a BVH clip onto a robot model by inverse kinematics with mink; no angle map.

Targets: il_policy_node.mocap.ik_targets (per-segment scaling, rest-pose calibration). Per
frame, one mink FrameTask per key site (position, and orientation for pelvis, torso, hands
and feet) plus a light posture task; joint limits (ConfigurationLimit), velocity limits
(VelocityLimit over the clip's frame time) and self-collision avoidance between the legs,
the legs and the torso, the forearms and hands and the trunk, legs and head
(CollisionAvoidanceLimit on the model's group-0 geoms) are constraints of every step. Each
frame starts from the previous one; the first from the robot on the rest pose, without
velocity limits, iterating until it converges (at most ``first_frame_iterations``), so a
bad first frame cannot collapse the clip; a frame that stays far from its targets (a
local minimum after a bad frame) is solved afresh from the rest pose, and when that is much
closer the robot walks to that solution within the velocity limits while it follows the
clip. A frame whose judged error stays over ``converged_cm`` is reported by number, and the
clip goes on. ROS-free.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import mink
import mujoco
import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator
from scipy.spatial.transform import Rotation, Slerp

from il_policy_node.mocap.bvh import BvhClip
from il_policy_node.mocap.ik_targets import (
    ORIENTED,
    SCORED,
    Calibration,
    IkError,
    RobotGeometry,
    RootOrigin,
    calibrate,
    frame_targets,
    part,
    root_origin,
    site,
)
from il_policy_node.mocap.retarget import RetargetedMotion, clamp_to_limits, output_times
from il_policy_node.mocap.skeleton import SIDES, SkeletonMatch
from il_policy_node.robots.models import info_from_mujoco, load_model, model_path

# sites written to the bags as end effectors (key body -> topic name)
END_EFFECTORS = {'head': 'head', 'left_hand': 'left_hand', 'right_hand': 'right_hand',
                 'left_foot': 'left_foot', 'right_foot': 'right_foot'}


@dataclass(frozen=True)
class IkOptions:
    rate_hz: float | None = None         # output rate; None: the clip's own
    floating_root: bool = False
    rest: int | None = None              # rest pose: a frame number; None: the BVH zero pose
    unit: str | None = None              # BVH unit (m, cm, mm, in); None: from the height
    iterations: int = 2                  # per frame, at most
    first_frame_iterations: int = 300
    tolerance: float = 1e-3              # rad: a frame's solve stops below this step
    converged_cm: float = 8.0            # a frame with a judged error above is reported
    position_cost: dict[str, float] = field(default_factory=lambda: {
        'pelvis': 1.0, 'chest': 0.3, 'neck': 0.1, 'head': 1.0, 'shoulder': 0.3,
        'elbow': 1.0, 'hand': 1.0, 'hip': 0.3, 'knee': 1.0, 'foot': 1.0, 'toe': 0.5})
    orientation_cost: dict[str, float] = field(default_factory=lambda: {
        'pelvis': 1.0, 'chest': 0.5, 'hand': 0.1, 'foot': 0.3})
    posture_cost: float = 1e-3
    retry_s: float = 0.5                 # clip time between fresh solves while stuck
    damping: float = 1e-3
    collision_margin_m: float = 0.02     # kept between the bodies of collision_pairs
    solver: str = 'daqp'

    def checked(self) -> 'IkOptions':
        if self.rate_hz is not None and not (np.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise IkError(f'rate_hz must be > 0, got {self.rate_hz}')
        if self.iterations < 1 or self.first_frame_iterations < 1:
            raise IkError('iterations and first_frame_iterations must be >= 1')
        return self

    def fingerprint(self, skeleton: str, model: str) -> str:
        """sha256 of what decides the output: options, skeleton, model file."""
        text = json.dumps({'ik': asdict(self), 'skeleton': skeleton, 'model': model,
                           'model_sha256': hashlib.sha256(
                               model_path(model).read_bytes()).hexdigest()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class IkMotion:
    """The retargeted motion and what the IK saw, frame by frame (BVH frames)."""

    motion: RetargetedMotion
    frame_times: np.ndarray                  # [f] s
    qpos: np.ndarray                         # [f, nq] of the IK model (free joint first)
    targets: dict[str, np.ndarray]           # key body -> [f, 3] m
    achieved: dict[str, np.ndarray]          # key body -> [f, 3] m
    iterations: np.ndarray                   # [f]
    unconverged: tuple[int, ...]             # frames whose judged error stayed over the bound
    root_poses: np.ndarray | None            # [n, 7] xyz + quaternion wxyz (floating root)
    skeleton: str
    unit: str
    height_m: float


def ik_model(model: str, floating_root: bool) -> mujoco.MjModel:
    """Model ``model`` for IK: contacts on, a free joint on the pelvis if asked.

    Contacts between the group-0 robot geoms (the body's shape; the floor and the joint
    knuckles off): the IK keeps those geoms apart, the quality report counts the frames where
    they touch.
    """
    spec = mujoco.MjSpec.from_file(str(model_path(model)))
    for geom in spec.geoms:
        geom.contype = geom.conaffinity = int(geom.parent.name != 'world' and geom.group == 0)
    if floating_root:
        pelvis = spec.body('pelvis')
        if pelvis is None or pelvis.parent.name != 'world':
            raise IkError(f'model {model}: a floating root needs a body "pelvis" under world')
        pelvis.add_freejoint()
        for key in list(spec.keys):          # their qpos lack the free joint's 7 numbers
            spec.delete(key)
    return spec.compile()


def _geoms(model: mujoco.MjModel, *bodies: str) -> list[int]:
    ids = {model.body(b).id for b in bodies
           if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) >= 0}
    return [g for g in range(model.ngeom)
            if int(model.geom_bodyid[g]) in ids and model.geom_contype[g]]


def collision_pairs(model: mujoco.MjModel) -> list[tuple[list[int], list[int]]]:
    """Geom groups the IK keeps apart.

    The legs from each other and from the torso; the forearms and hands from the trunk, the
    legs and the head.
    """
    leg = {s: _geoms(model, f'{s}_thigh_link', f'{s}_shin_link', f'{s}_foot_link')
           for s in SIDES}
    trunk = _geoms(model, 'torso_link', 'pelvis')
    pairs = [(leg['left'], leg['right'])]
    for s in SIDES:
        pairs.append((leg[s], _geoms(model, 'torso_link')))
        pairs.append((_geoms(model, f'{s}_forearm_link', f'{s}_hand_link'),
                      trunk + leg['left'] + leg['right'] + _geoms(model, 'head_link')))
    return [(a, b) for a, b in pairs if a and b]


class IkRetargeter:
    """Retargets clips onto sim model ``model`` (one with the key sites of ik_targets)."""

    def __init__(self, model: str, options: IkOptions | None = None) -> None:
        self.options = (options or IkOptions()).checked()
        self.model_name = model
        self.model = ik_model(model, self.options.floating_root)
        self.info = info_from_mujoco(model, load_model(model))
        self.geometry = RobotGeometry.of(self.model, model)
        self.joint_qpos = np.array([self.model.joint(n).qposadr[0]
                                    for n in self.info.joint_names])
        self.limits = [mink.ConfigurationLimit(self.model)]
        pairs = collision_pairs(self.model)
        if pairs:
            self.limits.append(mink.CollisionAvoidanceLimit(
                self.model, pairs,
                minimum_distance_from_collisions=self.options.collision_margin_m,
                collision_detection_distance=0.15))
        self.velocity_limit = mink.VelocityLimit(
            self.model, dict(zip(self.info.joint_names, self.info.velocity_limits)))

    def _tasks(self, keys, *, orientation: bool = True) -> dict[str, mink.FrameTask]:
        options, tasks = self.options, {}
        for key in keys:
            if part(key) == 'pelvis' and not options.floating_root:
                continue
            position = options.position_cost.get(part(key), 0.0)
            rotation = options.orientation_cost.get(part(key), 0.0) \
                if orientation and key in ORIENTED else 0.0
            if position or rotation:
                tasks[key] = mink.FrameTask(site(key), 'site', position_cost=position,
                                            orientation_cost=rotation, lm_damping=1.0)
        return tasks

    def _iterate(self, configuration, tasks, limits, dt, iterations) -> int:
        for k in range(iterations):
            velocity = mink.solve_ik(configuration, tasks, dt, self.options.solver,
                                     damping=self.options.damping, limits=limits)
            configuration.integrate_inplace(velocity, dt)
            if np.linalg.norm(velocity) * dt < self.options.tolerance:
                return k + 1
        return iterations

    def _solve_rest(self, targets: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
        """The robot on the rest pose's positions, from its zero pose; oriented sites' frames."""
        configuration = mink.Configuration(self.model)       # a free joint starts at the pin
        tasks = self._tasks(targets, orientation=False)
        for key, task in tasks.items():
            task.set_target(mink.SE3.from_rotation_and_translation(
                mink.SO3.identity(), targets[key][0]))
        posture = mink.PostureTask(self.model, cost=self.options.posture_cost)
        posture.set_target(configuration.q)
        self._iterate(configuration, [*tasks.values(), posture], self.limits, 1.0,
                      self.options.first_frame_iterations)
        data = configuration.data
        return configuration.q.copy(), {k: data.site(site(k)).xmat.reshape(3, 3).copy()
                                        for k in ORIENTED if k not in ('pelvis', 'chest')}

    def calibrate(self, clip: BvhClip, match: SkeletonMatch) -> Calibration:
        """The rest-pose calibration of ``clip``'s skeleton."""
        return calibrate(self.geometry, clip, match, rest=self.options.rest,
                         unit=self.options.unit, solve_rest=self._solve_rest)

    def retarget(self, clip: BvhClip, match: SkeletonMatch,
                 progress: Callable[[int], None] | None = None) -> IkMotion:
        """The robot's joint motion for ``clip`` (key bodies by ``match``)."""
        if clip.num_frames < 2:
            raise IkError(f'{clip.source}: one frame; retargeting needs at least 2')
        calibration = self.calibrate(clip, match)
        origin = root_origin(calibration, clip) if self.options.floating_root else None
        solver = IkSolver(self, calibration, origin, clip.frame_time)
        frames = solver.solve(clip, progress)
        motion, root = self._resample(clip, frames.qpos, frames.achieved)
        return IkMotion(motion=motion, frame_times=clip.times, qpos=frames.qpos,
                        targets=frames.targets, achieved=frames.achieved,
                        iterations=frames.iterations, unconverged=frames.unconverged,
                        root_poses=root, skeleton=match.skeleton, unit=calibration.unit,
                        height_m=calibration.height_m)

    def _resample(self, clip: BvhClip, qpos: np.ndarray, achieved: dict):
        """Joint positions and velocities (and end effectors, root) at the output rate."""
        rate = self.options.rate_hz or 1.0 / clip.frame_time
        times = output_times(clip, rate)
        # monotone between frames (PCHIP): no overshoot past what the IK kept in the limits
        spline = PchipInterpolator(clip.times, qpos[:, self.joint_qpos], axis=0)
        low, high = np.array(self.info.lower_limits), np.array(self.info.upper_limits)
        clipped, velocities, clamped = clamp_to_limits(
            spline(times), spline(times, 1), self.info.joint_names, low, high,
            slack=1e-9)                                  # not the knots' rounding
        # the interpolant's slope may exceed what the IK's steps kept within the limits: a
        # sample never moves faster than the limits from the one before it
        speed = np.array(self.info.velocity_limits)
        velocities = np.clip(velocities, -speed, speed)
        step = speed / rate
        for i in range(1, len(clipped)):
            clipped[i] = clipped[i - 1] + np.clip(clipped[i] - clipped[i - 1], -step, step)
        effectors = {name: CubicSpline(clip.times, achieved[key], axis=0)(times)
                     for key, name in END_EFFECTORS.items()}
        root = None
        if self.options.floating_root:
            xyz = CubicSpline(clip.times, qpos[:, :3], axis=0)(times)
            rotation = Slerp(clip.times, Rotation.from_quat(qpos[:, 3:7], scalar_first=True))
            root = np.concatenate([xyz, rotation(times).as_quat(scalar_first=True)], axis=1)
        motion = RetargetedMotion(times=times, rate_hz=rate, joint_names=self.info.joint_names,
                                  positions=clipped, velocities=velocities,
                                  end_effectors=effectors, clamped=clamped,
                                  source_sha256=clip.sha256, map_sha256='')
        return motion, root


@dataclass(frozen=True, eq=False)
class SolvedFrames:
    qpos: np.ndarray                         # [m, nq]
    targets: dict[str, np.ndarray]           # key body -> [m, 3]
    achieved: dict[str, np.ndarray]          # key body -> [m, 3]
    iterations: np.ndarray                   # [m]
    unconverged: tuple[int, ...]             # frame numbers (from the clip's first)


COLLISION_SUBSTEPS = (4, 16)          # finer and finer, while bodies still touch


class IkSolver:
    """Solves frames in order, batch by batch, carrying the robot from frame to frame.

    The first frame starts from the robot on the rest pose, without velocity limits, until it
    converges; later frames are warm-started with the velocity limits over ``frame_time``.
    A frame stuck far from its targets is solved afresh from the rest pose, and when that is
    much closer the robot walks to it (a shadow solution) within the velocity limits.
    """

    def __init__(self, retargeter: IkRetargeter, calibration: Calibration,
                 origin: RootOrigin | None, frame_time: float) -> None:
        self.r, self.calibration, self.origin = retargeter, calibration, origin
        options = retargeter.options
        self.frame_time = frame_time
        self.configuration = mink.Configuration(retargeter.model)
        self.configuration.update(calibration.rest_q)
        self.posture = mink.PostureTask(retargeter.model, cost=options.posture_cost)
        self.posture.set_target(calibration.rest_q)
        self.tasks: dict[str, mink.FrameTask] | None = None
        self.limits = [*retargeter.limits, retargeter.velocity_limit]
        self.step_limit = np.array(retargeter.info.velocity_limits) * frame_time
        self.frames = 0                          # solved so far
        self.shadow: mink.Configuration | None = None
        self.next_try = 0.0
        self.previous: np.ndarray | None = None

    def solve(self, clip: BvhClip, progress: Callable[[int], None] | None = None
              ) -> SolvedFrames:
        """Solve the frames of ``clip`` (the next ones of the motion)."""
        r, options = self.r, self.r.options
        targets = frame_targets(r.geometry, self.calibration, clip, origin=self.origin)
        if self.tasks is None:
            self.tasks = r._tasks(targets.positions)
            self.site_ids = {k: r.model.site(site(k)).id for k in targets.positions}
            self.scored = [k for k in SCORED if k in targets.positions]
        solve = [*self.tasks.values(), self.posture]
        count = clip.num_frames
        qpos = np.empty((count, r.model.nq))
        iterations = np.zeros(count, dtype=np.int32)
        achieved = {k: np.empty((count, 3)) for k in targets.positions}
        unconverged = []
        se3, so3, eye = mink.SE3.from_rotation_and_translation, mink.SO3.from_matrix, np.eye(3)
        dt = self.frame_time / options.iterations
        configuration = self.configuration
        for i in range(count):
            f = self.frames + i
            for key, task in self.tasks.items():
                rotation = targets.rotations[key][i] if key in targets.rotations else eye
                task.set_target(se3(so3(rotation), targets.positions[key][i]))
            if f == 0:
                iterations[i] = r._iterate(configuration, solve, r.limits, 1.0,
                                           options.first_frame_iterations)
            elif self.shadow is None:
                iterations[i] = r._iterate(configuration, solve, self.limits, dt,
                                           options.iterations)
                for substeps in COLLISION_SUBSTEPS:
                    if not self._touching():
                        break
                    # the collision limit is linear: a fast step can pass it; the frame again
                    # from the previous one in smaller steps (the same velocity budget)
                    configuration.update(self.previous)
                    iterations[i] += r._iterate(configuration, solve, self.limits,
                                                dt / substeps, options.iterations * substeps)
            else:                              # the shadow follows the clip, unhindered
                iterations[i] = r._iterate(self.shadow, solve, r.limits, 1.0,
                                           options.iterations)
            error = self._error(configuration, targets.positions, i)
            if error > options.converged_cm and f > 0 and self.shadow is None and \
                    f * self.frame_time >= self.next_try:
                fresh = mink.Configuration(r.model)
                fresh.update(self.calibration.rest_q)
                iterations[i] += r._iterate(fresh, solve, r.limits, 1.0,
                                            options.first_frame_iterations)
                if self._error(fresh, targets.positions, i) < error / 2:
                    self.shadow = fresh
                    configuration.update(self.previous)   # this frame's step: to the shadow
                self.next_try = f * self.frame_time + options.retry_s
            if self.shadow is not None:
                error = self._walk_to_shadow(targets.positions, i)
            qpos[i] = configuration.q
            self.previous = qpos[i].copy()
            xpos = configuration.data.site_xpos
            for key, index in self.site_ids.items():
                achieved[key][i] = xpos[index]
            if error > options.converged_cm:
                unconverged.append(f)
            if progress is not None:
                progress(f)
        self.frames += count
        return SolvedFrames(qpos=qpos, targets=targets.positions, achieved=achieved,
                            iterations=iterations, unconverged=tuple(unconverged))

    def _touching(self) -> bool:
        """Robot bodies in contact (the IK model's group-0 geoms) at the current solution."""
        data = self.configuration.data
        mujoco.mj_collision(self.r.model, data)
        return data.ncon > 0

    def _walk_to_shadow(self, positions, i: int) -> float:
        configuration, joints = self.configuration, self.r.joint_qpos
        q = configuration.q.copy()
        gap = self.shadow.q[joints] - q[joints]
        q[joints] += np.clip(gap, -self.step_limit, self.step_limit)
        free = np.setdiff1d(np.arange(self.r.model.nq), joints)
        q[free] = self.shadow.q[free]            # the free joint has no velocity limit
        configuration.update(q)
        if np.abs(gap).max() < self.r.options.tolerance:
            self.shadow = None
        return self._error(configuration, positions, i)

    def _error(self, configuration, positions, i: int) -> float:
        """The largest judged site error of batch frame ``i`` (cm)."""
        xpos = configuration.data.site_xpos
        return 100 * max(np.linalg.norm(xpos[self.site_ids[k]] - positions[k][i])
                         for k in self.scored)
