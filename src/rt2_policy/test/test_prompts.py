"""The gripper state and tcp position in RT-2's action prompt (the plain prompts:
test_vla_policy.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rt2_policy.prompts import (
    ACTION_PROMPT_TEMPLATE,
    GRIPPER_STATE_BINS,
    TCP_POSITION_BOUNDS,
    action_prompt,
    gripper_state_bin,
    instruction_with_gripper_state,
    tcp_position_bins,
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


# ---------------------------------------------------------------------------- tcp position
@pytest.mark.parametrize("position, expected", [
    ((0.0, -0.5, -0.1), (0, 0, 0)),            # the low ends of TCP_POSITION_BOUNDS
    ((1.0, 0.5, 0.9), (255, 255, 255)),        # the high ends
    ((0.5, 0.0, 0.4), (128, 128, 128)),        # the middle: 127.5 rounds to even
    ((0.4, -0.25, 0.7), (102, 64, 204)),       # per axis, in x y z order
    ([0.4, -0.25, 0.7], (102, 64, 204)),
    (np.array([[0.4], [-0.25], [0.7]], np.float32), (102, 64, 204)),
    ((-3.0, -0.6, 0.95), (0, 0, 255)),         # outside the box: saturates
    ((1.2, 7.0, -1.0), (255, 255, 0)),
])
def test_tcp_position_bins(position, expected):
    bins = tcp_position_bins(position)
    assert bins == expected and all(type(b) is int for b in bins)


def test_tcp_position_bins_cover_256_per_axis():
    assert TCP_POSITION_BOUNDS == ((0.0, 1.0), (-0.5, 0.5), (-0.1, 0.9))
    for axis, (low, high) in enumerate(TCP_POSITION_BOUNDS):
        bins = set()
        for p in np.linspace(low, high, 2001):
            position = [0.5, 0.0, 0.4]
            position[axis] = p
            bins.add(tcp_position_bins(position)[axis])
        assert bins == set(range(256))


def test_tcp_position_bins_with_other_bounds():
    bounds = ((-1.0, 1.0), (0.0, 2.0), (10.0, 11.0))
    assert tcp_position_bins((0.0, 0.5, 10.25), bounds=bounds) == (128, 64, 64)
    assert tcp_position_bins((-1.0, 2.0, 12.0), bounds) == (0, 255, 255)


@pytest.mark.parametrize("bad", [(math.nan, 0.0, 0.4), (0.5, math.inf, 0.4),
                                 (0.5, 0.0, -math.inf), (0.5, 0.0), (0.5, 0.0, 0.4, 1.0), (),
                                 np.zeros((2, 3)), "x", ("a", "b", "c"), None, 0.5])
def test_tcp_position_bins_refuses_bad_positions(bad):
    with pytest.raises(ValueError, match=r"tcp_position: expected 3 finite metres"):
        tcp_position_bins(bad)


@pytest.mark.parametrize("bounds", [
    ((0.0, 1.0), (-0.5, 0.5)),                      # two axes
    ((0.0, 1.0, 2.0), (-0.5, 0.5, 1.0), (0.0, 1.0, 2.0)),  # triples, not pairs
    ((1.0, 0.0), (-0.5, 0.5), (-0.1, 0.9)),         # low > high
    ((0.0, 1.0), (0.5, 0.5), (-0.1, 0.9)),          # low == high
    ((0.0, math.nan), (-0.5, 0.5), (-0.1, 0.9)),
    ((0.0, math.inf), (-0.5, 0.5), (-0.1, 0.9)),
])
def test_tcp_position_bins_refuses_bad_bounds(bounds):
    with pytest.raises(ValueError, match=r"bounds: expected 3 finite \(low, high\) pairs"):
        tcp_position_bins((0.5, 0.0, 0.4), bounds=bounds)


def test_action_prompt_with_tcp_position():
    assert action_prompt("pick up the red cube", tcp_position=(0.4, -0.25, 0.7)) == (
        "Q: what action should the robot take to pick up the red cube, tcp 102 64 204? A:")
    assert action_prompt("pick up the red cube", None, np.array([0.5, 0.0, 0.4])) == (
        "Q: what action should the robot take to pick up the red cube, tcp 128 128 128? A:")
    # the gripper state first, then the tcp; the instruction is normalised
    assert action_prompt("  Pick up\tthe  red cube. ", 0.375, (0.4, -0.25, 0.7)) == (
        "Q: what action should the robot take to Pick up the red cube, gripper 96, "
        "tcp 102 64 204? A:")
    assert action_prompt("pick up the red cube", gripper_state=0.0,
                         tcp_position=(0.0, -0.5, -0.1)) == (
        "Q: what action should the robot take to pick up the red cube, gripper 0, tcp 0 0 0? A:")
    # None is "no tcp": RT-2's prompt
    assert action_prompt("pick up the red cube", 0.375, None) == (
        "Q: what action should the robot take to pick up the red cube, gripper 96? A:")


def test_action_prompt_tcp_position_errors():
    for bad in ((math.nan, 0.0, 0.4), (0.5, 0.0), "x"):
        with pytest.raises(ValueError, match="tcp_position"):
            action_prompt("pick up the red cube", 0.5, bad)
    with pytest.raises(ValueError, match="instruction"):
        action_prompt(" . ", None, (0.5, 0.0, 0.4))
    with pytest.raises(ValueError, match="gripper_state"):
        action_prompt("pick up the red cube", 1.5, (0.5, 0.0, 0.4))


def test_action_prompt_with_grasp_memory():
    """The episode's grasp memory (rt2_policy.grasp_memory) ends the question, after the gripper
    state and the tcp position; None leaves it out."""
    assert action_prompt("move the red cube near the bowl", 0.0, (0.4, -0.25, 0.7), True) == (
        "Q: what action should the robot take to move the red cube near the bowl, gripper 0, "
        "tcp 102 64 204, grasp 1? A:")
    assert action_prompt("pick up the red cube", grasped=np.bool_(False)) == (
        "Q: what action should the robot take to pick up the red cube, grasp 0? A:")
    assert action_prompt("pick up the red cube", 0.375, None, None) == (
        "Q: what action should the robot take to pick up the red cube, gripper 96? A:")
    for bad in (1, 0.0, "yes"):
        with pytest.raises(ValueError, match="grasped: expected None or a bool, got"):
            action_prompt("pick up the red cube", 0.5, None, bad)
