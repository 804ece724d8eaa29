"""Gripper state from finger joint positions: the proprioception a gripper-state model reads.

A 96 px scene camera cannot show whether the fingers are closed, or closed on the object; the
joint encoders can. :func:`gripper_state` turns parallel-jaw finger positions (``sensor_msgs/
JointState``, prismatic, metres) into the 0..1 closure of :attr:`rt2_policy.contract.
RobotAction.gripper` (0 open, 1 closed), and :func:`gripper_state_from_joint_state` does it for a
named subset of a joint-state message's joints. :func:`rt2_policy.prompts.action_prompt` writes
the value into the prompt.

Nothing in this module imports torch or rclpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Finger joints of the Franka Hand (MoveIt's ``panda`` names): prismatic, 0 closed, 0.04 m open.
PANDA_FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
#: Opening of one Franka Hand finger when fully open, metres.
PANDA_FINGER_OPEN_POSITION = 0.04


def joint_names(field: str, joints: Sequence[str], allow_empty: bool = False) -> tuple[str, ...]:
    """``joints`` as a tuple, checked: a sequence (not a string) of distinct, non-empty names
    without surrounding whitespace; at least one unless ``allow_empty``.

    Raises:
        ValueError: "<field>: expected ..., got ..." naming ``field``.
    """
    if (isinstance(joints, str) or not (joints or allow_empty)
            or not all(isinstance(j, str) and j and j == j.strip() for j in joints)):
        amount = "a sequence of" if allow_empty else "one or more"
        raise ValueError(f"{field}: expected {amount} non-empty joint names, got {joints!r}")
    names = tuple(joints)
    if len(set(names)) != len(names):
        raise ValueError(f"{field}: expected distinct joint names, got {list(names)}")
    return names


def gripper_state(finger_positions: Sequence[float] | np.ndarray,
                  open_position: float = PANDA_FINGER_OPEN_POSITION) -> float:
    """Closure of a parallel-jaw gripper, ``clip(1 - mean(finger_positions) / open_position, 0,
    1)``: 0.0 fully open, 1.0 fully closed, in between when closed on an object.

    Args:
        finger_positions: the finger joint positions, metres (prismatic, 0 = closed), shape (N,),
            N >= 1.
        open_position: one finger's position when fully open, metres, > 0.

    Raises:
        ValueError: on no positions, non-finite values or ``open_position <= 0``.
    """
    q = np.asarray(finger_positions, dtype=float).ravel()
    if q.size == 0 or not np.all(np.isfinite(q)):
        raise ValueError(f"finger_positions: expected one or more finite metres, got "
                         f"{finger_positions!r}")
    if not (math.isfinite(open_position) and open_position > 0.0):
        raise ValueError(f"open_position: expected metres > 0, got {open_position!r}")
    return float(np.clip(1.0 - q.mean() / open_position, 0.0, 1.0))


def gripper_state_from_joint_state(names: Sequence[str], positions: Sequence[float],
                                   finger_joints: Sequence[str] = PANDA_FINGER_JOINTS,
                                   open_position: float = PANDA_FINGER_OPEN_POSITION
                                   ) -> float | None:
    """:func:`gripper_state` of the ``finger_joints`` in one ``sensor_msgs/JointState``
    (``names``, ``positions``); ``None`` when the message does not carry all of them (joint
    states may arrive split over several publishers, e.g. arm and hand).

    Raises:
        ValueError: when ``names`` and ``positions`` differ in length, or as :func:`gripper_state`.
    """
    if len(names) != len(positions):
        raise ValueError(f"joint state: expected one position per name, got {len(names)} names "
                         f"and {len(positions)} positions")
    index = {name: i for i, name in enumerate(names)}
    if not finger_joints or any(j not in index for j in finger_joints):
        return None
    return gripper_state([positions[index[j]] for j in finger_joints], open_position)
