"""Where imported and streamed motion capture goes by default.

No heavy imports here: the CLI's help shows these.
"""
from __future__ import annotations

COMMAND_TOPIC = '/mocap/joint_command'            # sensor_msgs/JointState, retargeted joints
END_EFFECTOR_NAMESPACE = '/mocap/end_effectors'   # geometry_msgs/PointStamped per end effector
IMPORT_SESSION = 'mocap'                          # session folder of il-policy mocap import
ROOT_POSE_TOPIC = '/mocap/root_pose'              # geometry_msgs/PoseStamped, the pelvis (IK)
