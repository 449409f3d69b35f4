"""Robot descriptions: the MJCF + URDF of each model and what they declare (ROS-free)."""
