"""Policy gripper closure → GripperCommand goals (pure mapping)."""

import math

import pytest

from rt2_bringup.gripper_command import GripperMapping


def test_panda_mapping_open_closed_and_linear():
    mapping = GripperMapping()
    assert mapping.position(0.0) == pytest.approx(0.04)  # open: 4 cm per finger
    assert mapping.position(1.0) == pytest.approx(0.0)
    assert mapping.position(0.25) == pytest.approx(0.03)
    assert mapping.position(-0.5) == pytest.approx(0.04)  # clamped
    assert mapping.position(7.0) == pytest.approx(0.0)


def test_binarized_mapping():
    mapping = GripperMapping(binarize=True)
    assert mapping.closure(0.49) == 0.0 and mapping.closure(0.5) == 1.0
    assert mapping.position(0.8) == pytest.approx(0.0)


def test_goals_only_on_meaningful_changes():
    mapping = GripperMapping(deadband=0.05)
    assert mapping.should_send(0.0, None)
    assert not mapping.should_send(0.04, 0.0)
    assert mapping.should_send(0.06, 0.0)
    # A 5 Hz stream of the same closure sends one goal.
    last, sent = None, 0
    for closure in [1.0] * 10 + [0.0] * 10:
        if mapping.should_send(mapping.closure(closure), last):
            last, sent = mapping.closure(closure), sent + 1
    assert sent == 2


@pytest.mark.parametrize("bad", [math.nan, math.inf, None, "1"])
def test_non_finite_commands_are_refused(bad):
    with pytest.raises(ValueError, match="gripper command: expected a finite closure"):
        GripperMapping().closure(bad)


@pytest.mark.parametrize("kwargs,field", [
    ({"open_position": -0.01}, "open_position"),
    ({"open_position": 0.0, "closed_position": 0.0}, "open_position"),
    ({"max_effort": 0.0}, "max_effort"),
    ({"deadband": 1.0}, "deadband"),
    ({"binarize": 1}, "binarize"),
])
def test_invalid_mapping_is_rejected(kwargs, field):
    with pytest.raises(ValueError, match=f"{field}: expected"):
        GripperMapping(**kwargs)
