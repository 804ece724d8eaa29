"""docker/: the images and the compose file agree with the workspace (they are not built here:
no Docker engine on the development machines). The compose commands must name launch files,
launch arguments, console scripts and server flags that exist, and the robot image must install
what the Gazebo/robot graphs run."""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
#: apt meta-packages that bring a ROS package (Jazzy): ros_gz holds the Gazebo bridge and
#: spawner, ros2_controllers the controllers.
PROVIDED_BY = {"ros_gz_bridge": "ros-gz", "ros_gz_sim": "ros-gz",
               "joint_state_broadcaster": "ros2-controllers",
               "joint_trajectory_controller": "ros2-controllers",
               "gripper_controllers": "ros2-controllers"}


def dockerfile(name: str) -> str:
    return (DOCKER / name).read_text()


def test_compose_builds_the_two_images():
    services = COMPOSE["services"]
    assert set(services) == {"policy-server", "sim"}
    for service in services.values():
        build = service["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file()
    assert services["sim"]["depends_on"]["policy-server"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["robot.Dockerfile", "server.Dockerfile"])
def test_base_images_are_pinned(name):
    (image,) = re.findall(r"^ARG \w+_IMAGE=(\S+)$", dockerfile(name), re.M)
    repository, _, tag = image.partition(":")
    assert tag and "latest" not in tag, image
    if repository == "ros":
        # The official ROS images are tagged by distro, flavour and Ubuntu release only (no
        # version tags): pin those three, or a digest.
        assert "@sha256:" in tag or re.fullmatch(r"jazzy-ros-base-noble", tag), image
    else:
        assert re.search(r"\d+\.\d+", tag), image  # e.g. CUDA 12.8.1


def test_sim_command_uses_existing_launch_arguments(launch_standin):
    command = COMPOSE["services"]["sim"]["command"]
    assert command[:2] == ["bash", "-lc"]
    words = shlex.split(command[2])
    assert words[:4] == ["ros2", "launch", "rt2_bringup", "sim.launch.py"]
    arguments = dict(w.split(":=", 1) for w in words[4:])
    declared, actions = launch_standin.evaluate("sim.launch.py", **arguments)
    assert set(arguments) <= set(declared)
    policy = launch_standin.merged_parameters(launch_standin.nodes_of(actions)["rt2_policy"])
    assert policy["backend"] == "remote"
    server = COMPOSE["services"]["policy-server"]
    port = server["ports"][0].split(":")[-1]
    assert arguments["server_uri"] == f"ws://policy-server:{port}"


def test_server_command_is_valid_for_rt2_serve():
    server = pytest.importorskip("rt2_policy.serving.server",
                                 reason="rt2_policy.serving needs websockets: run make setup")
    text = dockerfile("server.Dockerfile")
    entrypoint = yaml.safe_load(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    default_cmd = yaml.safe_load(re.search(r"^CMD (.+)$", text, re.M).group(1))
    assert entrypoint[:3] == ["python", "-m", "rt2_policy.serving"]
    parser = server.build_arg_parser()
    for cmd in (default_cmd, COMPOSE["services"]["policy-server"]["command"]):
        args = parser.parse_args(entrypoint[3:] + cmd)
        assert args.host == "0.0.0.0" and args.model == "/models/rt2"
    assert f"EXPOSE {args.port}" in text and f"127.0.0.1:{args.port}/healthz" in text
    assert (ROOT / "src" / "rt2_policy" / "rt2_policy" / "serving" / "__main__.py").is_file()


def test_server_image_installs_the_pinned_stack():
    text = dockerfile("server.Dockerfile")
    pinned = {line.split("==")[0] for line in (ROOT / "requirements" / "python.txt").read_text()
              .splitlines() if "==" in line and not line.startswith("#")}
    listed = re.search(r"pins '([^']+)'", text).group(1).split("|")
    assert set(listed) <= pinned, f"not pinned in requirements/python.txt: {set(listed) - pinned}"
    assert {"transformers", "websockets", "msgpack", "msgpack-numpy"} <= set(listed)
    assert not re.search(r"pip install[^\n]*torchvision", text)


def test_robot_image_installs_what_the_graphs_run():
    text = dockerfile("robot.Dockerfile")
    apt = set(re.findall(r"ros-jazzy-([a-z0-9-]+)", text))
    package = ET.parse(ROOT / "src" / "rt2_bringup" / "package.xml").getroot()
    core = {"rclpy", "rt2_msgs", "rt2_policy", "rt2_sim", "std_msgs", "ament_index_python",
            "launch", "launch_ros", "rcl_interfaces", "std_srvs"}  # in ros-base or the workspace
    for dep in (e.text for e in package.findall("exec_depend")):
        if dep in core:
            continue
        wanted = PROVIDED_BY.get(dep, dep.replace("_", "-"))
        assert wanted in apt, f"robot.Dockerfile does not install ros-jazzy-{wanted} ({dep})"
    for camera in ("usb-cam", "realsense2-camera"):  # robot.launch.py camera:= drivers
        assert camera in apt
    assert "liburdfdom-tools" in text  # check_urdf for make test in the image
    assert "RT2_ROS_DISTRO=jazzy" in text and "scripts/setup.sh" in text
