"""ROS 2 node ``rt2_sim``: the embedded simulator behind MoveIt Servo's topics.

A thin wrapper over :class:`rt2_sim.simulation.ArmSimulation`; uses only rclpy APIs common to
Jazzy and Kilted. Names below are as resolved without a namespace (they are relative names, so a
namespace or remapping applies as usual):

Subscriptions:
    ``/servo_node/delta_twist_cmds`` (``geometry_msgs/TwistStamped``): tcp twist, m/s and rad/s,
        in ``header.frame_id`` (``panda_link0``, ``panda_hand``, ``tcp``, ``world``; empty means
        ``panda_link0``), MoveIt Servo semantics: commands older than
        ``incoming_command_timeout`` (``node clock now - header.stamp``) halt the arm; a zero
        stamp counts as "received now". Unknown frames or non-finite values are logged
        (throttled) and halt the arm.
    ``/rt2/gripper_command`` (``std_msgs/Float64``): 0.0 open .. 1.0 closed (clamped).

Publications:
    ``/camera/image_raw`` (``sensor_msgs/Image``, ``rgb8``, frame ``scene_camera_optical_frame``)
        and ``/camera/camera_info`` (``sensor_msgs/CameraInfo``, plumb_bob, zero distortion) at
        ``publish_rate``, sensor-data QoS (best effort, depth 5).
    ``/joint_states`` (``sensor_msgs/JointState``): MoveIt's 7 arm + 2 finger joints, radians /
        metres, at ``joint_state_rate``.
    ``/rt2_sim/tcp_pose`` (``geometry_msgs/PoseStamped``, frame ``panda_link0``): measured tcp
        pose (debugging / evaluation), at ``joint_state_rate``.

Services:
    ``/rt2_sim/reset`` (``rt2_msgs/srv/ResetScene``): arm to "ready", gripper open, objects
        re-placed from ``seed`` (-1: a fresh seed). With ``split`` and/or ``task_family`` (and
        ``task_scene:=true``) it samples an episode with :func:`rt2_sim.tasks.sample_episode`
        and returns its instruction and task JSON.
    ``/rt2_sim/task_status`` (``std_srvs/srv/Trigger``): ``success`` is the current episode's
        success check (:func:`rt2_sim.tasks.check_success`), ``message`` a JSON summary.

Threads: physics (a wall timer stepping the simulation by the elapsed time, capped at
``MAX_STEP``), joint states, commands and the service each have their own callback group, and
every access to MuJoCo state holds one lock, so the node is safe on a
:class:`~rclpy.executors.MultiThreadedExecutor`. Subscription callbacks only fill a mailbox that
the physics tick applies. Rendering runs in a dedicated thread, because an EGL/OSMesa OpenGL
context is current in one thread only.

:func:`main` nevertheless spins a :class:`~rclpy.executors.SingleThreadedExecutor`: every ROS
callback here is short, and rclpy's MultiThreadedExecutor (rclpy 9.1 wheels, Kilted) re-dispatches
ready entities many times per message (ros2/rclpy#1223, #1452): with a 50 Hz twist stream it took
a whole core (~1000 dispatches/s for 50 messages/s), starved the physics timer and delivered
commands 0.5-2.6 s late, i.e. stale.
"""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from rt2_msgs.srv import ResetScene
from rt2_policy.ros_parameters import float_range, int_range
from rt2_sim.cartesian_servo import ServoConfig
from rt2_sim.scene import BASE_FRAME, SceneConfig
from rt2_sim.simulation import ArmSimulation
from rt2_sim.tasks import episode_summary, sample_episode, task_scene_config

NODE_NAME = "rt2_sim"
TWIST_TOPIC = "servo_node/delta_twist_cmds"
GRIPPER_TOPIC = "rt2/gripper_command"
IMAGE_TOPIC = "camera/image_raw"
CAMERA_INFO_TOPIC = "camera/camera_info"
JOINT_STATES_TOPIC = "joint_states"
TCP_POSE_TOPIC = "~/tcp_pose"
RESET_SERVICE = "~/reset"
TASK_STATUS_SERVICE = "~/task_status"
#: Longest simulated step per physics tick, seconds: after a stall the simulation slows down
#: rather than jumping ahead.
MAX_STEP = 0.1


