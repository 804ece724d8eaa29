"""The MoveIt Servo graphs as data: the Gazebo simulation and the real robot.

``sim.launch.py simulator:=gazebo`` and ``robot.launch.py`` turn these specs into processes; the
launch files only add what needs ``launch``/``launch_ros`` (other packages' launch files, the
MoveIt configuration dictionaries, start-up ordering). Pure Python, like :mod:`rt2_bringup.graph`,
so the tests check names, topics and parameters where ``launch_ros`` is not installed.

The policy node is the same as in the embedded graph (:func:`rt2_bringup.graph.policy_node`):
MoveIt Servo consumes its ``/servo_node/delta_twist_cmds`` stream instead of the embedded
simulator's servo stand-in.

Gazebo graph (ROS 2 Jazzy + Gazebo Harmonic)::

    gz sim (ros_gz_sim gz_sim.launch.py, world rt2_sim/worlds/rt2_table.sdf)
      ├─ create (ros_gz_sim) spawns /robot_description (urdf/panda_gz.urdf.xacro)
      │    └─ then, one after the other: spawner joint_state_broadcaster, panda_arm_controller,
      │       panda_hand_controller (gz_ros2_control's controller manager)
      │            └─ then: servo_node (moveit_servo) → /panda_arm_controller/joint_trajectory
      ├─ robot_state_publisher (/robot_description, TF)
      ├─ parameter_bridge (ros_gz_bridge): /clock, /camera/image_raw, /camera/camera_info
      ├─ rt2_gripper_bridge: /rt2/gripper_command → /panda_hand_controller/gripper_cmd
      └─ rt2_policy (use_sim_time)

Robot graph: the robot's own driver runs ros2_control with the MoveIt config's controllers (start
it first); rt2 adds servo_node, a camera driver, the gripper bridge, the ready-pose helper and the
policy node with safety defaults (dry run, low clamps, e-stop topic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from rt2_bringup.graph import TOPICS, EmbeddedGraphConfig, NodeSpec, policy_node

#: MoveIt Servo's node; its twist input ``~/delta_twist_cmds`` is ``TOPICS["twist"]``.
SERVO_NODE = "servo_node"
#: Controllers of moveit_resources_panda_moveit_config/config/ros2_controllers.yaml.
ARM_CONTROLLER = "panda_arm_controller"
HAND_CONTROLLER = "panda_hand_controller"
JOINT_STATE_BROADCASTER = "joint_state_broadcaster"
#: Servo output = joint_trajectory_controller's trajectory topic.
SERVO_COMMAND_OUT_TOPIC = f"/{ARM_CONTROLLER}/joint_trajectory"
#: GripperActionController's action (ros2_controllers gripper_controllers: ``~/gripper_cmd``).
GRIPPER_ACTION = f"/{HAND_CONTROLLER}/gripper_cmd"
#: The ready-pose helper (rt2_bringup ready_pose) and its service.
READY_NODE = "rt2_ready_pose"
READY_SERVICE = f"/{READY_NODE}/move_to_ready"
#: Gazebo side of the camera (rt2_sim/worlds/rt2_table.sdf; gz-sensors puts the info beside it).
GZ_IMAGE_TOPIC = "/rt2/camera/image"
GZ_CAMERA_INFO_TOPIC = "/rt2/camera/camera_info"
#: World and model names in Gazebo.
GZ_WORLD = "rt2_table"
ROBOT_NAME = "panda"
#: Camera drivers robot.launch.py knows.
CAMERA_DRIVERS = ("usb_cam", "realsense", "none")
#: Image topic of realsense2_camera's rs_launch.py (camera_namespace:=camera camera_name:=camera).
REALSENSE_IMAGE_TOPIC = "/camera/camera/color/image_raw"


@dataclass(frozen=True)
class IncludeSpec:
    """Another package's launch file to include.

    Attributes:
        package: package whose share directory holds the file.
        launch_file: path below ``share/<package>``, e.g. ``launch/gz_sim.launch.py``.
        arguments: launch arguments, all strings.
    """

    package: str
    launch_file: str
    arguments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BringupGraph:
    """What a launch file starts, in start-up order.

    Attributes:
        includes: other packages' launch files, included first.
        nodes: nodes started at once.
        spawn: Gazebo's entity-creation node; ``controllers`` start when it has exited.
        controllers: controller spawners, each started when the previous one has exited.
        after_controllers: nodes started when the last spawner has exited (MoveIt Servo needs
            joint states from the running controllers).
    """

    includes: tuple[IncludeSpec, ...] = ()
    nodes: tuple[NodeSpec, ...] = ()
    spawn: NodeSpec | None = None
    controllers: tuple[NodeSpec, ...] = ()
    after_controllers: tuple[NodeSpec, ...] = ()

    def all_nodes(self) -> tuple[NodeSpec, ...]:
        """Every node of the graph."""
        spawn = (self.spawn,) if self.spawn is not None else ()
        return (*self.nodes, *spawn, *self.controllers, *self.after_controllers)

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``.

        Raises:
            KeyError: no such node.
        """
        for spec in self.all_nodes():
            if spec.name == name:
                return spec
        raise KeyError(f"node: expected one of {[s.name for s in self.all_nodes()]}, got {name!r}")


