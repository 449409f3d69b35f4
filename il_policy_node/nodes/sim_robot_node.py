"""sim_robot: a MuJoCo robot standing in for ros2_control + hardware + joint_trajectory_controller.

Publishes ``joint_states`` (positions, velocities, efforts) at ``publish_rate_hz``, follows
trajectory_msgs/JointTrajectory on ``joint_trajectory_controller/joint_trajectory`` with the
controller's semantics (il_policy_node/sim/trajectory.py; a rejected message is logged with its
reason and ignored), publishes the model's URDF on ``robot_description`` (transient local) and
its status on /diagnostics. Service ``~/reset`` (std_srvs/Trigger) teleports the robot to the
``initial_positions`` parameter (empty = the model's home), at rest, trajectory cleared.

Physics runs in real time: each timer tick advances it to the elapsed wall time times
``real_time_factor``. With ``publish_clock`` the simulated time is published on /clock and
stamps the joint states (run the other nodes with use_sim_time); otherwise stamps are the
node clock and trajectory start stamps are converted from it.
"""
from __future__ import annotations

import array
import sys
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from il_policy_node.errors import ConfigError
from il_policy_node.robots.models import Obstacle, urdf_path
from il_policy_node.ros.conversions import JointStateMessage, seconds
from il_policy_node.ros.diagnostics import node_status
from il_policy_node.ros.params import ParamSpec, declare_and_read
from il_policy_node.ros.qos import COMMAND_QOS, LATCHED_QOS
from il_policy_node.ros.spin import spin_node
from il_policy_node.sim.physics import RobotSimulation
from il_policy_node.sim.trajectory import TrajectoryCommand, TrajectoryPoint, TrajectoryRejected

PARAMETERS = (
    ParamSpec('model', 'arm6', 'Robot model (il_policy_node/robots/<model>.xml and .urdf).'),
    ParamSpec('publish_rate_hz', 500.0, 'joint_states rate; physics advances at each publish.',
              float_range=(1.0, 5000.0)),
    ParamSpec('obstacle', Parameter.Type.DOUBLE_ARRAY,
              'A post in the scene the links collide with: [x, y, z, radius, half_height] (m, '
              'world frame); empty = none (the detour task sets it).'),
    ParamSpec('initial_positions', Parameter.Type.DOUBLE_ARRAY,
              'Start pose and ~/reset pose, in the model joint order; empty = home. '
              'Settable at runtime (used by the next ~/reset).'),
    ParamSpec('seed', 0, 'Seed of the joint-state position noise (nothing else is random).',
              int_range=(0, 2**31 - 1)),
    ParamSpec('position_noise_std', 0.0, 'Gaussian noise added to published positions (rad).',
              float_range=(0.0, 1.0)),
    ParamSpec('publish_clock', False,
              'Publish the simulated time on /clock and stamp joint_states with it.'),
    ParamSpec('real_time_factor', 1.0, 'Simulated seconds per wall-clock second.',
              float_range=(0.01, 100.0)),
    ParamSpec('diagnostics_period_s', 1.0, 'Period of the /diagnostics status.',
              float_range=(0.05, 60.0)),
)
LIVE_PARAMETERS = ('initial_positions',)
MAX_CATCH_UP_S = 0.1        # wall time simulated at most per tick; beyond it, time is dropped

def command_from_msg(msg: JointTrajectory, start_time: float) -> TrajectoryCommand:
    """Plain data for the follower; ``start_time`` already on the simulation clock."""
    return TrajectoryCommand(
        joint_names=list(msg.joint_names), start_time=start_time,
        points=[TrajectoryPoint(positions=p.positions, velocities=p.velocities,
                                accelerations=p.accelerations,
                                time_from_start=seconds(p.time_from_start))
                for p in msg.points])


