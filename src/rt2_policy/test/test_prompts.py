"""The gripper state in RT-2's action prompt (the plain prompts: test_vla_policy.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rt2_policy.prompts import (
    ACTION_PROMPT_TEMPLATE,
    GRIPPER_STATE_BINS,
    action_prompt,
    gripper_state_bin,
    instruction_with_gripper_state,
)


@pytest.mark.parametrize("state, expected", [
    (0.0, 0), (1.0, 255), (0.375, 96), (0.75, 191), (0.25, 64), (1 / 255, 1), (0, 0), (1, 255),
    (np.float64(0.375), 96), (np.float32(1.0), 255),
])
def test_gripper_state_bin(state, expected):
    value = gripper_state_bin(state)
    assert value == expected and type(value) is int


def test_gripper_state_bins_cover_rt2s_256():
    assert GRIPPER_STATE_BINS == 256
    bins = {gripper_state_bin(x) for x in np.linspace(0.0, 1.0, 2001)}
    assert bins == set(range(256))


@pytest.mark.parametrize("bad", [math.nan, -0.1, 1.1, -math.inf, math.inf, "x", None, [0.5]])
def test_gripper_state_bin_refuses(bad):
    with pytest.raises(ValueError, match=r"gripper_state: expected a finite number in \[0, 1\]"):
        gripper_state_bin(bad)


def test_action_prompt_with_gripper_state():
    assert action_prompt("pick up the red cube", 0.375) == (
        "Q: what action should the robot take to pick up the red cube, gripper 96? A:")
    assert action_prompt("pick up the red cube", gripper_state=1.0) == (
        "Q: what action should the robot take to pick up the red cube, gripper 255? A:")
    # 0.0 (fully open) is a state, not "no state"
    assert action_prompt("pick up the red cube", 0.0) == (
        "Q: what action should the robot take to pick up the red cube, gripper 0? A:")


def test_action_prompt_without_gripper_state_is_rt2s():
    plain = "Q: what action should the robot take to pick up the red cube? A:"
    assert action_prompt("pick up the red cube") == plain
    assert action_prompt("pick up the red cube", None) == plain
    assert action_prompt("pick up the red cube", gripper_state=None) == plain
    assert plain == ACTION_PROMPT_TEMPLATE.format(instruction="pick up the red cube")


def test_instruction_is_normalised_before_the_state():
    assert action_prompt("  Pick up\tthe  red cube. \n", 0.75) == (
        "Q: what action should the robot take to Pick up the red cube, gripper 191? A:")
    assert instruction_with_gripper_state("pick up the red cube.", 0.0) == (
        "pick up the red cube, gripper 0")
    assert instruction_with_gripper_state(" move   left... ", 1.0) == "move left, gripper 255"


def test_action_prompt_errors():
    for bad in ("", "   ", " . ", None):
        with pytest.raises(ValueError, match="instruction"):
            action_prompt(bad, 0.5)
        with pytest.raises(ValueError, match="instruction"):
            instruction_with_gripper_state(bad, 0.5)
    for bad in (math.nan, -0.1, 1.1, "x"):
        with pytest.raises(ValueError, match="gripper_state"):
            action_prompt("pick up the red cube", bad)
        with pytest.raises(ValueError, match="gripper_state"):
            instruction_with_gripper_state("pick up the red cube", bad)


def test_gripper_state_bin_refuses_strings_and_bools_and_takes_numpy_numbers():
    for bad in ("0.5", True, False):
        with pytest.raises(ValueError, match="gripper_state: expected a finite number"):
            gripper_state_bin(bad)
    assert gripper_state_bin(np.float32(0.375)) == 96