@dataclass(frozen=True)
class RobotSafety:
    """Safety defaults of the hardware graph (policy node parameters).

    Attributes:
        dry_run: publish actions but send zero twists and no gripper goals (default True: the
            user disables it explicitly with ``dry_run:=false``).
        max_linear_speed: clamp on every twist's linear norm, m/s, in (0, 2].
        max_angular_speed: clamp on every twist's angular norm, rad/s, in (0, 6.3].
        estop_topic: ``std_msgs/Bool`` e-stop topic (true zeroes motion and pauses Servo).

    Raises:
        ValueError: "<field>: expected X, got Y" on any invalid value.
    """

    dry_run: bool = True
    max_linear_speed: float = 0.1
    max_angular_speed: float = 0.5
    estop_topic: str = TOPICS["estop"]

    def __post_init__(self) -> None:
        if not isinstance(self.dry_run, bool):
            raise ValueError(f"dry_run: expected a bool, got {self.dry_run!r}")
        for name, hi, unit in (("max_linear_speed", 2.0, "m/s"),
                               ("max_angular_speed", 6.3, "rad/s")):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 < value <= hi):
                raise ValueError(f"{name}: expected a number in (0, {hi}] {unit}, got {value!r}")
        if not self.estop_topic.startswith("/"):
            raise ValueError(f"estop_topic: expected an absolute topic name, got "
                             f"{self.estop_topic!r}")


