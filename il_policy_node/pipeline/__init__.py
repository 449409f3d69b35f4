"""The offline pipeline: bags -> dataset -> training -> policy artifact -> evaluation.

Nothing here imports ROS; the robot side (runtime/, policies/) imports nothing from here.
"""
