"""policy_node: a lifecycle node that runs a BC policy and streams JointTrajectory targets.

Topics (relative, so they remap):
  sub  joint_states            sensor_msgs/JointState   measured state (full or partial messages)
  sub  <extra input topics>    sensor_msgs/JointState   further observed inputs the policy names
                                                        in its metadata (e.g. a goal pose)
  sub  estop                   std_msgs/Bool            true latches the e-stop
  pub  joint_trajectory        trajectory_msgs/JointTrajectory  to joint_trajectory_controller
  pub  ~/target_joint_states   sensor_msgs/JointState   commanded targets (RViz ghost robot)
  pub  /diagnostics            diagnostic_msgs/DiagnosticArray  loop timing and interventions
Services:
  ~/reset_estop                std_srvs/Trigger         clears a latched e-stop
"""
from __future__ import annotations

import sys
import time

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.executors import Executor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from il_policy_node.errors import ConfigError, IlPolicyError, StateError
from il_policy_node.ros.conversions import (
    JointStateMessage,
    TrajectoryMessages,
    joint_state_arrays,
)
from il_policy_node.ros.diagnostics import node_status
from il_policy_node.ros.lifecycle_guard import guard_transitions
from il_policy_node.ros.params import ParamSpec, declare_all, default_of, read_all
from il_policy_node.ros.qos import (
    COMMAND_QOS,
    ESTOP_QOS,
    INPUT_QOS,
    JOINT_STATE_QOS,
    MONITOR_QOS,
)
from il_policy_node.ros.spin import spin_node
from il_policy_node.runtime.artifact import load_policy
from il_policy_node.runtime.chunks import ChunkOptions
from il_policy_node.runtime.controller import NO_TIMEOUT_NS, Command, Mode, PolicyController
from il_policy_node.runtime.controller_config import ControllerConfig
from il_policy_node.runtime.policy_runtime import PolicyRuntime
from il_policy_node.runtime.timing import LoopStats

HOLD_ACK_TIMEOUT_S = 1.0


def _d(name: str):
    """The default of a ControllerConfig field: the parameter's default."""
    return default_of(ControllerConfig, name)


PARAMETERS = (
    ParamSpec('model_path', '', 'Path of policy.pt (TorchScript) or policy.onnx (ONNX), with '
              'its .sha256.'),
    ParamSpec('joint_names', Parameter.Type.STRING_ARRAY,
              'Joints of the trajectory controller; every command lists all of them.'),
    ParamSpec('control_rate_hz', _d('control_rate_hz'),
              "Control loop rate; must equal the policy's rate.", float_range=(0.0, 10000.0)),
    ParamSpec('state_timeout_s', _d('state_timeout_s'),
              'Joint state older than this stops the run (hold).', float_range=(0.0, 10.0)),
    ParamSpec('ramp_in_s', _d('ramp_in_s'),
              'Blend from the measured pose into the policy over this time.',
              float_range=(0.0, 60.0)),
    ParamSpec('position_lower_limits', Parameter.Type.DOUBLE_ARRAY,
              'Per joint (joint_names order); empty = from robot_description.'),
    ParamSpec('position_upper_limits', Parameter.Type.DOUBLE_ARRAY,
              'Per joint (joint_names order); empty = from robot_description.'),
    ParamSpec('max_velocity_rad_s', Parameter.Type.DOUBLE_ARRAY,
              'Bounds the change per tick; one value for all joints or one per joint; '
              'empty = URDF velocity limits.'),
    ParamSpec('robot_description', '', 'URDF XML; limits come from it where not given.'),
    ParamSpec('publish_velocities', _d('publish_velocities'),
              'Add velocities (cubic interpolation in the controller), ending at rest.'),
    ParamSpec('chunk_execution', default_of(ChunkOptions, 'execution'),
              'Action chunks (horizon > 1): ensemble (temporal ensembling) or chunk.'),
    ParamSpec('ensemble_decay', default_of(ChunkOptions, 'ensemble_decay'),
              'Temporal ensembling weight exp(-decay * i).', float_range=(0.0, 10.0)),
    ParamSpec('replan_every', default_of(ChunkOptions, 'replan_every'),
              'chunk mode: query the policy every N ticks (0 = horizon).',
              int_range=(0, 10000)),
    ParamSpec('inference', default_of(ChunkOptions, 'inference'),
              'sync: inference in the tick; async: on a background thread, its chunk spliced '
              'in when ready (the tick never waits); auto: async when the warm-up inference '
              'takes more than a quarter of the period.'),
    ParamSpec('ood_hold_z', _d('ood_hold_z'),
              'Hold the last command while an observed input is more than this many standard '
              "deviations from its training mean (the artifact's statistics); 0 = off "
              '(counted on /diagnostics only).', float_range=(0.0, 1000.0)),
    ParamSpec('lookahead_s', _d('lookahead_s'),
              'Read action chunks this much later (latency compensation); < 0 = measured: '
              'state age + inference time.', float_range=(-1.0, 10.0)),
    ParamSpec('warmup_iterations', _d('warmup_iterations'),
              'Inference runs at configure, before the first tick.', int_range=(0, 10000)),
    ParamSpec('torch_threads', 1, 'Intra-op threads for inference, torch or onnxruntime (1 '
              'suits small models at 50-200 Hz).',
              int_range=(1, 256)),
    ParamSpec('target_state_rate_hz', 50.0, 'Rate of ~/target_joint_states (0 = off).',
              float_range=(0.0, 10000.0)),
    ParamSpec('diagnostics_period_s', 1.0, 'Period of /diagnostics (each report covers the '
              'ticks since the last one).', float_range=(0.01, 3600.0)),
)


