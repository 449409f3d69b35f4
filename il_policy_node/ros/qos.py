"""QoS profiles used by the nodes, named by what they carry."""
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# Best effort accepts both reliable and best-effort publishers; only the latest state matters.
JOINT_STATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                             reliability=ReliabilityPolicy.BEST_EFFORT,
                             durability=DurabilityPolicy.VOLATILE)

# joint_trajectory_controller subscribes reliably; a newer command replaces an older one.
COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)

# Reliable and volatile, so every e-stop publisher (latched or not) is compatible.
ESTOP_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)

# Latched: the last message reaches late subscribers (robot_description, a goal).
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)

MONITOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)

# Further observed inputs (e.g. a goal pose): best effort and volatile like joint_states, so any
# publisher matches; a value published before the policy node configured is not received.
INPUT_QOS = JOINT_STATE_QOS
