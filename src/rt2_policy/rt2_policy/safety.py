"""What may reach the arm: dry run and emergency stop, as pure logic for the policy node.

* **Dry run** (``dry_run`` parameter): the policy runs and its actions are published
  (``rt2_msgs/RT2Action``), but every twist sent to MoveIt Servo is zero and no gripper command
  is sent. ``robot.launch.py`` starts in dry run unless ``dry_run:=false`` is given (the practice
  of vla_ros2 and of most arm bring-ups: watch the actions before letting them move the robot).
* **Emergency stop** (``std_msgs/Bool`` on the ``estop_topic``): ``True`` engages it at once:
  the twist stream carries zeros, the running episode is aborted, MoveIt Servo is paused
  (``~/pause_servo``, ``std_srvs/SetBool``) and new episodes are refused; ``False`` releases it
  (Servo resumes; a new instruction is needed to move again). This is a software stop on top of
  the robot's own hardware e-stop, never a replacement for it.

No ROS imports: the node calls :class:`SafetyGate` from its callbacks; the gate is thread-safe.
"""

from __future__ import annotations

import threading

from rt2_policy.servo_command import Twist

#: Message of the episode outcome when the e-stop ends an episode.
ESTOP_MESSAGE = "emergency stop engaged"


class SafetyGate:
    """Filters what the policy node sends to the arm.

    Args:
        dry_run: True replaces every twist by a zero twist and drops gripper commands.

    Thread-safe: the e-stop flag is read by the twist stream and set from a subscription
    callback on other executor threads.
    """

    def __init__(self, dry_run: bool = False) -> None:
        if not isinstance(dry_run, bool):
            raise ValueError(f"dry_run: expected a bool, got {dry_run!r}")
        self._dry_run = dry_run
        self._estopped = False
        self._lock = threading.Lock()

    @property
    def dry_run(self) -> bool:
        """True when actions are published but never executed."""
        return self._dry_run

    @property
    def estopped(self) -> bool:
        """True while the emergency stop is engaged."""
        with self._lock:
            return self._estopped

    def set_estop(self, engaged: bool) -> bool:
        """Engage (True) or release (False) the emergency stop.

        Returns:
            True when the state changed (the node then pauses or resumes Servo and logs).
        """
        with self._lock:
            changed = self._estopped != bool(engaged)
            self._estopped = bool(engaged)
        return changed

    def twist(self, twist: Twist) -> Twist:
        """The twist that may be sent: ``twist`` itself, or zero in dry run or under e-stop.

        Args:
            twist: the commanded twist (m/s, rad/s, in the command frame).
        """
        if self._dry_run or self.estopped:
            return Twist.zero()
        return twist

    def gripper(self, closure: float | None) -> float | None:
        """The gripper command that may be sent (0 open .. 1 closed), or None to send nothing."""
        if closure is None or self._dry_run or self.estopped:
            return None
        return closure

    def refusal(self) -> str | None:
        """Why a new episode may not start now, or None when it may."""
        if self.estopped:
            return f"{ESTOP_MESSAGE}: publish false on the e-stop topic to release it"
        return None

    def describe(self) -> str:
        """One line for logs, e.g. ``"dry run, e-stop released"``."""
        mode = "dry run (no motion)" if self._dry_run else "live"
        return f"{mode}, e-stop {'ENGAGED' if self.estopped else 'released'}"
