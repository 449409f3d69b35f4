"""ROS 2 nodes, one class per module, each with main(args=None)."""
