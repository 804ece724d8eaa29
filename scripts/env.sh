# Source this file (bash) to get the rt2 environment: venv, ROS 2, the built workspace.
#   . scripts/env.sh
# It keeps DDS on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) unless you set otherwise,
# and sets OMP_WAIT_POLICY=PASSIVE before anything imports torch.
_rt2_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_rt2_venv=${RT2_VENV:-$_rt2_root/.venv}
if [ ! -x "$_rt2_venv/bin/python" ] || [ ! -f "$_rt2_root/install/setup.bash" ]; then
  echo "rt2: not set up yet; run 'make setup' (or scripts/setup.sh) first" >&2
  return 1 2>/dev/null || exit 1
fi
for _d in ${RT2_ROS_DISTRO:-jazzy kilted rolling humble}; do
  if [ -f "/opt/ros/$_d/setup.bash" ]; then . "/opt/ros/$_d/setup.bash"; break; fi
done
. "$_rt2_venv/bin/activate"
# ROS wheels: set the library path once instead of letting every Python process re-exec itself.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export LD_LIBRARY_PATH="$_rt2_venv/lib:$(ls -d "$_rt2_venv"/lib/python3*/site-packages/ros_*.libs 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}"
. "$_rt2_root/install/setup.bash"
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export MUJOCO_GL=${MUJOCO_GL:-egl}
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-$MUJOCO_GL}
export RT2_ROOT=$_rt2_root
unset _rt2_root _rt2_venv _d
