"""The Gazebo world (rt2_sim/worlds/rt2_table.sdf): valid SDF, and the twin of the MuJoCo scene.

Validation uses the SDFormat command-line checker: ``gz sdf -k`` (Gazebo Harmonic, sdformat 14)
or, on Debian 12, ``ign sdf -k`` (packages ignition-tools + libsdformat-dev, sdformat 12 — which
scripts/setup.sh installs). The scene checks compare the world with rt2_sim.scene.SceneConfig's
defaults: the Gazebo world frame is the robot base frame panda_link0 (the table top is z = 0).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from rt2_bringup import moveit_graph as mg
from rt2_bringup.resource_uris import resolve_uri

WORLD = Path(__file__).resolve().parents[2] / "rt2_sim" / "worlds" / "rt2_table.sdf"


def sdf_checker() -> list[str] | None:
    """The command that validates an SDF file, or None where no SDFormat tool is installed."""
    for tool in ("gz", "ign"):
        if shutil.which(tool):
            probe = subprocess.run([tool, "sdf", "--help"], capture_output=True, text=True,
                                   timeout=60)
            if probe.returncode == 0 and "--check" in probe.stdout + probe.stderr:
                return [tool, "sdf", "-k"]
    return None


def run_checker(path: Path) -> subprocess.CompletedProcess:
    checker = sdf_checker()
    if checker is None:
        pytest.skip("no SDFormat checker (gz sdf / ign sdf): apt install ignition-tools "
                    "libsdformat-dev (Debian) or Gazebo Harmonic; scripts/setup.sh does it")
    return subprocess.run([*checker, str(path)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def world() -> ET.Element:
    return ET.parse(WORLD).getroot().find("world")


@pytest.fixture(scope="module")
def scene():
    scene = pytest.importorskip("rt2_sim.scene", reason="rt2_sim (mujoco) not installed")
    return scene


def pose_of(element: ET.Element) -> np.ndarray:
    return np.array([float(v) for v in element.findtext("pose", "0 0 0 0 0 0").split()])


def test_world_passes_the_sdformat_validator():
    result = run_checker(WORLD)
    assert result.returncode == 0 and "Valid" in result.stdout, result.stdout + result.stderr


def test_the_validator_rejects_a_broken_world(tmp_path):
    broken = tmp_path / "broken.sdf"
    broken.write_text(WORLD.read_text().replace("<size>1.3 1.5 0.4</size>", "<size>big</size>"))
    result = run_checker(broken)
    assert result.returncode != 0


def test_world_is_installed_with_rt2_sim():
    from ament_index_python.packages import get_package_share_directory

    installed = Path(get_package_share_directory("rt2_sim")) / "worlds" / "rt2_table.sdf"
    assert installed.is_file() and installed.read_text() == WORLD.read_text()


def test_systems_for_spawning_and_the_camera(world):
    plugins = {p.get("filename"): p for p in world.findall("plugin")}
    for system in ("gz-sim-physics-system", "gz-sim-user-commands-system",
                   "gz-sim-scene-broadcaster-system", "gz-sim-sensors-system"):
        assert system in plugins, f"{system} missing: ros_gz_sim create / the camera need it"
    assert plugins["gz-sim-sensors-system"].findtext("render_engine") == "ogre2"
    assert world.get("name") == mg.GZ_WORLD
    assert world.findall("light")


def test_table_top_is_the_robot_base_plane(world, scene):
    config = scene.SceneConfig()
    models = {m.get("name"): m for m in world.findall("model")}
    table = models["table"]
    size = [float(v) for v in table.find("link/collision/geometry/box/size").text.split()]
    assert pose_of(table)[2] + size[2] / 2 == pytest.approx(0.0)
    assert size[2] == pytest.approx(config.table_height)
    assert pose_of(models["floor"])[2] == pytest.approx(-config.table_height)


def test_objects_match_the_mujoco_scene(world, scene):
    config = scene.SceneConfig()
    models = {m.get("name"): m for m in world.findall("model")}
    expected = scene.scene_objects(config)
    positions = []
    for obj in expected:
        model = models[obj.name.replace(" ", "_")]  # "red cube" -> red_cube
        link = model.find("link")
        size = [float(v) for v in link.find("collision/geometry/box/size").text.split()]
        assert size == pytest.approx([config.object_size] * 3)
        assert float(link.findtext("inertial/mass")) == pytest.approx(config.object_mass)
        rgba = [float(v) for v in link.find("visual/material/diffuse").text.split()]
        assert rgba[:3] == pytest.approx(list(obj.rgb))
        xyz = pose_of(model)[:3]
        assert config.object_x_range[0] <= xyz[0] <= config.object_x_range[1]
        assert config.object_y_range[0] <= xyz[1] <= config.object_y_range[1]
        assert xyz[2] == pytest.approx(config.object_size / 2)  # resting on the table top
        positions.append(xyz)
    for a, b in combinations(positions, 2):
        assert np.linalg.norm(a[:2] - b[:2]) >= config.min_object_separation


def test_camera_matches_the_mujoco_scene_camera(world, scene):
    from rt2_sim.tasks import task_scene_config

    config = task_scene_config()  # the camera the policy is trained and evaluated with
    model = next(m for m in world.findall("model") if m.get("name") == "scene_camera")
    sensor = model.find("link/sensor")
    assert sensor.get("type") == "camera"
    camera = sensor.find("camera")
    assert int(camera.findtext("image/width")) == config.image_width
    assert int(camera.findtext("image/height")) == config.image_height
    assert camera.findtext("image/format") == "R8G8B8"  # rgb8 on the ROS side
    # Square image: the horizontal field of view equals MuJoCo's vertical fovy.
    assert float(camera.findtext("horizontal_fov")) == pytest.approx(config.camera_fovy, abs=1e-5)
    x, y, z, roll, pitch, yaw = pose_of(model)
    assert [x, y, z] == pytest.approx(list(config.camera_eye))
    # Gazebo cameras look along +x: that axis must point from the eye at the target.
    direction = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw),
                          -math.sin(pitch)])
    wanted = np.subtract(config.camera_target, config.camera_eye)
    assert roll == 0.0
    assert direction == pytest.approx(wanted / np.linalg.norm(wanted), abs=1e-5)
    assert sensor.findtext("topic") == mg.GZ_IMAGE_TOPIC
    # gz-sensors CameraSensor::AdvertiseInfo: camera info beside the image topic.
    assert mg.GZ_IMAGE_TOPIC.rsplit("/", 1)[0] + "/camera_info" == mg.GZ_CAMERA_INFO_TOPIC


def test_model_uris_resolve(world):
    uris = [e.text for e in world.iter("uri")]
    for uri in uris:
        assert resolve_uri(uri.strip(), base=WORLD.parent).is_file()


def test_uri_resolution_fails_for_missing_files(tmp_path):
    (tmp_path / "mesh.stl").write_text("solid x\nendsolid x\n")
    assert resolve_uri(f"file://{tmp_path / 'mesh.stl'}") == tmp_path / "mesh.stl"
    assert resolve_uri("mesh.stl", base=tmp_path) == tmp_path / "mesh.stl"
    with pytest.raises(FileNotFoundError, match="no such file"):
        resolve_uri(f"file://{tmp_path / 'missing.stl'}")
    with pytest.raises(FileNotFoundError, match="not in the ament index"):
        resolve_uri("package://no_such_package_rt2/meshes/a.stl")
    assert resolve_uri("package://rt2_sim/worlds/rt2_table.sdf").name == "rt2_table.sdf"
    with pytest.raises(ValueError, match="expected a file://"):
        resolve_uri("http://example.com/a.stl")
