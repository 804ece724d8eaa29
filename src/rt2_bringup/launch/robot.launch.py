"""rt2 on a real 7-DoF arm: MoveIt Servo, a camera driver, the gripper action, a ready move before
each episode, and the policy node with safety defaults.

    # 1. start your robot's driver and controllers (e.g. franka_bringup for a Panda/FR3), then:
    ros2 launch rt2_bringup robot.launch.py model_path:=/path/to/checkpoint camera:=realsense
    # 2. watch /rt2/action in dry run; when it looks right, allow motion:
    ros2 launch rt2_bringup robot.launch.py model_path:=... dry_run:=false

Safety defaults (README "Run it on your robot"):
    dry_run:=true        actions are published on /rt2/action, but only zero twists reach Servo
                         and no gripper goals are sent, until you pass dry_run:=false
    max_linear_speed:=0.1, max_angular_speed:=0.5   twist clamps (m/s, rad/s) in the policy node
    estop_topic:=/rt2/estop   `ros2 topic pub --once /rt2/estop std_msgs/msg/Bool "{data: true}"`
                         zeroes motion, aborts the episode, pauses Servo (~/pause_servo),
                         stops a running ready move and refuses new episodes until false is
                         published. A software stop: keep the robot's hardware e-stop at hand.
    ready pose           before each episode the arm moves to the MoveIt config's named state
                         (ready_pose:=ready of planning_group:=panda_arm) through moveit_py; the
                         episode is refused if that move fails (use_ready_pose:=false to skip).

Gripper state: models trained with it read the finger closure from joint_states_topic; the
defaults are the Franka Hand's (panda_finger_joint1/2, 0.04 m open). An FR3 names its fingers
differently: gripper_joints:=fr3_finger_joint1,fr3_finger_joint2 (gripper_open_position:=0.04).
Tcp position: models trained with it read the tool centre point, from Franka Panda forward
kinematics of arm_joints (panda_joint1..7; an FR3, same Denavit-Hartenberg parameters:
arm_joints:=fr3_joint1,...,fr3_joint7) plus tcp_offset along the flange z axis: 0.13 m is
rt2_sim's long-fingered hand; a real Franka Hand's panda_hand_tcp is tcp_offset:=0.1034.

The MoveIt config package (moveit_config_package, robot_name, urdf_file) provides the robot
description, SRDF, kinematics, joint limits and the controllers moveit_py executes with; the
servo parameters file (servo_params) names the move group and the arm controller's trajectory
topic (see config/servo_robot.yaml). Camera: usb_cam (a V4L2 webcam, video_device) or realsense
(realsense2_camera, colour only) or none (your own driver; set image_topic).
"""

import os

from launch import LaunchDescription
from launch.actions import OpaqueFunction

from rt2_bringup import launch_actions as la
from rt2_bringup import moveit_graph as mg

ARGUMENTS = {
    **la.POLICY_ARGUMENTS,
    # MoveIt configuration of the user's robot
    "moveit_config_package": ("moveit_resources_panda_moveit_config",
                              "MoveIt config package of the robot (MoveIt Setup Assistant)"),
    "robot_name": ("moveit_resources_panda", "robot name given to MoveItConfigsBuilder"),
    "urdf_file": ("config/panda.urdf.xacro",
                  "robot description xacro, relative to the MoveIt config package or absolute"),
    "servo_params": ("", "MoveIt Servo parameters file (default: rt2_bringup "
                     "config/servo_robot.yaml, for the Panda)"),
    "moveit_py_config": ("", "moveit_py settings (default: rt2_bringup config/moveit_py.yaml)"),
    "planning_group": ("panda_arm", "MoveIt planning group of the arm"),
    "ready_pose": ("ready", "SRDF group state the arm moves to before each episode"),
    "use_ready_pose": ("true", "move to ready_pose before each episode (moveit_py)"),
    "start_robot_state_publisher": ("false", "start a robot_state_publisher (leave false when "
                                    "the robot driver's launch runs one)"),
    # gripper
    "gripper_action": (mg.GRIPPER_ACTION, "control_msgs/action/GripperCommand server of the "
                       "hand; '' = no gripper"),
    # camera
    "camera": ("usb_cam", "camera driver: usb_cam, realsense or none"),
    "video_device": ("/dev/video0", "usb_cam: V4L2 device"),
    "image_topic": ("", "sensor_msgs/Image the policy reads (default: /camera/image_raw, "
                    f"realsense: {mg.REALSENSE_IMAGE_TOPIC})"),
    # safety
    "dry_run": ("true", "publish actions but do not move the arm; pass false to move"),
    "max_linear_speed": ("0.1", "twist clamp, m/s"),
    "max_angular_speed": ("0.5", "twist clamp, rad/s"),
    "estop_topic": (mg.RobotSafety().estop_topic, "std_msgs/Bool e-stop topic"),
}


