"""rt2 recorder node: records executed RT-2 actions with their camera frames as a LeRobot dataset.

A thin rclpy node over :class:`rt2_policy.data.recorder.EpisodePairer` (pairing rules, episode
splitting) and :class:`rt2_policy.data.lerobot_dataset.LeRobotDatasetWriter` (LeRobot ``v2.1``
files). Run it beside the policy node (or a teleoperation source that publishes RT2Action) to
turn executed episodes into demonstrations; ``rosbag_to_lerobot`` does the same offline.

Interfaces (defaults; names are parameters):
    subscribes  ``/camera/image_raw``   sensor_msgs/Image (sensor-data QoS; rgb8, bgr8, …)
                ``/rt2/action``         rt2_msgs/RT2Action (one per executed step)
                ``/rt2/instruction``    std_msgs/String (task fallback)
                ``/rt2/episode_status`` rt2_msgs/EpisodeStatus (episode id → instruction, end)
                ``/joint_states``       sensor_msgs/JointState (sensor-data QoS; any number of
                                        publishers, each with any subset of the joints)
    service     ``~/flush``             std_srvs/Trigger: close the open episode, write
                                        everything pending and the dataset's stats

Robot state: each recorded step stores the positions of the ``state_joints`` parameter's joints
(default :data:`~rt2_policy.data.recorder.PANDA_STATE_JOINTS`: ``panda_joint1..7`` in rad, then
``panda_finger_joint1..2`` in m, the ``rt2_sim`` layout) as ``observation.state``, shape
``(len(state_joints),)`` float32, named by those joints in ``info.json``: per joint, the newest
``/joint_states`` position stamped at or before the paired camera frame (a message with an unset
stamp counts as received now). A step for which some joint has no position yet is not recorded
(``dropped_no_state``, with a warning naming the joints) rather than stored with a made-up
state; nor is one for which some joint's position is older than ``max_state_age`` seconds at
the frame's stamp (``dropped_stale_state``, with a warning naming the joints and their ages; a
dead joint-state publisher). ``state_joints:=[]`` (or ``['']``) records no state column, for
setups without joint states.

Thread model: the subscriptions share one mutually exclusive callback group (the pairer is
single-threaded); episodes are written by a worker thread so that PNG encoding never delays
the camera callbacks. On shutdown the open episode is closed and written, then the dataset
totals and stats are finalised.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from functools import partial

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rt2_msgs.msg import EpisodeStatus, RT2Action
from rt2_policy.data.lerobot_dataset import LeRobotDatasetWriter
from rt2_policy.data.recorder import (
    PANDA_STATE_JOINTS,
    EpisodePairer,
    RecordedEpisode,
    RecorderConfig,
    action_sample_from_msg,
    status_sample_from_msg,
    write_episode,
)
from rt2_policy.image_conversion import image_msg_to_rgb
from rt2_policy.ros_parameters import float_range, int_range
from rt2_policy.stamps import stamp_seconds

#: The recorder's parameters are all read-only (set at launch).
_float_param = partial(float_range, read_only=True)
_int_param = partial(int_range, read_only=True)


def _ro_param(text: str) -> ParameterDescriptor:
    return ParameterDescriptor(description=text, read_only=True)


PARAMETERS = {
    # name: (default, descriptor)
    "output_dir": ("", _ro_param("dataset directory (created, or appended to); required")),
    "fps": (5.0, _float_param(0.1, 1000.0, "dataset rate stored in info.json, Hz "
                              "(the policy's control_rate)")),
    "robot_type": ("panda", _ro_param("robot name stored in info.json")),
    "image_topic": ("/camera/image_raw", _ro_param("sensor_msgs/Image input")),
    "action_topic": ("/rt2/action", _ro_param("rt2_msgs/RT2Action input")),
    "instruction_topic": ("/rt2/instruction", _ro_param("std_msgs/String instruction input")),
    "status_topic": ("/rt2/episode_status", _ro_param("rt2_msgs/EpisodeStatus input")),
    "joint_states_topic": ("/joint_states", _ro_param(
        "sensor_msgs/JointState input of the state_joints positions (messages may carry any "
        "subset of the joints, e.g. arm and hand published separately)")),
    "state_joints": (list(PANDA_STATE_JOINTS), ParameterDescriptor(
        description="joints recorded as observation.state, in this order: rad for revolute, "
                    "m for prismatic (finger) joints; steps before every joint has a position "
                    "are not recorded; [] or [''] = no state column",
        read_only=True, dynamic_typing=True)),  # dynamic: an empty list is not a string array
    "max_frame_age": (0.5, _float_param(0.001, 60.0, "actions whose newest preceding frame "
                                        "is older than this are dropped, s")),
    "max_state_age": (0.5, _float_param(0.0, 60.0, "steps for which some state_joints "
                                        "position is older than this at the frame's stamp "
                                        "are dropped, s; 0 = no limit")),
    "subtract_inference_latency": (True, _ro_param(
        "when no frame has the action's exact stamp, pair with the newest frame before "
        "header.stamp - inference_latency (publishers that stamp actions when publishing)")),
    "success_only": (False, _ro_param("keep only episodes that terminated or SUCCEEDED")),
    "min_episode_length": (1, _int_param(1, 1_000_000, "shorter episodes are dropped, steps")),
    "image_height": (0, _int_param(0, 4096, "resize frames to this height, pixels "
                                   "(0 with image_width 0: keep the first frame's size)")),
    "image_width": (0, _int_param(0, 4096, "resize frames to this width, pixels")),
    "idle_timeout": (0.0, _float_param(0.0, 3600.0, "close the open episode after this many "
                                       "seconds without an action; 0 = never")),
}


class RecorderNode(Node):
    """Records ``/rt2/action`` + camera frames into a LeRobot dataset. See the module doc.

    Raises:
        ValueError: on construction, when ``output_dir`` is empty or a parameter combination
            is invalid (the message names the parameter).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("rt2_recorder", **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        p = self._p
        self._output = str(p("output_dir"))
        if not self._output:
            raise ValueError("output_dir: expected a dataset directory, got ''")
        h, w = int(p("image_height")), int(p("image_width"))
        if (h == 0) != (w == 0):
            raise ValueError(f"image_height, image_width: expected both 0 or both > 0, "
                             f"got {h}, {w}")
        self._state_joints = _state_joints(p("state_joints"))
        self._config = RecorderConfig(
            max_frame_age=float(p("max_frame_age")),
            frame_buffer=max(2.0, float(p("max_frame_age"))),
            subtract_inference_latency=bool(p("subtract_inference_latency")),
            success_only=bool(p("success_only")),
            min_episode_length=int(p("min_episode_length")),
            image_size=(h, w) if h else None,
            state_joints=self._state_joints,
            max_state_age=float(p("max_state_age")))
        self._fps = float(p("fps"))
        self._idle_timeout = float(p("idle_timeout"))
        self._pairer = EpisodePairer(self._config)
        self._lock = threading.Lock()  # guards the pairer (flush service vs. callbacks)
        self._last_action = time.monotonic()
        self._queue: queue.Queue = queue.Queue()
        self._writer: LeRobotDatasetWriter | None = None
        self._written_episodes = 0
        self._written_frames = 0
        self._write_errors = 0
        self._worker = threading.Thread(target=self._write_loop, name="rt2_recorder_writer",
                                        daemon=True)
        self._worker.start()
        group = MutuallyExclusiveCallbackGroup()
        self.create_subscription(Image, p("image_topic"), self._on_image,
                                 qos_profile_sensor_data, callback_group=group)
        self.create_subscription(RT2Action, p("action_topic"), self._on_action, 50,
                                 callback_group=group)
        self.create_subscription(String, p("instruction_topic"), self._on_instruction, 10,
                                 callback_group=group)
        self.create_subscription(EpisodeStatus, p("status_topic"), self._on_status, 10,
                                 callback_group=group)
        if self._state_joints:
            self.create_subscription(JointState, p("joint_states_topic"), self._on_joint_state,
                                     qos_profile_sensor_data, callback_group=group)
        self.create_service(Trigger, "~/flush", self._on_flush)
        if self._idle_timeout > 0:
            self.create_timer(min(1.0, self._idle_timeout / 2), self._check_idle,
                              callback_group=group)
        state = (f" + {p('joint_states_topic')} (state: {', '.join(self._state_joints)})"
                 if self._state_joints else " (no state)")
        self.get_logger().info(f"recording {p('action_topic')} + {p('image_topic')}{state} into "
                               f"{self._output} at {self._fps} Hz")

    def _p(self, name: str):
        return self.get_parameter(name).value

    # -- inputs ---------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, msg: Image) -> None:
        stamp = stamp_seconds(msg.header.stamp) or self._now()
        with self._lock:
            self._emit(self._pairer.add_image(stamp, lambda m=msg: image_msg_to_rgb(m)))

    def _on_joint_state(self, msg: JointState) -> None:
        stamp = stamp_seconds(msg.header.stamp) or self._now()
        with self._lock:
            self._emit(self._pairer.add_joint_state(stamp, msg.name, msg.position))

    def _on_action(self, msg: RT2Action) -> None:
        self._last_action = time.monotonic()
        with self._lock:
            before = self._pairer.counters.as_dict()
            self._emit(self._pairer.add_action(action_sample_from_msg(msg)))
            after = self._pairer.counters.as_dict()
            missing = self._pairer.last_missing_joints
            stale = self._pairer.last_stale_joints
        dropped = [k for k in after if k.startswith("dropped") and after[k] != before[k]]
        if dropped:
            why = ", ".join(dropped)
            if "dropped_no_state" in dropped:
                why += (f" (no {self._p('joint_states_topic')} position at or before the frame "
                        f"for {', '.join(missing)}; set state_joints:=[] to record without "
                        f"state)")
            if "dropped_stale_state" in dropped:
                ages = ", ".join(f"{name} {age:.3f} s old" for name, age in stale)
                why += (f" ({self._p('joint_states_topic')} position older than max_state_age "
                        f"{self._config.max_state_age} s at the frame: {ages}; is its "
                        f"publisher alive?)")
            self.get_logger().warning(f"action {msg.episode_id}/{msg.step} not recorded: {why}",
                                      throttle_duration_sec=2.0)

    def _on_instruction(self, msg: String) -> None:
        with self._lock:
            self._emit(self._pairer.add_instruction(self._now(), msg.data))

    def _on_status(self, msg: EpisodeStatus) -> None:
        with self._lock:
            self._emit(self._pairer.add_status(status_sample_from_msg(msg)))

    def _check_idle(self) -> None:
        if time.monotonic() - self._last_action < self._idle_timeout:
            return
        with self._lock:
            if self._pairer.open_episode_id is not None:
                self.get_logger().info(f"no action for {self._idle_timeout} s: closing episode "
                                       f"{self._pairer.open_episode_id}")
                self._emit(self._pairer.flush())

    def _emit(self, episodes: list[RecordedEpisode]) -> None:
        for episode in episodes:
            self._queue.put(episode)

    # -- writing --------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if isinstance(item, threading.Event):
                    if self._writer is not None:
                        self._writer.finalize()
                    item.set()
                    continue
                self._write(item)
            finally:
                self._queue.task_done()

    def _write(self, episode: RecordedEpisode) -> None:
        try:
            if self._writer is None:
                self._writer = LeRobotDatasetWriter(
                    self._output, fps=self._fps, robot_type=str(self._p("robot_type")),
                    image_shape=episode.steps[0].image.shape,
                    state_dim=len(self._state_joints), state_names=self._state_joints)
            index = write_episode(self._writer, episode)
        except (OSError, ValueError) as exc:
            self._write_errors += 1
            self.get_logger().error(f"episode {episode.episode_id} not written: {exc}")
            return
        self._written_episodes += 1
        self._written_frames += len(episode.steps)
        self.get_logger().info(
            f"episode {episode.episode_id} saved as #{index}: {len(episode.steps)} steps, "
            f"task {episode.task!r}, {'terminated' if episode.terminated else episode.outcome}")

    def flush(self, timeout: float = 30.0) -> bool:
        """Close the open episode, write all pending episodes and finalise the dataset.

        Returns False when the writer did not finish within ``timeout`` seconds.
        """
        with self._lock:
            self._emit(self._pairer.flush())
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _on_flush(self, _request, response):
        ok = self.flush()
        response.success = ok and self._write_errors == 0
        response.message = (f"{self._written_episodes} episodes, {self._written_frames} frames "
                            f"written to {self._output}; {self._write_errors} write errors"
                            + ("" if ok else "; timed out waiting for the writer"))
        return response

    @property
    def summary(self) -> dict:
        """Episodes/frames written, write errors and the pairing counters."""
        with self._lock:
            counters = self._pairer.counters.as_dict()
        return {"episodes": self._written_episodes, "frames": self._written_frames,
                "write_errors": self._write_errors, "counters": counters}

    def destroy_node(self) -> None:
        """Write the open episode and finalise the dataset, then destroy the node."""
        worker = getattr(self, "_worker", None)  # None: the constructor raised
        if worker is not None and worker.is_alive():
            self.flush()
            self._queue.put(None)
            worker.join(timeout=30.0)
        super().destroy_node()


def _state_joints(value) -> tuple[str, ...]:
    """The ``state_joints`` parameter as a tuple of names; unset, ``[]`` and ``['']`` → ().

    Raises:
        ValueError: on anything but a list of non-empty, distinct names.
    """
    if value is None or (isinstance(value, (list, tuple, bytes)) and len(value) == 0):
        return ()
    if (isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple))
            or not all(isinstance(v, str) for v in value)):
        raise ValueError(f"state_joints: expected a list of joint names, got {value!r}")
    names = tuple(value)
    if names == ("",):
        return ()
    if not all(names) or len(set(names)) != len(names):
        raise ValueError(f"state_joints: expected distinct non-empty joint names, got "
                         f"{list(names)}")
    return names


def _raise_keyboard_interrupt(*_args) -> None:
    raise KeyboardInterrupt


def main(args=None) -> int:
    """Entry point of the ``recorder_node`` executable (Ctrl-C writes the open episode)."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        node = RecorderNode()
    except ValueError as exc:
        print(f"recorder_node: {exc}", file=sys.stderr)
        rclpy.shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        while rclpy.ok():  # wake up regularly: Python runs signal handlers between waits
            executor.spin_once(timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        node.get_logger().info(f"stopping: {node.summary}")
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
