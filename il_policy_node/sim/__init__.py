"""Simulation: JointTrajectory following on MuJoCo and the scripted demonstrator.

The robot models it moves are in robots/.
"""
