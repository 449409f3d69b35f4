"""Joint limits from a URDF string (the ``robot_description``).

Only ``<joint><limit/></joint>`` is read, so the standard library's XML parser is enough; no
URDF library is needed for that and none is installable from the ROS wheels here.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from il_policy_node.errors import ConfigError


@dataclass(frozen=True)
class UrdfJointLimit:
    lower: float
    upper: float
    velocity: float | None


def urdf_joint_limits(urdf_xml: str) -> dict[str, UrdfJointLimit]:
    """Limits of every movable joint; continuous joints get (-inf, inf).

    Raises ConfigError for XML that does not parse or a joint whose limit is malformed.
    """
    try:
        root = ElementTree.fromstring(urdf_xml)
    except ElementTree.ParseError as exc:
        raise ConfigError(f'robot_description is not valid XML: {exc}') from None
    if root.tag != 'robot':
        raise ConfigError(f'robot_description root element is <{root.tag}>, not <robot>')
    limits = {}
    for joint in root.iter('joint'):
        name, kind = joint.get('name'), joint.get('type')
        if kind not in ('revolute', 'prismatic', 'continuous') or not name:
            continue
        limit = joint.find('limit')
        try:
            velocity = float(limit.get('velocity')) if limit is not None and \
                limit.get('velocity') is not None else None
            if kind == 'continuous':
                lower, upper = -math.inf, math.inf
            elif limit is None:
                raise ValueError('has no <limit>')
            else:
                lower, upper = float(limit.get('lower', 0.0)), float(limit.get('upper', 0.0))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f'robot_description joint {name!r}: bad <limit>: {exc}') from None
        if velocity is not None and velocity <= 0:
            velocity = None
        limits[name] = UrdfJointLimit(lower, upper, velocity)
    return limits
