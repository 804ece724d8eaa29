"""From the policy's gripper closure to a ``control_msgs/action/GripperCommand`` goal.

The policy node publishes the RT-2 gripper dimension on ``/rt2/gripper_command``
(``std_msgs/Float64``, 0 = open … 1 = closed, once per policy step). A ros2_control gripper
(``position_controllers/GripperActionController``, ros-controls/ros2_controllers
``gripper_controllers``; MoveIt's Panda: ``/panda_hand_controller/gripper_cmd``) takes goals
``command.position`` (metres of finger travel, per finger for the Panda: 0.04 open, 0 closed;
franka_description / moveit_resources ``panda_finger_joint1`` limits) and ``command.max_effort``
(N). A new goal preempts the running one, so goals are sent only when the closure changes by more
than a dead band: a 5 Hz stream of the same closure sends one goal.

Pure Python; no ROS imports (the node is :mod:`rt2_bringup.gripper_bridge`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GripperMapping:
    """Closure (0 open .. 1 closed) to gripper-action goals.

    Attributes:
        open_position: finger position when fully open, metres (Panda: 0.04 per finger).
        closed_position: finger position when fully closed, metres (Panda: 0.0).
        max_effort: ``command.max_effort`` of every goal, N (> 0; the Panda's finger joints are
            limited to 20 N in franka_description; GripperActionController caps at it).
        deadband: smallest closure change that sends a new goal, in closure units [0, 1).
        binarize: True sends only fully open / fully closed (closure < 0.5 opens), as the real
            Franka Hand's grasp action prefers; False maps the closure linearly.

    Raises:
        ValueError: "<field>: expected X, got Y" on any invalid value.
    """

    open_position: float = 0.04
    closed_position: float = 0.0
    max_effort: float = 20.0
    deadband: float = 0.05
    binarize: bool = False

    def __post_init__(self) -> None:
        for name in ("open_position", "closed_position"):
            value = getattr(self, name)
            if not _finite(value) or value < 0.0:
                raise ValueError(f"{name}: expected a finite number >= 0 m, got {value!r}")
        if self.open_position == self.closed_position:
            raise ValueError("open_position: expected a value different from closed_position "
                             f"({self.closed_position}), got {self.open_position}")
        if not _finite(self.max_effort) or self.max_effort <= 0.0:
            raise ValueError(f"max_effort: expected a finite number > 0 N, got {self.max_effort!r}")
        if not _finite(self.deadband) or not 0.0 <= self.deadband < 1.0:
            raise ValueError(f"deadband: expected a number in [0, 1), got {self.deadband!r}")
        if not isinstance(self.binarize, bool):
            raise ValueError(f"binarize: expected a bool, got {self.binarize!r}")

    def closure(self, command: float) -> float:
        """The closure to execute for a policy command: clamped to [0, 1], binarized if asked.

        Raises:
            ValueError: if ``command`` is not a finite number (NaN from a broken policy must not
                reach the gripper).
        """
        if not _finite(command):
            raise ValueError(
                f"gripper command: expected a finite closure in [0, 1], got {command!r}")
        value = min(1.0, max(0.0, float(command)))
        if self.binarize:
            value = 1.0 if value >= 0.5 else 0.0
        return value

    def position(self, closure: float) -> float:
        """Finger position for a closure in [0, 1] (see :meth:`closure`), metres."""
        closure = self.closure(closure)
        return self.open_position + closure * (self.closed_position - self.open_position)

    def should_send(self, closure: float, last_sent: float | None) -> bool:
        """True when ``closure`` differs from the last goal's closure by more than the dead band
        (always True for the first goal). Both are closures as returned by :meth:`closure`."""
        if last_sent is None:
            return True
        return abs(closure - last_sent) > self.deadband


def _finite(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(float(value)))