class SimRobotNode(Node):
    """MuJoCo physics of one model, stepped in real time, behind the ros2_control interfaces."""

    def __init__(self, node_name: str = 'sim_robot', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        params = declare_and_read(self, PARAMETERS)
        self.sim = RobotSimulation(params['model'], seed=int(params['seed']),
                                   position_noise_std=float(params['position_noise_std']),
                                   obstacle=Obstacle.of(params['obstacle'] or []))
        self.joint_names = self.sim.joint_names
        self.sim.reset(self._initial_positions(params['initial_positions']))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._rtf = float(params['real_time_factor'])
        self._publish_clock = bool(params['publish_clock'])
        self.accepted = 0
        self.rejected = 0
        self.last_rejection = ''
        self.resets = 0

        self._state = JointStateMessage(self.joint_names, velocities=True)
        self._state.msg.effort = array.array('d', bytes(8 * len(self.joint_names)))
        self._efforts = np.frombuffer(self._state.msg.effort, np.float64)
        self._clock_msg = Clock()
        self._state_pub = self.create_publisher(JointState, 'joint_states', 10)
        self._clock_pub = self.create_publisher(Clock, '/clock', 10) \
            if self._publish_clock else None
        self._description_pub = self.create_publisher(String, 'robot_description',
                                                      LATCHED_QOS)
        self._description_pub.publish(String(data=urdf_path(params['model']).read_text()))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(JointTrajectory, 'joint_trajectory_controller/joint_trajectory',
                                 self._on_trajectory, COMMAND_QOS)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self._restart_time_base()
        self._rtf_mark = (time.monotonic(), self.sim.time)
        self.achieved_rtf = 0.0
        self.create_timer(1.0 / float(params['publish_rate_hz']), self._tick)
        self.create_timer(float(params['diagnostics_period_s']), self._publish_diagnostics)
        self.get_logger().info(
            f'model {params["model"]}: {len(self.joint_names)} joints, publishing at '
            f'{params["publish_rate_hz"]} Hz, real_time_factor {self._rtf}')

    # -- parameters -------------------------------------------------------------------------
    def _initial_positions(self, values: list[float]) -> list[float] | None:
        if not values:
            return None
        if len(values) != len(self.joint_names):
            raise ConfigError(f'initial_positions has {len(values)} values for '
                             f'{len(self.joint_names)} joints ({", ".join(self.joint_names)})')
        return [float(v) for v in values]

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name not in LIVE_PARAMETERS:
                return SetParametersResult(
                    successful=False,
                    reason=f'{param.name} is read at start-up only; restart the node')
            try:
                self._initial_positions(list(param.value or []))
            except (TypeError, ConfigError) as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- time -------------------------------------------------------------------------------
    def _restart_time_base(self) -> None:
        """Wall time and simulated time that correspond from now on."""
        self._wall0 = time.monotonic()
        self._sim0 = self.sim.time

    def _sim_start(self, msg: JointTrajectory) -> float:
        """The message's start stamp on the simulation clock (0.0 = now)."""
        stamp = msg.header.stamp
        if stamp.sec == 0 and stamp.nanosec == 0:
            return 0.0
        if self._publish_clock:
            return seconds(stamp)
        ahead = (Time.from_msg(stamp) - self.get_clock().now()).nanoseconds * 1e-9
        return self.sim.time + ahead * self._rtf

    # -- callbacks ----------------------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            self.sim.command(command_from_msg(msg, self._sim_start(msg)))
        except TrajectoryRejected as exc:
            self.rejected += 1
            self.last_rejection = str(exc)
            self.get_logger().error(f'trajectory rejected: {exc}')
            return
        self.accepted += 1

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            pose = self._initial_positions(
                list(self.get_parameter('initial_positions').value or []))
        except ValueError as exc:
            response.success, response.message = False, str(exc)
            return response
        self.sim.reset(pose)
        self.resets += 1
        self._publish_state()
        response.success = True
        response.message = 'reset to ' + ('home' if pose is None else str(pose))
        self.get_logger().info(response.message)
        return response

    def _tick(self) -> None:
        now = time.monotonic()
        target = self._sim0 + (now - self._wall0) * self._rtf
        behind = target - self.sim.time
        if behind > MAX_CATCH_UP_S * self._rtf:         # stalled: drop the lost time
            self._sim0 -= behind - MAX_CATCH_UP_S * self._rtf
            target = self._sim0 + (now - self._wall0) * self._rtf
        self.sim.step_to(target)
        self._publish_state()

    def _publish_state(self) -> None:
        state = self.sim.joint_states()
        msg = self._state.msg
        if self._publish_clock:
            nanoseconds = int(round(self.sim.time * 1e9))
            stamp = self._clock_msg.clock
            stamp.sec, stamp.nanosec = nanoseconds // 10**9, nanoseconds % 10**9
            self._clock_pub.publish(self._clock_msg)
            msg.header.stamp = stamp
        else:
            msg.header.stamp = self.get_clock().now().to_msg()
        self._state.positions[:] = state.positions
        self._state.velocities[:] = state.velocities
        self._efforts[:] = state.efforts
        self._state_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        wall, sim_time = time.monotonic(), self.sim.time
        wall0, sim0 = self._rtf_mark
        if wall > wall0 and sim_time >= sim0:
            self.achieved_rtf = (sim_time - sim0) / (wall - wall0)
        self._rtf_mark = (wall, sim_time)
        level, message = 'ok', 'running'
        if self.achieved_rtf < 0.5 * self._rtf:
            level, message = 'warn', 'physics slower than real_time_factor'
        values = {
            'model': self.sim.info.name, 'sim_time_s': sim_time,
            'real_time_factor': self._rtf, 'real_time_factor_achieved': self.achieved_rtf,
            'trajectories_accepted': self.accepted, 'trajectories_rejected': self.rejected,
            'last_rejection': self.last_rejection, 'limit_violations': self.sim.limit_violations,
            'trajectory_active': self.sim.follower.active(sim_time), 'resets': self.resets,
        }
        self._diagnostics_pub.publish(node_status(self, level=level, message=message,
                                                  values=values))


def main(args=None) -> None:
    sys.exit(spin_node(SimRobotNode, args))


if __name__ == '__main__':
    main()
