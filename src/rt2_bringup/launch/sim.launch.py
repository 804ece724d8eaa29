"""rt2 in simulation: Gazebo Harmonic + MoveIt Servo (default) or the embedded MuJoCo simulator.

    ros2 launch rt2_bringup sim.launch.py model_path:=/path/to/checkpoint
    ros2 launch rt2_bringup sim.launch.py simulator:=mujoco model_path:=/path/to/checkpoint
    ros2 launch rt2_bringup sim.launch.py backend:=remote server_uri:=ws://gpu-host:8765 \
        instruction:='pick up the red cube' gui:=false

simulator:=gazebo (ROS 2 Jazzy, apt: ros-jazzy-ros-gz, gz-ros2-control, moveit, moveit-py,
moveit-resources-panda-*): gz sim with rt2_sim/worlds/rt2_table.sdf, the Panda of
moveit_resources_panda_description (urdf/panda_gz.urdf.xacro) spawned with gz_ros2_control and
its controllers, ros_gz_bridge (config/ros_gz_bridge.yaml: clock, camera image and info),
robot_state_publisher, MoveIt Servo (config/servo_gazebo.yaml; the policy node switches it to
TWIST), the gripper bridge to panda_hand_controller's GripperCommand action, and the policy node
with use_sim_time. Start-up order: the arm is spawned, then its controllers one by one, then
Servo (see rt2_bringup.moveit_graph).

simulator:=mujoco: exactly rt2_bringup.graph.embedded_graph() — the graph `make demo` runs
(MuJoCo scene, camera, joint states and a MoveIt Servo stand-in on the same topics).

Both graphs expose the same interface: /rt2/instruction, /rt2/execute_instruction,
/rt2_policy/stop, /rt2/estop, /rt2/action, /rt2/episode_status (README "Sending instructions").
"""

import os

from launch import LaunchDescription
from launch.actions import OpaqueFunction

from rt2_bringup import launch_actions as la
from rt2_bringup import moveit_graph as mg
from rt2_bringup.graph import embedded_graph

ARGUMENTS = {
    "simulator": ("gazebo", "gazebo (Gazebo Harmonic + MoveIt Servo) or mujoco (embedded, "
                  "the graph of make demo)"),
    **la.POLICY_ARGUMENTS,
    "gui": ("true", "gazebo: start the Gazebo GUI; false runs the server headless"),
    "world": ("", "gazebo: world SDF (default: rt2_sim worlds/rt2_table.sdf)"),
    "seed": ("0", "mujoco: scene seed of the embedded simulator"),
}


def _launch(context):
    values = la.launch_values(context, ARGUMENTS)
    simulator = values["simulator"]
    if simulator == "mujoco":
        config = la.policy_config(values, seed=int(values["seed"]))
        # The embedded graph, node for node: what `make demo` starts (rt2_bringup.demo).
        nodes = [la.node_action(spec) for spec in embedded_graph(config)]
        actions = [*nodes, *la.instruction_actions(values["instruction"], nodes, delay=1.0)]
    elif simulator == "gazebo":
        actions = _gazebo(values)
    else:
        raise RuntimeError(f"simulator: expected gazebo or mujoco, got {simulator!r}")
    if values["rviz"].lower() in ("true", "1"):
        from ament_index_python.packages import get_package_share_directory

        rviz = os.path.join(get_package_share_directory("rt2_bringup"), "config", "rt2.rviz")
        actions.append(la.rviz_action(rviz, [{"use_sim_time": simulator == "gazebo"}]))
    return actions


def _gazebo(values):
    from ament_index_python.packages import get_package_share_directory

    try:  # apt: ros-jazzy-moveit-configs-utils (MoveIt 2)
        from moveit_configs_utils import MoveItConfigsBuilder
    except ImportError as exc:
        raise RuntimeError("simulator:=gazebo needs MoveIt 2 (moveit_configs_utils): "
                           "apt install ros-jazzy-moveit; or use simulator:=mujoco") from exc
    bringup = get_package_share_directory("rt2_bringup")
    world = values["world"] or os.path.join(get_package_share_directory("rt2_sim"), "worlds",
                                            "rt2_table.sdf")
    # As MoveIt's servo demos (moveit_servo/launch/demo_ros_api.launch.py), with rt2's Gazebo
    # description (moveit_resources' Panda + gz_ros2_control) instead of the mock hardware one.
    moveit_config = (
        MoveItConfigsBuilder("moveit_resources_panda")
        .robot_description(file_path=os.path.join(bringup, "urdf", "panda_gz.urdf.xacro"))
        .joint_limits(file_path="config/hard_joint_limits.yaml")
        .to_moveit_configs()
    )
    moveit_params = {
        **moveit_config.robot_description,
        **moveit_config.robot_description_semantic,
        **moveit_config.robot_description_kinematics,
        **moveit_config.joint_limits,
    }
    graph = mg.gazebo_graph(
        la.policy_config(values),
        world=world,
        bridge_config=os.path.join(bringup, "config", "ros_gz_bridge.yaml"),
        servo_params=os.path.join(bringup, "config", "servo_gazebo.yaml"),
        robot_description=moveit_config.robot_description["robot_description"],
        moveit_params=moveit_params,
        gui=values["gui"].lower() in ("true", "1"),
    )
    actions, last = la.graph_actions(graph)
    return actions + la.instruction_actions(values["instruction"], last)


def generate_launch_description():
    return LaunchDescription([*la.declare_arguments(ARGUMENTS), OpaqueFunction(function=_launch)])