class PolicyNode(LifecycleNode):
    """Loads the policy at configure, streams safe targets while active."""

    def __init__(self, *, loop_stats_capacity: int = 4096, **kwargs) -> None:
        super().__init__('policy_node', **kwargs)
        guard_transitions(self)
        self._stats_capacity = loop_stats_capacity
        errors = declare_all(self, PARAMETERS)
        # Refused start-up overrides by parameter name, reported at configure until replaced.
        self._param_errors = {e.split(':', 1)[0].removeprefix('parameter '): e for e in errors}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._controller: PolicyController | None = None
        self._config: ControllerConfig | None = None
        self._stats: LoopStats | None = None
        self._timer = None
        self._state_sub = None
        self._input_subs: list = []
        self._command_pub = None
        self._target_pub = None
        self._messages: TrajectoryMessages | None = None
        self._targets: JointStateMessage | None = None
        self._target_every = 0
        self._estop_latched_unconfigured = False
        self._bad_state_messages = 0
        self.create_subscription(Bool, 'estop', self._on_estop, ESTOP_QOS)
        self.create_service(Trigger, '~/reset_estop', self._on_reset_estop)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', MONITOR_QOS)
        period = self.get_parameter('diagnostics_period_s').value
        self.create_timer(float(period), self._publish_diagnostics)

    @property
    def loop_stats(self) -> LoopStats | None:
        """Timing of the control loop (None until configured); windows reset at diagnostics."""
        return self._stats

    @property
    def intervention_counts(self) -> dict[str, int]:
        """The safety layer's counts by name, as on /diagnostics ({} until configured)."""
        if self._controller is None:
            return {}
        return {kind.value: n for kind, n in self._controller.counts.items()}

    # -- lifecycle -----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if self._param_errors:
                raise ConfigError('; '.join(self._param_errors.values()))
            params = read_all(self, PARAMETERS)
            config = ControllerConfig.from_parameters(params)
            torch.set_num_threads(int(params['torch_threads']))
            policy = load_policy(config.model_path, threads=int(params['torch_threads']))
            runtime = PolicyRuntime(policy, config.chunks)
            controller = PolicyController(config, runtime)
            runtime.warmup(config.warmup_iterations)
        except (IlPolicyError, RuntimeError, OSError) as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        if self._estop_latched_unconfigured:
            controller.estop()
        self._config, self._controller = config, controller
        self._stats = LoopStats(int(round(config.period_s * 1e9)), self._stats_capacity)
        self._messages = TrajectoryMessages(config.joint_names, config.period_s,
                                            config.publish_velocities)
        self._targets = JointStateMessage(config.joint_names)
        target_rate = float(params['target_state_rate_hz'])
        self._target_every = max(1, round(config.control_rate_hz / target_rate)) \
            if target_rate > 0 else 0
        self._command_pub = self.create_publisher(JointTrajectory, 'joint_trajectory',
                                                  COMMAND_QOS)
        self._target_pub = self.create_publisher(JointState, '~/target_joint_states',
                                                 MONITOR_QOS)
        self._state_sub = self.create_subscription(JointState, 'joint_states',
                                                   self._on_joint_state, JOINT_STATE_QOS)
        meta = policy.metadata
        self._input_subs = [
            self.create_subscription(JointState, extra.topic, self._input_callback(extra.topic),
                                     INPUT_QOS) for extra in meta.observation.extra]
        self.get_logger().info(
            f'configured: {policy.path} (sha256 {policy.sha256[:12]}...), '
            f'{len(meta.joint_names)} action joints, observation {meta.observation.size}, '
            f'horizon {meta.action_horizon}, {config.control_rate_hz:g} Hz, inference '
            f'{"async" if runtime.asynchronous else "sync"} '
            f'({runtime.inference_s * 1e3:.2f} ms at warm-up)'
            + ''.join(f', input {e.topic}' for e in meta.observation.extra))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._controller.activate()
        self._stats.restart()
        self._timer = self.create_timer(self._config.period_s, self._tick)
        self.get_logger().info('active: waiting for fresh joint_states, then ramping in over '
                               f'{self._config.ramp_in_s:g} s')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_loop()
        self.get_logger().info('inactive: holding at the measured pose')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_loop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def stop_loop(self) -> None:
        """Cancel the tick and publish the one hold message (if a run was under way)."""
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self._controller is not None:
            self._publish(self._controller.deactivate())

    def hold_before_exit(self, executor: Executor | None = None) -> None:
        """On Ctrl-C / SIGTERM: the hold, delivered to the controller before the node goes.

        Destroying the publisher right after publishing can drop the message; waiting for the
        reliable subscribers' acknowledgment (bounded) makes the hold arrive.
        """
        self.stop_loop()
        if self._command_pub is not None:
            self._command_pub.wait_for_all_acked(Duration(seconds=HOLD_ACK_TIMEOUT_S))

    def destroy_node(self) -> None:
        """Stop the inference thread (a process must not end while it computes), then the node."""
        if self._controller is not None:
            self._controller.runtime.close()
        super().destroy_node()

    def _release(self) -> None:
        for sub in (self._state_sub, *self._input_subs):
            if sub is not None:
                self.destroy_subscription(sub)
        for pub in (self._command_pub, self._target_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        if self._controller is not None:
            self._controller.runtime.close()
            if self._controller.estopped:
                self._estop_latched_unconfigured = True
        self._state_sub = self._command_pub = self._target_pub = None
        self._input_subs = []
        self._controller = self._config = self._stats = None
        self._messages = self._targets = None

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        if self._controller is None:
            # These values passed their descriptors: they replace refused start-up overrides.
            for param in params:
                self._param_errors.pop(param.name, None)
            return SetParametersResult(successful=True)
        return SetParametersResult(
            successful=False,
            reason='parameters are read at configure; clean up the node before changing them')

    # -- inputs --------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        names, position, velocity = joint_state_arrays(msg)
        try:
            self._controller.on_joint_state(names, position, velocity, time.monotonic_ns())
        except StateError as exc:
            self._bad_state_messages += 1
            self.get_logger().warn(f'joint_states message ignored: {exc}',
                                   throttle_duration_sec=1.0)

    def _input_callback(self, topic: str):
        def on_input(msg: JointState) -> None:
            names, position, velocity = joint_state_arrays(msg)
            try:
                self._controller.on_input(topic, names, position, velocity,
                                          time.monotonic_ns())
            except StateError as exc:
                self._bad_state_messages += 1
                self.get_logger().warn(f'{topic} message ignored: {exc}',
                                       throttle_duration_sec=1.0)
        return on_input

    def _on_estop(self, msg: Bool) -> None:
        if not msg.data:
            return
        if self._controller is None:
            if not self._estop_latched_unconfigured:
                self.get_logger().error('E-STOP latched (node not configured)')
            self._estop_latched_unconfigured = True
            return
        if self._controller.estopped:
            return
        self._publish(self._controller.estop())
        self.get_logger().error('E-STOP latched: holding; call ~/reset_estop to resume')

    def _on_reset_estop(self, request: Trigger.Request,
                        response: Trigger.Response) -> Trigger.Response:
        was = self._estop_latched_unconfigured
        self._estop_latched_unconfigured = False
        if self._controller is not None:
            was = self._controller.reset_estop() or was
        response.success = was
        response.message = ('e-stop reset: the next run ramps in from the measured pose' if was
                            else 'e-stop was not latched')
        if was:
            self.get_logger().warn(response.message)
        return response

    # -- the control tick ----------------------------------------------------------------
    def _tick(self) -> None:
        start = time.monotonic_ns()
        stats, controller = self._stats, self._controller
        stats.tick_started(start)
        command = controller.tick(start)
        if command is None:
            return
        self._publish(command)
        stats.tick_finished(time.monotonic_ns() - start, controller.state_age_at_tick_ns)
        if command.hold:
            self._report_hold()
        elif self._target_every and stats.ticks % self._target_every == 0:
            self._publish_targets(command)

    def _publish(self, command: Command | None) -> None:
        if command is None or self._command_pub is None:
            return
        self._command_pub.publish(
            self._messages.fill(command.positions, command.velocities, command.hold))

    def _publish_targets(self, command: Command) -> None:
        self._targets.positions[:] = command.positions
        self._targets.msg.header.stamp = self.get_clock().now().to_msg()
        self._target_pub.publish(self._targets.msg)

    def _stale_joints(self) -> list[str]:
        """Robot joints too old or invalid, then joints of inputs never received (topic:joint)."""
        now = time.monotonic_ns()
        stale = self._controller.state.stale_joints(now, int(self._config.state_timeout_s * 1e9))
        for topic, cache in self._controller.inputs.items():
            stale += [f'{topic}:{j}' for j in cache.stale_joints(now, NO_TIMEOUT_NS)]
        return stale

    def _report_hold(self) -> None:
        self.get_logger().warn(
            f'holding at the measured pose: {self._controller.last_fault.value} '
            f'(joints {self._stale_joints()}); resumes with a new ramp-in when joint_states '
            'are fresh')

    # -- monitoring ----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        controller, stats = self._controller, self._stats
        values: dict[str, object] = {'bad_joint_state_messages': self._bad_state_messages}
        if controller is None:
            level, message = 'warn', 'unconfigured'
            if self._estop_latched_unconfigured:
                level, message = 'error', 'unconfigured, e-stop latched'
        else:
            mode = controller.mode
            summary = stats.summary()
            stats.reset_window()
            age = controller.state_age_ns(time.monotonic_ns())
            values.update({
                'mode': mode.value,
                'model_sha256': controller.runtime.policy.sha256[:16],
                'backend': controller.runtime.policy.backend,
                'loop_rate_hz': summary.rate_hz,
                'target_rate_hz': self._config.control_rate_hz,
                'ticks': summary.ticks,
                'missed_ticks': summary.missed_ticks,
                'overruns': summary.overruns,
                'period_error_p50_us': summary.period_error_us.p50,
                'period_error_p99_us': summary.period_error_us.p99,
                'period_error_max_us': summary.period_error_us.max,
                'compute_p50_us': summary.compute_us.p50,
                'compute_p99_us': summary.compute_us.p99,
                'state_age_p50_us': summary.state_age_us.p50,
                'state_age_p99_us': summary.state_age_us.p99,
                'state_age_now_ms': -1.0 if age is None else age / 1e6,
                'last_fault': controller.last_fault.value if controller.last_fault else '',
                'stale_joints': ','.join(self._stale_joints()[:10]),
                'estop_latched': controller.estopped,
                'inference': 'async' if controller.runtime.asynchronous else 'sync',
                'inference_last_ms': controller.runtime.inference_s * 1e3,
                'inferences': controller.runtime.inferences,
                'late_inferences': controller.runtime.late_inferences,
                'hold_reason': controller.hold_reason,
            })
            if controller.ood is None:
                values['ood'] = 'no training statistics in the artifact'
            else:
                max_z, column = controller.take_ood_window()
                values.update({'ood_max_z': round(max_z, 2), 'ood_column': column,
                               'ood_ticks': controller.ood_ticks,
                               'ood_outside_range_ticks': controller.ood_outside_ticks})
            values.update({f'count_{kind.value}': n for kind, n in controller.counts.items()})
            if controller.estopped:
                level, message = 'error', 'e-stop latched'
            elif controller.hold_reason and self._timer is not None:
                level, message = 'warn', f'holding the last command: {controller.hold_reason}'
            elif mode in (Mode.HOLDING, Mode.WAITING) and self._timer is not None:
                level = 'warn'
                message = f'{mode.value}: {controller.last_fault.value}' \
                    if controller.last_fault else f'{mode.value} for joint_states'
            else:
                level, message = 'ok', mode.value
        self._diag_pub.publish(node_status(self, level=level, message=message, values=values))


def main(args=None) -> None:
    # The hold goes out on Ctrl-C / SIGTERM too, before rclpy shuts down.
    sys.exit(spin_node(PolicyNode, args, before_shutdown=PolicyNode.hold_before_exit))


if __name__ == '__main__':
    main()
