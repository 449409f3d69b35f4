"""The core must run without ROS: importing it pulls in no rclpy and no message package."""
import pkgutil
import subprocess
import sys

import il_policy_node.core


def test_core_imports_no_ros_module():
    modules = [f'il_policy_node.core.{m.name}'
               for m in pkgutil.iter_modules(il_policy_node.core.__path__)]
    code = ('import importlib, sys\n'
            f'for name in {modules!r}: importlib.import_module(name)\n'
            "tops = {m.split('.')[0] for m in sys.modules}\n"
            "ros = sorted(t for t in tops if t in ('rclpy', 'rosidl_runtime_py')"
            " or t.endswith(('_msgs', '_srvs', '_interfaces')))\n"
            'print(ros)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert len(modules) >= 9
    assert out.stdout.strip() == '[]'
