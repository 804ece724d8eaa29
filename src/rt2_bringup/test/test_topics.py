"""Topic, service and action names agree across the graph, the policy node, the bridge YAML, the
servo file, the controllers file, the world SDF and the helper nodes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from rt2_bringup import moveit_graph as mg
from rt2_bringup.graph import TOPICS, EmbeddedGraphConfig

PACKAGE = Path(__file__).resolve().parents[1]
CONFIG = PACKAGE / "config"
WORLD = PACKAGE.parent / "rt2_sim" / "worlds" / "rt2_table.sdf"
#: gazebosim/ros_gz, ros_gz_bridge/src/bridge_config.cpp: keys of a topic entry (Jazzy).
BRIDGE_KEYS = {"topic_name", "ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name",
               "direction", "publisher_queue", "subscriber_queue", "lazy"}
BRIDGE_DIRECTIONS = {"BIDIRECTIONAL", "GZ_TO_ROS", "ROS_TO_GZ"}

SCRIPTED = EmbeddedGraphConfig(backend="scripted")


def bridge_entries() -> dict[str, dict]:
    entries = yaml.safe_load((CONFIG / "ros_gz_bridge.yaml").read_text())
    return {e["ros_topic_name"]: e for e in entries}


def gazebo() -> mg.BringupGraph:
    return mg.gazebo_graph(SCRIPTED, world="w.sdf", bridge_config="b.yaml",
                           servo_params="s.yaml", robot_description="<robot/>")


def robot(**kwargs) -> mg.BringupGraph:
    kwargs.setdefault("safety", mg.RobotSafety())
    kwargs.setdefault("camera", mg.CameraConfig())
    return mg.robot_graph(SCRIPTED, servo_params="s.yaml", **kwargs)


def test_bridge_yaml_schema():
    for entry in yaml.safe_load((CONFIG / "ros_gz_bridge.yaml").read_text()):
        assert set(entry) <= BRIDGE_KEYS, f"unknown bridge keys: {set(entry) - BRIDGE_KEYS}"
        assert entry["direction"] in BRIDGE_DIRECTIONS
        assert entry["gz_type_name"].startswith("gz.msgs.")
        assert entry["ros_type_name"].count("/") == 2  # pkg/msg/Type


def test_bridge_camera_and_clock_match_world_and_policy():
    entries = bridge_entries()
    policy = gazebo().node("rt2_policy").parameters
    image = entries[policy["image_topic"]]
    assert policy["image_topic"] == TOPICS["image"]
    assert image["ros_type_name"] == "sensor_msgs/msg/Image"
    assert image["direction"] == "GZ_TO_ROS"
    sensor_topic = ET.parse(WORLD).getroot().find(".//sensor[@type='camera']").findtext("topic")
    assert image["gz_topic_name"] == sensor_topic == mg.GZ_IMAGE_TOPIC
    info = entries[TOPICS["camera_info"]]
    assert info["gz_topic_name"] == mg.GZ_CAMERA_INFO_TOPIC
    assert info["ros_type_name"] == "sensor_msgs/msg/CameraInfo"
    clock = entries["/clock"]
    assert (clock["gz_type_name"], clock["direction"]) == ("gz.msgs.Clock", "GZ_TO_ROS")
    assert policy["use_sim_time"] is True  # stamps follow /clock like Servo's


def test_servo_file_and_controllers_match_the_graph():
    servo = yaml.safe_load((CONFIG / "servo_gazebo.yaml").read_text())
    params = servo[mg.SERVO_NODE]["ros__parameters"]["moveit_servo"]
    graph = gazebo()
    policy = graph.node("rt2_policy").parameters
    assert policy["twist_topic"] == TOPICS["twist"] == (
        f"/{mg.SERVO_NODE}/{params['cartesian_command_in_topic'].removeprefix('~/')}")
    assert graph.node(mg.SERVO_NODE).parameter_files == ("s.yaml",)
    controllers = yaml.safe_load((CONFIG / "panda_controllers.yaml").read_text())
    assert params["command_out_topic"] == f"/{mg.ARM_CONTROLLER}/joint_trajectory"
    assert mg.ARM_CONTROLLER in controllers and mg.HAND_CONTROLLER in controllers
    spawned = [spec.arguments[0] for spec in graph.controllers]
    assert spawned == [mg.JOINT_STATE_BROADCASTER, mg.ARM_CONTROLLER, mg.HAND_CONTROLLER]
    assert set(spawned) <= set(controllers["controller_manager"]["ros__parameters"])


def test_gripper_path_policy_to_hand_controller():
    bridge = gazebo().node("rt2_gripper_bridge").parameters
    policy = gazebo().node("rt2_policy").parameters
    assert bridge["gripper_topic"] == policy["gripper_topic"] == TOPICS["gripper"]
    assert bridge["action_name"] == mg.GRIPPER_ACTION == f"/{mg.HAND_CONTROLLER}/gripper_cmd"
    from rt2_sim import sim_node  # the embedded simulator takes the same gripper topic

    assert "/" + sim_node.GRIPPER_TOPIC == TOPICS["gripper"]


def test_policy_node_declares_what_the_graphs_set():
    pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
    pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built: run make setup")
    from rt2_policy.policy_node import PARAMETERS

    for graph in (gazebo(), robot()):
        policy = graph.node("rt2_policy").parameters
        unknown = set(policy) - set(PARAMETERS) - {"use_sim_time"}
        assert not unknown, f"graph sets parameters the policy node does not declare: {unknown}"
        for key in ("twist_topic", "gripper_topic", "instruction_topic", "action_topic",
                    "status_topic", "action_server_name"):
            assert policy[key] == PARAMETERS[key][0], key  # defaults = the documented names
    assert PARAMETERS["estop_topic"][0] == TOPICS["estop"] == mg.RobotSafety().estop_topic
    assert PARAMETERS["servo_node_name"][0] == f"/{mg.SERVO_NODE}"


def test_robot_policy_calls_the_ready_pose_service():
    policy = robot().node("rt2_policy").parameters
    assert policy["ready_service"] == mg.READY_SERVICE == f"/{mg.READY_NODE}/move_to_ready"
    assert robot().node(mg.READY_NODE).executable == "ready_pose"
    assert robot(ready_pose=False).node("rt2_policy").parameters["ready_service"] == ""


def test_gz_spawn_targets_the_world_and_the_description():
    spawn = gazebo().spawn
    args = dict(zip(spawn.arguments[::2], spawn.arguments[1::2], strict=True))
    assert args["-world"] == ET.parse(WORLD).getroot().find("world").get("name") == mg.GZ_WORLD
    assert args["-topic"] == "robot_description"  # robot_state_publisher's latched topic
    assert gazebo().node("robot_state_publisher").parameters["robot_description"] == "<robot/>"
