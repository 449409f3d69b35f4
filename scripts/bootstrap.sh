#!/usr/bin/env bash
# Create or refresh the project environment (.venv) and install il_policy_node into it.
#   - ROS_DISTRO set (a sourced distro): the venv sees the distro's rclpy and messages
#     (--system-site-packages) and adds only the Python dependencies.
#   - otherwise: ROS 2 Jazzy's rclpy and message packages from the package registry's wheels.
# Re-running is cheap: nothing is installed when the requirement files are unchanged.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${IL_POLICY_VENV:-$root/.venv}
python=${PYTHON:-python3}

reqs=("$root/requirements/python.txt" "$root/requirements/test.txt")
venv_args=()
if [ -n "${ROS_DISTRO:-}" ]; then
  venv_args+=(--system-site-packages)
else
  reqs=("$root/requirements/ros-jazzy-wheels.txt" "${reqs[@]}")
fi
stamp=$(cat "${reqs[@]}" "$root/setup.py" | sha256sum | cut -c1-16)-${ROS_DISTRO:-wheels}
if [ -f "$venv/.il_policy_stamp" ] && [ "$(cat "$venv/.il_policy_stamp")" = "$stamp" ]; then
  exit 0
fi
echo "[bootstrap] preparing $venv (${ROS_DISTRO:-ROS 2 Jazzy wheels})" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "${venv_args[@]}" "$venv"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
pip_install() {  # quiet on success; the whole pip log on failure
  if ! "$venv/bin/python" -m pip install --quiet --no-input "$@" >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" >&2
    echo "[bootstrap] pip install $* failed" >&2
    exit 1
  fi
}
pip_install --upgrade pip
for req in "${reqs[@]}"; do
  echo "[bootstrap] pip install -r ${req#"$root"/}" >&2
  pip_install -r "$req"
done
pip_install --no-deps -e "$root"
echo "$stamp" > "$venv/.il_policy_stamp"
echo "[bootstrap] ready" >&2
