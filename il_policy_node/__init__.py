"""il_policy_node: behavioral cloning from human demonstrations for ROS 2 robots."""
