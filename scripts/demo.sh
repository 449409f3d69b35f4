#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs the end-to-end demo (extra args go to it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/bootstrap.sh"
# shellcheck source=scripts/ros_env.sh
source "$root/scripts/ros_env.sh"
cd "$root"
exec python -m il_policy_node.demo "$@"