def _bool(text: str, name: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"{name}: expected true or false, got {text!r}")


def _launch(context):
    from ament_index_python.packages import get_package_share_directory

    values = la.launch_values(context, ARGUMENTS)
    try:  # apt: ros-jazzy-moveit-configs-utils (MoveIt 2)
        from moveit_configs_utils import MoveItConfigsBuilder
    except ImportError as exc:
        raise RuntimeError("robot.launch.py needs MoveIt 2 (moveit_configs_utils): "
                           "apt install ros-jazzy-moveit ros-jazzy-moveit-py") from exc
    bringup = get_package_share_directory("rt2_bringup")
    config_dir = os.path.join(bringup, "config")
    moveit_config = (
        MoveItConfigsBuilder(values["robot_name"], package_name=values["moveit_config_package"])
        .robot_description(file_path=values["urdf_file"])
        .moveit_cpp(file_path=values["moveit_py_config"]
                    or os.path.join(config_dir, "moveit_py.yaml"))
        .to_moveit_configs()
    )
    servo_moveit = {
        **moveit_config.robot_description,
        **moveit_config.robot_description_semantic,
        **moveit_config.robot_description_kinematics,
        **moveit_config.joint_limits,
    }
    use_ready = _bool(values["use_ready_pose"], "use_ready_pose")
    graph = mg.robot_graph(
        la.policy_config(values),
        servo_params=values["servo_params"] or os.path.join(config_dir, "servo_robot.yaml"),
        safety=mg.RobotSafety(dry_run=_bool(values["dry_run"], "dry_run"),
                              max_linear_speed=float(values["max_linear_speed"]),
                              max_angular_speed=float(values["max_angular_speed"]),
                              estop_topic=values["estop_topic"]),
        camera=mg.CameraConfig(driver=values["camera"], image_topic=values["image_topic"],
                               video_device=values["video_device"]),
        moveit_params=servo_moveit,
        ready_pose=use_ready,
        planning_group=values["planning_group"],
        named_state=values["ready_pose"],
        gripper_action=values["gripper_action"],
        robot_description=(moveit_config.robot_description["robot_description"]
                           if _bool(values["start_robot_state_publisher"],
                                    "start_robot_state_publisher") else ""),
    )
    if use_ready:  # moveit_py needs the whole MoveIt config (pipelines, controllers, moveit_cpp)
        from dataclasses import replace

        ready = graph.node(mg.READY_NODE)
        graph = replace(graph, nodes=tuple(
            replace(spec, parameters={**moveit_config.to_dict(), **ready.parameters})
            if spec.name == mg.READY_NODE else spec for spec in graph.nodes))
    actions, last = la.graph_actions(graph)
    actions += la.instruction_actions(values["instruction"], last)
    if _bool(values["rviz"], "rviz"):
        actions.append(la.rviz_action(os.path.join(config_dir, "rt2.rviz"),
                                      [moveit_config.robot_description]))
    return actions


def generate_launch_description():
    return LaunchDescription([*la.declare_arguments(ARGUMENTS), OpaqueFunction(function=_launch)])
