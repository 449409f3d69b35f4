"""ROS-free core: artifact, observation, runtime, safety and timing. Never imports rclpy."""
