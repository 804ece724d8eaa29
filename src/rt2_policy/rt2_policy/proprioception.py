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


#: Gripper states (0 open .. 1 closed, :func:`gripper_state`) of fingers closed on an object: a
#: Franka Hand on rt2_sim's 3-5 cm objects reads 0.4-0.6; closed on nothing, 1.0. Training
#: labels (:mod:`rt2_policy.training.collate`) and the release gate
#: (:mod:`rt2_policy.waypoint_release`) read "holding" from it.
HOLDING_STATE = (0.2, 0.9)


def holds_object(state: float | None) -> bool:
    """True when the gripper ``state`` says the fingers are on something (:data:`HOLDING_STATE`);
    False for None (a model or robot without the gripper state)."""
    return state is not None and HOLDING_STATE[0] <= state <= HOLDING_STATE[1]


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


# ---------------------------------------------------------------------------- tcp position
#: The 7 arm joints of a Franka Panda (MoveIt's ``panda`` names), base to flange.
PANDA_ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
#: Franka Panda kinematics as (a, d, alpha) per joint, metres and radians, in Craig's modified
#: Denavit-Hartenberg convention (Franka Robotics, "Robot and interface specifications",
#: Denavit-Hartenberg parameters), the joint zeros of ``franka_description`` / MoveIt; the last
#: row is the flange (``panda_link8``), fixed.
PANDA_DH = ((0.0, 0.333, 0.0), (0.0, 0.0, -math.pi / 2), (0.0, 0.316, math.pi / 2),
            (0.0825, 0.0, math.pi / 2), (-0.0825, 0.384, -math.pi / 2), (0.0, 0.0, math.pi / 2),
            (0.088, 0.0, math.pi / 2), (0.0, 0.107, 0.0))
#: Distance from the flange to the tool centre point along the flange z axis, metres, of
#: rt2_sim's Panda (hand origin on the flange, tcp 0.13 m further, between its long finger
#: pads: ``rt2_sim.scene.TCP_OFFSET``). franka_description's ``panda_hand_tcp`` on a real Franka
#: Hand is 0.1034 m.
PANDA_TCP_OFFSET = 0.13


def panda_tcp_position(joint_positions: Sequence[float] | np.ndarray,
                       tcp_offset: float = PANDA_TCP_OFFSET) -> np.ndarray:
    """Position of a Franka Panda's tool centre point in its base frame (forward kinematics).

    Args:
        joint_positions: ``panda_joint1..7`` positions, radians, shape (7,).
        tcp_offset: flange to tcp along the flange z axis, metres, >= 0 (see
            :data:`PANDA_TCP_OFFSET`).

    Returns:
        ``(x, y, z)`` of the tcp in ``panda_link0`` (REP 103 axes: x forward, z up), metres,
        shape (3,), float64.

    Raises:
        ValueError: on a shape other than (7,), non-finite values or a bad ``tcp_offset``.
    """
    q = np.asarray(joint_positions, dtype=float).ravel()
    if q.shape != (7,) or not np.all(np.isfinite(q)):
        raise ValueError(f"joint_positions: expected 7 finite radians, got {joint_positions!r}")
    if not (math.isfinite(tcp_offset) and tcp_offset >= 0.0):
        raise ValueError(f"tcp_offset: expected metres >= 0, got {tcp_offset!r}")
    transform = np.eye(4)
    for (a, d, alpha), theta in zip(PANDA_DH, (*q, 0.0), strict=True):
        ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
        transform = transform @ np.array([[ct, -st, 0.0, a],
                                          [st * ca, ct * ca, -sa, -d * sa],
                                          [st * sa, ct * sa, ca, d * ca],
                                          [0.0, 0.0, 0.0, 1.0]])
    return transform[:3, 3] + tcp_offset * transform[:3, 2]


def tcp_position_from_joint_state(names: Sequence[str], positions: Sequence[float],
                                  arm_joints: Sequence[str] = PANDA_ARM_JOINTS,
                                  tcp_offset: float = PANDA_TCP_OFFSET) -> np.ndarray | None:
    """:func:`panda_tcp_position` of the ``arm_joints`` in one ``sensor_msgs/JointState``;
    ``None`` when the message does not carry all 7 of them.

    Raises:
        ValueError: when ``names`` and ``positions`` differ in length, ``arm_joints`` does not
            name 7 joints, or as :func:`panda_tcp_position`.
    """
    if len(names) != len(positions):
        raise ValueError(f"joint state: expected one position per name, got {len(names)} names "
                         f"and {len(positions)} positions")
    if len(arm_joints) != 7:
        raise ValueError(f"arm_joints: expected the 7 arm joints, base to flange, got "
                         f"{list(arm_joints)}")
    index = {name: i for i, name in enumerate(names)}
    if any(j not in index for j in arm_joints):
        return None
    return panda_tcp_position([positions[index[j]] for j in arm_joints], tcp_offset)
