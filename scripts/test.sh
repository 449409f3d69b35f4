#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the whole suite (extra args go to pytest).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/bootstrap.sh"
# shellcheck source=scripts/ros_env.sh
source "$root/scripts/ros_env.sh"
cd "$root"
exec python -m pytest -p no:cacheprovider --timeout=300 "$@" test
