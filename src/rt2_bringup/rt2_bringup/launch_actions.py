"""``launch``/``launch_ros`` actions from the graph specs, shared by the rt2 launch files.

Turns :class:`rt2_bringup.graph.NodeSpec` and :class:`rt2_bringup.moveit_graph.BringupGraph`
into ``launch_ros.actions.Node``, ``IncludeLaunchDescription`` and ``RegisterEventHandler``
(``OnProcessExit``: controller spawners one after the other once the robot is spawned, MoveIt
Servo after them), and declares the launch arguments both launch files share. Follows the
launch_ros API (``Node(package, executable, name, parameters, arguments, remappings)``,
``PythonLaunchDescriptionSource``) as used by ros-controls/gz_ros2_control's demos.

Imports ``launch`` and ``launch_ros``: only for launch files (apt ROS 2; not on PyPI). The
argument parsing (:func:`policy_config`) is plain Python and tested without them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from rt2_bringup.graph import TOPICS, EmbeddedGraphConfig, NodeSpec
from rt2_bringup.moveit_graph import READY_NODE, BringupGraph, IncludeSpec
from rt2_policy.proprioception import (
    PANDA_ARM_JOINTS,
    PANDA_FINGER_JOINTS,
    PANDA_FINGER_OPEN_POSITION,
    PANDA_TCP_OFFSET,
)

#: Policy launch arguments shared by sim.launch.py and robot.launch.py: name -> (default, text).
POLICY_ARGUMENTS: dict[str, tuple[str, str]] = {
    "backend": ("local", "policy backend: local (VLA in the node), remote (client of rt2-serve) "
                "or scripted (replays scripted_actions; tests and dry runs)"),
    "model_path": ("", "checkpoint directory or Hugging Face hub id (backend local); empty = the "
                   "model shipped in rt2_policy's share/models/rt2_tiny_sim (trained in the "
                   "MuJoCo sim, so only meaningful with simulator:=mujoco)"),
    "server_uri": ("ws://127.0.0.1:8765", "rt2-serve address ws://host:port (backend remote; "
                   "the API key comes from the environment variable RT2_API_KEY)"),
    "device": ("cpu", "torch device of backend local, e.g. cpu or cuda:0"),
    "control_rate": ("5.0", "policy steps per second, Hz (RT-2: 1-5 Hz)"),
    "joint_states_topic": (TOPICS["joint_states"], "sensor_msgs/JointState topic with the "
                           "finger joints (gripper-state models read the gripper closure)"),
    "gripper_joints": (",".join(PANDA_FINGER_JOINTS), "finger joint names in "
                       "joint_states_topic, comma-separated (prismatic, metres, 0 = closed), "
                       "e.g. gripper_joints:=fr3_finger_joint1,fr3_finger_joint2 on an FR3"),
    "gripper_open_position": (str(PANDA_FINGER_OPEN_POSITION), "one finger's joint position "
                              "when the gripper is fully open, m (Franka Hand: 0.04)"),
    "arm_joints": (",".join(PANDA_ARM_JOINTS), "the 7 arm joint names in joint_states_topic, "
                   "base to flange, comma-separated (tcp-position models read the tool centre "
                   "point from their Franka Panda forward kinematics)"),
    "tcp_offset": (str(PANDA_TCP_OFFSET), "flange to tool centre point along the flange z axis, "
                   "m (rt2_sim's Panda: 0.13; franka_description panda_hand_tcp: 0.1034)"),
    "instruction": ("", "optional: an instruction sent (ExecuteInstruction action) once the "
                    "graph is up, e.g. instruction:='pick up the red cube'"),
    "rviz": ("false", "start RViz with rt2_bringup/config/rt2.rviz"),
}


def policy_config(values: Mapping[str, str], **overrides) -> EmbeddedGraphConfig:
    """The policy settings from launch-argument strings (see :data:`POLICY_ARGUMENTS`).

    Raises:
        ValueError: "<argument>: expected X, got Y" for malformed values, and the config's own
            validation errors (e.g. ``model_path`` missing for backend local).
    """
    try:
        rate = float(values["control_rate"])
    except ValueError:
        raise ValueError(f"control_rate: expected a number (Hz), got "
                         f"{values['control_rate']!r}") from None
    try:
        opening = float(values["gripper_open_position"])
    except ValueError:
        raise ValueError(f"gripper_open_position: expected a number (m), got "
                         f"{values['gripper_open_position']!r}") from None
    try:
        tcp_offset = float(values["tcp_offset"])
    except ValueError:
        raise ValueError(f"tcp_offset: expected a number (m), got "
                         f"{values['tcp_offset']!r}") from None
    model_path = values["model_path"] or (shipped_model() if values["backend"] == "local" else "")
    return EmbeddedGraphConfig(backend=values["backend"], model_path=model_path,
                               device=values["device"], control_rate=rate,
                               server_uri=values["server_uri"],
                               joint_states_topic=values["joint_states_topic"],
                               gripper_joints=joint_names(values["gripper_joints"],
                                                          "gripper_joints"),
                               gripper_open_position=opening,
                               arm_joints=joint_names(values["arm_joints"], "arm_joints"),
                               tcp_offset=tcp_offset, **overrides)


def joint_names(text: str, name: str) -> tuple[str, ...]:
    """Joint names from a comma-separated launch argument (``a,b``; ``[a, b]`` also works).

    Raises:
        ValueError: "<name>: expected comma-separated joint names, got ..." for an empty list
            or an empty name (``a,,b``, a trailing comma).
    """
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    names = tuple(part.strip() for part in inner.split(","))
    if not all(names):
        raise ValueError(f"{name}: expected comma-separated joint names, e.g. "
                         f"fr3_finger_joint1,fr3_finger_joint2, got {text!r}")
    return names


def shipped_model() -> str:
    """``share/rt2_policy/models/rt2_tiny_sim`` of the installed workspace, or ``""`` when it is
    not installed (then backend local needs ``model_path``)."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        return ""
    try:
        path = os.path.join(get_package_share_directory("rt2_policy"), "models", "rt2_tiny_sim")
    except PackageNotFoundError:
        return ""
    return path if os.path.isfile(os.path.join(path, "config.json")) else ""


