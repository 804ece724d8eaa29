"""One control step of the VLA loop, free of ROS: frame freshness, inference, checks, twist.

The node calls :meth:`ControlLoop.step` at the control rate and publishes what it returns. Every
failure path (no frame, stale frame, undecodable frame, backend error, non-finite action) yields a
zero twist and a fault reason, never an exception: the arm stops and the episode's fault counter
decides whether to abort (see :mod:`rt2_policy.episode`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rt2_policy.contract import Observation, Policy, RobotAction
from rt2_policy.episode import Episode
from rt2_policy.servo_command import Twist, TwistLimits, action_to_twist


@dataclass(frozen=True)
class ControlConfig:
    """Timing and safety settings of the control loop.

    Attributes:
        control_rate: policy steps per second, Hz (> 0). RT-2 ran at 1–5 Hz (§4).
        max_image_age: a frame older than this (seconds, by its header stamp) is stale (> 0).
        limits: velocity clamps of the streamed twist.
        backend_fault_timeout: seconds an episode may hold still while the policy backend is
            unreachable or late (``TimeoutError``/``ConnectionError``, e.g. a remote server that
            restarts) before it aborts; such steps do not count towards
            ``max_consecutive_faults``, and the episode resumes when the backend answers.
            0 (default) counts them as ordinary faults.
    """

    control_rate: float = 5.0
    max_image_age: float = 0.5
    limits: TwistLimits = TwistLimits()
    backend_fault_timeout: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.control_rate) and self.control_rate > 0):
            raise ValueError(
                f"control_rate: expected a finite number > 0 Hz, got {self.control_rate!r}")
        if not (math.isfinite(self.max_image_age) and self.max_image_age > 0):
            raise ValueError(
                f"max_image_age: expected a finite number > 0 s, got {self.max_image_age!r}")
        if not (math.isfinite(self.backend_fault_timeout) and self.backend_fault_timeout >= 0):
            raise ValueError("backend_fault_timeout: expected a finite number >= 0 s, "
                             f"got {self.backend_fault_timeout!r}")

    @property
    def control_period(self) -> float:
        """Seconds between steps."""
        return 1.0 / self.control_rate


@dataclass(frozen=True)
class Frame:
    """The latest camera frame as the node stored it.

    Attributes:
        stamp: the image header stamp, seconds on the node's clock (receipt time when the header
            stamp is zero).
        to_rgb: converts the stored message to an ``(H, W, 3)`` ``uint8`` RGB array; raises
            ``ValueError`` for a malformed frame. Called only when the frame is used.
    """

    stamp: float
    to_rgb: Callable[[], np.ndarray]


@dataclass(frozen=True)
class GripperReading:
    """The latest gripper state as the node stored it (from ``sensor_msgs/JointState``).

    Attributes:
        stamp: the joint-state header stamp, seconds on the node's clock.
        state: closure 0.0 open … 1.0 closed (:func:`rt2_policy.proprioception.gripper_state`).
    """

    stamp: float
    state: float


@dataclass(frozen=True)
class TcpReading:
    """The latest tool centre point position as the node stored it (forward kinematics of the
    arm joints in ``sensor_msgs/JointState``).

    Attributes:
        stamp: the joint-state header stamp, seconds on the node's clock.
        position: ``(x, y, z)`` in the arm's base frame, metres, shape (3,)
            (:func:`rt2_policy.proprioception.panda_tcp_position`).
    """

    stamp: float
    position: np.ndarray


@dataclass(frozen=True)
class StepResult:
    """What one control step produced.

    Attributes:
        twist: velocity to stream for the next control period (zero on any fault or terminate).
        gripper: gripper closure to command (0 open … 1 closed), or None to leave it unchanged.
        action: the decoded action, when inference produced a usable one.
        fault: reason the arm was held still, or None.
        finished: True when this step ended the episode (terminate, limit or abort).
        latency: seconds spent in ``policy.infer`` (0 when not called).
    """

    twist: Twist
    gripper: float | None = None
    action: RobotAction | None = None
    fault: str | None = None
    finished: bool = False
    latency: float = 0.0


class ControlLoop:
    """Runs policy steps for an :class:`~rt2_policy.episode.Episode`."""

    def __init__(self, policy: Policy, config: ControlConfig) -> None:
        self.policy = policy
        self.config = config

    def step(self, episode: Episode, frame: Frame | None, now: float,
             gripper: GripperReading | None = None,
             tcp: TcpReading | None = None) -> StepResult:
        """Run one control step at time ``now`` (seconds, same clock as ``frame.stamp``).

        ``gripper`` and ``tcp`` go into the observation when at most ``max_image_age`` old; a
        model that needs either and gets none fails its step, which holds the arm.
        """
        if episode.check_limits(now):
            return StepResult(Twist.zero(), finished=True)
        if frame is None:
            return self._fault(episode, "no camera frame received yet", now)
        age = now - frame.stamp
        if age > self.config.max_image_age:
            return self._fault(
                episode, f"stale camera: last frame is {age:.2f} s old "
                f"(max_image_age {self.config.max_image_age:.2f} s)", now)
        try:
            fresh = gripper is not None and now - gripper.stamp <= self.config.max_image_age
            tcp_fresh = tcp is not None and now - tcp.stamp <= self.config.max_image_age
            observation = Observation(image=frame.to_rgb(), instruction=episode.instruction,
                                      stamp=frame.stamp,
                                      gripper_state=gripper.state if fresh else None,
                                      tcp_position=tcp.position if tcp_fresh else None)
        except ValueError as exc:
            # Observation's errors name the field: "image: …", "tcp_position: …"
            return self._fault(episode, f"bad observation: {exc}", now)
        start = time.perf_counter()
        try:
            action = self.policy.infer(observation)
        except (TimeoutError, ConnectionError) as exc:
            latency = time.perf_counter() - start
            if self.config.backend_fault_timeout > 0:
                aborted = episode.record_backend_fault(
                    f"policy backend unavailable: {exc}", now, self.config.backend_fault_timeout)
                return StepResult(Twist.zero(), fault=f"policy backend unavailable: {exc}",
                                  finished=aborted, latency=latency)
            return self._fault(episode, f"policy failed: {exc}", now, latency=latency)
        except (ValueError, RuntimeError) as exc:
            return self._fault(episode, f"policy failed: {exc}", now,
                               latency=time.perf_counter() - start)
        latency = time.perf_counter() - start
        if not action.is_finite():
            return self._fault(episode, "policy returned a non-finite action", now, latency=latency)
        try:
            twist = action_to_twist(action, self.config.control_period, self.config.limits)
        except ValueError as exc:
            return self._fault(episode, f"unusable action: {exc}", now, latency=latency)
        finished = episode.record_step(bool(action.terminate), now)
        gripper = float(np.clip(action.gripper, 0.0, 1.0))
        return StepResult(twist, gripper=gripper, action=action, finished=finished,
                          latency=latency)

    def _fault(self, episode: Episode, reason: str, now: float, latency: float = 0.0) -> StepResult:
        aborted = episode.record_fault(reason, now)
        return StepResult(Twist.zero(), fault=reason, finished=aborted, latency=latency)
