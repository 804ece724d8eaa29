"""Cartesian twist servo with MoveIt Servo-like semantics, on a MuJoCo model.

A twist command (linear m/s, angular rad/s, both expressed in a named frame) is rotated into the
world frame and mapped to joint velocities by damped least squares on the 6x7 Jacobian of the
tool-centre-point site (``mj_jacSite``)::

    dq = J^T (J J^T + lambda^2 I)^-1 [v; w]

The result is integrated, once per control period, into *joint position targets* that the
simulation feeds to the arm's position actuators. Like MoveIt Servo
(https://moveit.picknik.ai/main/doc/examples/realtime_servo/realtime_servo_tutorial.html) the
servo integrates from its own last command, not from the measured state, and:

* halts (holds the joint targets) when the newest command is older than
  ``incoming_command_timeout`` (judged from the command's stamp against the caller's clock);
* accepts commands in the planning frame (``panda_link0``), the end-effector frames
  (``panda_hand``, ``tcp``) or ``world``; an empty frame id means ``default_command_frame``;
* rejects unknown frames and non-finite values (and halts);
* scales joint velocities down uniformly to respect per-joint velocity limits, and keeps targets
  ``joint_limit_margin`` inside the joint position limits (MoveIt Servo halts all joints there;
  this servo clamps only the offending joints so other directions stay usable).

Commands are in "speed units" (MoveIt Servo ``command_in_type: speed_units``): linear m/s,
angular rad/s; their norms are capped at ``max_linear_speed`` / ``max_angular_speed``.

Frames follow REP 103/105; nothing here imports rclpy.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from rt2_sim.scene import (
    ARM_JOINT_NAMES,
    ARM_VELOCITY_LIMITS,
    BASE_FRAME,
    HAND_FRAME,
    TCP_SITE,
    WORLD_FRAME,
)

#: Frames a twist may be expressed in.
COMMAND_FRAMES = (BASE_FRAME, HAND_FRAME, TCP_SITE, WORLD_FRAME)


class ServoStatus(enum.Enum):
    """Outcome of the last :meth:`CartesianServo.update` (after MoveIt Servo's StatusCode)."""

    #: moving as commanded
    OK = "ok"
    #: no command, or the newest one is older than incoming_command_timeout: holding position
    HALT_STALE_COMMAND = "halt: stale or no command"
    #: the last command was rejected (unknown frame, non-finite values): holding position
    HALT_INVALID_COMMAND = "halt: invalid command"
    #: joint velocities were scaled down to the joint velocity limits
    VELOCITY_LIMITED = "joint velocity limited"
    #: at least one joint target was clamped at its position limit (minus margin)
    JOINT_BOUND = "joint position limited"


@dataclass(frozen=True)
class ServoConfig:
    """Parameters of :class:`CartesianServo`.

    Attributes:
        damping: damped-least-squares factor lambda (dimensionless; m and rad mixed), >= 0.
        control_period: servo update period, seconds (MoveIt Servo ``publish_period``).
        incoming_command_timeout: commands older than this halt the servo, seconds
            (MoveIt Servo ``incoming_command_timeout``).
        max_linear_speed: cap on the commanded linear speed norm, m/s.
        max_angular_speed: cap on the commanded angular speed norm, rad/s.
        joint_limit_margin: targets stay this far inside the joint position limits, radians
            (MoveIt Servo ``joint_limit_margins``).
        joint_velocity_limits: per-joint speed limits of the 7 arm joints, rad/s.
        default_command_frame: frame used for an empty ``frame_id`` (MoveIt Servo
            ``robot_link_command_frame``).

    Raises:
        ValueError: "<field>: expected X, got Y" on any invalid value.
    """

    damping: float = 0.05
    control_period: float = 0.01
    incoming_command_timeout: float = 0.1
    max_linear_speed: float = 0.25
    max_angular_speed: float = 1.0
    joint_limit_margin: float = 0.05
    joint_velocity_limits: tuple[float, ...] = ARM_VELOCITY_LIMITS
    default_command_frame: str = BASE_FRAME

    def __post_init__(self) -> None:
        for name, lo, hi in (
            ("damping", 0.0, 1.0),
            ("control_period", 1e-4, 1.0),
            ("incoming_command_timeout", 1e-3, 60.0),
            ("max_linear_speed", 1e-3, 2.0),
            ("max_angular_speed", 1e-3, 10.0),
            ("joint_limit_margin", 0.0, 0.5),
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or not lo <= value <= hi
            ):
                raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {value!r}")
        limits = self.joint_velocity_limits
        if len(limits) != len(ARM_JOINT_NAMES) or not all(
            isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in limits
        ):
            raise ValueError(
                f"joint_velocity_limits: expected {len(ARM_JOINT_NAMES)} positive numbers, "
                f"got {limits!r}"
            )
        if self.default_command_frame not in COMMAND_FRAMES:
            raise ValueError(
                f"default_command_frame: expected one of {COMMAND_FRAMES}, "
                f"got {self.default_command_frame!r}"
            )


@dataclass(frozen=True, eq=False)  # holds numpy arrays: compare fields explicitly
class TwistCommand:
    """A validated twist command, already rotated into the world frame.

    Attributes:
        linear: linear velocity of the tcp, world frame, shape (3,), float64, m/s (capped).
        angular: angular velocity of the hand, world frame, shape (3,), float64, rad/s (capped).
        frame_id: the frame the command was given in.
        stamp: command time, seconds on the caller's clock.
    """

    linear: np.ndarray
    angular: np.ndarray
    frame_id: str
    stamp: float


class CartesianServo:
    """Damped-least-squares twist servo producing arm joint position targets.

    Args:
        model: compiled scene (from :func:`rt2_sim.scene.build_model`); only read.
        config: servo parameters.

    The servo keeps a private :class:`mujoco.MjData` for kinematics at its joint targets, so it
    never touches the simulation's state.
    """

    def __init__(self, model: mujoco.MjModel, config: ServoConfig | None = None) -> None:
        self._model = model
        self._config = ServoConfig() if config is None else config
        self._data = mujoco.MjData(model)
        joints = [model.joint(name) for name in ARM_JOINT_NAMES]
        self._qpos_adr = np.array([int(j.qposadr[0]) for j in joints])
        self._dof_adr = np.array([int(j.dofadr[0]) for j in joints])
        ranges = np.array([j.range for j in joints], dtype=float)
        margin = self._config.joint_limit_margin
        self._lower = ranges[:, 0] + margin
        self._upper = ranges[:, 1] - margin
        self._vel_limits = np.asarray(self._config.joint_velocity_limits, dtype=float)
        self._site_id = model.site(TCP_SITE).id
        self._frame_ids = {
            BASE_FRAME: ("body", model.body(BASE_FRAME).id),
            HAND_FRAME: ("body", model.body(HAND_FRAME).id),
            TCP_SITE: ("site", self._site_id),
        }
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._targets = self._data.qpos[self._qpos_adr].copy()
        self._velocity = np.zeros(len(ARM_JOINT_NAMES))
        self._command: TwistCommand | None = None
        self._status = ServoStatus.HALT_STALE_COMMAND
        self._forward()

    @property
    def config(self) -> ServoConfig:
        """The servo parameters."""
        return self._config

    @property
    def valid_frames(self) -> tuple[str, ...]:
        """Frames a command may be expressed in (``""`` also accepted: default frame)."""
        return COMMAND_FRAMES

    @property
    def status(self) -> ServoStatus:
        """Outcome of the last update or command."""
        return self._status

    @property
    def joint_targets(self) -> np.ndarray:
        """Current arm joint position targets, shape (7,), float64, radians (a copy)."""
        return self._targets.copy()

    @property
    def joint_velocity_command(self) -> np.ndarray:
        """Joint velocity applied by the last update, shape (7,), float64, rad/s (0 when halted).

        ``(targets - previous targets) / control_period``; usable as velocity feedforward.
        """
        return self._velocity.copy()

    @property
    def command(self) -> TwistCommand | None:
        """The newest accepted command, or None after a halt/reset."""
        return self._command

    def reset(self, joint_positions: Sequence[float] | np.ndarray) -> None:
        """Set the joint targets (e.g. to the measured state) and drop any command.

        Args:
            joint_positions: arm joint positions, shape (7,), radians.

        Raises:
            ValueError: on a wrong shape or non-finite values.
        """
        q = np.asarray(joint_positions, dtype=float)
        if q.shape != (len(ARM_JOINT_NAMES),) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint_positions: expected 7 finite radians, got {q!r}")
        self._targets = q.copy()
        self.halt(ServoStatus.HALT_STALE_COMMAND)
        self._forward()

    def halt(self, status: ServoStatus = ServoStatus.HALT_STALE_COMMAND) -> None:
        """Drop the current command: targets are held until a new command arrives."""
        self._command = None
        self._velocity[:] = 0.0
        self._status = status

    def frame_rotation(self, frame_id: str) -> np.ndarray:
        """Rotation from ``frame_id`` to world at the current joint targets.

        Returns:
            Rotation matrix, shape (3, 3), float64.

        Raises:
            ValueError: if ``frame_id`` is not one of :attr:`valid_frames` (or empty).
        """
        frame = self._config.default_command_frame if frame_id == "" else frame_id
        if frame == WORLD_FRAME:
            return np.eye(3)
        try:
            kind, index = self._frame_ids[frame]
        except (KeyError, TypeError):
            raise ValueError(
                f"frame_id: expected one of {list(COMMAND_FRAMES)} (or '' for "
                f"{self._config.default_command_frame!r}), got {frame_id!r}"
            ) from None
        xmat = self._data.xmat[index] if kind == "body" else self._data.site_xmat[index]
        return xmat.reshape(3, 3).copy()

    def set_command(
        self,
        linear: Sequence[float] | np.ndarray,
        angular: Sequence[float] | np.ndarray,
        frame_id: str,
        stamp: float,
    ) -> TwistCommand:
        """Accept a new twist command (MoveIt Servo ``delta_twist_cmds``).

        Args:
            linear: linear velocity of the tcp, shape (3,), m/s, expressed in ``frame_id``.
            angular: angular velocity, shape (3,), rad/s, expressed in ``frame_id``.
            frame_id: one of :attr:`valid_frames`, or ``""`` for ``default_command_frame``.
            stamp: command time, seconds, on the clock later passed to :meth:`update`.

        Returns:
            The command as stored (world frame, speed-capped).

        Raises:
            ValueError: on an unknown frame, wrong shapes or non-finite values; the servo then
                halts (status ``HALT_INVALID_COMMAND``) and holds its targets.
        """
        try:
            v = np.asarray(linear, dtype=float)
            w = np.asarray(angular, dtype=float)
            if v.shape != (3,) or w.shape != (3,):
                raise ValueError(
                    f"twist: expected linear and angular of shape (3,), got {v.shape}, {w.shape}"
                )
            if not (np.all(np.isfinite(v)) and np.all(np.isfinite(w))):
                raise ValueError(f"twist: expected finite values, got linear {v}, angular {w}")
            if isinstance(stamp, bool) or not isinstance(stamp, int | float | np.number):
                raise ValueError(f"stamp: expected finite seconds, got {stamp!r}")
            if not math.isfinite(float(stamp)):
                raise ValueError(f"stamp: expected finite seconds, got {stamp!r}")
            rotation = self.frame_rotation(frame_id)
        except ValueError:
            self.halt(ServoStatus.HALT_INVALID_COMMAND)
            raise
        v = _cap_norm(rotation @ v, self._config.max_linear_speed)
        w = _cap_norm(rotation @ w, self._config.max_angular_speed)
        self._command = TwistCommand(linear=v, angular=w, frame_id=frame_id, stamp=float(stamp))
        return self._command

    def update(self, now: float) -> np.ndarray:
        """Advance the joint targets by one control period.

        Args:
            now: current time, seconds, on the clock of the command stamps.

        Returns:
            Arm joint position targets, shape (7,), float64, radians (a copy).
        """
        command = self._command
        if command is None:
            self._velocity[:] = 0.0
            if self._status is not ServoStatus.HALT_INVALID_COMMAND:
                self._status = ServoStatus.HALT_STALE_COMMAND
            return self._targets.copy()
        if now - command.stamp > self._config.incoming_command_timeout:
            self.halt(ServoStatus.HALT_STALE_COMMAND)
            return self._targets.copy()
        dq = self.joint_velocities(np.concatenate([command.linear, command.angular]))
        status = ServoStatus.OK
        scale = float(np.max(np.abs(dq) / self._vel_limits))
        if scale > 1.0:
            dq /= scale
            status = ServoStatus.VELOCITY_LIMITED
        q = self._targets + dq * self._config.control_period
        # Clamp only motion that goes further out; a target already outside is not yanked in.
        lower = np.minimum(self._lower, self._targets)
        upper = np.maximum(self._upper, self._targets)
        clamped = np.clip(q, lower, upper)
        if np.any(clamped != q):
            status = ServoStatus.JOINT_BOUND
        self._velocity = (clamped - self._targets) / self._config.control_period
        self._targets = clamped
        self._status = status
        self._forward()
        return self._targets.copy()

    def joint_velocities(self, twist: np.ndarray) -> np.ndarray:
        """Damped-least-squares joint velocities for a world-frame twist at the targets.

        Args:
            twist: ``[vx, vy, vz, wx, wy, wz]`` of the tcp, world frame, m/s and rad/s.

        Returns:
            Arm joint velocities, shape (7,), float64, rad/s (not limited).
        """
        mujoco.mj_jacSite(self._model, self._data, self._jacp, self._jacr, self._site_id)
        jac = np.vstack([self._jacp[:, self._dof_adr], self._jacr[:, self._dof_adr]])
        lam2 = self._config.damping**2
        return jac.T @ np.linalg.solve(jac @ jac.T + lam2 * np.eye(6), np.asarray(twist, float))

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Pose of the tcp at the joint targets, world frame.

        Returns:
            ``(position (3,) metres, rotation matrix (3, 3))``, float64 copies.
        """
        return (
            self._data.site_xpos[self._site_id].copy(),
            self._data.site_xmat[self._site_id].reshape(3, 3).copy(),
        )

    def _forward(self) -> None:
        self._data.qpos[self._qpos_adr] = self._targets
        mujoco.mj_kinematics(self._model, self._data)
        mujoco.mj_comPos(self._model, self._data)


def _cap_norm(vector: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector * (limit / norm) if norm > limit else vector
