"""The demo graph on the MuJoCo arm: record demonstrations, or let a policy drive the robot.

  ros2 launch il_policy_node sim_demo.launch.py task:=reach episodes:=10 output_dir:=~/il_demos
  ros2 launch il_policy_node sim_demo.launch.py model_path:=out/demo-.../wave/policy.pt rviz:=true

Always: sim_robot (MuJoCo, `model`) and robot_state_publisher with the model's URDF (RViz shows
the robot). Without model_path: the scripted demonstrator performs `episodes` episodes of
`task` while demo_recorder records one bag per episode into output_dir. With model_path:
policy_node (config/sim_policy.yaml, limits from the URDF) drives the robot, configured and
activated at start-up; for the reach task publish the goal on /demo/goal. The same graph as
`python -m il_policy_node.demo`, which also trains, evaluates and scores.
"""
from __future__ import annotations

import os

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

HERE = os.path.dirname(os.path.abspath(__file__))
SHARE = os.path.dirname(HERE)
POLICY_LAUNCH = os.path.join(HERE, 'policy.launch.py')
CONTROLLER = 'joint_trajectory_controller'

ARGUMENTS = (
    ('model', 'arm6', 'Simulated robot model (il_policy_node/robots/<model>.xml).'),
    ('model_path', '', 'policy.pt: the policy drives the robot; empty = record demonstrations.'),
    ('task', 'wave', 'Demonstrated task: wave or reach.'),
    ('episodes', '10', 'Number of demonstrations to record.'),
    ('seed', '0', 'Seed of the demonstrations (start poses, goals, tempo).'),
    ('output_dir', '~/il_demos', 'Where demo_recorder writes the session of episode bags.'),
    ('rviz', 'false', 'Start RViz with config/il_policy.rviz.'),
)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=launch_setup)])


def launch_setup(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    from il_policy_node.robots.models import urdf_path
    from il_policy_node.sim.demonstrator import TEACHING, TEACHING_RATE_HZ, Task
    urdf = str(urdf_path(arg('model')))
    with open(urdf, encoding='utf-8') as stream:
        description = stream.read()
    actions = [
        Node(package='il_policy_node', executable='sim_robot', name='sim_robot',
             output='screen', parameters=[{'model': arg('model')}]),
        Node(package='robot_state_publisher', executable='robot_state_publisher',
             output='screen', parameters=[{'robot_description': description}]),
    ]
    if arg('model_path'):
        actions.append(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(POLICY_LAUNCH),
            launch_arguments={'model_path': arg('model_path'), 'controller_name': CONTROLLER,
                              'params_file': os.path.join(SHARE, 'config', 'sim_policy.yaml'),
                              'robot_description_file': urdf, 'ghost': 'true',
                              'rviz': arg('rviz')}.items()))
        return actions
    topics = ['/joint_states', '/demo/joint_command', f'/{CONTROLLER}/joint_trajectory']
    if arg('task') == 'reach':
        topics.append('/demo/goal')
    actions += [
        Node(package='il_policy_node', executable='demo_recorder', name='demo_recorder',
             output='screen',
             parameters=[os.path.join(SHARE, 'config', 'recorder.yaml'),
                         {'output_dir': arg('output_dir'), 'topics': topics,
                          'topic_types': [''] * len(topics), 'task': arg('task')}]),
        Node(package='il_policy_node', executable='demonstrator', name='demonstrator',
             output='screen',
             parameters=[os.path.join(SHARE, 'config', 'demonstrator.yaml'),
                         {'task': arg('task'), 'episodes': int(arg('episodes')),
                          'seed': int(arg('seed')),
                          # as the main job demonstrates (README: how the main job teaches)
                          'command_rate_hz': TEACHING_RATE_HZ,
                          'drive_noise_rad': TEACHING[Task(arg('task'))].drive_noise_rad,
                          'reaches_per_episode':
                              TEACHING[Task(arg('task'))].reaches_per_episode}]),
    ]
    if arg('rviz') == 'true':
        actions.append(Node(package='rviz2', executable='rviz2', output='screen',
                            arguments=['-d', os.path.join(SHARE, 'config', 'il_policy.rviz')]))
    return actions
