#!/usr/bin/env bash
# Run a command inside the rt2 environment (venv + ROS 2 + built workspace).
set -e
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$@"
