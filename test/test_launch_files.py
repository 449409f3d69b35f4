"""Launch files, config files and package metadata agree with the code (no ROS graph needed).

Tests that load a launch description need launch_ros (a sourced ROS distro): they are skipped
where it is missing, as with the ROS 2 wheels from the package registry.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import math
import py_compile
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = 'il_policy_node'
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
POLICY_YAML = ROOT / 'config' / 'policy.yaml'
RVIZ_CONFIG = ROOT / 'config' / 'il_policy.rviz'

# Top-level Python modules that are ROS packages of the same name, besides *_msgs, *_srvs,
# *_interfaces; and the rosdep keys of the non-ROS imports that package.xml must name.
ROS_MODULES = {
    'rclpy', 'launch', 'launch_ros', 'launch_testing', 'launch_testing_ros',
    'ament_index_python', 'domain_coordinator', 'rosidl_runtime_py', 'rosbag2_py',
    'message_filters', 'tf2_ros', 'tf2_py', 'ros2cli', 'rpyutils',
}
ROS_MODULE_PATTERN = re.compile(r'^[a-z0-9_]+_(msgs|srvs|interfaces)$')
ROSDEP_KEYS = {'numpy': 'python3-numpy', 'yaml': 'python3-yaml', 'torch': 'python3-torch'}


# -- launch files ---------------------------------------------------------------------------
def test_policy_launch_file_exists():
    assert ROOT / 'launch' / 'policy.launch.py' in LAUNCH_FILES


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_compiles(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / 'compiled.pyc'), doraise=True)


# -- config/policy.yaml ---------------------------------------------------------------------
def _policy_parameters():
    from il_policy_node.nodes.policy_node import PARAMETERS
    return PARAMETERS


def _policy_yaml() -> dict:
    document = yaml.safe_load(POLICY_YAML.read_text())
    assert list(document) == ['policy_node'], 'policy.yaml: one section, policy_node'
    assert list(document['policy_node']) == ['ros__parameters']
    return document['policy_node']['ros__parameters']


def test_policy_yaml_lists_exactly_the_node_parameters():
    names = [spec.name for spec in _policy_parameters()]
    values = _policy_yaml()
    assert sorted(values) == sorted(names), (
        f'missing from policy.yaml: {sorted(set(names) - set(values))}; '
        f'not parameters of policy_node: {sorted(set(values) - set(names))}')


def test_policy_yaml_values_have_the_types_of_the_defaults():
    from rclpy.parameter import Parameter
    values = _policy_yaml()
    element_types = {Parameter.Type.STRING_ARRAY: str, Parameter.Type.DOUBLE_ARRAY: float,
                     Parameter.Type.INTEGER_ARRAY: int, Parameter.Type.BOOL_ARRAY: bool}
    for spec in _policy_parameters():
        value = values[spec.name]
        if isinstance(spec.default, Parameter.Type):
            assert isinstance(value, list), f'{spec.name}: expected a list, got {value!r}'
            kind = element_types[spec.default]
            wrong = [v for v in value if type(v) is not kind]
            assert not wrong, f'{spec.name}: {wrong} are not {kind.__name__} (write 1.0, not 1)'
        else:
            assert type(value) is type(spec.default), (
                f'{spec.name}: {value!r} is {type(value).__name__}, the default '
                f'{spec.default!r} is {type(spec.default).__name__}')
            assert value == spec.default, f'{spec.name}: policy.yaml {value!r} is not the ' \
                                          f'default {spec.default!r}'


def test_policy_yaml_example_limits_fit_the_example_joints():
    values = _policy_yaml()
    joints = values['joint_names']
    assert joints and len(set(joints)) == len(joints)
    lower, upper = values['position_lower_limits'], values['position_upper_limits']
    assert len(lower) == len(upper) == len(joints)
    assert all(lo < hi for lo, hi in zip(lower, upper))
    assert len(values['max_velocity_rad_s']) in (1, len(joints))
    assert all(v > 0 and math.isfinite(v) for v in values['max_velocity_rad_s'])



# -- config/il_policy.rviz ------------------------------------------------------------------
def _rviz_displays() -> list[dict]:
    config = yaml.safe_load(RVIZ_CONFIG.read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] in ('world', 'base_link')
    return manager['Displays']


def test_rviz_config_shows_grid_tf_robot_and_ghost():
    displays = _rviz_displays()
    classes = [d['Class'] for d in displays]
    assert 'rviz_default_plugins/Grid' in classes
    assert 'rviz_default_plugins/TF' in classes
    robots = [d for d in displays if d['Class'] == 'rviz_default_plugins/RobotModel']
    assert len(robots) == 2
    measured, ghost = sorted(robots, key=lambda d: bool(d.get('TF Prefix')))
    assert measured['TF Prefix'] == ''
    assert measured['Description Topic']['Value'] == '/robot_description'
    assert ghost['TF Prefix'] == 'target'
    assert ghost['Description Topic']['Value'] == '/target/robot_description'
    assert ghost['Alpha'] == pytest.approx(0.4)
    for robot in robots:
        assert robot['Description Source'] == 'Topic'
        # robot_state_publisher latches robot_description: a volatile subscriber misses it.
        assert robot['Description Topic']['Durability Policy'] == 'Transient Local'
    assert all(d.get('Enabled', True) for d in displays)


# -- package.xml and setup.py ---------------------------------------------------------------
def _package_xml() -> ElementTree.Element:
    return ElementTree.parse(ROOT / 'package.xml').getroot()


def _setup_keywords() -> dict:
    """Literal keyword arguments of setup() in setup.py (module constants resolved)."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'setup':
            keywords = {}
            for keyword in node.keywords:
                if isinstance(keyword.value, ast.Constant):
                    keywords[keyword.arg] = keyword.value.value
                elif isinstance(keyword.value, ast.Name) and keyword.value.id in constants:
                    keywords[keyword.arg] = constants[keyword.value.id]
            return keywords
    raise AssertionError('setup.py calls no setup()')


