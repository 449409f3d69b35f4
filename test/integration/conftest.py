"""Fixtures of the integration tests: one private ROS graph per test, always torn down."""
import pytest

from test.support.graph import Graph


@pytest.fixture
def graph(ros_domain, tmp_path):
    """Processes and a receiving node on this test's own ROS domain; all stopped at the end."""
    g = Graph(ros_domain, tmp_path)
    try:
        yield g
    finally:
        g.close()


@pytest.fixture
def recorder_graph(ros_domain, tmp_path):
    """A graph whose receiver talks to /demo_recorder (its services and diagnostics)."""
    g = Graph(ros_domain, tmp_path, target='/demo_recorder')
    try:
        yield g
    finally:
        g.close()