@dataclass(frozen=True)
class CameraConfig:
    """The robot's camera.

    Attributes:
        driver: one of :data:`CAMERA_DRIVERS`: ``usb_cam`` (V4L2 webcam, ``usb_cam`` package),
            ``realsense`` (``realsense2_camera`` rs_launch.py, colour stream only) or ``none``
            (a camera driver of your own publishes ``image_topic``).
        image_topic: ``sensor_msgs/Image`` the policy reads; "" = the driver's default
            (``/camera/image_raw`` for usb_cam and none, :data:`REALSENSE_IMAGE_TOPIC`).
        video_device: V4L2 device of usb_cam.
        width: usb_cam image width, pixels.
        height: usb_cam image height, pixels.
        fps: usb_cam frame rate, Hz.
        frame_id: usb_cam optical frame name (REP 103 ``_optical_frame`` suffix).

    Raises:
        ValueError: "<field>: expected X, got Y" on any invalid value.
    """

    driver: str = "usb_cam"
    image_topic: str = ""
    video_device: str = "/dev/video0"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    frame_id: str = "camera_optical_frame"

    def __post_init__(self) -> None:
        if self.driver not in CAMERA_DRIVERS:
            raise ValueError(f"driver: expected one of {CAMERA_DRIVERS}, got {self.driver!r}")
        if self.image_topic and not self.image_topic.startswith("/"):
            raise ValueError(f"image_topic: expected an absolute topic name, got "
                             f"{self.image_topic!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 16 <= value <= 8192:
                raise ValueError(f"{name}: expected an int in [16, 8192] px, got {value!r}")
        if not (isinstance(self.fps, int | float) and 0 < self.fps <= 240):
            raise ValueError(f"fps: expected a number in (0, 240] Hz, got {self.fps!r}")

    @property
    def topic(self) -> str:
        """The image topic the policy subscribes to."""
        if self.image_topic:
            return self.image_topic
        return REALSENSE_IMAGE_TOPIC if self.driver == "realsense" else TOPICS["image"]

    @property
    def info_topic(self) -> str:
        """The camera-info topic beside :attr:`topic` (image_transport convention)."""
        return self.topic.rsplit("/", 1)[0] + "/camera_info"


def spawner(controller: str, use_sim_time: bool) -> NodeSpec:
    """controller_manager's ``spawner`` loading and activating ``controller``."""
    return NodeSpec("controller_manager", "spawner", f"spawner_{controller}",
                    {"use_sim_time": use_sim_time},
                    arguments=(controller, "--controller-manager", "/controller_manager",
                               "--controller-manager-timeout", "120"))


def servo_node(servo_params: str, moveit_params: Mapping | None,
               use_sim_time: bool) -> NodeSpec:
    """MoveIt Servo's standalone node (moveit_servo ``servo_node``, Jazzy).

    Args:
        servo_params: the servo parameters file (``config/servo_*.yaml``, ``moveit_servo.*``).
        moveit_params: robot_description, robot_description_semantic, kinematics and joint
            limits (``MoveItConfigsBuilder(...).to_dict()``), as MoveIt's servo demos pass them.
        use_sim_time: follow ``/clock`` (Gazebo).
    """
    return NodeSpec("moveit_servo", "servo_node", SERVO_NODE,
                    {**dict(moveit_params or {}), "use_sim_time": use_sim_time},
                    parameter_files=(servo_params,))


def gripper_bridge_node(action_name: str, use_sim_time: bool, **mapping) -> NodeSpec:
    """The rt2 gripper bridge: ``/rt2/gripper_command`` → ``action_name`` goals.

    Args:
        mapping: :class:`rt2_bringup.gripper_command.GripperMapping` fields as parameters.
    """
    return NodeSpec("rt2_bringup", "gripper_bridge", "rt2_gripper_bridge", {
        "gripper_topic": TOPICS["gripper"], "action_name": action_name,
        "use_sim_time": use_sim_time, **mapping})


def ready_pose_node(moveit_params: Mapping | None, planning_group: str, named_state: str,
                    use_sim_time: bool, estop_topic: str = TOPICS["estop"]) -> NodeSpec:
    """The ready-pose helper (moveit_py) serving :data:`READY_SERVICE`; the e-stop stops it."""
    return NodeSpec("rt2_bringup", "ready_pose", READY_NODE, {
        **dict(moveit_params or {}), "planning_group": planning_group,
        "named_state": named_state, "estop_topic": estop_topic, "use_sim_time": use_sim_time})


def gz_args(world: str, gui: bool) -> str:
    """``gz_args`` of ros_gz_sim's gz_sim.launch.py: run at once (``-r``); without a GUI, the
    server only with headless rendering (EGL), which the camera sensor still renders with."""
    return f"-r {world}" if gui else f"-r -s --headless-rendering {world}"


def gazebo_graph(policy: EmbeddedGraphConfig, *, world: str, bridge_config: str,
                 servo_params: str, robot_description: str = "",
                 moveit_params: Mapping | None = None, gui: bool = True) -> BringupGraph:
    """The Gazebo Harmonic graph (see the module docstring).

    Args:
        policy: the policy node's settings (``use_sim_time`` is forced on).
        world: path of the world SDF (rt2_sim ``worlds/rt2_table.sdf``).
        bridge_config: path of ``config/ros_gz_bridge.yaml``.
        servo_params: path of ``config/servo_gazebo.yaml``.
        robot_description: the expanded URDF (``urdf/panda_gz.urdf.xacro``).
        moveit_params: MoveIt configuration for Servo (see :func:`servo_node`).
        gui: start the Gazebo GUI; False runs the server headless.
    """
    sim_policy = policy_node(replace(policy, use_sim_time=True))
    return BringupGraph(
        includes=(IncludeSpec("ros_gz_sim", "launch/gz_sim.launch.py", {
            "gz_args": gz_args(world, gui), "on_exit_shutdown": "true"}),),
        nodes=(
            NodeSpec("robot_state_publisher", "robot_state_publisher", "robot_state_publisher",
                     {"robot_description": robot_description, "use_sim_time": True}),
            NodeSpec("ros_gz_bridge", "parameter_bridge", "rt2_gz_bridge",
                     {"config_file": bridge_config, "use_sim_time": True}),
            gripper_bridge_node(GRIPPER_ACTION, use_sim_time=True),
            sim_policy,
        ),
        spawn=NodeSpec("ros_gz_sim", "create", "rt2_spawn_panda", {"use_sim_time": True},
                       arguments=("-world", GZ_WORLD, "-topic", "robot_description",
                                  "-name", ROBOT_NAME)),
        controllers=tuple(spawner(c, use_sim_time=True)
                          for c in (JOINT_STATE_BROADCASTER, ARM_CONTROLLER, HAND_CONTROLLER)),
        after_controllers=(servo_node(servo_params, moveit_params, use_sim_time=True),),
    )


def robot_graph(policy: EmbeddedGraphConfig, *, servo_params: str, safety: RobotSafety,
                camera: CameraConfig, moveit_params: Mapping | None = None,
                ready_pose: bool = True, planning_group: str = "panda_arm",
                named_state: str = "ready", gripper_action: str = GRIPPER_ACTION,
                robot_description: str = "") -> BringupGraph:
    """The hardware graph (see the module docstring).

    Args:
        policy: the policy node's settings.
        servo_params: the servo parameters file (``config/servo_robot.yaml`` or the user's).
        safety: dry run, clamps and e-stop topic of the policy node.
        camera: the camera driver and image topic.
        moveit_params: the MoveIt config (Servo and the ready-pose helper).
        ready_pose: start the moveit_py ready-pose helper and make the policy call it before
            each episode.
        planning_group: MoveIt group of the arm (SRDF).
        named_state: SRDF group state moved to before each episode.
        gripper_action: the ``control_msgs/action/GripperCommand`` server of the hand ("" = no
            gripper bridge).
        robot_description: the URDF; when given, a robot_state_publisher is started too (leave
            "" when the robot's driver launch already runs one).
    """
    includes: list[IncludeSpec] = []
    nodes: list[NodeSpec] = []
    if robot_description:
        nodes.append(NodeSpec("robot_state_publisher", "robot_state_publisher",
                              "robot_state_publisher", {"robot_description": robot_description}))
    if camera.driver == "usb_cam":
        nodes.append(NodeSpec("usb_cam", "usb_cam_node_exe", "camera", {
            "video_device": camera.video_device, "image_width": camera.width,
            "image_height": camera.height, "framerate": float(camera.fps),
            "pixel_format": "yuyv2rgb", "camera_frame_id": camera.frame_id},
            remappings=(("image_raw", camera.topic), ("camera_info", camera.info_topic))))
    elif camera.driver == "realsense":
        includes.append(IncludeSpec("realsense2_camera", "launch/rs_launch.py", {
            "camera_namespace": "camera", "camera_name": "camera", "enable_depth": "false"}))
    nodes.append(servo_node(servo_params, moveit_params, use_sim_time=False))
    if gripper_action:
        nodes.append(gripper_bridge_node(gripper_action, use_sim_time=False))
    if ready_pose:
        nodes.append(ready_pose_node(moveit_params, planning_group, named_state,
                                     use_sim_time=False, estop_topic=safety.estop_topic))
    spec = policy_node(replace(policy, use_sim_time=False))
    nodes.append(replace(spec, parameters={
        **spec.parameters,
        "image_topic": camera.topic,
        "dry_run": safety.dry_run,
        "max_linear_speed": float(safety.max_linear_speed),
        "max_angular_speed": float(safety.max_angular_speed),
        "estop_topic": safety.estop_topic,
        "ready_service": READY_SERVICE if ready_pose else "",
    }))
    return BringupGraph(includes=tuple(includes), nodes=tuple(nodes))