def test_package_xml_is_format_3_and_matches_setup_py():
    package = _package_xml()
    assert package.tag == 'package' and package.get('format') == '3'
    setup = _setup_keywords()
    assert package.findtext('name') == setup['name'] == PACKAGE
    assert package.findtext('version') == setup['version']
    assert package.findtext('export/build_type') == 'ament_python'
    assert package.findtext('license')
    assert package.find('maintainer') is not None


def _imports(paths) -> dict[str, set[str]]:
    """Top-level modules imported (absolute imports, anywhere in the file) -> files."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module.split('.')[0], set()).add(
                    str(path.relative_to(ROOT)))
    return found


def _is_ros_module(module: str) -> bool:
    return module in ROS_MODULES or bool(ROS_MODULE_PATTERN.match(module))


def _dependencies(*tags: str) -> set[str]:
    return {element.text.strip() for tag in tags for element in _package_xml().iter(tag)}


def _depend_problems(imports: dict[str, set[str]], declared: set[str], tag: str) -> list[str]:
    problems = []
    for module, files in sorted(imports.items()):
        key = module if _is_ros_module(module) else ROSDEP_KEYS.get(module)
        if key is not None and key not in declared:
            problems.append(f'<{tag}>{key}</{tag}>  (imported by {sorted(files)})')
    return problems


def test_package_xml_declares_every_ros_import_of_the_code():
    sources = sorted((ROOT / PACKAGE).rglob('*.py')) + LAUNCH_FILES
    imports = _imports(sources)
    assert 'rclpy' in imports, 'the import scan found nothing: has the layout changed?'
    declared = _dependencies('exec_depend', 'depend')
    problems = _depend_problems(imports, declared, 'exec_depend')
    assert not problems, 'package.xml lacks:\n' + '\n'.join(problems)


def test_package_xml_declares_every_ros_import_of_the_tests():
    imports = _imports(sorted((ROOT / 'test').rglob('*.py')))
    declared = _dependencies('exec_depend', 'depend', 'test_depend')
    problems = _depend_problems(imports, declared, 'test_depend')
    assert not problems, 'package.xml lacks:\n' + '\n'.join(problems)


def test_package_xml_declares_the_packages_the_launch_files_start():
    started = {}
    for path in LAUNCH_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == 'package' and isinstance(keyword.value, ast.Constant):
                        started.setdefault(keyword.value.value, set()).add(path.name)
    started.pop(PACKAGE, None)
    declared = _dependencies('exec_depend', 'depend')
    missing = [f'<exec_depend>{p}</exec_depend>  (started by {sorted(files)})'
               for p, files in sorted(started.items()) if p not in declared]
    assert not missing, 'package.xml lacks:\n' + '\n'.join(missing)


def test_setup_installs_launch_and_config_files():
    script = ('import json, setuptools\n'
              'from distutils.core import run_setup\n'
              "dist = run_setup('setup.py', stop_after='init')\n"
              'print(json.dumps({"data_files": dist.data_files}))\n')
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data_files = json.loads(result.stdout.strip().splitlines()[-1])['data_files']
    installed = {(directory, Path(f).as_posix()) for directory, files in data_files
                 for f in files}
    share = f'share/{PACKAGE}'
    expected = {(f'{share}/launch', f'launch/{p.name}') for p in LAUNCH_FILES}
    expected |= {(f'{share}/config', f'config/{p.name}')
                 for p in (ROOT / 'config').iterdir() if p.is_file()}
    expected |= {(share, 'package.xml'),
                 ('share/ament_index/resource_index/packages', f'resource/{PACKAGE}')}
    assert expected <= installed, f'not installed: {sorted(expected - installed)}'


def test_setup_cfg_installs_scripts_where_ros2_run_finds_them():
    text = (ROOT / 'setup.cfg').read_text()
    assert f'script_dir=$base/lib/{PACKAGE}' in text
    assert f'install_scripts=$base/lib/{PACKAGE}' in text


# -- launch descriptions (need launch_ros) --------------------------------------------------
URDF = '''<?xml version="1.0"?>
<robot name="arm">
  <link name="base_link"/>
  <link name="upper"/>
  <link name="lower"/>
  <joint name="shoulder" type="revolute">
    <parent link="base_link"/><child link="upper"/>
    <limit lower="-1.0" upper="1.0" velocity="2.0" effort="10.0"/>
  </joint>
  <joint name="elbow" type="continuous">
    <parent link="upper"/><child link="lower"/>
  </joint>
</robot>
'''
POLICY_LAUNCH_ARGUMENTS = {
    'model_path', 'params_file', 'namespace', 'use_sim_time', 'controller_name', 'autostart',
    'robot_description_file', 'ghost', 'rviz', 'log_level'}


def _load_launch_file(name: str):
    pytest.importorskip('launch_ros')
    spec = importlib.util.spec_from_file_location(name.replace('.', '_'), ROOT / 'launch' / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _actions(module, **overrides):
    """launch_setup's actions for the launch arguments' defaults with these overrides."""
    from launch import LaunchContext
    from launch.utilities import perform_substitutions
    context = LaunchContext()
    for argument in module.generate_launch_description().get_launch_arguments():
        context.launch_configurations[argument.name] = perform_substitutions(
            context, argument.default_value)
    context.launch_configurations.update(overrides)
    return module.launch_setup(context)


def test_policy_launch_declares_its_arguments():
    module = _load_launch_file('policy.launch.py')
    arguments = {a.name: a for a in module.generate_launch_description().get_launch_arguments()}
    assert set(arguments) == POLICY_LAUNCH_ARGUMENTS

    def default(name):
        return ''.join(s.perform(None) for s in arguments[name].default_value)
    assert Path(default('params_file')).parts[-2:] == ('config', 'policy.yaml')
    assert Path(default('params_file')).is_file()
    assert default('controller_name') == 'joint_trajectory_controller'
    assert default('autostart') == 'true'
    assert default('ghost') == 'false'


def test_policy_launch_starts_the_lifecycle_node_and_configures_then_activates_it():
    module = _load_launch_file('policy.launch.py')
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch_ros.actions import LifecycleNode
    from lifecycle_msgs.msg import Transition
    actions = _actions(module, model_path='/tmp/policy.pt')
    nodes = [a for a in actions if isinstance(a, LifecycleNode)]
    assert len(nodes) == 1
    assert nodes[0].node_package == PACKAGE
    assert nodes[0].node_executable == 'policy_node'
    emitted = [a.event.transition_id for a in actions if isinstance(a, EmitEvent)]
    assert emitted == [Transition.TRANSITION_CONFIGURE]
    assert sum(isinstance(a, RegisterEventHandler) for a in actions) == 2
    assert module.controller_topic('joint_trajectory_controller') == \
        'joint_trajectory_controller/joint_trajectory'
    assert module.controller_topic('/arm_controller/') == '/arm_controller/joint_trajectory'


def test_policy_launch_without_autostart_only_starts_the_node():
    module = _load_launch_file('policy.launch.py')
    from launch_ros.actions import LifecycleNode
    actions = _actions(module, autostart='false')
    assert len(actions) == 1 and isinstance(actions[0], LifecycleNode)


def test_policy_launch_ghost_robot(tmp_path):
    module = _load_launch_file('policy.launch.py')
    from launch_ros.actions import LifecycleNode, Node
    with pytest.raises(RuntimeError, match='robot_description_file'):
        _actions(module, ghost='true')
    urdf = tmp_path / 'arm.urdf'
    urdf.write_text(URDF)
    actions = _actions(module, ghost='true', robot_description_file=str(urdf))
    others = [a for a in actions if isinstance(a, Node) and not isinstance(a, LifecycleNode)]
    assert sorted(n.node_package for n in others) == ['robot_state_publisher', 'tf2_ros']
    assert module.urdf_root_link(URDF) == 'base_link'
    assert module.read_robot_description(str(urdf)) == URDF
    ghost = next(d for d in _rviz_displays() if d.get('TF Prefix'))
    assert module.GHOST_FRAME_PREFIX == ghost['TF Prefix'] + '/'
    assert ghost['Description Topic']['Value'] == f'/{module.GHOST_NAMESPACE}/robot_description'


def test_policy_launch_refuses_a_bad_robot_description_file(tmp_path):
    module = _load_launch_file('policy.launch.py')
    with pytest.raises(RuntimeError, match='robot_description_file'):
        module.read_robot_description(str(tmp_path / 'missing.urdf'))
    bad = tmp_path / 'arm.xacro'
    bad.write_text('<xacro:macro xmlns:xacro="http://ros.org/wiki/xacro"/>')
    with pytest.raises(RuntimeError, match='not <robot>'):
        module.read_robot_description(str(bad))


def test_mock_robot_launch_simulates_the_params_file_joints():
    module = _load_launch_file('mock_robot.launch.py')
    from launch.actions import IncludeLaunchDescription
    from launch_ros.actions import Node
    mock, policy = _actions(module)
    assert isinstance(mock, Node) and mock.node_executable == 'mock_robot'
    assert isinstance(policy, IncludeLaunchDescription)
    assert module.policy_parameters(str(POLICY_YAML)) == _policy_yaml()


# -- config/recorder.yaml and launch/record_demos.launch.py ---------------------------------
RECORDER_YAML = ROOT / 'config' / 'recorder.yaml'


def _recorder_parameters():
    from il_policy_node.nodes.demo_recorder_node import PARAMETERS
    return PARAMETERS


def _recorder_yaml() -> dict:
    document = yaml.safe_load(RECORDER_YAML.read_text())
    assert list(document) == ['demo_recorder'], 'recorder.yaml: one section, demo_recorder'
    assert list(document['demo_recorder']) == ['ros__parameters']
    return document['demo_recorder']['ros__parameters']


def test_record_demos_launch_file_exists():
    assert ROOT / 'launch' / 'record_demos.launch.py' in LAUNCH_FILES


def test_recorder_yaml_lists_exactly_the_node_parameters():
    names = [spec.name for spec in _recorder_parameters()]
    values = _recorder_yaml()
    assert sorted(values) == sorted(names), (
        f'missing from recorder.yaml: {sorted(set(names) - set(values))}; '
        f'not parameters of demo_recorder: {sorted(set(values) - set(names))}')


def test_recorder_yaml_scalars_are_the_defaults_and_the_example_is_valid():
    from rclpy.parameter import Parameter

    from il_policy_node.recording.config import RecorderConfig
    values = _recorder_yaml()
    for spec in _recorder_parameters():
        value = values[spec.name]
        if isinstance(spec.default, Parameter.Type):
            assert isinstance(value, list) and all(type(v) is str for v in value), spec.name
        else:
            assert type(value) is type(spec.default) and value == spec.default, (
                f'{spec.name}: recorder.yaml {value!r} is not the default {spec.default!r}')
    config = RecorderConfig.from_parameters(values)
    assert '/robot_description' in config.topics and config.required_topics


@pytest.mark.parametrize('node_module, node_class, yaml_path, parameters, yaml_values', [
    ('il_policy_node.nodes.policy_node', 'PolicyNode', POLICY_YAML, _policy_parameters,
     _policy_yaml),
    ('il_policy_node.nodes.demo_recorder_node', 'DemoRecorderNode', RECORDER_YAML,
     _recorder_parameters, _recorder_yaml),
])
def test_config_yaml_loads_into_the_node(ros_domain, node_module, node_class, yaml_path,
                                         parameters, yaml_values):
    """The rcl parser reads the file and the node accepts every value (ranges, types)."""
    import importlib

    import rclpy

    from il_policy_node.ros.params import read_all
    node_type = getattr(importlib.import_module(node_module), node_class)
    context = rclpy.Context()
    rclpy.init(args=['--ros-args', '--params-file', str(yaml_path)], context=context,
               domain_id=ros_domain)
    node = None
    try:
        node = node_type(context=context)
        loaded = read_all(node, parameters())
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=context)
    assert loaded == yaml_values()
