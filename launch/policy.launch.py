"""Run policy_node (a lifecycle node) and, by default, configure and activate it.

  ros2 launch il_policy_node policy.launch.py model_path:=/path/policy.pt
  ros2 launch il_policy_node policy.launch.py params_file:=my_robot.yaml
      robot_description_file:=my_robot.urdf ghost:=true rviz:=true   (one line)

Arguments are listed by ``ros2 launch il_policy_node policy.launch.py --show-args``. Commands go
to ``<controller_name>/joint_trajectory``, resolved in the node's namespace (so
``/joint_trajectory_controller/joint_trajectory`` without a namespace; give an absolute
controller_name such as ``/arm_controller`` to escape the namespace). With ``autostart:=false``
the node waits unconfigured for a lifecycle manager (``ros2 lifecycle set``).

The ghost robot: a second robot_state_publisher in namespace ``target`` turns the commanded
targets (``policy_node/target_joint_states``) into TF frames prefixed ``target/``, attached to
the measured robot's root link, and il_policy.rviz draws them as a translucent robot.
Works with the launch_ros API of Humble, Jazzy and Kilted.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.conditions import evaluate_condition_expression
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

PACKAGE = 'il_policy_node'
NODE_NAME = 'policy_node'
GHOST_NAMESPACE = 'target'
GHOST_FRAME_PREFIX = 'target/'


def share_file(*parts: str) -> str:
    """A file installed in the package's share directory (or in the source tree, uninstalled)."""
    try:
        share = get_package_share_directory(PACKAGE)
    except PackageNotFoundError:
        share = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(share, *parts)


ARGUMENTS = (
    ('model_path', '', 'Path of policy.pt; empty = model_path from params_file.'),
    ('params_file', share_file('config', 'policy.yaml'), 'Parameters of policy_node (YAML).'),
    ('namespace', '', 'Namespace of policy_node (and of its relative topics).'),
    ('use_sim_time', 'false', 'Use /clock (simulation) time.'),
    ('controller_name', 'joint_trajectory_controller',
     'joint_trajectory_controller instance; commands go to <controller_name>/joint_trajectory.'),
    ('autostart', 'true', 'Configure and activate policy_node at start-up.'),
    ('robot_description_file', '',
     'URDF file; its text becomes the robot_description parameter (limits come from it).'),
    ('ghost', 'false',
     'Publish the commanded pose as a ghost robot (TF prefix target/); needs '
     'robot_description_file.'),
    ('rviz', 'false', 'Start RViz with config/il_policy.rviz.'),
    ('log_level', 'info', 'Log level of policy_node.'),
)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=launch_setup)])


def launch_setup(context: LaunchContext) -> list:
    """The actions, from the launch arguments' values."""
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    def flag(name: str) -> bool:
        return evaluate_condition_expression(context, [LaunchConfiguration(name)])

    namespace = arg('namespace').strip('/')
    use_sim_time = flag('use_sim_time')
    overrides: dict = {'use_sim_time': use_sim_time}
    if arg('model_path'):
        overrides['model_path'] = text(os.path.expanduser(arg('model_path')))
    urdf = ''
    if arg('robot_description_file'):
        urdf = read_robot_description(os.path.expanduser(arg('robot_description_file')))
        overrides['robot_description'] = text(urdf)
    parameters = [os.path.expanduser(arg('params_file')), overrides] if arg('params_file') \
        else [overrides]

    node = LifecycleNode(
        package=PACKAGE, executable='policy_node', name=NODE_NAME, namespace=namespace,
        output='screen', parameters=parameters,
        remappings=[('joint_trajectory', controller_topic(arg('controller_name')))],
        arguments=['--ros-args', '--log-level', arg('log_level')])
    actions: list = [node]
    if flag('autostart'):
        actions += autostart_actions(node)
    if flag('ghost'):
        if not urdf:
            raise RuntimeError('ghost:=true needs robot_description_file:=<URDF file>')
        actions += ghost_actions(urdf, namespace, use_sim_time)
    if flag('rviz'):
        actions.append(Node(
            package='rviz2', executable='rviz2', name='rviz2', output='log',
            arguments=['-d', share_file('config', 'il_policy.rviz')],
            parameters=[{'use_sim_time': use_sim_time}]))
    return actions


def text(value: str) -> ParameterValue:
    """A string parameter as it is (launch_ros would otherwise parse it as YAML)."""
    return ParameterValue(value, value_type=str)


def controller_topic(controller_name: str) -> str:
    """The command topic of a joint_trajectory_controller (relative unless the name is not)."""
    name = controller_name.rstrip('/')
    if not name:
        raise RuntimeError('controller_name is empty')
    return f'{name}/joint_trajectory'


def autostart_actions(node: LifecycleNode) -> list:
    """Configure now; activate once configured; say so if configure fails."""
    def change_state(transition_id: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition_id))

    return [
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            entities=[LogInfo(msg='policy_node configured; activating'),
                      change_state(Transition.TRANSITION_ACTIVATE)])),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='unconfigured',
            entities=[LogInfo(msg='policy_node failed to configure (see its log); it stays '
                                  'unconfigured and publishes nothing')])),
        change_state(Transition.TRANSITION_CONFIGURE),
    ]


def ghost_actions(urdf: str, namespace: str, use_sim_time: bool) -> list:
    """robot_state_publisher of the commanded targets, attached to the measured robot."""
    root = urdf_root_link(urdf)
    targets = '/' + '/'.join(part for part in (namespace, NODE_NAME, 'target_joint_states')
                             if part)
    ghost_namespace = f'{namespace}/{GHOST_NAMESPACE}' if namespace else GHOST_NAMESPACE
    return [
        Node(package='robot_state_publisher', executable='robot_state_publisher',
             name='robot_state_publisher', namespace=ghost_namespace, output='log',
             parameters=[{'robot_description': text(urdf),
                          'frame_prefix': text(GHOST_FRAME_PREFIX),
                          'use_sim_time': use_sim_time}],
             remappings=[('joint_states', targets)]),
        # Identity transform: the ghost stands where the robot stands.
        Node(package='tf2_ros', executable='static_transform_publisher',
             name='ghost_root_tf', namespace=ghost_namespace, output='log',
             arguments=['--frame-id', root, '--child-frame-id', GHOST_FRAME_PREFIX + root],
             parameters=[{'use_sim_time': use_sim_time}]),
    ]


def read_robot_description(path: str) -> str:
    """The URDF text of a file; a clear error for a missing or non-URDF file."""
    try:
        with open(path, encoding='utf-8') as stream:
            text = stream.read()
    except OSError as exc:
        raise RuntimeError(f'robot_description_file: {exc}') from None
    urdf_root_link(text)
    return text


def urdf_root_link(urdf: str) -> str:
    """The link that is no joint's child."""
    try:
        robot = ElementTree.fromstring(urdf)
    except ElementTree.ParseError as exc:
        raise RuntimeError(f'robot_description_file is not valid XML: {exc}') from None
    if robot.tag != 'robot':
        raise RuntimeError(f'robot_description_file: root element is <{robot.tag}>, '
                           'not <robot> (run xacro first)')
    links = [link.get('name') for link in robot.findall('link')]
    children = {child.get('link') for child in robot.findall('joint/child')}
    roots = [link for link in links if link and link not in children]
    if len(roots) != 1:
        raise RuntimeError(f'robot_description_file: expected one root link, found {roots}')
    return roots[0]
