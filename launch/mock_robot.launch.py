"""Dry run without a robot: mock_robot (a kinematic stand-in) plus policy.launch.py.

  ros2 launch il_policy_node mock_robot.launch.py model_path:=/path/policy.pt

mock_robot simulates the joint_names of the params file, starting mid-way between the position
limits (or at zero), and follows the commands policy_node sends to the controller topic.
Every other argument is passed on to policy.launch.py.
"""
from __future__ import annotations

import os

import yaml
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY_LAUNCH = os.path.join(HERE, 'policy.launch.py')
SHARE = os.path.dirname(HERE)

ARGUMENTS = (
    ('model_path', '', 'Path of policy.pt; empty = model_path from params_file.'),
    ('params_file', os.path.join(SHARE, 'config', 'policy.yaml'),
     'Parameters of policy_node; mock_robot takes its joint_names and limits.'),
    ('namespace', '', 'Namespace of both nodes.'),
    ('controller_name', 'joint_trajectory_controller', 'Name of the simulated controller.'),
    ('autostart', 'true', 'Configure and activate policy_node at start-up.'),
    ('publish_rate_hz', '500.0', 'joint_states rate of mock_robot.'),
)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=launch_setup)])


def launch_setup(context: LaunchContext) -> list:
    """mock_robot configured from the params file, and the policy launch file."""
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    params = policy_parameters(os.path.expanduser(arg('params_file')))
    joints = [str(name) for name in params.get('joint_names') or []]
    if not joints:
        raise RuntimeError(f'{arg("params_file")}: policy_node joint_names is empty')
    lower = params.get('position_lower_limits') or []
    upper = params.get('position_upper_limits') or []
    start = [(float(lo) + float(hi)) / 2.0 for lo, hi in zip(lower, upper)] \
        if len(lower) == len(upper) == len(joints) else [0.0] * len(joints)
    controller = arg('controller_name').rstrip('/')
    mock = Node(
        package='il_policy_node', executable='mock_robot', name='mock_robot',
        namespace=arg('namespace').strip('/'), output='screen',
        parameters=[{'joint_names': joints, 'initial_positions': start,
                     'publish_rate_hz': float(arg('publish_rate_hz'))}],
        remappings=[('joint_trajectory', f'{controller}/joint_trajectory')])
    policy = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(POLICY_LAUNCH),
        launch_arguments={name: arg(name) for name in (
            'model_path', 'params_file', 'namespace', 'controller_name', 'autostart')}.items())
    return [mock, policy]


def policy_parameters(path: str) -> dict:
    """The ros__parameters of policy_node (or of /**) in a parameter file."""
    try:
        with open(path, encoding='utf-8') as stream:
            document = yaml.safe_load(stream) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RuntimeError(f'params_file: {exc}') from None
    for key in ('policy_node', '/policy_node', '/**'):
        section = document.get(key)
        if isinstance(section, dict) and 'ros__parameters' in section:
            return section['ros__parameters']
    raise RuntimeError(f'{path}: no policy_node: ros__parameters: section')
