# Source me: the project environment plus DDS kept on this machine (unless you chose otherwise).
# Without this, Fast DDS multicasts discovery on every network interface.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${IL_POLICY_VENV:-$root/.venv}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
if [ "${ROS_DISTRO:-}" = humble ]; then
  export ROS_LOCALHOST_ONLY=${ROS_LOCALHOST_ONLY:-1}
fi
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export PATH="$venv/bin:$PATH"
export MPLBACKEND=${MPLBACKEND:-Agg}
