"""The node graph shared by sim.launch.py and the demo: names agree with what the nodes declare."""

import py_compile
from pathlib import Path

import pytest

from rt2_bringup.graph import (
    GRIPPER_OPEN_POSITION_RANGE,
    SETTLE_TIME_RANGE,
    TOPICS,
    EmbeddedGraphConfig,
    embedded_graph,
    parameters_yaml,
    policy_node,
)

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"


def test_policy_parameters_are_declared_by_the_node():
    pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
    pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built: run make setup")
    from rt2_policy.policy_node import PARAMETERS

    spec = embedded_graph(EmbeddedGraphConfig(backend="scripted"))[1]
    unknown = set(spec.parameters) - set(PARAMETERS) - {"use_sim_time"}
    assert not unknown, f"graph sets parameters the policy node does not declare: {unknown}"
    assert spec.parameters["twist_topic"] == "/servo_node/delta_twist_cmds"  # MoveIt Servo's name
    # The gripper-state inputs default to the node's own defaults, and share its range.
    for name in ("joint_states_topic", "gripper_joints", "gripper_open_position",
                 "arm_joints", "tcp_offset", "release_at_waypoint", "terminate_threshold",
                 "observe_after_motion", "settle_time"):
        assert spec.parameters[name] == PARAMETERS[name][0], name
    (bounds,) = PARAMETERS["gripper_open_position"][1].floating_point_range
    assert (bounds.from_value, bounds.to_value) == GRIPPER_OPEN_POSITION_RANGE
    (bounds,) = PARAMETERS["tcp_offset"][1].floating_point_range
    assert (bounds.from_value, bounds.to_value) == (0.0, 1.0)  # the config's own check
    (bounds,) = PARAMETERS["settle_time"][1].floating_point_range
    assert (bounds.from_value, bounds.to_value) == SETTLE_TIME_RANGE


def test_sim_topics_match_the_graph():
    from rt2_sim import sim_node

    assert "/" + sim_node.TWIST_TOPIC == TOPICS["twist"]
    assert "/" + sim_node.IMAGE_TOPIC == TOPICS["image"]
    assert "/" + sim_node.GRIPPER_TOPIC == TOPICS["gripper"]
    assert "/" + sim_node.JOINT_STATES_TOPIC == TOPICS["joint_states"]


def test_embedded_policy_reads_the_sims_finger_joints():
    from rt2_sim.scene import FINGER_JOINT_NAMES

    policy = embedded_graph(EmbeddedGraphConfig(backend="scripted"))[1].parameters
    assert policy["joint_states_topic"] == TOPICS["joint_states"]
    assert policy["gripper_joints"] == list(FINGER_JOINT_NAMES)
    assert policy["gripper_open_position"] == 0.04  # the MuJoCo Panda's finger range, m
    from rt2_sim.scene import ARM_JOINT_NAMES, TCP_OFFSET
    assert policy["arm_joints"] == list(ARM_JOINT_NAMES)
    assert policy["tcp_offset"] == TCP_OFFSET  # the sim's tcp site past the flange, m


def test_gripper_settings_reach_the_policy_node():
    config = EmbeddedGraphConfig(backend="scripted", joint_states_topic="/franka/joint_states",
                                 gripper_joints=["fr3_finger_joint1", "fr3_finger_joint2"],
                                 gripper_open_position=0.05)
    assert config.gripper_joints == ("fr3_finger_joint1", "fr3_finger_joint2")  # frozen: a tuple
    hash(config)
    policy = policy_node(config).parameters
    assert policy["joint_states_topic"] == "/franka/joint_states"
    assert policy["gripper_joints"] == ["fr3_finger_joint1", "fr3_finger_joint2"]
    assert policy["gripper_open_position"] == 0.05
    assert policy_node(EmbeddedGraphConfig(backend="scripted",
                                           gripper_open_position=1)).parameters[
        "gripper_open_position"] == 1.0  # a double parameter, even from an int
    fr3 = [f"fr3_joint{i}" for i in range(1, 8)]
    policy = policy_node(EmbeddedGraphConfig(backend="scripted", arm_joints=fr3,
                                             tcp_offset=0)).parameters
    assert policy["arm_joints"] == fr3 and policy["tcp_offset"] == 0.0
    assert type(policy["tcp_offset"]) is float


@pytest.mark.parametrize("release", [True, False])
def test_the_release_gate_setting_reaches_the_policy_node(release):
    policy = policy_node(EmbeddedGraphConfig(backend="scripted",
                                             release_at_waypoint=release)).parameters
    assert policy["release_at_waypoint"] is release


