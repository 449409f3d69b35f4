"""The control loop's logic, without ROS: state in, one safe command (or silence) out per tick.

Modes:
  waiting  -> no usable state yet (after activate, a fault or an e-stop reset): silent
  ramping  -> blending from the measured pose into the policy over ramp_in_s
  running  -> policy targets through the safety layer (the last command repeated while no
              chunk covers the tick, asynchronous inference: no_chunk; or while the
              observation is out of the training data, with ood_hold_z: out_of_data)
  holding  -> a fault stopped the run: one hold at the measured pose, then silent until the
              state is usable again, then a fresh ramp-in with a reset runtime
  estopped -> latched: one hold, then silent until reset_estop()
  inactive -> lifecycle not active: silent
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from il_policy_node.errors import ConfigError
from il_policy_node.runtime.artifact import PolicyMetadata
from il_policy_node.runtime.controller_config import ControllerConfig
from il_policy_node.runtime.joint_state import JointStateCache, StateFault
from il_policy_node.runtime.observation import StateField
from il_policy_node.runtime.ood import OodMonitor, OodReading
from il_policy_node.runtime.policy_runtime import PolicyRuntime
from il_policy_node.runtime.safety import Intervention, SafetyFilter, ramp_fraction, ramp_in

RATE_TOLERANCE = 1e-3
OOD_REPORT_Z = 4.0      # without ood_hold_z, ticks beyond this many std are counted
NO_TIMEOUT_NS = 2**61   # inputs never time out, but one never received still counts


class Mode(str, Enum):
    INACTIVE = 'inactive'
    WAITING = 'waiting'
    RAMPING = 'ramping'
    RUNNING = 'running'
    HOLDING = 'holding'
    ESTOPPED = 'estopped'


@dataclass
class Command:
    """Joint position targets for every controller joint (object and arrays reused per tick)."""

    positions: np.ndarray
    velocities: np.ndarray | None
    hold: bool


def check_policy_fits(metadata: PolicyMetadata, config: ControllerConfig) -> None:
    """Raise ConfigError when the policy cannot drive this controller."""
    unknown = [j for j in metadata.joint_names if j not in config.joint_names]
    if unknown:
        raise ConfigError(
            f'policy joint {unknown[0]!r} is not among the controller joint_names '
            f'{list(config.joint_names)}')
    if abs(metadata.control_rate_hz - config.control_rate_hz) > \
            RATE_TOLERANCE * metadata.control_rate_hz:
        raise ConfigError(
            f'parameter control_rate_hz {config.control_rate_hz:g} differs from the rate the '
            f'policy was trained at ({metadata.control_rate_hz:g} Hz)')


class PolicyController:
    """Owns the per-tick decision: track, ramp, hold or stay silent."""

    def __init__(self, config: ControllerConfig, runtime: PolicyRuntime) -> None:
        meta = runtime.policy.metadata
        check_policy_fits(meta, config)
        self.config = config
        self.runtime = runtime
        obs = meta.observation
        required = list(config.joint_names) + [j for j in obs.joints
                                               if j not in config.joint_names]
        self.state = JointStateCache(required)
        index = {name: i for i, name in enumerate(required)}
        self._ctrl_idx = np.arange(len(config.joint_names))
        self._act_idx = np.array([config.joint_names.index(j) for j in meta.joint_names])
        obs_idx = np.array([index[j] for j in obs.joints])
        # further inputs (e.g. a goal pose): each topic keeps its last value, no age watchdog
        self.inputs = {extra.topic: JointStateCache(extra.joints) for extra in obs.extra}
        self._obs_sources = []
        for topic, field, joints in obs.parts:
            cache = self.state if topic is None else self.inputs[topic]
            idx = obs_idx if topic is None else np.arange(len(joints))
            self._obs_sources.append(
                (cache.position if field is StateField.POSITION else cache.velocity, idx))
        self._obs_blocks = [np.zeros(len(idx)) for _, idx in self._obs_sources]
        self.safety = SafetyFilter(config.limits, config.period_s)
        n = len(config.joint_names)
        self._start = np.zeros(n)
        self._target = np.zeros(n)
        self._previous = np.zeros(n)
        self._command = np.zeros(n)
        self._velocity = np.zeros(n) if config.publish_velocities else None
        self._hold = np.zeros(n)
        self._track_command = Command(self._command, self._velocity, hold=False)
        self._hold_command_msg = Command(
            self._hold, np.zeros(n) if config.publish_velocities else None, hold=True)
        # the policy drives every controller joint in controller order: no scatter needed
        self._drives_all = np.array_equal(self._act_idx, np.arange(n))
        self._timeout_ns = int(config.state_timeout_s * 1e9)
        self._ramp_start_ns = 0
        self._stepped_ns: int | None = None   # when the runtime last stepped (this run)
        self.mode = Mode.INACTIVE
        self.estopped = False
        self.last_fault: StateFault | None = None
        self.state_age_at_tick_ns: int | None = None  # age of the oldest joint used last tick
        self.hold_reason = ''      # why the last tick repeated the last command ('' = it did not)
        self.ood = OodMonitor.of_metadata(obs, meta.extra)    # None: no training statistics
        self.ood_reading: OodReading | None = None
        self.ood_ticks = 0             # ticks over ood_hold_z (or OOD_REPORT_Z when it is off)
        self.ood_outside_ticks = 0     # ticks with an input outside its training range
        self.ood_window_max_z, self.ood_window_column = 0.0, ''

    @property
    def counts(self) -> dict[Intervention, int]:
        return self.safety.counts

    # -- inputs --------------------------------------------------------------------------
    def on_joint_state(self, names, position: np.ndarray, velocity: np.ndarray,
                       now_ns: int) -> None:
        """Merge a JointState; non-finite values are counted and invalidate those joints."""
        bad = self.state.update(names, position, velocity, now_ns)
        if bad:
            self.counts[Intervention.NONFINITE_STATE] += 1

    def on_input(self, topic: str, names, position: np.ndarray, velocity: np.ndarray,
                 now_ns: int) -> None:
        """Merge a message of a further observed topic (``metadata.observation.extra``)."""
        if self.inputs[topic].update(names, position, velocity, now_ns):
            self.counts[Intervention.NONFINITE_STATE] += 1

    def _input_fault(self, now_ns: int) -> StateFault | None:
        """A further input never received (missing joint) or holding non-finite values."""
        for cache in self.inputs.values():
            fault = cache.fault(now_ns, NO_TIMEOUT_NS)
            if fault is not None:
                return fault if fault is StateFault.NONFINITE_STATE else StateFault.MISSING_JOINT
        return None

    # -- lifecycle -----------------------------------------------------------------------
    def activate(self) -> None:
        self.mode = Mode.ESTOPPED if self.estopped else Mode.WAITING

    def deactivate(self) -> Command | None:
        """Leave the active state: one hold at the measured pose (unless e-stopped)."""
        was = self.mode
        self.mode = Mode.INACTIVE
        if was in (Mode.INACTIVE, Mode.ESTOPPED):
            return None
        return self._hold_command()

    def estop(self) -> Command | None:
        """Latch the e-stop; returns the one hold to publish (None when already latched)."""
        if self.estopped:
            return None
        self.counts[Intervention.ESTOP] += 1
        self.estopped = True
        was = self.mode
        if was is not Mode.INACTIVE:
            self.mode = Mode.ESTOPPED
        return None if was is Mode.INACTIVE else self._hold_command()

    def reset_estop(self) -> bool:
        """Clear the latch; a run restarts with a fresh ramp-in. False when not latched."""
        if not self.estopped:
            return False
        self.estopped = False
        if self.mode is Mode.ESTOPPED:
            self.mode = Mode.WAITING
        return True

    # -- the tick ------------------------------------------------------------------------
    def tick(self, now_ns: int) -> Command | None:
        mode = self.mode
        if mode in (Mode.INACTIVE, Mode.ESTOPPED):
            return None
        fault = self.state.fault(now_ns, self._timeout_ns)
        if fault is None and self.inputs:
            fault = self._input_fault(now_ns)
        if fault is not None:
            self.last_fault = fault
            if mode in (Mode.RAMPING, Mode.RUNNING):
                if fault is not StateFault.NONFINITE_STATE:  # already counted per message
                    self.counts[Intervention(fault.value)] += 1
                self.mode = Mode.HOLDING
                return self._hold_command()
            return None
        if mode in (Mode.WAITING, Mode.HOLDING):
            self._start_run(now_ns)
        for dest, (source, idx) in zip(self._obs_blocks, self._obs_sources):
            np.take(source, idx, out=dest)
        self.state_age_at_tick_ns = now_ns - self.state.oldest_stamp_ns
        # A late tick reads the policy's chunks at the tick that is due (see runtime.step).
        ticks = max(1, round((now_ns - self._stepped_ns) * self.config.control_rate_hz / 1e9)) \
            if self._stepped_ns is not None else 1
        self._stepped_ns = now_ns
        if self.ood is not None and self._out_of_data():
            return self._hold_last(now_ns, Intervention.OUT_OF_DATA)
        action = self.runtime.step(self._obs_blocks, ticks, self._lookahead_ticks())
        if action is None:
            self.hold_reason = self.runtime.hold_reason
            return self._hold_last(now_ns, Intervention.NO_CHUNK)
        self.hold_reason = ''
        target = self._target
        if self._drives_all:
            target[:] = action
        else:
            target[:] = self._start              # joints the policy does not drive stay put
            target[self._act_idx] = action
        if self.mode is Mode.RAMPING:
            fraction = ramp_fraction((now_ns - self._ramp_start_ns) / 1e9, self.config.ramp_in_s)
            if fraction >= 1.0:
                self.mode = Mode.RUNNING
            else:
                ramp_in(self._start, target, fraction, out=target)
        command = self.safety.apply(target, self._previous, out=self._command)
        if self._velocity is not None:
            np.subtract(command, self._previous, out=self._velocity)
            self._velocity *= self.config.control_rate_hz
        self._previous[:] = command
        return self._track_command

    def _out_of_data(self) -> bool:
        """Read the OOD monitor; True when ood_hold_z is set and the frame exceeds it."""
        reading = self.ood_reading = self.ood.read(self._obs_blocks)
        limit = self.config.ood_hold_z
        if reading.max_z > (limit or OOD_REPORT_Z):
            self.ood_ticks += 1
        if reading.outside_range:
            self.ood_outside_ticks += 1
        if reading.max_z > self.ood_window_max_z:
            self.ood_window_max_z, self.ood_window_column = reading.max_z, reading.column
        if limit and reading.max_z > limit:
            self.hold_reason = (f'observation outside the training data: {reading.column} is '
                                f'{reading.max_z:.1f} std from its mean (ood_hold_z {limit:g})')
            return True
        return False

    def take_ood_window(self) -> tuple[float, str]:
        """The largest z-score (and its column) since the last call; resets the window."""
        window = (self.ood_window_max_z, self.ood_window_column)
        self.ood_window_max_z, self.ood_window_column = 0.0, ''
        return window

    def _hold_last(self, now_ns: int, why: Intervention) -> Command:
        """Repeat the last command, at rest, counted as ``why`` (reason in ``hold_reason``).

        Why: no chunk covers this tick (asynchronous inference), or the observation left the
        training data (ood_hold_z). A ramp-in starts over from its beginning when the policy
        takes over again.
        """
        self.counts[why] += 1
        if self.mode is Mode.RAMPING:
            self._ramp_start_ns = now_ns
        self._command[:] = self._previous
        if self._velocity is not None:
            self._velocity[:] = 0.0
        return self._track_command

    def _lookahead_ticks(self) -> float:
        """How far ahead to read the policy's chunk, in control periods.

        lookahead_s < 0: the age of the joint state now (since it was received) plus the last
        inference time (synchronous inference), i.e. how old the observation is when the
        target leaves the node.
        """
        horizon = self.runtime.horizon
        if horizon == 1:
            return 0.0
        seconds = self.config.lookahead_s
        if seconds < 0:     # asynchronous chunks are read from their observation tick already
            inference = 0.0 if self.runtime.asynchronous else self.runtime.inference_s
            seconds = max(0, self.state_age_at_tick_ns) / 1e9 + inference
        return min(seconds * self.config.control_rate_hz, horizon - 1.0)

    def _start_run(self, now_ns: int) -> None:
        self.runtime.reset()
        self._stepped_ns = None
        self.last_fault = None
        np.take(self.state.position, self._ctrl_idx, out=self._start)
        self._previous[:] = self._start
        self._ramp_start_ns = now_ns
        self.mode = Mode.RAMPING

    def _hold_command(self) -> Command | None:
        """Hold at the last finite measured pose; None when the pose was never known."""
        np.take(self.state.position, self._ctrl_idx, out=self._hold)
        if not np.isfinite(self._hold).all():
            return None
        return self._hold_command_msg

    def state_age_ns(self, now_ns: int) -> int | None:
        age = self.state.oldest_age_ns(now_ns)
        return age if math.isfinite(age) and age < 10**15 else None
