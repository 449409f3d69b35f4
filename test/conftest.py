"""Test-suite set-up: DDS stays on this machine, and each test gets its own ROS domain."""
import os

import pytest

# Before anything imports rclpy: discovery on loopback only, unless the user chose otherwise.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
if os.environ.get('ROS_DISTRO') == 'humble':
    os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')


@pytest.fixture
def ros_domain():
    """A ROS_DOMAIN_ID no other test (or test run on this machine) is using right now."""
    from domain_coordinator import domain_id
    from domain_coordinator.impl import default_selector

    from test.support.shm import remove_stale_fastdds_files
    remove_stale_fastdds_files()
    selector = _SELECTOR.setdefault('selector', default_selector())
    with domain_id(selector) as reserved:
        yield reserved


_SELECTOR: dict = {}
