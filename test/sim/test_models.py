"""Robot models: files by name, metadata read from the MJCF, the URDF twin agrees with it."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree

import pytest

from il_policy_node.errors import SimError
from il_policy_node.robots.models import (
    RobotModelInfo,
    UnknownModelError,
    available_models,
    model_info,
    model_path,
    urdf_path,
)
from il_policy_node.runtime.urdf import urdf_joint_limits

ARM6_JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint',
               'wrist_2_joint', 'wrist_3_joint')


def test_arm6_files_exist():
    assert model_path('arm6').name == 'arm6.xml' and model_path('arm6').is_file()
    assert urdf_path('arm6').name == 'arm6.urdf' and urdf_path('arm6').is_file()
    assert 'arm6' in available_models()


@pytest.mark.parametrize('name', ['no_such_robot', '', '../models/arm6'])
def test_unknown_model_is_named_in_the_error(name):
    with pytest.raises(UnknownModelError, match=f'unknown robot model {name!r}') as info:
        model_path(name)
    assert 'available: ' in str(info.value) and 'arm6' in str(info.value)
    with pytest.raises(SimError, match='unknown robot model'):
        model_info(name)


def test_arm6_metadata():
    info = model_info('arm6')
    assert isinstance(info, RobotModelInfo)
    assert info.name == 'arm6'
    assert info.joint_names == ARM6_JOINTS
    assert info.lower_limits == (-2.9, -2.0, -2.5, -2.9, -2.0, -2.9)
    assert info.upper_limits == (2.9, 2.0, 2.5, 2.9, 2.0, 2.9)
    assert info.velocity_limits == (3.0,) * 6
    assert info.home == (0.0, -0.5, 1.0, 0.0, 0.5, 0.0)
    assert info.index()['elbow_joint'] == 2
    with pytest.raises(AttributeError):
        info.name = 'other'


def test_arm6_urdf_matches_the_mjcf():
    info = model_info('arm6')
    limits = urdf_joint_limits(urdf_path('arm6').read_text())
    assert set(limits) == set(info.joint_names)
    for i, name in enumerate(info.joint_names):
        assert math.isclose(limits[name].lower, info.lower_limits[i]), name
        assert math.isclose(limits[name].upper, info.upper_limits[i]), name
        assert math.isclose(limits[name].velocity, info.velocity_limits[i]), name


def test_arm6_urdf_is_one_tree_with_the_mjcf_joint_order():
    root = ElementTree.fromstring(urdf_path('arm6').read_text())
    links = {link.get('name') for link in root.iter('link')}
    children = [joint.find('child').get('link') for joint in root.iter('joint')]
    assert len(children) == len(set(children))              # every link has one parent
    assert len(links - set(children)) == 1                  # one root
    revolute = [j.get('name') for j in root.iter('joint') if j.get('type') == 'revolute']
    assert tuple(revolute) == ARM6_JOINTS
