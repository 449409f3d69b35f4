"""Motion capture import, ROS-free: BVH clips -> forward kinematics -> retargeted robot joints.

``bvh`` reads and writes BVH files, ``kinematics`` places joints and End Sites in the world,
``retarget`` maps a clip onto robot joints with a YAML map, ``synthetic`` writes clips of a
known motion (there is no real mocap data on this machine).
"""
