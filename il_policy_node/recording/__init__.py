"""Recording demonstrations without ROS: episode bags, sessions, metadata, recovery.

The demo_recorder node and the mocap importer write episodes through these modules; the
dataset builder reads their metadata. Nothing here imports ROS.
"""
