"""Run demo_recorder: one rosbag2 bag per demonstration episode.

  ros2 launch il_policy_node record_demos.launch.py task:=wave operator:=ana
  ros2 launch il_policy_node record_demos.launch.py params_file:=my_topics.yaml
      output_dir:=/data/demos session:=monday                    (one line)

Episodes are started and stopped with the services ~/start_episode, ~/stop_episode and
~/discard_episode (keyboard control needs a terminal: use ``ros2 run`` for it). Arguments left
empty keep the value of params_file. Works with the launch_ros API of Humble, Jazzy and Kilted.
"""
from __future__ import annotations

import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import evaluate_condition_expression
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'il_policy_node'


def share_file(*parts: str) -> str:
    """A file installed in the package's share directory (or in the source tree, uninstalled)."""
    try:
        share = get_package_share_directory(PACKAGE)
    except PackageNotFoundError:
        share = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(share, *parts)


# Arguments that, when not empty, override the parameter of the same name.
OVERRIDES = ('output_dir', 'session', 'task', 'operator')
ARGUMENTS = (
    ('params_file', share_file('config', 'recorder.yaml'),
     'Parameters of demo_recorder (YAML): topics, storage, ...'),
    ('output_dir', '', 'Root folder of the sessions; empty = from params_file.'),
    ('session', '', 'Session folder name; empty = from params_file (default: a timestamp).'),
    ('task', '', 'Task label of the episodes; empty = from params_file.'),
    ('operator', '', 'Operator name of the episodes; empty = from params_file.'),
    ('namespace', '', 'Namespace of demo_recorder (and of its relative topics).'),
    ('use_sim_time', 'false', 'Use /clock (simulation) time for message timestamps.'),
)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=launch_setup)])


def launch_setup(context: LaunchContext) -> list:
    """The recorder node, from the launch arguments' values."""
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    overrides: dict = {'use_sim_time': evaluate_condition_expression(
        context, [LaunchConfiguration('use_sim_time')])}
    for name in OVERRIDES:
        if arg(name):
            # As a string, as given (launch_ros would otherwise parse it as YAML).
            overrides[name] = ParameterValue(arg(name), value_type=str)
    params_file = os.path.expanduser(arg('params_file'))
    return [Node(
        package=PACKAGE, executable='demo_recorder', name='demo_recorder',
        namespace=arg('namespace').strip('/'), output='screen',
        parameters=[params_file, overrides] if params_file else [overrides])]
