"""Observation.gripper_state and .tcp_position validation (the policy contract)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rt2_policy.contract import Observation

IMAGE = np.zeros((4, 4, 3), np.uint8)


def test_gripper_state_defaults_to_none():
    assert Observation(IMAGE, "pick up the red cube").gripper_state is None


@pytest.mark.parametrize("state", [None, 0.0, 1.0, 0.375, 0, 1, np.float64(0.5), np.float32(0.5)])
def test_gripper_state_accepts_none_and_numbers_in_unit_range(state):
    obs = Observation(IMAGE, "pick up the red cube", stamp=1.0, gripper_state=state)
    assert obs.gripper_state == state


@pytest.mark.parametrize("state", [-0.01, 1.01, 2, -1, math.nan, math.inf, -math.inf,
                                   True, False, "0.5", [0.5], np.array([0.5])])
def test_gripper_state_refuses_anything_else(state):
    with pytest.raises(ValueError, match=r"gripper_state: expected None or a number in \[0, 1\]"):
        Observation(IMAGE, "pick up the red cube", gripper_state=state)


def test_other_fields_still_validated_with_a_gripper_state():
    with pytest.raises(ValueError, match="instruction"):
        Observation(IMAGE, " ", gripper_state=0.5)
    with pytest.raises(ValueError, match="image"):
        Observation(np.zeros((4, 4), np.uint8), "go", gripper_state=0.5)


# ---------------------------------------------------------------------------- tcp position
def test_tcp_position_defaults_to_none():
    obs = Observation(IMAGE, "pick up the red cube")
    assert obs.tcp_position is None
    assert Observation(IMAGE, "pick up the red cube", tcp_position=None).tcp_position is None


@pytest.mark.parametrize("position", [[0.5, 0.0, 0.4], (0.5, 0, 0.4), [-3, 7, 100],
                                      np.array([0.5, 0.0, 0.4], np.float32),
                                      np.array([[0.5], [0.0], [0.4]])])
def test_tcp_position_is_stored_as_three_float64(position):
    obs = Observation(IMAGE, "pick up the red cube", stamp=1.0, tcp_position=position)
    assert isinstance(obs.tcp_position, np.ndarray)
    assert obs.tcp_position.dtype == np.float64 and obs.tcp_position.shape == (3,)
    np.testing.assert_allclose(obs.tcp_position, np.asarray(position, np.float64).ravel())


def test_tcp_position_is_a_copy_and_keeps_the_gripper_state():
    source = np.array([0.5, 0.0, 0.4])
    obs = Observation(IMAGE, "pick up the red cube", gripper_state=0.25, tcp_position=source)
    source[0] = 9.0
    np.testing.assert_array_equal(obs.tcp_position, [0.5, 0.0, 0.4])
    assert obs.gripper_state == 0.25


@pytest.mark.parametrize("position", [[math.nan, 0.0, 0.4], [0.5, math.inf, 0.4],
                                      [0.5, 0.0, -math.inf], [0.5, 0.0], [0.5, 0.0, 0.4, 1.0],
                                      [], 0.5, np.zeros((2, 3)), "abc", ["0.5", "x", "0.4"],
                                      [[0.5, 0.0], [0.4]], {"x": 0.5}, ["0.5", "0.1", "0.4"],
                                      [True, False, True]])
def test_tcp_position_refuses_anything_else(position):
    with pytest.raises(ValueError, match=r"tcp_position: expected None or 3 finite metres"):
        Observation(IMAGE, "pick up the red cube", tcp_position=position)


def test_other_fields_still_validated_with_a_tcp_position():
    with pytest.raises(ValueError, match="instruction"):
        Observation(IMAGE, " ", tcp_position=[0.5, 0.0, 0.4])
    with pytest.raises(ValueError, match="gripper_state"):
        Observation(IMAGE, "go", gripper_state=2.0, tcp_position=[0.5, 0.0, 0.4])
