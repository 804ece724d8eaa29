"""Gripper state (0 open .. 1 closed) from the Franka Hand's finger joints, and the tcp position
from the Panda's arm joints (forward kinematics; checked against MuJoCo in
rt2_sim/test/test_simulation.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rt2_policy.proprioception import (
    PANDA_ARM_JOINTS,
    PANDA_FINGER_JOINTS,
    PANDA_FINGER_OPEN_POSITION,
    gripper_state,
    gripper_state_from_joint_state,
    panda_tcp_position,
    tcp_position_from_joint_state,
)

ARM = [f"panda_joint{i}" for i in range(1, 8)]


def test_panda_defaults():
    assert PANDA_FINGER_JOINTS == ("panda_finger_joint1", "panda_finger_joint2")
    assert PANDA_FINGER_OPEN_POSITION == pytest.approx(0.04)


@pytest.mark.parametrize("fingers, expected", [
    ([0.04, 0.04], 0.0),     # fully open
    ([0.0, 0.0], 1.0),       # fully closed
    ([0.025, 0.025], 0.375),
    ([0.01, 0.01], 0.75),
    ([0.01, 0.03], 0.5),     # the mean of the fingers, not either one
    ([0.02], 0.5),           # a single finger
    (np.array([0.03, 0.03]), 0.25),
])
def test_gripper_state_values(fingers, expected):
    state = gripper_state(fingers)
    assert isinstance(state, float)
    assert state == pytest.approx(expected, abs=1e-12)


def test_gripper_state_clips_to_unit_range():
    assert gripper_state([0.05, 0.05]) == 0.0       # past the open position
    assert gripper_state([-0.002, -0.002]) == 1.0   # encoder noise below closed
    assert gripper_state([0.08, 0.08], open_position=0.08) == 0.0
    assert gripper_state([0.02, 0.02], open_position=0.08) == pytest.approx(0.75)


@pytest.mark.parametrize("fingers", [[], [math.nan, 0.01], [0.01, math.inf], [-math.inf]])
def test_gripper_state_refuses_empty_and_non_finite(fingers):
    with pytest.raises(ValueError, match="finger_positions"):
        gripper_state(fingers)


@pytest.mark.parametrize("open_position", [0.0, -0.04, math.nan, math.inf])
def test_gripper_state_refuses_bad_open_position(open_position):
    with pytest.raises(ValueError, match="open_position"):
        gripper_state([0.01, 0.01], open_position=open_position)


def test_joint_state_picks_the_finger_joints_among_others_in_any_order():
    names = ["panda_finger_joint2", *ARM, "panda_finger_joint1"]
    positions = [0.03, 0.1, -0.7, 0.2, -2.3, 0.0, 1.6, 0.8, 0.01]
    assert gripper_state_from_joint_state(names, positions) == pytest.approx(0.5)
    # arm joint values (radians, some > 0.04) never enter the closure
    names = [*ARM, "panda_finger_joint1", "panda_finger_joint2"]
    positions = [0.5] * 7 + [0.01, 0.01]
    assert gripper_state_from_joint_state(names, positions) == pytest.approx(0.75)


def test_joint_state_custom_joints_and_open_position():
    names = ["left_finger", "arm", "right_finger"]
    positions = [0.02, 3.0, 0.02]
    assert gripper_state_from_joint_state(
        names, positions, finger_joints=("left_finger", "right_finger"),
        open_position=0.08) == pytest.approx(0.75)
    # the default Panda names are absent here
    assert gripper_state_from_joint_state(names, positions) is None


@pytest.mark.parametrize("names, positions", [
    (ARM, [0.0] * 7),                                   # the arm's own message
    ([*ARM, "panda_finger_joint1"], [0.0] * 7 + [0.01]),  # one finger only
    ([], []),
])
def test_joint_state_without_the_finger_joints_is_none(names, positions):
    assert gripper_state_from_joint_state(names, positions) is None


def test_joint_state_with_no_finger_joints_configured_is_none():
    assert gripper_state_from_joint_state(["panda_finger_joint1"], [0.01],
                                          finger_joints=()) is None


def test_joint_state_refuses_length_mismatch_and_bad_values():
    names = [*ARM, *PANDA_FINGER_JOINTS]
    with pytest.raises(ValueError, match="one position per name"):
        gripper_state_from_joint_state(names, [0.0] * 8)
    with pytest.raises(ValueError, match="one position per name"):
        gripper_state_from_joint_state(ARM, [])  # velocity-only message, no finger joints
    with pytest.raises(ValueError, match="finger_positions"):
        gripper_state_from_joint_state(names, [0.0] * 7 + [math.nan, 0.01])
    with pytest.raises(ValueError, match="open_position"):
        gripper_state_from_joint_state(names, [0.0] * 9, open_position=0.0)


def test_panda_tcp_position_at_zero_and_ready():
    # All joints at zero: the arm stands straight up, the flange at x = a7 = 0.088 m,
    # z = 0.333 + 0.316 + 0.384 - 0.107 m (link 7 points down), the tcp further down.
    assert panda_tcp_position(np.zeros(7), 0.0) == pytest.approx([0.088, 0.0, 0.926], abs=1e-9)
    assert panda_tcp_position(np.zeros(7), 0.1034) == pytest.approx([0.088, 0.0, 0.8226],
                                                                    abs=1e-9)
    # Joint 1 turns everything about the base z axis.
    turned = panda_tcp_position([math.pi / 2, 0, 0, 0, 0, 0, 0], 0.0)
    assert turned == pytest.approx([0.0, 0.088, 0.926], abs=1e-9)
    # MoveIt's "ready" pose: the hand points down in front of the base, the tcp on the x axis.
    ready = panda_tcp_position([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2,
                                math.pi / 4], 0.1034)
    assert ready == pytest.approx([0.307, 0.0, 0.487], abs=2e-3)


@pytest.mark.parametrize("joints", [np.zeros(6), np.zeros(9), [0.0] * 6 + [math.nan],
                                    [0.0] * 6 + [math.inf]])
def test_panda_tcp_position_refuses_bad_joints(joints):
    with pytest.raises(ValueError, match="joint_positions: expected 7 finite radians"):
        panda_tcp_position(joints)


@pytest.mark.parametrize("offset", [-0.01, math.nan])
def test_panda_tcp_position_refuses_bad_offset(offset):
    with pytest.raises(ValueError, match="tcp_offset: expected metres >= 0"):
        panda_tcp_position(np.zeros(7), offset)


def test_tcp_position_from_joint_state_reads_the_arm_joints_by_name():
    names = list(reversed(PANDA_FINGER_JOINTS)) + list(reversed(PANDA_ARM_JOINTS))
    q = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]
    positions = [0.01, 0.02] + list(reversed(q))
    assert tcp_position_from_joint_state(names, positions) == pytest.approx(
        panda_tcp_position(q))
    # the hand's own message (no arm joints) gives None, not an error
    assert tcp_position_from_joint_state(list(PANDA_FINGER_JOINTS), [0.01, 0.01]) is None
    renamed = [f"fr3_joint{i}" for i in range(1, 8)]
    assert tcp_position_from_joint_state(renamed, q, renamed, 0.0) == pytest.approx(
        panda_tcp_position(q, 0.0))


def test_tcp_position_from_joint_state_refuses_malformed_messages():
    with pytest.raises(ValueError, match="one position per name"):
        tcp_position_from_joint_state(ARM, [0.0] * 6)
    with pytest.raises(ValueError, match="arm_joints: expected the 7 arm joints"):
        tcp_position_from_joint_state(ARM, [0.0] * 7, ARM[:6])
    with pytest.raises(ValueError, match="joint_positions: expected 7 finite"):
        tcp_position_from_joint_state(ARM, [0.0] * 6 + [math.nan])


@pytest.mark.parametrize("state, holds", [(None, False), (0.0, False), (0.19, False), (0.2, True),
                                          (0.5, True), (0.9, True), (0.91, False), (1.0, False)])
def test_holds_object_reads_the_holding_range(state, holds):
    from rt2_policy.proprioception import HOLDING_STATE, holds_object

    assert HOLDING_STATE == (0.2, 0.9)
    assert holds_object(state) is holds
