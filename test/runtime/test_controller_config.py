"""ControllerConfig: every bad parameter is refused with its name; limits from the URDF."""
import math

import numpy as np
import pytest

from il_policy_node.runtime.controller_config import ConfigError, ControllerConfig
from il_policy_node.runtime.urdf import urdf_joint_limits

URDF = '''<robot name="arm">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="l1"/>
    <limit lower="-1.5" upper="1.5" velocity="2.0" effort="10"/></joint>
  <joint name="slide" type="prismatic"><parent link="l1"/><child link="l2"/>
    <limit lower="0.0" upper="0.3" velocity="0.5" effort="10"/></joint>
  <joint name="wrist" type="continuous"><parent link="l2"/><child link="l3"/>
    <limit velocity="4.0" effort="1"/></joint>
  <joint name="fixed" type="fixed"><parent link="l3"/><child link="base"/></joint>
</robot>'''

BASE = {'model_path': 'policy.pt', 'joint_names': ['a', 'b'], 'control_rate_hz': 100.0,
        'state_timeout_s': 0.1, 'ramp_in_s': 1.0, 'position_lower_limits': [-1.0, -1.0],
        'position_upper_limits': [1.0, 1.0], 'max_velocity_rad_s': [1.0]}


def test_valid_parameters():
    config = ControllerConfig.from_parameters(BASE)
    assert config.period_s == pytest.approx(0.01)
    assert config.limits.max_velocity.tolist() == [1.0, 1.0]


@pytest.mark.parametrize('changes, message', [
    ({'model_path': ''}, 'model_path is empty'),
    ({'joint_names': []}, 'joint_names is empty'),
    ({'joint_names': ['a', 'a']}, "duplicate joint names in parameter joint_names: \\['a'\\]"),
    ({'control_rate_hz': 0.0}, 'control_rate_hz must be > 0'),
    ({'control_rate_hz': -5.0}, 'control_rate_hz must be > 0'),
    ({'control_rate_hz': 'fast'}, 'control_rate_hz must be a number'),
    ({'state_timeout_s': 0.0}, 'state_timeout_s must be > 0'),
    ({'ramp_in_s': -1.0}, 'ramp_in_s must be >= 0'),
    ({'position_lower_limits': [2.0, -1.0]}, "joint 'a': lower limit 2.0 > upper limit 1.0"),
    ({'position_upper_limits': [1.0]}, 'position_upper_limits has 1 values but joint_names has 2'),
    ({'max_velocity_rad_s': [1.0, 2.0, 3.0]}, 'max_velocity_rad_s has 3 values'),
    ({'max_velocity_rad_s': [0.0]}, "joint 'a': max_velocity_rad_s must be finite and > 0"),
    ({'position_lower_limits': []}, "no position limits for joint 'a'"),
    ({'max_velocity_rad_s': []}, "no velocity limit for joint 'a'"),
    ({'chunk_execution': 'sometimes'}, 'chunk_execution must be one of'),
    ({'replan_every': -1}, 'replan_every must be an integer >= 0'),
    ({'robot_description': '<robot><joint'}, 'robot_description is not valid XML'),
])
def test_bad_parameters_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        ControllerConfig.from_parameters({**BASE, **changes})


def test_limits_and_velocities_from_the_urdf():
    params = {**BASE, 'joint_names': ['shoulder', 'slide', 'wrist'], 'robot_description': URDF,
              'position_lower_limits': [], 'position_upper_limits': [], 'max_velocity_rad_s': []}
    limits = ControllerConfig.from_parameters(params).limits
    assert limits.lower.tolist() == [-1.5, 0.0, -math.inf]
    assert limits.upper.tolist() == [1.5, 0.3, math.inf]
    assert limits.max_velocity.tolist() == [2.0, 0.5, 4.0]


def test_parameters_override_the_urdf():
    params = {**BASE, 'joint_names': ['shoulder', 'slide'], 'robot_description': URDF,
              'position_upper_limits': [1.0, 0.1], 'max_velocity_rad_s': [0.2]}
    limits = ControllerConfig.from_parameters(params).limits
    assert limits.lower.tolist() == [-1.0, -1.0] and limits.upper.tolist() == [1.0, 0.1]
    assert np.allclose(limits.max_velocity, 0.2)


def test_urdf_joint_without_limit_is_an_error():
    bad = '<robot name="r"><joint name="j" type="revolute"/></robot>'
    with pytest.raises(ConfigError, match="joint 'j': bad <limit>: has no <limit>"):
        urdf_joint_limits(bad)
    with pytest.raises(ConfigError, match='root element is <robt>'):
        urdf_joint_limits('<robt/>')


def test_joint_missing_from_the_urdf_is_named():
    params = {**BASE, 'joint_names': ['shoulder', 'elbow'], 'robot_description': URDF,
              'position_lower_limits': []}
    with pytest.raises(ConfigError, match="no position limits for joint 'elbow'"):
        ControllerConfig.from_parameters(params)
