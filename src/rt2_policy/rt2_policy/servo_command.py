"""From an RT-2 step delta to the twist stream MoveIt Servo consumes.

RT-2 actions are per-step end-effector deltas (Brohan et al., 2023, §3.2). MoveIt Servo takes
velocities (``geometry_msgs/TwistStamped`` on ``/servo_node/delta_twist_cmds``, with
``command_in_type: speed_units``: m/s and rad/s) and halts when no command arrives within
``incoming_command_timeout`` (moveit2 ``moveit_ros/moveit_servo``, Jazzy). So one policy step
becomes a twist equal to delta / control period, *held* for exactly one control period and
re-published faster than the servo timeout; after the hold window the stream carries zeros, so a
late or missing policy step stops the arm instead of repeating the last motion.

Pure numpy; no ROS imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rt2_policy.contract import RobotAction


@dataclass(frozen=True)
class TwistLimits:
    """Velocity clamps applied to every twist before it is streamed.

    Attributes:
        max_linear_speed: maximum norm of the linear velocity, m/s (> 0).
        max_angular_speed: maximum norm of the angular velocity, rad/s (> 0).
    """

    max_linear_speed: float = 0.25
    max_angular_speed: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_linear_speed", "max_angular_speed"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class Twist:
    """A velocity command in the command frame.

    Attributes:
        linear: shape ``(3,)``, float64, m/s.
        angular: shape ``(3,)``, float64, rad/s (angular velocity vector, REP 103 axes).
    """

    linear: np.ndarray
    angular: np.ndarray

    @staticmethod
    def zero() -> Twist:
        return Twist(np.zeros(3), np.zeros(3))

    def is_zero(self) -> bool:
        return not (np.any(self.linear) or np.any(self.angular))


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation matrix of fixed-axis roll (x), pitch (y), yaw (z): ``Rz(yaw) Ry(pitch) Rx(roll)``.

    Convention of REP 103 / ``tf2`` ``setRPY``. Returns shape ``(3, 3)``, float64.
    """
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def matrix_to_rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """Axis-angle vector (axis * angle, radians) of a rotation matrix; shape ``(3,)``, float64."""
    cos_angle = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(cos_angle)
    skew = np.array([
        rotation[2, 1] - rotation[1, 2],
        rotation[0, 2] - rotation[2, 0],
        rotation[1, 0] - rotation[0, 1],
    ])
    if angle < 1e-9:
        return 0.5 * skew  # first order: R ≈ I + [w]x
    if math.pi - angle < 1e-6:
        # Near pi: axis from the diagonal.
        axis = np.sqrt(np.maximum((np.diag(rotation) + 1.0) / 2.0, 0.0))
        k = int(np.argmax(axis))
        signs = np.sign(rotation[k] + rotation[:, k])
        signs[k] = 1.0
        axis = axis * np.where(signs == 0, 1.0, signs)
        return angle * axis / np.linalg.norm(axis)
    return angle * skew / (2.0 * math.sin(angle))


def _clamp_norm(vector: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector if norm <= limit else vector * (limit / norm)


def action_to_twist(action: RobotAction, control_period: float, limits: TwistLimits) -> Twist:
    """Twist that realises ``action``'s delta over one control period.

    Linear velocity = Δposition / period (m/s). Angular velocity = rotation vector of the RPY delta
    ``Rz(Δyaw) Ry(Δpitch) Rx(Δroll)`` / period (rad/s). Each is clamped to its norm limit, keeping
    its direction. A terminate action yields the zero twist.

    Args:
        action: a decoded RT-2 action (deltas in metres and radians, command frame).
        control_period: seconds between policy steps (> 0).
        limits: velocity clamps.

    Raises:
        ValueError: on a non-positive period or a non-finite action.
    """
    if not (math.isfinite(control_period) and control_period > 0):
        raise ValueError(f"control_period: expected a finite number > 0, got {control_period!r}")
    if not action.is_finite():
        raise ValueError("action: expected finite deltas and gripper, got a non-finite value")
    if action.terminate:
        return Twist.zero()
    delta_p = np.asarray(action.delta_position, dtype=np.float64).reshape(3)
    delta_r = np.asarray(action.delta_rotation, dtype=np.float64).reshape(3)
    rotvec = matrix_to_rotation_vector(rpy_to_matrix(*delta_r))
    linear = _clamp_norm(delta_p / control_period, limits.max_linear_speed)
    angular = _clamp_norm(rotvec / control_period, limits.max_angular_speed)
    return Twist(linear, angular)


class TwistHold:
    """Holds one twist for a fixed window, then reports zero: what the keep-alive stream publishes.

    Not thread-safe by itself; the node guards it with its own lock. Times are seconds on the
    clock named by ``clock`` (e.g. ``"steady"`` or ``"ros"``): a query on another clock than the
    window was set on reports zero, so a change of time source can never stretch a motion
    command.
    """

    def __init__(self) -> None:
        self._twist = Twist.zero()
        self._until = -math.inf
        self._clock = ""

    def set(self, twist: Twist, now: float, duration: float, clock: str = "steady") -> None:
        """Stream ``twist`` from ``now`` for ``duration`` seconds on ``clock``."""
        self._twist = twist
        self._until = now + duration
        self._clock = clock

    def stop(self) -> None:
        """Stream zeros from now on."""
        self._twist = Twist.zero()
        self._until = -math.inf

    def current(self, now: float, clock: str = "steady") -> Twist:
        """The twist to publish at time ``now`` on ``clock``: the held one inside its window,
        else zero (also when ``clock`` is not the one the window was set on)."""
        if clock != self._clock or not now < self._until:
            return Twist.zero()
        return self._twist
