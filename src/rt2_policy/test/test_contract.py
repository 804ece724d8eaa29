"""Observation.gripper_state validation (the policy contract)."""

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