@pytest.mark.parametrize("threshold", [0.0, 0.9])
def test_the_terminate_threshold_setting_reaches_the_policy_node(threshold):
    policy = policy_node(EmbeddedGraphConfig(backend="scripted",
                                             terminate_threshold=threshold)).parameters
    assert policy["terminate_threshold"] == threshold
    assert type(policy["terminate_threshold"]) is float


@pytest.mark.parametrize("after_motion", [True, False])
def test_the_observe_after_motion_setting_reaches_the_policy_node(after_motion):
    policy = policy_node(EmbeddedGraphConfig(backend="scripted", observe_after_motion=after_motion,
                                             settle_time=0.25)).parameters
    assert policy["observe_after_motion"] is after_motion
    assert policy["settle_time"] == 0.25 and type(policy["settle_time"]) is float


@pytest.mark.parametrize("kwargs,message", [
    ({"joint_states_topic": "joint_states"}, "joint_states_topic: expected an absolute"),
    ({"gripper_joints": ()}, "gripper_joints: expected one or more non-empty joint names"),
    ({"gripper_joints": "panda_finger_joint1"}, "gripper_joints: expected one or more"),
    ({"gripper_joints": ("panda_finger_joint1", "")}, "gripper_joints: expected one or more"),
    ({"gripper_joints": (" panda_finger_joint1",)}, "gripper_joints: expected one or more"),
    ({"gripper_joints": ("panda_finger_joint1", 2)}, "gripper_joints: expected one or more"),
    ({"gripper_joints": ("j", "j")}, "gripper_joints: expected distinct joint names"),
    ({"gripper_open_position": 0.0}, "gripper_open_position: expected a number in"),
    ({"gripper_open_position": 0.0005}, "gripper_open_position: expected a number in"),
    ({"gripper_open_position": 1.5}, "gripper_open_position: expected a number in"),
    ({"gripper_open_position": float("inf")}, "gripper_open_position: expected a number in"),
    ({"gripper_open_position": "0.04"}, "gripper_open_position: expected a number in"),
    ({"gripper_open_position": True}, "gripper_open_position: expected a number in"),
    ({"arm_joints": tuple(f"j{i}" for i in range(6))}, "arm_joints: expected the 7 arm joints"),
    ({"arm_joints": ("j",) * 7}, "arm_joints: expected distinct joint names"),
    ({"tcp_offset": -0.01}, "tcp_offset: expected a number in"),
    ({"tcp_offset": 1.5}, "tcp_offset: expected a number in"),
    ({"tcp_offset": float("nan")}, "tcp_offset: expected a number in"),
    ({"tcp_offset": "0.13"}, "tcp_offset: expected a number in"),
    ({"release_at_waypoint": 1}, "release_at_waypoint: expected a bool"),
    ({"release_at_waypoint": "false"}, "release_at_waypoint: expected a bool"),
    ({"terminate_threshold": 1.0}, "terminate_threshold: expected 0 .* or a probability"),
    ({"terminate_threshold": 0.9995}, r"terminate_threshold: .* in \(0, 0.999\]"),
    ({"terminate_threshold": -0.5}, "terminate_threshold: expected 0 .* or a probability"),
    ({"terminate_threshold": float("nan")}, "terminate_threshold: expected 0"),
    ({"terminate_threshold": True}, "terminate_threshold: expected 0"),
    ({"observe_after_motion": 1}, "observe_after_motion: expected a bool"),
    ({"settle_time": -0.1}, r"settle_time: expected a number in \[0, 2\] s"),
    ({"settle_time": 2.5}, "settle_time: expected a number in"),
    ({"settle_time": True}, "settle_time: expected a number in"),
])
def test_gripper_settings_validation(kwargs, message):
    with pytest.raises(ValueError, match=f"{message}.*got"):
        EmbeddedGraphConfig(backend="scripted", **kwargs)


def test_config_validation_and_yaml():
    with pytest.raises(ValueError, match="model_path"):
        EmbeddedGraphConfig(backend="local", model_path="")
    with pytest.raises(ValueError, match="backend"):
        EmbeddedGraphConfig(backend="magic")
    specs = embedded_graph(EmbeddedGraphConfig(backend="scripted", seed=3))
    assert [s.name for s in specs] == ["rt2_sim", "rt2_policy"]
    assert parameters_yaml(specs[0])["rt2_sim"]["ros__parameters"]["seed"] == 3


@pytest.mark.parametrize("launch_file", sorted(LAUNCH_DIR.glob("*.launch.py")))
def test_launch_files_compile(launch_file):
    py_compile.compile(str(launch_file), doraise=True)


# sim.launch.py / robot.launch.py evaluation (stand-in and real launch_ros): test_launch_files.py
