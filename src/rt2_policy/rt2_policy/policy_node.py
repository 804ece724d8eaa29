"""rt2 policy node: camera + instruction → RT-2 VLA → MoveIt Servo twist stream and gripper.

A lifecycle node (ros2/demos ``lifecycle_py``): the model loads in ``on_configure``; topics move the
arm only while ACTIVE. With ``autostart`` (default) it configures and activates itself, so it runs
without a lifecycle manager.

Interfaces (defaults; all names are parameters):
    subscribes  ``/camera/image_raw``        sensor_msgs/Image (sensor-data QoS)
                ``/rt2/instruction``         std_msgs/String (starts or replaces an episode;
                                             an empty string stops the arm)
                ``/rt2/estop``               std_msgs/Bool (true: e-stop, see rt2_policy.safety)
                ``/joint_states``            sensor_msgs/JointState (sensor-data QoS): finger
                                             joints -> gripper state, arm joints -> tcp
                                             position, for models that read them
    publishes   ``/servo_node/delta_twist_cmds`` geometry_msgs/TwistStamped, when a step sets its
                                             twist and then at ``keepalive_rate``
                ``/rt2/gripper_command``     std_msgs/Float64 (0 open … 1 closed)
                ``/rt2/action``              rt2_msgs/RT2Action, one per policy step
                ``/rt2/episode_status``      rt2_msgs/EpisodeStatus, on change and at 1 Hz
    action      ``/rt2/execute_instruction`` rt2_msgs/action/ExecuteInstruction
    service     ``~/stop``                   std_srvs/Trigger (ends the episode, zero twist)
                ``~/answer_question``        rt2_msgs/srv/AnswerQuestion (VQA on the latest
                                             frame, full vocabulary; RT-2 "one model, two jobs")
    clients     ``<servo>/switch_command_type``, ``<servo>/pause_servo`` (MoveIt Servo), and
                ``ready_service`` (std_srvs/Trigger, before each episode) when set

``dry_run`` publishes the actions but sends only zero twists and no gripper commands.

Thread model: policy steps run on a dedicated inference thread paced by ``Clock.sleep_until``
(the node's clock under sim time, the steady clock otherwise; a step that overruns its period is
followed at once, without a catch-up burst). Executor callbacks therefore stay short: with
inference in an executor callback, rclpy's ``MultiThreadedExecutor`` (9.1.x) spun a core and
took the GIL from the model (the node reached 0.68x the raw infer rate; see the README's
benchmark table).
Camera frames and the twist keep-alive run on a single-threaded executor of their own
(:mod:`rt2_policy.high_rate_executor`, private node ``<name>_high_rate``): cheaper than the
multi-threaded one, and the keep-alive keeps streaming (zeros after the hold window) while a
slow inference or service call runs.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (2-core stalls otherwise)

import rclpy  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from rcl_interfaces.msg import ParameterDescriptor  # noqa: E402
from rclpy.action import ActionServer, CancelResponse, GoalResponse  # noqa: E402
from rclpy.callback_groups import (  # noqa: E402
    MutuallyExclusiveCallbackGroup,
    ReentrantCallbackGroup,
)
from rclpy.clock import Clock, ClockType  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Bool, Float64, String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from rt2_msgs.action import ExecuteInstruction  # noqa: E402
from rt2_msgs.msg import EpisodeStatus, RT2Action  # noqa: E402
from rt2_msgs.srv import AnswerQuestion  # noqa: E402
from rt2_policy.control_loop import (  # noqa: E402
    ControlConfig,
    ControlLoop,
    Frame,
    GripperReading,
    StepResult,
    TcpReading,
)
from rt2_policy.episode import Episode, EpisodeLimits, EpisodeState, Outcome  # noqa: E402
from rt2_policy.high_rate_executor import HighRateExecutor  # noqa: E402
from rt2_policy.image_conversion import image_msg_to_rgb  # noqa: E402
from rt2_policy.policy_factory import BACKENDS, make_policy  # noqa: E402
from rt2_policy.proprioception import (  # noqa: E402
    PANDA_ARM_JOINTS,
    PANDA_FINGER_JOINTS,
    PANDA_FINGER_OPEN_POSITION,
    PANDA_TCP_OFFSET,
    gripper_state_from_joint_state,
    tcp_position_from_joint_state,
)
from rt2_policy.ros_parameters import float_range, int_range  # noqa: E402
from rt2_policy.safety import ESTOP_MESSAGE, SafetyGate  # noqa: E402
from rt2_policy.servo_command import Twist, TwistHold, TwistLimits  # noqa: E402
from rt2_policy.stamps import stamp_seconds  # noqa: E402
from rt2_policy.token_mapping import MAX_TERMINATE_THRESHOLD  # noqa: E402
from rt2_policy.waypoint_release import WaypointReleaseConfig  # noqa: E402

try:  # MoveIt 2 (apt): switch the servo to TWIST commands on activation (Jazzy's servo_node).
    from moveit_msgs.srv import ServoCommandType  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the machine
    ServoCommandType = None


_RELEASE = WaypointReleaseConfig()  # the gate's defaults, quoted in its parameter's description

PARAMETERS = {
    # name: (default, descriptor)
    "backend": ("local", ParameterDescriptor(
        description=f"policy backend, one of {BACKENDS}", read_only=True)),
    "model_path": ("", ParameterDescriptor(
        description="checkpoint directory or Hugging Face hub id (backend local)", read_only=True)),
    "device": ("cpu", ParameterDescriptor(
        description="torch device, e.g. cpu or cuda:0 (backend local)", read_only=True)),
    "num_threads": (0, int_range(0, 256,
                    "torch CPU threads for backend local; 0 = torch's default")),
    "scripted_actions": (["0 128 128 128 128 128 128 0"], ParameterDescriptor(
        description="RT-2 action strings replayed by backend scripted; the last one repeats",
        read_only=True)),
    "scripted_delay": (0.0, float_range(0.0, 10.0, "seconds per scripted infer call")),
    "chain_of_thought": (False, ParameterDescriptor(
        description="backend local: write a plan before each action (RT-2 Sec. 4.4; needs a "
                    "checkpoint trained with plans; one trained with a plan before every "
                    "action always plans); RT2Action.plan carries it", read_only=True)),
    "release_at_waypoint": (True, ParameterDescriptor(
        description="open the gripper once a waypoint plan's carry has arrived: the plan says "
                    "bring, the fingers hold something and the tcp is within "
                    f"{_RELEASE.reach_tolerance} tcp bins of the plan's waypoint, which lies "
                    f">= {_RELEASE.min_lift} bins above and {_RELEASE.min_carry} bins beside "
                    "the grasp (3.9 mm per bin; rt2_policy.waypoint_release); actions without "
                    "waypoint plans pass through", read_only=True)),
    "terminate_threshold": (0.0, float_range(
        0.0, MAX_TERMINATE_THRESHOLD,
        "backend local: probability of terminate (the action's first token) needed to end the "
        "episode, in (0, 1); 0.5 is RT-2's greedy decode, higher keeps acting through frames "
        "the model is unsure about; 0 = the checkpoint's own (decoding.terminate_threshold of "
        "its action config, 0.5 when absent)", read_only=True)),
    "answer_max_new_tokens": (32, int_range(1, 1024,
                              "~/answer_question token budget when the request's "
                              "max_new_tokens is 0")),
    # backend remote (rt2_policy.serving): a client of rt2-serve
    "server_uri": ("ws://127.0.0.1:8765", ParameterDescriptor(
        description="rt2-serve address, ws://host:port (backend remote)", read_only=True)),
    "api_key_env": ("RT2_API_KEY", ParameterDescriptor(
        description="environment variable holding the rt2-serve API key (backend remote); "
                    "never a parameter, which anyone on the ROS graph can read", read_only=True)),
    "request_timeout": (0.0, float_range(0.0, 60.0,
                        "deadline of one remote inference, s; a late reply is discarded and "
                        "the arm holds still; 0 = one control period (backend remote)")),
    "connect_timeout": (2.0, float_range(0.01, 60.0,
                        "deadline of one connection attempt to rt2-serve, s (backend remote)")),
    "remote_fault_timeout": (10.0, float_range(0.0, 3600.0,
                             "s an episode holds still while rt2-serve is unreachable or late "
                             "before aborting; it resumes when the server answers again; "
                             "0 = count as ordinary faults (backend remote)")),
    "control_rate": (5.0, float_range(0.1, 100.0, "policy steps per second, Hz")),
    "observe_after_motion": (False, ParameterDescriptor(
        description="take each step's observation only after the previous action's motion "
                    "(its twist, held one control period) has ended and settle_time has passed, "
                    "as demonstrations are recorded (action executed, then the next frame): "
                    "steps then take a control period plus inference plus settle_time; false = "
                    "a step every control period, the frame taken while the previous twist "
                    "still moves the arm", read_only=True)),
    "settle_time": (0.1, float_range(0.0, 2.0,
                    "with observe_after_motion: seconds between the end of a motion and the "
                    "next observation; at least one camera frame period, so that the frame "
                    "and joint state the step reads were taken after the stop")),
    "keepalive_rate": (50.0, float_range(1.0, 1000.0,
                       "twist stream rate, Hz; keep above 1 / servo incoming_command_timeout")),
    "max_image_age": (0.5, float_range(0.01, 60.0,
                      "seconds after which a camera frame is stale; the arm then holds still")),
    "max_linear_speed": (0.25, float_range(0.001, 2.0, "clamp on the twist's linear norm, m/s")),
    "max_angular_speed": (1.0, float_range(0.001, 6.3,
                          "clamp on the twist's angular norm, rad/s")),
    "max_steps": (100, int_range(1, 1_000_000, "default step limit of an episode")),
    "time_limit": (60.0, float_range(0.1, 86400.0, "default time limit of an episode, s")),
    "max_consecutive_faults": (25, int_range(1, 1_000_000,
                               "consecutive faulty steps before an episode aborts")),
    "command_frame": ("panda_link0", ParameterDescriptor(
        description="frame_id of the twist (MoveIt Servo reads the command frame from it); "
                    "RT-2 deltas are in the robot base frame (REP 105)")),
    "image_topic": ("/camera/image_raw", ParameterDescriptor(
        description="sensor_msgs/Image input", read_only=True)),
    "joint_states_topic": ("/joint_states", ParameterDescriptor(
        description="sensor_msgs/JointState input: the finger joints give the gripper state "
                    "and the arm joints the tcp position that models trained with them read "
                    "in their prompt", read_only=True)),
    "gripper_joints": (list(PANDA_FINGER_JOINTS), ParameterDescriptor(
        description="finger joint names in joint_states_topic (prismatic, metres, 0 = closed)",
        read_only=True)),
    "arm_joints": (list(PANDA_ARM_JOINTS), ParameterDescriptor(
        description="the 7 arm joint names in joint_states_topic, base to flange (radians): "
                    "Franka Panda forward kinematics gives the tcp position that tcp-position "
                    "models read in their prompt", read_only=True)),
    "tcp_offset": (PANDA_TCP_OFFSET, float_range(
        0.0, 1.0, "flange to tool centre point along the flange z axis, m (rt2_sim: 0.13; "
        "franka_description panda_hand_tcp: 0.1034)", read_only=True)),
    "gripper_open_position": (PANDA_FINGER_OPEN_POSITION, float_range(
        0.001, 1.0, "one finger's joint position when the gripper is fully open, m",
        read_only=True)),
    "instruction_topic": ("/rt2/instruction", ParameterDescriptor(
        description="std_msgs/String instructions", read_only=True)),
    "twist_topic": ("/servo_node/delta_twist_cmds", ParameterDescriptor(
        description="geometry_msgs/TwistStamped output (MoveIt Servo input)", read_only=True)),
    "gripper_topic": ("/rt2/gripper_command", ParameterDescriptor(
        description="std_msgs/Float64 gripper closure output, 0 open .. 1 closed",
        read_only=True)),
    "action_topic": ("/rt2/action", ParameterDescriptor(
        description="rt2_msgs/RT2Action output", read_only=True)),
    "status_topic": ("/rt2/episode_status", ParameterDescriptor(
        description="rt2_msgs/EpisodeStatus output", read_only=True)),
    "action_server_name": ("/rt2/execute_instruction", ParameterDescriptor(
        description="rt2_msgs/action/ExecuteInstruction server", read_only=True)),
    "servo_node_name": ("/servo_node", ParameterDescriptor(
        description="MoveIt Servo node; its ~/switch_command_type is called on activation",
        read_only=True)),
    "autostart": (True, ParameterDescriptor(
        description="configure and activate on start-up (no lifecycle manager needed)",
        read_only=True)),
    # Safety (rt2_policy.safety): robot.launch.py sets dry_run true unless told otherwise.
    "dry_run": (False, ParameterDescriptor(
        description="publish RT2Action but send only zero twists and no gripper commands",
        read_only=True)),
    "estop_topic": ("/rt2/estop", ParameterDescriptor(
        description="std_msgs/Bool: true = zero twist, abort the episode, pause the servo "
                    "(~/pause_servo), refuse new episodes; false = release", read_only=True)),
    "ready_service": ("", ParameterDescriptor(
        description="std_srvs/Trigger called before each episode (e.g. "
                    "/rt2_ready_pose/move_to_ready); the episode is refused if it fails; "
                    "'' = none", read_only=True)),
    "ready_timeout": (60.0, float_range(0.1, 600.0, "seconds to wait for ready_service")),
}


class PolicyNode(LifecycleNode):
    """Lifecycle node running an RT-2 policy in closed loop. See the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("rt2_policy", **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self._policy = None
        self._loop: ControlLoop | None = None
        self._limits: EpisodeLimits | None = None
        self._hold = TwistHold()
        self._lock = threading.Lock()
        self._episode: Episode | None = None
        self._episode_feedback: queue.Queue | None = None
        self._frame: Frame | None = None
        self._gripper: GripperReading | None = None
        self._tcp: TcpReading | None = None
        self._last_joint_log = -float("inf")
        self._active = False
        self._timers = []
        self._entities = []
        self._last_fault_log = 0.0
        self._safety = SafetyGate()
        self._pause_client = None
        self._ready_client = None
        # Camera frames and the keep-alive on their own single-threaded executor: under the
        # multi-threaded one each callback cost ~4 ms of GIL time taken from the model
        # (see rt2_policy.high_rate_executor).
        self._high_rate: HighRateExecutor | None = None
        self._image_sub = None
        self._joint_sub = None
        self._keepalive = None
        self._infer_group = MutuallyExclusiveCallbackGroup()
        self._io_group = ReentrantCallbackGroup()

    # ------------------------------------------------------------------ parameters
    def _p(self, name: str):
        return self.get_parameter(name).value

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._control = ControlConfig(
                control_rate=float(self._p("control_rate")),
                max_image_age=float(self._p("max_image_age")),
                limits=TwistLimits(float(self._p("max_linear_speed")),
                                   float(self._p("max_angular_speed"))),
                backend_fault_timeout=float(self._p("remote_fault_timeout"))
                if self._p("backend") == "remote" else 0.0)
            self._limits = EpisodeLimits(int(self._p("max_steps")), float(self._p("time_limit")),
                                         int(self._p("max_consecutive_faults")))
            started = time.perf_counter()
            self._policy = make_policy(
                self._p("backend"), model_path=self._p("model_path"), device=self._p("device"),
                scripted_actions=list(self._p("scripted_actions")),
                scripted_delay=float(self._p("scripted_delay")),
                num_threads=int(self._p("num_threads")),
                chain_of_thought=bool(self._p("chain_of_thought")),
                release_at_waypoint=bool(self._p("release_at_waypoint")),
                terminate_threshold=float(self._p("terminate_threshold")) or None,
                server_uri=self._p("server_uri"),
                api_key=os.environ.get(self._p("api_key_env"), ""),
                request_timeout=float(self._p("request_timeout"))
                or self._control.control_period,
                connect_timeout=float(self._p("connect_timeout")), logger=self.get_logger())
            self.get_logger().info(f"loaded policy backend={self._p('backend')} "
                                   f"model={self._p('model_path') or '-'} in "
                                   f"{time.perf_counter() - started:.2f} s")
            # One read: VLAPolicy builds it (a pass over the parameters), RemotePolicy copies it.
            metadata = getattr(self._policy, "metadata", {})
            threshold = metadata.get("terminate_threshold")
            if threshold is not None:
                self.get_logger().info(f"the model ends an episode when p(terminate) exceeds "
                                       f"{threshold}")
            if float(self._p("terminate_threshold")) and self._p("backend") != "local":
                self.get_logger().warning(
                    f"terminate_threshold {self._p('terminate_threshold')} is ignored by backend "
                    f"{self._p('backend')} (a remote server decodes with its own setting)")
            if metadata.get("gripper_state"):
                self.get_logger().info(
                    f"the model reads the gripper state: finger joints "
                    f"{list(self._p('gripper_joints'))} on {self._p('joint_states_topic')}")
            if metadata.get("tcp_position"):
                self.get_logger().info(
                    f"the model reads the tcp position: arm joints {list(self._p('arm_joints'))}"
                    f" on {self._p('joint_states_topic')}, tcp_offset {self._p('tcp_offset')} m")
            if metadata.get("grasp_memory"):
                self.get_logger().info(
                    "the model reads the episode's grasp memory: whether the finger joints have "
                    "held an object since the episode started (rt2_policy.grasp_memory)")
        except (ValueError, OSError, RuntimeError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._loop = ControlLoop(self._policy, self._control)
        self._twist_pub = self.create_lifecycle_publisher(TwistStamped, self._p("twist_topic"), 10)
        self._gripper_pub = self.create_lifecycle_publisher(Float64, self._p("gripper_topic"), 10)
        self._action_pub = self.create_lifecycle_publisher(RT2Action, self._p("action_topic"), 10)
        self._status_pub = self.create_lifecycle_publisher(EpisodeStatus, self._p("status_topic"),
                                                           10)
        if self._high_rate is None:
            self._high_rate = HighRateExecutor(self)
        self._image_sub = self._high_rate.subscribe(Image, self._p("image_topic"),
                                                    self._on_image, qos_profile_sensor_data)
        self._gripper_joints = tuple(self._p("gripper_joints"))
        self._gripper_open_position = float(self._p("gripper_open_position"))
        self._arm_joints = tuple(self._p("arm_joints"))
        self._tcp_offset = float(self._p("tcp_offset"))
        self._joint_sub = self._high_rate.subscribe(JointState, self._p("joint_states_topic"),
                                                    self._on_joint_state, qos_profile_sensor_data)
        self._entities = [
            self.create_subscription(String, self._p("instruction_topic"), self._on_instruction,
                                     10, callback_group=self._io_group),
            self.create_service(Trigger, "~/stop", self._on_stop, callback_group=self._io_group),
            # Same group as inference: a question waits for the current control step and the
            # next step waits for the answer (the twist hold then streams zeros).
            self.create_service(AnswerQuestion, "~/answer_question", self._on_answer_question,
                                callback_group=self._infer_group),
            self.create_subscription(Bool, self._p("estop_topic"), self._on_estop, 10,
                                     callback_group=self._io_group),
        ]
        self._safety = SafetyGate(bool(self._p("dry_run")))
        self.get_logger().info(f"safety: {self._safety.describe()}; e-stop on "
                               f"{self._p('estop_topic')}")
        # Responses must be handled while a callback waits on them: their own reentrant group.
        self._pause_client = self.create_client(
            SetBool, self._p("servo_node_name").rstrip("/") + "/pause_servo",
            callback_group=ReentrantCallbackGroup())
        self._ready_client = None
        if self._p("ready_service"):
            self._ready_client = self.create_client(Trigger, self._p("ready_service"),
                                                    callback_group=ReentrantCallbackGroup())
        self._action_server = ActionServer(
            self, ExecuteInstruction, self._p("action_server_name"),
            execute_callback=self._execute, goal_callback=self._on_goal,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup())
        self._servo_client = None
        if ServoCommandType is not None:
            self._servo_client = self.create_client(
                ServoCommandType, self._p("servo_node_name").rstrip("/") + "/switch_command_type",
                callback_group=self._io_group)
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # activates the lifecycle publishers
        self._active = True
        self._worker = threading.Thread(target=self._control_worker, name="rt2-policy-infer",
                                        daemon=True)
        self._worker.start()
        self._keepalive = self._high_rate.timer(1.0 / float(self._p("keepalive_rate")),
                                                self._stream_twist)
        self._timers = [
            self.create_timer(1.0, self._publish_status, callback_group=self._io_group),
        ]
        self._switch_servo_to_twist()
        self.get_logger().info(
            f"active: {self._control.control_rate:.1f} Hz policy, twists on "
            f"{self._p('twist_topic')} in frame {self._p('command_frame')}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if not self._end_episode(Outcome.ABORTED, "policy node deactivated"):
            self._publish_zero_twist()  # no episode ran: still leave the servo a stop
        self._active = False
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        if self._keepalive is not None and self._high_rate is not None:
            self._high_rate.destroy(self._keepalive)
        self._keepalive = None
        self._stop_worker()
        return super().on_deactivate(state)

    def _control_worker(self) -> None:
        """The inference thread: one control step per control period while active (with
        ``observe_after_motion``, not before the last step's motion has ended plus
        ``settle_time``).

        Paced by the node's clock while ROS (sim) time is active, and by the steady clock
        otherwise, so a step of the system clock (NTP, a resumed VM) neither stalls the loop
        nor bursts it. A change of time source restarts the pacing instead of ending the
        thread."""
        period = Duration(seconds=self._control.control_period)
        # observe_after_motion: after a step that set a twist, wait for its end plus settle_time
        wait = (Duration(seconds=self._control.control_period + float(self._p("settle_time")))
                if self._p("observe_after_motion") else None)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        clock = due = None
        while self._active:
            try:
                moved = self._control_step()
                pacing = self._pacing_clock(steady)
                if pacing is not clock:
                    clock, due = pacing, pacing.now()
                due = max(due + period, clock.now())  # overran: next step now, no burst
                if wait is not None and moved:  # the twist was set just now, on this clock
                    due = max(due, clock.now() + wait)
                if not clock.sleep_until(due, context=self.context):
                    if not self.context.ok():
                        return  # context shut down
                    clock = None  # time source changed: restart the pacing
            except Exception as exc:  # noqa: BLE001 - node torn down under us: stop quietly
                if not self._active or not self.context.ok():
                    return
                self.get_logger().error(f"control step failed: {exc}")
                self._publish_zero_twist()
                time.sleep(self._control.control_period)

    def _sim_time_active(self) -> bool:
        """True while the node's clock runs on ROS (sim) time from ``/clock``."""
        return bool(getattr(self.get_clock(), "ros_time_is_active", False))

    def _pacing_clock(self, steady: Clock) -> Clock:
        """The node's clock when it runs on ROS (sim) time, else ``steady``."""
        return self.get_clock() if self._sim_time_active() else steady

    def _stop_worker(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=30.0)
        self._worker = None

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._active:
            self._end_episode(Outcome.ABORTED, "policy node shutting down")
            self._publish_zero_twist()
        self._release()
        return super().on_shutdown(state)

    def destroy_node(self) -> None:
        if self._high_rate is not None:
            self._high_rate.close()
            self._high_rate = None
        super().destroy_node()

    def _release(self) -> None:
        for sub in (self._image_sub, self._joint_sub):
            if sub is not None and self._high_rate is not None:
                self._high_rate.destroy(sub)
        self._image_sub = self._joint_sub = None
        for entity in self._entities:
            if hasattr(entity, "destroy"):
                entity.destroy()
        self._entities = []
        if getattr(self, "_action_server", None) is not None:
            self._action_server.destroy()
            self._action_server = None
        close = getattr(self._policy, "close", None)  # remote client: stop reconnecting
        if close is not None:
            close()
        self._policy = None
        self._loop = None

    def _switch_servo_to_twist(self) -> None:
        """MoveIt Servo (Jazzy) ignores twists until its command type is TWIST."""
        if self._servo_client is None:
            self.get_logger().info("moveit_msgs not installed: not switching servo command type")
            return
        if not self._servo_client.wait_for_service(timeout_sec=2.0):
            self.get_logger().warning(f"{self._servo_client.srv_name} not available; twists are "
                                      "ignored until the servo's command type is TWIST")
            return
        request = ServoCommandType.Request(command_type=ServoCommandType.Request.TWIST)
        future = self._servo_client.call_async(request)
        future.add_done_callback(lambda f: self.get_logger().info(
            f"servo command type TWIST: {'ok' if f.result() and f.result().success else 'FAILED'}"))

    # ------------------------------------------------------------------ inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _hold_time(self) -> tuple[float, str]:
        """``(now, clock)`` for the twist hold window: the node's clock under sim time (the window
        is one control period of sim time), else the steady clock, so that a step of the system
        clock (NTP, a resumed VM) cannot stretch a motion command."""
        if self._sim_time_active():
            return self._now(), "ros"
        return time.monotonic(), "steady"

    def _on_image(self, msg: Image) -> None:
        stamp = stamp_seconds(msg.header.stamp) or self._now()
        self._frame = Frame(stamp=stamp, to_rgb=lambda m=msg: image_msg_to_rgb(m))

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            state = gripper_state_from_joint_state(
                msg.name, msg.position, self._gripper_joints, self._gripper_open_position)
            tcp = tcp_position_from_joint_state(msg.name, msg.position, self._arm_joints,
                                                self._tcp_offset)
        except ValueError as exc:  # NaN positions, mismatched lengths: keep the last good one
            now = time.monotonic()
            if now - self._last_joint_log > 5.0:
                self._last_joint_log = now
                self.get_logger().warning(f"joint state ignored: {exc}")
            return
        stamp = stamp_seconds(msg.header.stamp) or self._now()
        if state is not None:  # a message without the finger joints (e.g. the arm's own)
            self._gripper = GripperReading(stamp=stamp, state=state)
        if tcp is not None:  # a message without all arm joints (e.g. the hand's own)
            self._tcp = TcpReading(stamp=stamp, position=tcp)

    def _on_instruction(self, msg: String) -> None:
        if not self._active:
            self.get_logger().warning("instruction ignored: node is not active")
            return
        text = msg.data.strip()
        if not text:
            self.get_logger().warning("empty instruction received: stopping the arm")
            self._end_episode(Outcome.CANCELED, "empty instruction")
            return
        refusal = self._prepare_episode()
        if refusal:
            self.get_logger().warning(f"instruction {text!r} refused: {refusal}")
            return
        self._start_episode(text, self._limits)

    def _on_estop(self, msg: Bool) -> None:
        engaged = bool(msg.data)
        if not self._safety.set_estop(engaged):
            return
        if engaged:
            with self._lock:
                self._hold.stop()
            self._publish_zero_twist()
            self.get_logger().error("EMERGENCY STOP engaged: zero twist, episode aborted, "
                                    "servo paused; new episodes refused until released")
            self._end_episode(Outcome.ABORTED, ESTOP_MESSAGE)
        else:
            self.get_logger().warning("emergency stop released: servo resumed; send a new "
                                      "instruction to move")
        self._pause_servo(engaged)

    def _pause_servo(self, paused: bool) -> None:
        """Pause or resume MoveIt Servo (``~/pause_servo``) where it runs; never blocks."""
        client = self._pause_client
        if client is None or not client.service_is_ready():
            return
        future = client.call_async(SetBool.Request(data=paused))
        future.add_done_callback(lambda f: self.get_logger().info(
            f"servo {'paused' if paused else 'resumed'}: "
            f"{'ok' if f.result() and f.result().success else 'FAILED'}"))

    def _prepare_episode(self) -> str | None:
        """Checks before an episode: e-stop, then the ready move (``ready_service``).

        Returns:
            None when the episode may start, else the reason it may not.
        """
        refusal = self._safety.refusal()
        if refusal:
            return refusal
        if self._servo_client is not None and self._servo_client.service_is_ready():
            # Servo forgets the command type when it restarts, and may have started after us.
            self._servo_client.call_async(
                ServoCommandType.Request(command_type=ServoCommandType.Request.TWIST))
        if self._ready_client is None:
            return None
        if self._safety.dry_run:
            self.get_logger().info("dry run: skipping the ready move")
            return None
        client = self._ready_client
        timeout = float(self._p("ready_timeout"))
        if not client.wait_for_service(timeout_sec=min(timeout, 2.0)):
            return f"ready service {client.srv_name} not available"
        self._end_episode(Outcome.CANCELED, "superseded by a new instruction")
        self._pause_servo(True)  # the ready trajectory and Servo drive the same controller
        done = threading.Event()
        future = client.call_async(Trigger.Request())
        future.add_done_callback(lambda _f: done.set())
        try:
            if not done.wait(timeout):
                future.cancel()
                return f"ready service {client.srv_name} timed out after {timeout:.1f} s"
            response = future.result()
            if response is None or not response.success:
                message = response.message if response is not None else "no response"
                return f"ready move failed: {message}"
            return self._safety.refusal()
        finally:
            if not self._safety.estopped:
                self._pause_servo(False)

    def _on_answer_question(self, request, response):
        """Answer ``request.question`` about the latest camera frame with the policy's VLM."""
        started = time.perf_counter()
        response.success = False
        question = request.question.strip()
        answer = getattr(self._policy, "answer", None)
        frame = self._frame
        if frame is not None:
            nanoseconds = int(round(frame.stamp * 1e9))
            response.image_stamp.sec, response.image_stamp.nanosec = divmod(nanoseconds, 10**9)
        if not question:
            response.message = "empty question"
        elif answer is None:
            response.message = (f"backend {self._p('backend')!r} cannot answer questions"
                                if self._policy is not None else "no policy loaded "
                                "(node not configured)")
        elif frame is None:
            response.message = f"no camera frame received yet on {self._p('image_topic')}"
        elif self._now() - frame.stamp > float(self._p("max_image_age")):
            response.message = (f"camera frame is stale: {self._now() - frame.stamp:.2f} s old "
                                f"(max_image_age {float(self._p('max_image_age')):.2f} s)")
        else:
            budget = int(request.max_new_tokens) or int(self._p("answer_max_new_tokens"))
            try:
                response.answer = str(answer(frame.to_rgb(), question, budget))
                response.success = True
            except ValueError as exc:
                response.message = f"bad input: {exc}"
            except Exception as exc:  # noqa: BLE001 - a model failure must not kill the node
                response.message = f"model error: {type(exc).__name__}: {exc}"
        response.latency = time.perf_counter() - started
        if response.success:
            self.get_logger().info(f"answered {question!r} -> {response.answer!r} in "
                                   f"{response.latency * 1e3:.0f} ms")
        else:
            self.get_logger().warning(f"question {question!r} not answered: {response.message}")
        return response

    def _on_stop(self, _request, response):
        ended = self._end_episode(Outcome.CANCELED, "stopped by ~/stop")
        response.success = True
        response.message = "episode stopped" if ended else "no episode running; arm holds still"
        return response

    # ------------------------------------------------------------------ episodes
    def _start_episode(self, instruction: str, limits: EpisodeLimits) -> Episode:
        self._end_episode(Outcome.CANCELED, "superseded by a new instruction")
        episode = Episode(instruction, limits, self._now())
        with self._lock:
            self._episode = episode
            self._hold.stop()
        self._policy.reset()
        self.get_logger().info(f"episode {episode.episode_id} started: {instruction!r}")
        self._publish_status()
        return episode

    def _end_episode(self, outcome: Outcome, message: str) -> bool:
        with self._lock:
            episode = self._episode
            self._hold.stop()
        ended = bool(episode and episode.finish(outcome, message, self._now()))
        if ended:
            self._publish_zero_twist()
            self._report_end(episode)
        return ended

    def _report_end(self, episode: Episode) -> None:
        snap = episode.snapshot()
        self.get_logger().info(f"episode {snap.episode_id} finished: {snap.outcome.name} after "
                               f"{snap.step} steps, {snap.duration:.2f} s ({snap.message})")
        self._publish_status()

    # ------------------------------------------------------------------ control
    def _control_step(self) -> bool:
        """One policy step; True when it set a twist (held one control period from now)."""
        with self._lock:
            episode = self._episode
        if episode is None or not episode.is_active() or self._loop is None:
            return False
        now = self._now()
        moved = False
        result: StepResult = self._loop.step(episode, self._frame, now, self._gripper,
                                             self._tcp)
        with self._lock:
            if result.twist.is_zero() or result.finished:
                self._hold.stop()
            else:
                hold_now, hold_clock = self._hold_time()
                self._hold.set(result.twist, hold_now, self._control.control_period, hold_clock)
                # The window starts now, so must the motion: its first twist goes out at once,
                # not at the next keep-alive tick (up to 1 / keepalive_rate later, which cut
                # every episode's motion short by that much against the demonstrations').
                self._publish_twist(result.twist)
                moved = True
        if result.fault:
            self._log_fault(result.fault)
            self._publish_zero_twist()
        if result.action is not None:
            self._publish_action(episode, result, now)
        if result.finished:
            self._publish_zero_twist()
            self._report_end(episode)
        elif result.fault or result.action is not None:
            self._publish_status()
        return moved

    def _log_fault(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._last_fault_log > 1.0:
            self._last_fault_log = now
            self.get_logger().warning(f"holding the arm still: {reason}")

    def _publish_action(self, episode: Episode, result: StepResult, now: float) -> None:
        action = result.action
        msg = RT2Action()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._p("command_frame")
        msg.episode_id = episode.episode_id
        msg.step = max(0, episode.snapshot().step - 1)
        msg.bins = [int(b) for b in action.bins]
        msg.terminate = bool(action.terminate)
        (msg.delta_position.x, msg.delta_position.y,
         msg.delta_position.z) = (float(v) for v in action.delta_position)
        (msg.delta_rotation.x, msg.delta_rotation.y,
         msg.delta_rotation.z) = (float(v) for v in action.delta_rotation)
        msg.gripper = float(action.gripper)
        msg.text = action.text
        msg.plan = action.plan
        msg.inference_latency = float(result.latency)
        self._action_pub.publish(msg)
        gripper = self._safety.gripper(result.gripper)
        if gripper is not None and not action.terminate:
            self._gripper_pub.publish(Float64(data=gripper))
        feedback_queue = self._episode_feedback
        if feedback_queue is not None:
            feedback_queue.put(msg)

    def _stream_twist(self) -> None:
        # Read, stamp and publish under the lock that ``self._hold.stop()`` takes: a twist read
        # before a stop can then never be stamped after it (and reach the servo after the zero).
        with self._lock:
            hold_now, hold_clock = self._hold_time()
            self._publish_twist(self._hold.current(hold_now, hold_clock))

    def _publish_twist(self, twist: Twist) -> None:
        if not self._active:
            return
        twist = self._safety.twist(twist)  # zero in dry run and under e-stop
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._p("command_frame")
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = map(float, twist.linear)
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = map(float, twist.angular)
        self._twist_pub.publish(msg)

    def _publish_zero_twist(self) -> None:
        self._publish_twist(Twist.zero())

    def _publish_status(self) -> None:
        if not self._active:
            return
        msg = EpisodeStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        with self._lock:
            episode = self._episode
        if episode is None:
            msg.state = EpisodeState.IDLE
            msg.message = "idle"
        else:
            snap = episode.snapshot()
            msg.episode_id, msg.instruction, msg.step = snap.episode_id, snap.instruction, snap.step
            msg.state, msg.outcome, msg.message = int(snap.state), int(snap.outcome), snap.message
        self._status_pub.publish(msg)

    # ------------------------------------------------------------------ action server
    def _on_goal(self, goal) -> GoalResponse:
        if not self._active:
            self.get_logger().warning("goal rejected: node is not active")
            return GoalResponse.REJECT
        if not goal.instruction.strip():
            self.get_logger().warning("goal rejected: empty instruction")
            return GoalResponse.REJECT
        if self._safety.refusal():
            self.get_logger().warning(f"goal rejected: {self._safety.refusal()}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle):
        goal = goal_handle.request
        limits = EpisodeLimits(
            max_steps=int(goal.max_steps) or self._limits.max_steps,
            time_limit=float(goal.time_limit) or self._limits.time_limit,
            max_consecutive_faults=self._limits.max_consecutive_faults)
        refusal = self._prepare_episode()
        if refusal:
            self.get_logger().warning(f"goal {goal.instruction!r} aborted: {refusal}")
            goal_handle.abort()
            return ExecuteInstruction.Result(outcome=int(Outcome.ABORTED), message=refusal)
        feedback_queue: queue.Queue = queue.Queue()
        self._episode_feedback = feedback_queue
        episode = self._start_episode(goal.instruction, limits)
        while not episode.finished_event.is_set():
            if goal_handle.is_cancel_requested:
                self._end_episode(Outcome.CANCELED, "canceled by the action client")
                break
            if not goal_handle.is_active:
                self._end_episode(Outcome.ABORTED, "goal no longer active")
                break
            try:
                action_msg = feedback_queue.get(timeout=0.05)
            except queue.Empty:
                continue
            feedback = ExecuteInstruction.Feedback()
            feedback.step = action_msg.step
            feedback.last_action = action_msg
            feedback.inference_latency = action_msg.inference_latency
            goal_handle.publish_feedback(feedback)
        if self._episode_feedback is feedback_queue:
            self._episode_feedback = None
        snap = episode.snapshot()
        result = ExecuteInstruction.Result()
        result.outcome = int(snap.outcome)
        result.message = snap.message
        result.episode_id = snap.episode_id
        result.steps = snap.step
        result.duration = float(snap.duration)
        if snap.outcome == Outcome.SUCCEEDED:
            goal_handle.succeed()
        elif snap.outcome == Outcome.CANCELED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return result


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(args=None) -> int:
    """Entry point of the ``policy_node`` executable.

    SIGINT and SIGTERM are handled here rather than by rclpy, so that the context is still valid
    when the node deactivates: the last message on the servo topic is a zero twist.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    node = PolicyNode()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("could not configure; exiting")
                return 1
            node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the stop
        try:
            if node._active:
                node.trigger_deactivate()
                node.get_logger().info("deactivated: zero twist sent")
        except Exception as exc:  # shutting down: log, never raise
            print(f"rt2_policy: error while deactivating: {exc}", file=sys.stderr)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
