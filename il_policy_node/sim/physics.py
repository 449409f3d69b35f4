"""The simulated robot: a MuJoCo model driven by a joint_trajectory_controller. ROS-free.

:class:`RobotSimulation` loads a model by name (models.py), follows trajectory commands with a
:class:`~il_policy_node.sim.trajectory.TrajectoryFollower` sampled at every physics step, and
reports positions, velocities and efforts in joint-name order, as ros2_control's
joint_state_broadcaster would.

Each controlled joint has a MuJoCo position actuator (force ``kp (ctrl - q) - kv qdot``). Its
control is the desired position plus ``kv / kp`` times the desired velocity, so the servo acts
on the velocity error too (``kp (q_d - q) + kv (v_d - qdot)``, a drive with velocity feedforward)
and tracks a moving target without the lag of a plain position servo. Efforts are the actuator
generalized forces (including gravity compensation when the model routes it through them).

Everything is deterministic; ``seed`` drives only the optional position noise of the reported
joint states (``position_noise_std``), never the physics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import mujoco
import numpy as np

from il_policy_node.errors import SimError
from il_policy_node.robots.models import (
    Obstacle,
    RobotModelInfo,
    actuated_joints,
    info_from_mujoco,
    load_model,
)
from il_policy_node.sim.trajectory import TrajectoryCommand, TrajectoryFollower

LIMIT_TOLERANCE = 0.01      # rad (m) beyond a joint limit before it counts as a violation


@dataclass
class JointStates:
    """Preallocated arrays of the reported state, in joint-name order (overwritten in place)."""

    positions: np.ndarray
    velocities: np.ndarray
    efforts: np.ndarray


class RobotSimulation:
    """MuJoCo physics of one robot model plus its trajectory controller."""

    def __init__(self, model: str = 'arm6', *, seed: int = 0,
                 position_noise_std: float = 0.0, obstacle: Obstacle | None = None) -> None:
        if not position_noise_std >= 0.0:
            raise SimError(f'position_noise_std must be >= 0, got {position_noise_std}')
        self.model = load_model(model, obstacle)
        self.data = mujoco.MjData(self.model)
        self.info: RobotModelInfo = info_from_mujoco(model, self.model)
        self.joint_names = self.info.joint_names
        joints = actuated_joints(model, self.model)
        self._qpos = self.model.jnt_qposadr[joints].copy()
        self._dof = self.model.jnt_dofadr[joints].copy()
        self._lower = np.array(self.info.lower_limits)
        self._upper = np.array(self.info.upper_limits)
        kp = self.model.actuator_gainprm[:, 0]
        if (kp <= 0).any() or (self.model.actuator_biasprm[:, 1] != -kp).any():
            raise SimError(f'robot model {model!r}: every actuator must be a position '
                             'actuator (kp > 0)')
        self._feedforward = -self.model.actuator_biasprm[:, 2] / kp      # kv / kp
        self.follower = TrajectoryFollower(self.joint_names, self.info.home,
                                           lower_limits=self._lower, upper_limits=self._upper)
        self.position_noise_std = float(position_noise_std)
        self._rng = np.random.default_rng(seed)
        n = len(self.joint_names)
        self._desired_p, self._desired_v = np.zeros(n), np.zeros(n)
        self._outside = np.zeros(n, bool)
        self._state = JointStates(np.zeros(n), np.zeros(n), np.zeros(n))
        self.limit_violations = 0
        self.reset()

    @property
    def time(self) -> float:
        """Simulated time (s) since the start; a reset does not change it."""
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def reset(self, positions: Sequence[float] | None = None,
              velocities: Sequence[float] | None = None) -> None:
        """Teleport to ``positions`` (None = home), at rest or at ``velocities``.

        The trajectory is cleared (the controller holds ``positions``); the simulated time
        keeps running (it never goes back, so a published /clock stays monotonic), and the
        limit-violation count and the noise generator carry on.
        """
        n = len(self.joint_names)
        q = np.array(self.info.home if positions is None else positions, np.float64)
        v = np.zeros(n) if velocities is None else np.array(velocities, np.float64)
        if q.shape != (n,) or v.shape != (n,) or not (np.isfinite(q).all()
                                                       and np.isfinite(v).all()):
            raise SimError(f'reset needs {n} finite positions (and velocities) for '
                             f'{", ".join(self.joint_names)}')
        now = self.data.time
        mujoco.mj_resetData(self.model, self.data)
        self.data.time = now
        self.data.qpos[self._qpos] = q
        self.data.qvel[self._dof] = v
        self.follower.reset(q)
        self.data.ctrl[:] = q
        mujoco.mj_forward(self.model, self.data)
        self._outside[:] = False

    def command(self, command: TrajectoryCommand) -> None:
        """Follow ``command`` from now (its start_time is on the simulation clock).

        Raises TrajectoryRejected with the reason; the running trajectory then continues.
        """
        self.follower.accept(command, self.time)

    def step(self, n: int = 1) -> None:
        """Advance ``n`` physics steps, sampling the trajectory at each."""
        model, data, dt = self.model, self.data, self.model.opt.timestep
        for _ in range(n):
            # The target for the end of the step, which the implicit integrator aims at.
            self.follower.sample_into(data.time + dt, self._desired_p, self._desired_v)
            np.multiply(self._feedforward, self._desired_v, out=data.ctrl)
            data.ctrl += self._desired_p
            mujoco.mj_step(model, data)
            self._count_limits()

    def step_to(self, sim_time: float) -> int:
        """Step until the simulated time reaches ``sim_time`` (whole steps); returns how many."""
        steps = int(np.floor((sim_time - self.data.time) / self.model.opt.timestep + 1e-9))
        if steps > 0:
            self.step(steps)
        return max(steps, 0)

    def _count_limits(self) -> None:
        q = self.data.qpos[self._qpos]
        outside = (q < self._lower - LIMIT_TOLERANCE) | (q > self._upper + LIMIT_TOLERANCE)
        self.limit_violations += int(np.count_nonzero(outside & ~self._outside))
        self._outside[:] = outside

    def desired(self) -> tuple[np.ndarray, np.ndarray]:
        """The controller's desired (positions, velocities) now."""
        return self.follower.sample(self.time)

    def joint_states(self) -> JointStates:
        """Positions (with noise if configured), velocities and efforts now.

        The arrays are reused: copy them to keep a value across steps.
        """
        state = self._state
        state.positions[:] = self.data.qpos[self._qpos]
        if self.position_noise_std > 0.0:
            state.positions += self._rng.normal(0.0, self.position_noise_std,
                                                len(self.joint_names))
        state.velocities[:] = self.data.qvel[self._dof]
        state.efforts[:] = self.data.qfrc_actuator[self._dof]
        return state
