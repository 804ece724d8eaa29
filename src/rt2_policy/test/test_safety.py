"""The pure safety gate: dry run and e-stop decide what reaches the arm."""

import numpy as np
import pytest

from rt2_policy.safety import ESTOP_MESSAGE, SafetyGate
from rt2_policy.servo_command import Twist

MOVING = Twist(np.array([0.1, 0.0, -0.05]), np.array([0.0, 0.2, 0.0]))


def test_live_gate_passes_twists_and_gripper():
    gate = SafetyGate()
    assert gate.twist(MOVING) is MOVING
    assert gate.gripper(0.7) == 0.7 and gate.gripper(None) is None
    assert gate.refusal() is None
    assert "live" in gate.describe()


def test_dry_run_zeroes_motion_and_drops_gripper():
    gate = SafetyGate(dry_run=True)
    assert gate.twist(MOVING).is_zero()
    assert gate.gripper(1.0) is None
    assert gate.refusal() is None  # episodes run (actions are published), the arm does not move
    assert "dry run" in gate.describe()


def test_estop_engage_release():
    gate = SafetyGate()
    assert gate.set_estop(True) is True
    assert gate.set_estop(True) is False  # no change: the node does not pause twice
    assert gate.estopped and gate.twist(MOVING).is_zero() and gate.gripper(0.2) is None
    assert ESTOP_MESSAGE in gate.refusal()
    assert "ENGAGED" in gate.describe()
    assert gate.set_estop(False) is True
    assert not gate.estopped and gate.twist(MOVING) is MOVING and gate.refusal() is None


def test_dry_run_must_be_bool():
    with pytest.raises(ValueError, match="dry_run: expected a bool"):
        SafetyGate(dry_run="false")
