"""The policy contract shared by the local VLA, the remote client and test doubles.

A policy maps one :class:`Observation` to one :class:`RobotAction` (``infer``) and forgets any
episode state on ``reset``. This mirrors openpi's ``policies/policy.py`` contract
(``infer(obs) -> action``) so that the ROS node never knows which backend it drives.

Nothing in this module imports torch, transformers or rclpy.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

#: Number of dimensions of an RT-2 action: terminate, Δx, Δy, Δz, Δroll, Δpitch, Δyaw, gripper
#: (Brohan et al., 2023, §3.2 "Robot-Action Fine-tuning").
ACTION_DIMS = 8

#: Names of the 8 action dimensions, in RT-2's order.
ACTION_DIM_NAMES = (
    "terminate",
    "delta_x",
    "delta_y",
    "delta_z",
    "delta_roll",
    "delta_pitch",
    "delta_yaw",
    "gripper",
)


@dataclass(frozen=True)
class Observation:
    """What the policy sees at one control step.

    Attributes:
        image: RGB camera frame, shape ``(H, W, 3)``, dtype ``uint8``, row-major, channel order
            R, G, B (``sensor_msgs/Image`` encoding ``rgb8``).
        instruction: natural-language task, e.g. ``"pick up the red cube"``; never empty.
        stamp: acquisition time of ``image`` in seconds (ROS time of the image header).
        joint_positions: optional proprioception, shape ``(N,)``, float64, radians/metres.
        gripper_state: optional gripper closure, 0.0 fully open … 1.0 fully closed (in between
            when closed on an object), the scale of :attr:`RobotAction.gripper`; from the finger
            joints (:mod:`rt2_policy.proprioception`). Models trained with it need it
            (:func:`rt2_policy.prompts.action_prompt`); others ignore it.
        tcp_position: optional tool centre point position ``(x, y, z)``, metres, in the arm's
            base frame (``panda_link0``; REP 103 axes, REP 105 base frame), e.g. by forward
            kinematics of ``/joint_states`` (:func:`rt2_policy.proprioception.
            panda_tcp_position`); models trained with it need it, others ignore it. Stored as a
            float64 array of shape (3,).
        grasped: optional episode memory: True when the gripper has held an object earlier in
            this episode (or holds one now), from the finger joints over the episode
            (:class:`rt2_policy.grasp_memory.GraspMemory` fills it in); models trained with it
            need it, others ignore it.

    Raises:
        ValueError: on a wrong image shape or dtype, an empty instruction, a gripper state
            that is not a number in [0, 1], a tcp position that is not 3 finite numbers, or a
            ``grasped`` that is neither None nor a bool.
    """

    image: np.ndarray
    instruction: str
    stamp: float = 0.0
    joint_positions: np.ndarray | None = None
    gripper_state: float | None = None
    tcp_position: np.ndarray | None = None
    grasped: bool | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray):
            raise ValueError(f"image: expected a numpy array, got {type(img).__name__}")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image: expected shape (H, W, 3), got {tuple(img.shape)}")
        if img.dtype != np.uint8:
            raise ValueError(f"image: expected dtype uint8, got {img.dtype}")
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise ValueError(f"image: expected a non-empty frame, got {tuple(img.shape)}")
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise ValueError(f"instruction: expected a non-empty string, got {self.instruction!r}")
        state = self.gripper_state
        if state is not None and (isinstance(state, bool) or not isinstance(state, numbers.Real)
                                  or not 0.0 <= state <= 1.0):
            raise ValueError(f"gripper_state: expected None or a number in [0, 1], got {state!r}")
        if self.tcp_position is not None:
            try:
                raw = np.asarray(self.tcp_position)
            except (TypeError, ValueError):  # ragged sequences
                raw = np.array([None])
            numeric = raw.dtype.kind in "iuf"  # no strings, bools or objects
            tcp = raw.astype(np.float64).ravel() if numeric else np.array([np.nan])
            if tcp.shape != (3,) or not np.all(np.isfinite(tcp)):
                raise ValueError(f"tcp_position: expected None or 3 finite metres (x, y, z), "
                                 f"got {self.tcp_position!r}")
            object.__setattr__(self, "tcp_position", tcp)
        if self.grasped is not None:
            if not isinstance(self.grasped, (bool, np.bool_)):
                raise ValueError(f"grasped: expected None or a bool, got {self.grasped!r}")
            object.__setattr__(self, "grasped", bool(self.grasped))


@dataclass(frozen=True)
class RobotAction:
    """One decoded RT-2 action.

    Attributes:
        bins: the 8 bin ids as emitted by the model, shape ``(8,)``, ``int64``, each in
            ``[0, 255]`` (terminate in ``{0, 1}``).
        terminate: True when the model ends the episode (RT-2's first action dimension).
        delta_position: end-effector translation for this step, shape ``(3,)``, float64, metres,
            in the command frame (REP 103 axes: x forward, y left, z up).
        delta_rotation: end-effector rotation for this step as roll, pitch, yaw, shape ``(3,)``,
            float64, radians, in the command frame.
        gripper: commanded gripper closure, 0.0 = fully open … 1.0 = fully closed.
        text: the model's raw output, e.g. ``"0 128 91 241 5 101 127 217"``.
        latency: wall-clock time spent producing this action, seconds.
        plan: optional chain-of-thought plan emitted before the action (RT-2 §4.4), else "".
    """

    bins: np.ndarray
    terminate: bool
    delta_position: np.ndarray
    delta_rotation: np.ndarray
    gripper: float
    text: str = ""
    latency: float = 0.0
    plan: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def values(self) -> np.ndarray:
        """The 8 continuous values in RT-2's order (Brohan et al., 2023, §3.2): terminate (0/1),
        Δx, Δy, Δz (metres), Δroll, Δpitch, Δyaw (radians), gripper (0..1); shape ``(8,)``,
        float64. The layout of :func:`rt2_sim.expert.ScriptedExpert.act` and of LeRobot
        ``action`` rows."""
        return np.array([float(self.terminate), *np.asarray(self.delta_position, float),
                         *np.asarray(self.delta_rotation, float), float(self.gripper)])

    def is_finite(self) -> bool:
        """True when every continuous field is a finite number."""
        values = [*np.asarray(self.delta_position, dtype=float).ravel(),
                  *np.asarray(self.delta_rotation, dtype=float).ravel(), float(self.gripper)]
        return all(math.isfinite(v) for v in values) and len(values) == 7


@runtime_checkable
class Policy(Protocol):
    """The policy contract: the local VLA, the remote client and test doubles implement it."""

    def infer(self, observation: Observation) -> RobotAction:
        """Return the action for ``observation``.

        Raises:
            ValueError: when the observation cannot be used (the caller stops the arm).
            RuntimeError: when the backend fails (the caller stops the arm).
        """
        ...

    def reset(self) -> None:
        """Forget any per-episode state (history, caches)."""
        ...