def launch_values(context, names) -> dict[str, str]:
    """The values of the named launch arguments in ``context``."""
    from launch.substitutions import LaunchConfiguration

    return {name: LaunchConfiguration(name).perform(context) for name in names}


def declare_arguments(arguments: Mapping[str, tuple[str, str]]) -> list:
    """``DeclareLaunchArgument`` for each ``name -> (default, description)``."""
    from launch.actions import DeclareLaunchArgument

    return [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in arguments.items()]


def node_action(spec: NodeSpec, **kwargs):
    """``launch_ros.actions.Node`` for ``spec`` (parameter files first, then the dict)."""
    from launch_ros.actions import Node

    parameters: list = [*spec.parameter_files]
    if spec.parameters:
        parameters.append(dict(spec.parameters))
    # The ready-pose process also runs moveit_py's own node: a `__node:=` remap would give both
    # the same name, so that node names itself (rt2_ready_pose) instead.
    name = None if spec.name == READY_NODE else spec.name
    return Node(package=spec.package, executable=spec.executable, name=name,
                parameters=parameters, arguments=list(spec.arguments),
                remappings=list(spec.remappings), output="screen", **kwargs)


def include_action(spec: IncludeSpec):
    """``IncludeLaunchDescription`` of ``share/<package>/<launch_file>`` with its arguments."""
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    path = os.path.join(get_package_share_directory(spec.package), spec.launch_file)
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                    launch_arguments=list(spec.arguments.items()))


def graph_actions(graph: BringupGraph) -> tuple[list, list]:
    """Actions starting ``graph`` in order.

    Returns:
        ``(actions, last_started)``: the actions to return from the launch file, and the
        ``Node`` actions started last (MoveIt Servo in Gazebo, else every node), after which an
        instruction may be sent.
    """
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit

    actions: list = [include_action(spec) for spec in graph.includes]
    nodes = [node_action(spec) for spec in graph.nodes]
    actions += nodes
    last = nodes
    if graph.spawn is not None:
        previous = node_action(graph.spawn)
        actions.append(previous)
        for spec in graph.controllers:
            spawner = node_action(spec)
            actions.append(RegisterEventHandler(OnProcessExit(target_action=previous,
                                                              on_exit=[spawner])))
            previous = spawner
        after = [node_action(spec) for spec in graph.after_controllers]
        if after:
            actions.append(RegisterEventHandler(OnProcessExit(target_action=previous,
                                                              on_exit=after)))
            last = after
    return actions, last


def instruction_actions(instruction: str, after: list, delay: float = 5.0) -> list:
    """Send ``instruction`` with ``send_instruction`` (ExecuteInstruction action, feedback in the
    log) ``delay`` seconds after the ``after`` nodes have started; [] for an empty instruction."""
    if not instruction.strip():
        return []
    from launch.actions import RegisterEventHandler, TimerAction
    from launch.event_handlers import OnProcessStart
    from launch_ros.actions import Node

    sender = Node(package="rt2_bringup", executable="send_instruction", name="rt2_instruction",
                  arguments=[instruction, "--timeout", "300"], output="screen")
    return [RegisterEventHandler(OnProcessStart(target_action=after[-1], on_start=[
        TimerAction(period=delay, actions=[sender])]))]


def rviz_action(config: str, parameters: list | None = None):
    """RViz 2 with ``config``."""
    from launch_ros.actions import Node

    return Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", config],
                parameters=list(parameters or []), output="log")
