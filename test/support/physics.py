"""Stepping a RobotSimulation in-process (no ROS), for the model and physics tests."""
import numpy as np

from il_policy_node.sim.physics import RobotSimulation


def run(sim: RobotSimulation, seconds: float) -> np.ndarray:
    """Step ``seconds`` of simulated time; returns positions after each step [steps, joints]."""
    rows = []
    for _ in range(int(round(seconds / sim.timestep))):
        sim.step()
        rows.append(sim.joint_states().positions.copy())
    return np.array(rows)
