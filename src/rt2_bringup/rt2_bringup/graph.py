"""The rt2 node graph as data, shared by ``sim.launch.py`` and the embedded runner (``rt2-demo``).

Keeping the graph in one place guarantees that ``ros2 launch rt2_bringup sim.launch.py
simulator:=mujoco`` and ``make demo`` start the same nodes with the same parameters. Pure Python:
no ``launch`` import, so the embedded runner works where ``launch_ros`` is not installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rt2_policy.proprioception import (
    PANDA_ARM_JOINTS,
    PANDA_FINGER_JOINTS,
    PANDA_FINGER_OPEN_POSITION,
    PANDA_TCP_OFFSET,
    joint_names,
)
from rt2_policy.token_mapping import MAX_TERMINATE_THRESHOLD

#: Topic and service names of the graph (MoveIt Servo's names for the servo input).
TOPICS = {
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "joint_states": "/joint_states",
    "instruction": "/rt2/instruction",
    "twist": "/servo_node/delta_twist_cmds",
    "gripper": "/rt2/gripper_command",
    "action": "/rt2/action",
    "episode_status": "/rt2/episode_status",
    "execute_instruction": "/rt2/execute_instruction",
    "reset_scene": "/rt2_sim/reset",
    "estop": "/rt2/estop",
}
#: Range of ``gripper_open_position``, metres: the policy node's declared range of the parameter.
GRIPPER_OPEN_POSITION_RANGE = (0.001, 1.0)
#: Range of the policy node's ``settle_time`` parameter, seconds (the config checks the same).
SETTLE_TIME_RANGE = (0.0, 2.0)


@dataclass(frozen=True)
class NodeSpec:
    """One node to start.

    Attributes:
        package: ROS package holding the executable.
        executable: console script name under ``lib/<package>``.
        name: node name (``__node`` remap).
        parameters: ROS parameters (str, bool, int, float or lists of those).
        parameter_files: ROS parameter YAML files, loaded before ``parameters``.
        arguments: command-line arguments before ``--ros-args``.
        remappings: ``(from, to)`` topic/service remaps.
    """

    package: str
    executable: str
    name: str
    parameters: dict = field(default_factory=dict)
    parameter_files: tuple[str, ...] = ()
    arguments: tuple[str, ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EmbeddedGraphConfig:
    """Settings of the embedded (MuJoCo) graph.

    Attributes:
        backend: policy backend, ``local``, ``scripted`` or ``remote`` (a client of
            ``rt2-serve``, see ``rt2_policy.serving``).
        model_path: checkpoint directory or hub id for ``local``.
        device: torch device for ``local``.
        num_threads: torch CPU threads for ``local`` (0 = torch's default).
        control_rate: policy steps per second, Hz.
        max_steps: default step limit of an episode.
        time_limit: default time limit of an episode, seconds.
        camera_rate: camera frames per second, Hz.
        image_size: camera width = height, pixels.
        seed: scene seed of the simulator.
        scripted_actions: action strings for ``scripted``.
        use_sim_time: nodes follow ``/clock`` (Gazebo); False for the embedded simulator.
        server_uri: ``ws://host:port`` of ``rt2-serve`` for ``remote``.
        request_timeout: deadline of one remote inference, seconds (0 = one control period).
        remote_fault_timeout: seconds an episode holds still while the server is unreachable
            before it aborts.
        joint_states_topic: ``sensor_msgs/JointState`` topic carrying the finger joints
            (absolute name); gripper-state models read the gripper closure from it.
        gripper_joints: names of the finger joints in ``joint_states_topic`` (prismatic,
            metres, 0 = closed), distinct and non-empty; e.g. ``fr3_finger_joint1/2`` on an FR3.
        gripper_open_position: one finger's joint position when the gripper is fully open,
            metres, in :data:`GRIPPER_OPEN_POSITION_RANGE`.
        arm_joints: the 7 arm joint names in ``joint_states_topic``, base to flange (radians);
            tcp-position models read the tool centre point from their forward kinematics
            (:func:`rt2_policy.proprioception.panda_tcp_position`).
        tcp_offset: flange to tool centre point along the flange z axis, metres, in [0, 1]
            (rt2_sim's Panda 0.13; franka_description's ``panda_hand_tcp`` 0.1034).
        release_at_waypoint: the policy node's ``release_at_waypoint`` parameter (open the
            gripper once a waypoint plan's carry has arrived, :mod:`rt2_policy.waypoint_release`).
        terminate_threshold: the policy node's ``terminate_threshold`` parameter: probability of
            terminate the decode needs to end the episode, in (0, 0.999]
            (:data:`rt2_policy.token_mapping.MAX_TERMINATE_THRESHOLD`, the parameter's range),
            or 0 for the checkpoint's own (:class:`rt2_policy.vla_policy.VLAPolicy`).
        observe_after_motion: the policy node's ``observe_after_motion`` parameter: each step
            observes only after the previous action's motion has ended plus ``settle_time``
            seconds (in :data:`SETTLE_TIME_RANGE`; at least one camera period), as
            demonstrations are recorded.

    Raises:
        ValueError: "<field>: expected X, got Y" on an invalid value.
    """

    backend: str = "local"
    model_path: str = ""
    device: str = "cpu"
    num_threads: int = 0
    control_rate: float = 5.0
    max_steps: int = 100
    time_limit: float = 60.0
    camera_rate: float = 15.0
    image_size: int = 224
    seed: int = 0
    scripted_actions: tuple[str, ...] = ("0 128 128 128 128 128 128 0",)
    use_sim_time: bool = False
    server_uri: str = "ws://127.0.0.1:8765"
    request_timeout: float = 0.0
    remote_fault_timeout: float = 10.0
    joint_states_topic: str = TOPICS["joint_states"]
    gripper_joints: tuple[str, ...] = PANDA_FINGER_JOINTS
    gripper_open_position: float = PANDA_FINGER_OPEN_POSITION
    arm_joints: tuple[str, ...] = PANDA_ARM_JOINTS
    tcp_offset: float = PANDA_TCP_OFFSET
    release_at_waypoint: bool = True
    terminate_threshold: float = 0.0
    observe_after_motion: bool = False
    settle_time: float = 0.1

    def __post_init__(self) -> None:
        if self.backend not in ("local", "scripted", "remote"):
            raise ValueError(
                f"backend: expected 'local', 'scripted' or 'remote', got {self.backend!r}")
        if self.backend == "remote" and not self.server_uri.startswith(("ws://", "wss://")):
            raise ValueError(f"server_uri: expected ws://host:port, got {self.server_uri!r}")
        if self.backend == "local" and not self.model_path:
            raise ValueError("model_path: expected a checkpoint for backend 'local', got ''")
        if not self.control_rate > 0:
            raise ValueError(f"control_rate: expected > 0 Hz, got {self.control_rate!r}")
        if not self.camera_rate > 0:
            raise ValueError(f"camera_rate: expected > 0 Hz, got {self.camera_rate!r}")
        if not self.image_size >= 16:
            raise ValueError(f"image_size: expected >= 16 px, got {self.image_size!r}")
        if not (isinstance(self.joint_states_topic, str)
                and self.joint_states_topic.startswith("/")):
            raise ValueError(f"joint_states_topic: expected an absolute topic name, got "
                             f"{self.joint_states_topic!r}")
        object.__setattr__(self, "gripper_joints",
                           joint_names("gripper_joints", self.gripper_joints))
        low, high = GRIPPER_OPEN_POSITION_RANGE
        opening = self.gripper_open_position
        if not (isinstance(opening, int | float) and not isinstance(opening, bool)
                and math.isfinite(opening) and low <= opening <= high):
            raise ValueError(f"gripper_open_position: expected a number in [{low}, {high}] m, "
                             f"got {opening!r}")
        arm = joint_names("arm_joints", self.arm_joints)
        if len(arm) != 7:
            raise ValueError(f"arm_joints: expected the 7 arm joints, got {list(arm)}")
        object.__setattr__(self, "arm_joints", arm)
        if not isinstance(self.release_at_waypoint, bool):
            raise ValueError(f"release_at_waypoint: expected a bool, got "
                             f"{self.release_at_waypoint!r}")
        threshold = self.terminate_threshold
        if not (isinstance(threshold, int | float) and not isinstance(threshold, bool)
                and (threshold == 0 or 0.0 < threshold <= MAX_TERMINATE_THRESHOLD)):
            raise ValueError(f"terminate_threshold: expected 0 (the checkpoint's) or a "
                             f"probability in (0, {MAX_TERMINATE_THRESHOLD}], got {threshold!r}")
        if not isinstance(self.observe_after_motion, bool):
            raise ValueError(f"observe_after_motion: expected a bool, got "
                             f"{self.observe_after_motion!r}")
        settle, (low, high) = self.settle_time, SETTLE_TIME_RANGE
        if not (isinstance(settle, int | float) and not isinstance(settle, bool)
                and low <= settle <= high):
            raise ValueError(f"settle_time: expected a number in [{low:g}, {high:g}] s, got "
                             f"{settle!r}")
        offset = self.tcp_offset
        if not (isinstance(offset, int | float) and not isinstance(offset, bool)
                and math.isfinite(offset) and 0.0 <= offset <= 1.0):
            raise ValueError(f"tcp_offset: expected a number in [0, 1] m, got {offset!r}")


def policy_node(config: EmbeddedGraphConfig) -> NodeSpec:
    """The rt2 policy node; the same for every simulator and for hardware."""
    return NodeSpec("rt2_policy", "policy_node", "rt2_policy", {
        "backend": config.backend,
        "model_path": config.model_path,
        "device": config.device,
        "num_threads": int(config.num_threads),
        "control_rate": float(config.control_rate),
        "max_steps": int(config.max_steps),
        "time_limit": float(config.time_limit),
        "scripted_actions": list(config.scripted_actions),
        "server_uri": config.server_uri,
        "request_timeout": float(config.request_timeout),
        "remote_fault_timeout": float(config.remote_fault_timeout),
        "joint_states_topic": config.joint_states_topic,
        "gripper_joints": list(config.gripper_joints),
        "gripper_open_position": float(config.gripper_open_position),
        "arm_joints": list(config.arm_joints),
        "tcp_offset": float(config.tcp_offset),
        "release_at_waypoint": bool(config.release_at_waypoint),
        "terminate_threshold": float(config.terminate_threshold),
        "observe_after_motion": bool(config.observe_after_motion),
        "settle_time": float(config.settle_time),
        "image_topic": TOPICS["image"],
        "instruction_topic": TOPICS["instruction"],
        "twist_topic": TOPICS["twist"],
        "gripper_topic": TOPICS["gripper"],
        "action_topic": TOPICS["action"],
        "status_topic": TOPICS["episode_status"],
        "action_server_name": TOPICS["execute_instruction"],
        "command_frame": "panda_link0",
        "use_sim_time": bool(config.use_sim_time),
    })


def embedded_graph(config: EmbeddedGraphConfig) -> list[NodeSpec]:
    """MuJoCo simulator (camera, joint states, MoveIt Servo stand-in) + the policy node."""
    sim = NodeSpec("rt2_sim", "sim_node", "rt2_sim", {
        "publish_rate": float(config.camera_rate),
        "image_width": int(config.image_size),
        "image_height": int(config.image_size),
        "seed": int(config.seed),
        "task_scene": True,
    })
    return [sim, policy_node(config)]


def ros_args(spec: NodeSpec, params_file: str) -> list[str]:
    """Command line after the executable for ``spec``: its ``arguments``, then ``--ros-args``
    with the node name, its parameter files, its remaps and the parameters YAML written by
    :func:`parameters_yaml` (loaded last, so it wins, as in ``launch_ros``)."""
    args = [*spec.arguments, "--ros-args", "-r", f"__node:={spec.name}"]
    for path in spec.parameter_files:
        args += ["--params-file", path]
    for source, target in spec.remappings:
        args += ["-r", f"{source}:={target}"]
    return [*args, "--params-file", params_file]


def parameters_yaml(spec: NodeSpec) -> dict:
    """The ``--params-file`` content for ``spec``: ``{name: {ros__parameters: {...}}}``."""
    return {spec.name: {"ros__parameters": dict(spec.parameters)}}
