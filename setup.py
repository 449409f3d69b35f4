"""ament_python package, also pip-installable into a virtual environment."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'il_policy_node'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench']),
    package_data={PACKAGE: ['py.typed', 'robots/*.xml', 'robots/*.urdf']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.rviz')),
        (f'share/{PACKAGE}/config/retarget', glob('config/retarget/*.yaml')),
        (f'share/{PACKAGE}/config/skeletons', glob('config/skeletons/*.yaml')),
    ],
    # torch is installed separately (pinned CPU build in the venv, or the robot's own build).
    install_requires=['setuptools', 'numpy', 'PyYAML'],
    zip_safe=True,
    maintainer='il_policy_node maintainers',
    maintainer_email='maintainers@il-policy-node.dev',
    description='Behavioral cloning policies for ROS 2 robots, safely streamed to '
                'joint_trajectory_controller.',
    license='Apache-2.0',
    python_requires='>=3.10',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'policy_node = il_policy_node.nodes.policy_node:main',
            'mock_robot = il_policy_node.nodes.mock_robot_node:main',
            'demo_recorder = il_policy_node.nodes.demo_recorder_node:main',
            'sim_robot = il_policy_node.nodes.sim_robot_node:main',
            'demonstrator = il_policy_node.nodes.demonstrator_node:main',
            'mocap_bridge = il_policy_node.nodes.mocap_bridge_node:main',
            'il-policy = il_policy_node.cli:main',
        ],
    },
)
