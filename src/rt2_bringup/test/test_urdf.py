"""The Gazebo robot description (urdf/panda_gz.urdf.xacro): expands, passes check_urdf, and its
ros2_control block agrees with the controllers file and MoveIt's names.

The xacro includes moveit_resources_panda_description's panda.urdf.xacro. Where that package is
installed (apt, Docker image) the real one is used; here (no MoveIt on PyPI) an ament prefix
with a stand-in of the same interface (test/data/panda_description_standin.urdf.xacro: same link
and joint names, Franka kinematics, one mesh) takes its place, so everything rt2 adds — the
ros2_control block, the gz_ros2_control plugin, the controllers file path — is expanded and
checked for real. ``xacro`` comes from PyPI; ``check_urdf`` from Debian's liburdfdom-tools
(scripts/setup.sh installs it).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

xacro = pytest.importorskip("xacro", reason="xacro not installed: run make setup")

from rt2_bringup import moveit_graph as mg  # noqa: E402
from rt2_bringup.resource_uris import resolve_uri  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[1]
XACRO = PACKAGE / "urdf" / "panda_gz.urdf.xacro"
CONTROLLERS = PACKAGE / "config" / "panda_controllers.yaml"
STANDIN = Path(__file__).resolve().parent / "data" / "panda_description_standin.urdf.xacro"
DESCRIPTION = "moveit_resources_panda_description"
ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
#: MoveIt's "ready" state (moveit_resources panda_moveit_config/config/panda.srdf), radians.
SRDF_READY = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]


def _has_real_description() -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory(DESCRIPTION)
    except PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def urdf_file(tmp_path_factory) -> Path:
    """The expanded URDF, written to a file."""
    out = tmp_path_factory.mktemp("urdf")
    with pytest.MonkeyPatch.context() as mp:
        if not _has_real_description():
            prefix = out / "standin_prefix"
            marker = prefix / "share" / "ament_index" / "resource_index" / "packages"
            marker.mkdir(parents=True)
            (marker / DESCRIPTION).write_text("")
            share = prefix / "share" / DESCRIPTION
            (share / "urdf").mkdir(parents=True)
            shutil.copy(STANDIN, share / "urdf" / "panda.urdf.xacro")
            (share / "meshes" / "collision").mkdir(parents=True)
            (share / "meshes" / "collision" / "link0.stl").write_text("solid l0\nendsolid l0\n")
            mp.setenv("AMENT_PREFIX_PATH", f"{prefix}:{os.environ.get('AMENT_PREFIX_PATH', '')}")
        doc = xacro.process_file(str(XACRO))
        path = out / "panda_gz.urdf"
        path.write_text(doc.toprettyxml(indent="  "))
        # Resolve meshes while the (stand-in) prefix is still on the path.
        root = ET.parse(path).getroot()
        unresolved = []
        for mesh in root.iter("mesh"):
            try:
                resolve_uri(mesh.get("filename"))
            except FileNotFoundError as exc:
                unresolved.append(str(exc))
        (out / "unresolved.txt").write_text("\n".join(unresolved))
    return path


@pytest.fixture(scope="module")
def robot(urdf_file) -> ET.Element:
    return ET.parse(urdf_file).getroot()


def run_check_urdf(path: Path) -> subprocess.CompletedProcess:
    if shutil.which("check_urdf") is None:
        pytest.skip("check_urdf not installed: apt install liburdfdom-tools (scripts/setup.sh "
                    "does it)")
    return subprocess.run(["check_urdf", str(path)], capture_output=True, text=True, timeout=60)


def test_expanded_urdf_passes_check_urdf(urdf_file):
    result = run_check_urdf(urdf_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully Parsed XML" in result.stdout
    assert "root Link: world" in result.stdout  # fixed to the world: Gazebo pins panda_link0


def test_check_urdf_rejects_a_broken_description(urdf_file, tmp_path):
    broken = tmp_path / "broken.urdf"
    broken.write_text(urdf_file.read_text().replace('<link name="panda_link3">',
                                                    '<link name="panda_link3_typo">'))
    assert run_check_urdf(broken).returncode != 0


def test_mesh_uris_resolve(urdf_file, robot):
    meshes = [m.get("filename") for m in robot.iter("mesh")]
    assert meshes, "expected mesh references (upstream: every link; stand-in: link0)"
    assert (urdf_file.parent / "unresolved.txt").read_text() == ""


def test_ros2_control_block_drives_moveit_joints(robot):
    joints = {j.get("name"): j for j in robot.findall("joint")}
    control = robot.find("ros2_control")
    assert control.findtext("hardware/plugin") == "gz_ros2_control/GazeboSimSystem"
    controlled = {j.get("name"): j for j in control.findall("joint")}
    assert list(controlled) == [*ARM_JOINTS, "panda_finger_joint1", "panda_finger_joint2"]
    assert set(controlled) <= set(joints), "ros2_control names joints the URDF does not have"
    for name in ARM_JOINTS + ["panda_finger_joint1"]:
        interfaces = [c.get("name") for c in controlled[name].findall("command_interface")]
        assert interfaces == ["position"]
    initial = [float(controlled[n].find("state_interface/param").text) for n in ARM_JOINTS]
    assert initial == pytest.approx(SRDF_READY)
    scene = pytest.importorskip("rt2_sim.scene", reason="rt2_sim (mujoco) not installed")
    assert initial == pytest.approx(list(scene.READY_POSE), abs=1e-3)  # same start as MuJoCo
    mimic = {p.get("name"): p.text for p in controlled["panda_finger_joint2"].findall("param")}
    assert mimic["mimic"] == "panda_finger_joint1"
    assert joints["panda_finger_joint2"].find("mimic").get("joint") == "panda_finger_joint1"


def test_gz_ros2_control_plugin_loads_the_controllers_file(robot):
    plugin = robot.find("gazebo/plugin")
    assert plugin.get("filename") == "gz_ros2_control-system"
    assert plugin.get("name") == "gz_ros2_control::GazeboSimROS2ControlPlugin"
    path = Path(plugin.findtext("parameters").strip())
    assert path.is_file() and path.name == "panda_controllers.yaml"
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(CONTROLLERS.read_text())


def test_controllers_match_the_ros2_control_joints(robot):
    controllers = yaml.safe_load(CONTROLLERS.read_text())
    manager = controllers["controller_manager"]["ros__parameters"]
    for name in (mg.ARM_CONTROLLER, mg.HAND_CONTROLLER, mg.JOINT_STATE_BROADCASTER):
        assert name in manager, f"{name} not declared in the controller manager"
    arm = controllers[mg.ARM_CONTROLLER]["ros__parameters"]
    assert arm["joints"] == ARM_JOINTS
    assert arm["command_interfaces"] == ["position"]
    hand = controllers[mg.HAND_CONTROLLER]["ros__parameters"]
    assert hand["joint"] == "panda_finger_joint1"
    assert manager[mg.HAND_CONTROLLER]["type"] == "position_controllers/GripperActionController"
    # The gripper command's range is the finger joint's travel.
    finger = next(j for j in robot.findall("joint") if j.get("name") == "panda_finger_joint1")
    limit = finger.find("limit")
    assert (float(limit.get("lower")), float(limit.get("upper"))) == (0.0, 0.04)
    assert hand["max_effort"] <= float(limit.get("effort"))


def test_arm_joint_limits_hold_the_ready_pose(robot):
    joints = {j.get("name"): j for j in robot.findall("joint")}
    for name, value in zip(ARM_JOINTS, SRDF_READY, strict=True):
        limit = joints[name].find("limit")
        assert float(limit.get("lower")) < value < float(limit.get("upper")), name
        assert math.isfinite(float(limit.get("velocity")))