class SimNode(Node):
    """The ``rt2_sim`` node; see the module docstring for its interface.

    Args:
        **kwargs: forwarded to :class:`rclpy.node.Node` (``context``, ``parameter_overrides``,
            ``namespace``, ...).

    Raises:
        ValueError: if parameters are inconsistent (e.g. physics_rate not a multiple of the
            100 Hz servo rate).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        p = self._declare_parameters()
        servo_config = ServoConfig(incoming_command_timeout=p["incoming_command_timeout"])
        scene_fields = {
            "image_width": p["image_width"],
            "image_height": p["image_height"],
            "timestep": 1.0 / p["physics_rate"],
        }
        self._task_scene = bool(p["task_scene"])
        scene_config = (task_scene_config(**scene_fields) if self._task_scene
                        else SceneConfig(**scene_fields))
        seed = None if p["seed"] < 0 else p["seed"]
        self._lock = threading.Lock()  # guards self._sim (MuJoCo model, data, renderer)
        self._mailbox_lock = threading.Lock()  # guards the pending commands below
        self._pending_twist: tuple | None = None
        self._pending_gripper: float | None = None
        self._sim = ArmSimulation(scene_config, servo_config, seed=seed)
        if seed is not None:
            self._sim.reset(seed)
        self._intrinsics = self._sim.camera_info()
        info = self._sim.scene_info
        self.get_logger().info(f"scene (seed {info.seed}): {info.description}")

        self._physics_group = MutuallyExclusiveCallbackGroup()
        self._state_group = MutuallyExclusiveCallbackGroup()
        self._command_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()

        self._image_pub = self.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
        self._info_pub = self.create_publisher(
            CameraInfo, CAMERA_INFO_TOPIC, qos_profile_sensor_data
        )
        self._joint_pub = self.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
        self._tcp_pub = self.create_publisher(PoseStamped, TCP_POSE_TOPIC, 10)
        self.create_subscription(
            TwistStamped, TWIST_TOPIC, self._on_twist, 10, callback_group=self._command_group
        )
        self.create_subscription(
            Float64, GRIPPER_TOPIC, self._on_gripper, 10, callback_group=self._command_group
        )
        self.create_service(
            ResetScene, RESET_SERVICE, self._on_reset, callback_group=self._service_group
        )
        self.create_service(
            Trigger, TASK_STATUS_SERVICE, self._on_task_status,
            callback_group=self._service_group,
        )

        self._last_tick = time.monotonic()
        self.create_timer(
            1.0 / p["step_rate"], self._on_physics_tick, callback_group=self._physics_group
        )
        self.create_timer(
            1.0 / p["joint_state_rate"], self._publish_state, callback_group=self._state_group
        )
        self._render_period = 1.0 / p["publish_rate"]
        self._stop = threading.Event()
        self._render_thread = threading.Thread(
            target=self._render_loop, name="rt2_sim_render", daemon=True
        )
        self._render_thread.start()

    # ------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> dict:
        specs = {
            "publish_rate": (15.0, float_range(0.5, 60.0, "camera image rate, Hz", read_only=True)),
            "image_width": (224, int_range(16, 1920, "camera image width, pixels", read_only=True)),
            "image_height": (224, int_range(16, 1080, "camera image height, pixels",
                                            read_only=True)),
            "seed": (
                0,
                int_range(-1, 2**31 - 2, "initial object-placement seed; -1 draws a fresh one",
                          read_only=True),
            ),
            "incoming_command_timeout": (
                0.1,
                float_range(0.01, 10.0,
                            "twist commands older than this halt the arm, s (MoveIt Servo)",
                            read_only=True),
            ),
            "physics_rate": (
                500.0,
                float_range(100.0, 2000.0, "MuJoCo physics rate, Hz (1 / timestep; a "
                            "multiple of the 100 Hz servo)", read_only=True),
            ),
            "step_rate": (
                100.0,
                float_range(10.0, 500.0,
                            "wall-clock timer rate that advances the physics in real time, Hz",
                            read_only=True),
            ),
            "joint_state_rate": (
                50.0,
                float_range(1.0, 500.0, "joint_states and tcp_pose rate, Hz", read_only=True),
            ),
            "task_scene": (
                False,
                ParameterDescriptor(
                    description="build the task scene (rt2_sim.tasks: 5 object slots, bowl and "
                    "plate, front camera) so ~/reset can sample tasks by split and family",
                    read_only=True,
                ),
            ),
        }
        values = {}
        for name, (default, descriptor) in specs.items():
            values[name] = self.declare_parameter(name, default, descriptor).value
        return values

    # ------------------------------------------------------------------ callbacks
    def _on_physics_tick(self) -> None:
        now = time.monotonic()
        elapsed = min(now - self._last_tick, MAX_STEP)
        self._last_tick = now
        with self._mailbox_lock:
            twist, self._pending_twist = self._pending_twist, None
            gripper, self._pending_gripper = self._pending_gripper, None
        with self._lock:
            if twist is not None:
                linear, angular, frame_id, stamp_ns = twist
                age = 0.0 if stamp_ns == 0 else (self._now_ns() - stamp_ns) * 1e-9
                try:
                    self._sim.command_twist(linear, angular, frame_id, self._sim.time - age)
                except ValueError as err:
                    self.get_logger().error(
                        f"twist rejected, halting: {err}", throttle_duration_sec=1.0
                    )
            if gripper is not None:
                self._sim.command_gripper(gripper)
            self._sim.step(elapsed)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # Subscription callbacks only fill a mailbox (never wait on the simulation lock): a callback
    # blocked in a mutually exclusive group makes rclpy's executor spin hot.
    def _on_twist(self, msg: TwistStamped) -> None:
        stamp = msg.header.stamp
        twist = (
            (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z),
            (msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z),
            msg.header.frame_id,
            stamp.sec * 1_000_000_000 + stamp.nanosec,
        )
        with self._mailbox_lock:
            self._pending_twist = twist

    def _on_gripper(self, msg: Float64) -> None:
        if math.isnan(msg.data):
            self.get_logger().error(
                "gripper command rejected: expected a number in [0, 1], got nan",
                throttle_duration_sec=1.0,
            )
            return
        with self._mailbox_lock:
            self._pending_gripper = float(msg.data)

    def _on_reset(self, request, response):
        seed = int(request.seed)
        split = str(request.split)
        family = str(request.task_family)
        if seed < -1:
            response.success = False
            response.message = f"seed: expected -1 or a non-negative int, got {seed}"
            return response
        spec = None
        if split or family:
            if not self._task_scene:
                response.success = False
                response.message = ("split/task_family: this simulator runs the plain scene; "
                                    "start it with task_scene:=true")
                return response
            if seed == -1:
                seed = int(np.random.default_rng().integers(0, 2**31 - 1))
            try:
                spec = sample_episode(seed, split or "seen", family or None)
            except ValueError as exc:
                response.success = False
                response.message = str(exc)
                return response
        with self._lock:
            with self._mailbox_lock:  # commands sent before the reset do not apply after it
                self._pending_twist = None
                self._pending_gripper = None
            if spec is None:
                info = self._sim.reset(None if seed == -1 else seed)
            else:
                info = self._sim.reset_episode(spec)
                self._sim.step(0.2)  # let the objects settle before the episode starts
        response.success = True
        response.message = f"scene reset with seed {info.seed}"
        response.object_names = list(info.object_names)
        response.description = info.description
        if spec is not None:
            response.instruction = spec.task.instruction
            response.task = spec.task.to_json()
            response.message += f": {spec.task.family} ({spec.task.split})"
        self.get_logger().info(f"reset (seed {info.seed}): {info.description}"
                               + (f"; task: {spec.task.instruction!r}" if spec else ""))
        return response

    def _on_task_status(self, _request, response):
        with self._lock:
            spec = self._sim.episode
            if spec is None:
                response.success = False
                response.message = json.dumps(
                    {"error": "no task: call ~/reset with a split or task_family first"})
                return response
            summary = episode_summary(self._sim, spec)
        response.success = bool(summary["success"])
        response.message = json.dumps(summary)
        return response

    def _publish_state(self) -> None:
        if not self.context.ok():
            return
        with self._lock:
            positions = self._sim.joint_positions()
            velocities = self._sim.joint_velocities()
            tcp_position, tcp_quat = self._sim.ee_pose()
        stamp = self.get_clock().now().to_msg()
        joints = JointState()
        joints.header.stamp = stamp
        joints.name = list(self._sim.joint_names)
        joints.position = positions.tolist()
        joints.velocity = velocities.tolist()
        self._joint_pub.publish(joints)
        pose = PoseStamped()
        pose.header.stamp = stamp
        pose.header.frame_id = BASE_FRAME
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = tcp_position.tolist()
        q = pose.pose.orientation
        q.x, q.y, q.z, q.w = tcp_quat.tolist()
        self._tcp_pub.publish(pose)

    # ------------------------------------------------------------------ rendering
    def _render_loop(self) -> None:
        """Render and publish at ``publish_rate`` until stopped; owns the GL context."""
        next_time = time.monotonic()
        try:
            self._sim.prepare_renderer()  # slow on llvmpipe: outside the lock
            while not self._stop.is_set() and self.context.ok():
                try:
                    with self._lock:  # only the state copy holds the lock
                        self._sim.update_scene()
                    self._publish_image(self._sim.render_scene())
                except Exception as err:  # keep the camera alive; report and retry
                    if not self.context.ok():
                        break  # shutting down: publishers are gone
                    self.get_logger().error(f"render failed: {err}", throttle_duration_sec=5.0)
                next_time += self._render_period
                delay = next_time - time.monotonic()
                if delay < 0.0:  # fell behind: skip frames rather than burst
                    next_time = time.monotonic()
                    delay = 0.0
                self._stop.wait(delay)
        finally:
            with self._lock:
                self._sim.close()

    def _publish_image(self, pixels: np.ndarray) -> None:
        stamp = self.get_clock().now().to_msg()
        k = self._intrinsics
        image = Image()
        image.header.stamp = stamp
        image.header.frame_id = k.frame_id
        image.height, image.width = int(pixels.shape[0]), int(pixels.shape[1])
        image.encoding = "rgb8"
        image.is_bigendian = 0
        image.step = 3 * image.width
        image.data = pixels.tobytes()
        self._image_pub.publish(image)
        info = CameraInfo()
        info.header = image.header
        info.height, info.width = k.height, k.width
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = list(k.k)
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = list(k.p)
        self._info_pub.publish(info)

    def destroy_node(self) -> None:
        """Stop the render thread (it releases the GL context), then destroy the node."""
        self._stop.set()
        if self._render_thread.is_alive():
            self._render_thread.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Console entry point ``sim_node``: spin :class:`SimNode` (see the module docstring)."""
    rclpy.init(args=args)
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = SimNode()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=2.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
