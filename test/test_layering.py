"""The package's layers: what a robot needs stays free of the offline wing, the core of ROS.

Statically (every import statement of every module, lazy ones too) and by importing the
modules in a fresh interpreter and looking at what got loaded.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'il_policy_node'
ROBOT_SIDE = ('runtime', 'policies')
OFFLINE = ('pipeline', 'recording', 'mocap', 'sim', 'robots')
NOT_ON_A_ROBOT = {'rosbags', 'tqdm', 'matplotlib', 'scipy', 'mcap', 'mujoco', 'mink', 'pyarrow',
                  'onnx', 'onnxscript'}
SHARED = ('errors', 'files', 'formats')      # top-level modules everyone may use
# the offline layers that may use each other: recordings hold the pipeline's input; the robot
# descriptions (robots/) are what the simulation and the IK retargeting move
OFFLINE_USES = {('pipeline', 'recording'), ('mocap', 'recording'), ('mocap', 'robots'),
                ('sim', 'robots')}


def _is_ros(top: str) -> bool:
    return top in {'rclpy', 'rosidl_runtime_py', 'ament_index_python', 'launch', 'launch_ros'} \
        or top.endswith(('_msgs', '_srvs', '_interfaces'))


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(ROOT).with_suffix('').parts
        found['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (absolute, at any depth)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f'{node.module}.{alias.name}' for alias in node.names)
    return names


def _layer(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def _violations(rule) -> list[str]:
    found = []
    for module, path in _modules().items():
        for name in sorted(_imports(path)):
            why = rule(module, name)
            if why:
                found.append(f'{module} imports {name}: {why}')
    return found


def robot_side(module: str, name: str) -> str | None:
    """runtime/ and policies/: nothing of the offline wing, nothing a robot lacks, no ROS."""
    if _layer(module) not in ROBOT_SIDE:
        return None
    if name.startswith('il_policy_node.'):
        layer = name.split('.')[1]
        if layer not in ROBOT_SIDE and layer not in SHARED:
            return f'{_layer(module)}/ must not depend on {layer}/'
    elif name.split('.')[0] in NOT_ON_A_ROBOT:
        return 'a robot install does not have it'
    elif _is_ros(name.split('.')[0]):
        return 'runtime and policies import no ROS'
    return None


def offline_wing(module: str, name: str) -> str | None:
    """pipeline/, recording/, mocap/, sim/, robots/: no ROS, none of the ROS-side layers."""
    if _layer(module) in OFFLINE + SHARED and _is_ros(name.split('.')[0]):
        return f'{_layer(module) or module}/ imports no ROS'
    if _layer(module) in OFFLINE and name.startswith('il_policy_node.'):
        layer = name.split('.')[1]
        if layer in ('ros', 'nodes', 'cli', 'demo'):
            return f'{_layer(module)}/ must not depend on {layer}/'
        if layer in OFFLINE and layer != _layer(module) and \
                (_layer(module), layer) not in OFFLINE_USES:
            return f'{_layer(module)}/ must not depend on {layer}/'
    return None


def leaves(module: str, name: str) -> str | None:
    """demo/, cli/, test/, bench/ are imported by nobody; no node imports another."""
    if name.split('.')[0] in ('test', 'bench'):
        return 'the package never imports its tests or benchmarks'
    if name.startswith('il_policy_node.demo') and _layer(module) != 'demo':
        return 'nothing imports the main job'
    if _layer(module) == 'nodes' and name.startswith('il_policy_node.nodes.') and \
            name.split('.')[2] != module.split('.')[-1]:
        return 'a node does not import another node'
    if _layer(module) != 'cli' and name.startswith('il_policy_node.cli'):
        return 'the command line is a leaf'
    return None


def test_the_robot_side_imports_nothing_of_the_offline_wing_nor_what_a_robot_lacks():
    assert _violations(robot_side) == []


def test_the_offline_wing_imports_no_ros():
    assert _violations(offline_wing) == []


def test_shared_modules_import_only_the_standard_library():
    for name in SHARED:
        imports = _imports(PACKAGE / f'{name}.py')
        assert {i.split('.')[0] for i in imports} <= set(sys.stdlib_module_names) | {
            '__future__'}, (name, imports)


def test_nothing_imports_demo_or_test_and_no_node_imports_another():
    assert _violations(leaves) == []


@pytest.mark.parametrize('rule, module, name', [
    (robot_side, 'il_policy_node.runtime.controller', 'il_policy_node.pipeline.bags'),
    (robot_side, 'il_policy_node.policies.processor', 'scipy.spatial'),
    (robot_side, 'il_policy_node.runtime.artifact', 'rclpy.node'),
    (offline_wing, 'il_policy_node.pipeline.bags', 'sensor_msgs.msg'),
    (offline_wing, 'il_policy_node.mocap.importer', 'il_policy_node.sim.physics'),
    (leaves, 'il_policy_node.nodes.sim_robot_node', 'il_policy_node.nodes.policy_node'),
    (leaves, 'il_policy_node.pipeline.export', 'test.support.datasets'),
    (leaves, 'il_policy_node.ros.operator', 'il_policy_node.demo.common'),
])
def test_each_rule_catches_what_it_forbids(rule, module, name):
    assert rule(module, name)


def _loaded_after_importing(prefixes: tuple[str, ...]) -> set[str]:
    """Top-level packages loaded by importing the layers, beyond what torch loads itself."""
    modules = [m for m in _modules() if any(m.startswith(f'il_policy_node.{p}')
                                           for p in prefixes)]
    code = ('import importlib, sys\n'
            'import numpy, torch, yaml\n'
            'before = {m.split(".")[0] for m in sys.modules}\n'
            f'for name in {modules!r}: importlib.import_module(name)\n'
            'print(sorted({m.split(".")[0] for m in sys.modules} - before))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize('layers, forbidden', [
    (ROBOT_SIDE, NOT_ON_A_ROBOT),
    (OFFLINE, None),
], ids=['runtime+policies', 'pipeline+recording+mocap+sim'])
def test_importing_a_layer_loads_nothing_it_must_not(layers, forbidden):
    loaded = _loaded_after_importing(layers)
    assert 'il_policy_node' in loaded
    assert sorted(t for t in loaded if _is_ros(t)) == []
    if forbidden is not None:
        assert sorted(loaded & forbidden) == []
