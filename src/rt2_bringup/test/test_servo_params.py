"""MoveIt Servo and ros2_control parameter files use only names their schemas declare.

MoveIt Servo and the ros2_controllers declare their parameters with generate_parameter_library:
an unknown name in a parameters file is silently ignored (a typo = a default you did not want),
and a wrong value type makes the node fail at start-up. MoveIt and ros2_control are not
installable here, so the schemas' parameter names are kept below with their upstream source.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rt2_bringup import moveit_graph as mg
from rt2_bringup.graph import TOPICS

CONFIG = Path(__file__).resolve().parents[1] / "config"

#: moveit/moveit2, moveit_ros/moveit_servo/config/servo_parameters.yaml (generate_parameter_library
#: schema of the rewritten Servo, Jazzy and later; servo_node declares them under the prefix
#: "moveit_servo"), flattened with dots. Names added after the Jazzy branch (e.g.
#: apply_twist_commands_about_ee_frame, check_octomap_collisions, singularity_step_scale) are
#: listed but must not be used, so that the files work on Jazzy.
SERVO_SCHEMA = {
    "thread_priority", "publish_period", "max_expected_latency", "move_group_name",
    "active_subgroup", "pose_command_in_topic", "cartesian_command_in_topic",
    "joint_command_in_topic", "command_in_type", "scale.linear", "scale.rotational",
    "scale.joint", "incoming_command_timeout", "apply_twist_commands_about_ee_frame",
    "pose_tracking.linear_tolerance", "pose_tracking.angular_tolerance", "status_topic",
    "command_out_topic", "command_out_type", "publish_joint_positions",
    "publish_joint_velocities", "publish_joint_accelerations", "monitored_planning_scene_topic",
    "joint_topic", "check_octomap_collisions", "is_primary_planning_scene_monitor",
    "use_smoothing", "smoothing_filter_plugin_name", "check_collisions",
    "self_collision_proximity_threshold", "scene_collision_proximity_threshold",
    "collision_check_rate", "lower_singularity_threshold", "hard_stop_singularity_threshold",
    "leaving_singularity_threshold_multiplier", "singularity_step_scale",
    "halt_all_joints_in_joint_mode", "halt_all_joints_in_cartesian_mode", "joint_limit_margins",
    "override_velocity_scaling_factor",
}
NEWER_THAN_JAZZY = {"apply_twist_commands_about_ee_frame", "check_octomap_collisions",
                    "singularity_step_scale"}
#: Parameters of Humble's Servo that the rewrite removed (the command frame now comes from the
#: message's frame_id; planning_frame/ee_frame_name are gone): using them is a sign of an old
#: config copied from a tutorial.
HUMBLE_ONLY = {"planning_frame", "ee_frame_name", "robot_link_command_frame", "use_gazebo",
               "low_latency_mode", "num_outgoing_halt_msgs_to_publish", "joint_limit_margin",
               "linear_scale", "rotational_scale"}

#: ros-controls/ros2_controllers generate_parameter_library schemas (top-level names; nested
#: groups as their first component): joint_trajectory_controller/src/
#: joint_trajectory_controller_parameters.yaml, gripper_controllers/src/
#: gripper_action_controller_parameters.yaml; joint_state_broadcaster/src/
#: joint_state_broadcaster_parameters.yaml. controller_manager: update_rate and
#: <controller>.type (ros2_control controller_manager).
JTC_SCHEMA = {"joints", "command_joints", "command_interfaces", "state_interfaces",
              "speed_scaling", "allow_partial_joints_goal", "interpolate_from_desired_state",
              "allow_integration_in_goal_trajectories",
              "set_last_command_interface_value_as_state_on_activation", "action_monitor_rate",
              "interpolation_method", "allow_nonzero_velocity_at_trajectory_end", "cmd_timeout",
              "gains", "constraints", "open_loop_control", "start_with_holding"}
GRIPPER_SCHEMA = {"action_monitor_rate", "joint", "goal_tolerance", "max_effort",
                  "allow_stalling", "stall_velocity_threshold", "stall_timeout"}
JSB_SCHEMA = {"joints", "interfaces", "use_local_topics", "map_interface_to_joint_state",
              "extra_joints", "use_urdf_to_filter"}


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def servo_parameters(name: str) -> tuple[dict, dict]:
    """``(node parameters, moveit_servo.* parameters flattened)`` of a servo file."""
    tree = yaml.safe_load((CONFIG / name).read_text())
    assert list(tree) == [mg.SERVO_NODE], "parameters must target the servo_node node"
    node = tree[mg.SERVO_NODE]["ros__parameters"]
    return node, flatten(node["moveit_servo"])


@pytest.mark.parametrize("name", ["servo_gazebo.yaml", "servo_robot.yaml"])
def test_servo_file_uses_the_jazzy_schema(name):
    node, servo = servo_parameters(name)
    assert set(node) <= {"moveit_servo", "use_sim_time"}
    unknown = set(servo) - SERVO_SCHEMA
    assert not unknown, f"{name}: not MoveIt Servo parameters: {sorted(unknown)}"
    assert not set(servo) & NEWER_THAN_JAZZY
    assert not set(servo) & HUMBLE_ONLY


@pytest.mark.parametrize("name,sim_time", [("servo_gazebo.yaml", True),
                                           ("servo_robot.yaml", False)])
def test_servo_file_values(name, sim_time):
    node, servo = servo_parameters(name)
    assert node["use_sim_time"] is sim_time
    assert servo["move_group_name"] == "panda_arm"
    # rt2 sends m/s and rad/s; "unitless" would scale them as joystick deflections.
    assert servo["command_in_type"] == "speed_units"
    assert servo["command_out_type"] in ("trajectory_msgs/JointTrajectory",
                                         "std_msgs/Float64MultiArray")
    assert servo["command_out_topic"] == mg.SERVO_COMMAND_OUT_TOPIC
    assert f"/{mg.SERVO_NODE}/" + servo["cartesian_command_in_topic"].removeprefix("~/") == (
        TOPICS["twist"])
    assert servo["joint_topic"] == TOPICS["joint_states"]
    # The policy's keep-alive must outpace Servo's staleness timeout.
    rt2_policy = pytest.importorskip("rt2_policy.policy_node",
                                     reason="ROS 2 (rclpy) or rt2_msgs missing: run make setup")
    keepalive_hz = rt2_policy.PARAMETERS["keepalive_rate"][0]
    assert 0 < 2.0 / keepalive_hz <= servo["incoming_command_timeout"] <= 0.5
    assert 0 < servo["publish_period"] <= 0.05
    assert 0 < servo["lower_singularity_threshold"] < servo["hard_stop_singularity_threshold"]
    assert len(servo["joint_limit_margins"]) in (1, 7)
    assert all(m >= 0 for m in servo["joint_limit_margins"])
    assert servo["check_collisions"] is True
    assert 0 < servo["self_collision_proximity_threshold"]
    assert 0 < servo["scene_collision_proximity_threshold"]


def test_robot_servo_is_more_cautious_than_the_simulated_one():
    _, sim = servo_parameters("servo_gazebo.yaml")
    _, robot = servo_parameters("servo_robot.yaml")
    assert robot["hard_stop_singularity_threshold"] <= sim["hard_stop_singularity_threshold"]
    scene = "scene_collision_proximity_threshold"
    assert robot[scene] >= sim[scene]
    assert robot["scale.linear"] <= sim["scale.linear"]


def test_controllers_file_uses_the_ros2_controllers_schemas():
    tree = yaml.safe_load((CONFIG / "panda_controllers.yaml").read_text())
    manager = tree["controller_manager"]["ros__parameters"]
    types = {name: value["type"] for name, value in manager.items() if isinstance(value, dict)}
    assert set(manager) - set(types) == {"update_rate"}
    schemas = {"joint_trajectory_controller/JointTrajectoryController": JTC_SCHEMA,
               "position_controllers/GripperActionController": GRIPPER_SCHEMA,
               "joint_state_broadcaster/JointStateBroadcaster": JSB_SCHEMA}
    for name, kind in types.items():
        assert kind in schemas, f"{name}: unexpected controller type {kind}"
        params = tree.get(name, {}).get("ros__parameters", {})
        unknown = set(params) - schemas[kind]
        assert not unknown, f"{name}: not {kind} parameters: {sorted(unknown)}"

