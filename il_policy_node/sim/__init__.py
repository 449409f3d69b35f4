"""Simulation: MuJoCo robot models, JointTrajectory following, the scripted demonstrator."""
