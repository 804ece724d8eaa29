import math

import numpy as np
import pytest

from rt2_policy.contract import RobotAction
from rt2_policy.servo_command import (
    Twist,
    TwistHold,
    TwistLimits,
    action_to_twist,
    matrix_to_rotation_vector,
    rpy_to_matrix,
)


def _action(dp=(0.0, 0.0, 0.0), dr=(0.0, 0.0, 0.0), terminate=False, gripper=0.0):
    return RobotAction(bins=np.zeros(8, dtype=np.int64), terminate=terminate,
                       delta_position=np.array(dp, float), delta_rotation=np.array(dr, float),
                       gripper=gripper)


def test_linear_twist_is_delta_over_period():
    twist = action_to_twist(_action(dp=(0.01, -0.02, 0.005)), 0.2, TwistLimits())
    np.testing.assert_allclose(twist.linear, [0.05, -0.1, 0.025])
    np.testing.assert_allclose(twist.angular, 0.0, atol=1e-12)


def test_small_rotation_matches_rpy_over_period():
    twist = action_to_twist(_action(dr=(0.01, 0.0, 0.0)), 0.1, TwistLimits())
    np.testing.assert_allclose(twist.angular, [0.1, 0.0, 0.0], atol=1e-9)
    twist = action_to_twist(_action(dr=(0.0, 0.0, -0.05)), 0.5, TwistLimits())
    np.testing.assert_allclose(twist.angular, [0.0, 0.0, -0.1], atol=1e-9)


def test_rotation_vector_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        rpy = rng.uniform(-1.0, 1.0, 3)
        rotvec = matrix_to_rotation_vector(rpy_to_matrix(*rpy))
        angle = np.linalg.norm(rotvec)
        axis = rotvec / angle
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rebuilt = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
        np.testing.assert_allclose(rebuilt, rpy_to_matrix(*rpy), atol=1e-9)


def test_clamps_keep_direction():
    limits = TwistLimits(max_linear_speed=0.1, max_angular_speed=0.5)
    twist = action_to_twist(_action(dp=(0.03, 0.04, 0.0), dr=(0.0, 0.0, 0.2)), 0.1, limits)
    assert np.linalg.norm(twist.linear) == pytest.approx(0.1)
    np.testing.assert_allclose(twist.linear / np.linalg.norm(twist.linear), [0.6, 0.8, 0.0])
    assert np.linalg.norm(twist.angular) == pytest.approx(0.5)


def test_terminate_gives_zero_and_nan_raises():
    assert action_to_twist(_action(dp=(0.01, 0, 0), terminate=True), 0.2, TwistLimits()).is_zero()
    with pytest.raises(ValueError, match="non-finite"):
        action_to_twist(_action(dp=(math.nan, 0, 0)), 0.2, TwistLimits())
    with pytest.raises(ValueError, match="control_period"):
        action_to_twist(_action(), 0.0, TwistLimits())
    with pytest.raises(ValueError, match="max_linear_speed"):
        TwistLimits(max_linear_speed=-1.0)


def test_hold_expires_to_zero():
    hold = TwistHold()
    twist = Twist(np.array([0.1, 0, 0]), np.zeros(3))
    assert hold.current(0.0).is_zero()
    hold.set(twist, now=10.0, duration=0.2)
    assert hold.current(10.1) is twist
    assert hold.current(10.2).is_zero()
    hold.set(twist, now=11.0, duration=0.2)
    hold.stop()
    assert hold.current(11.05).is_zero()


def test_hold_is_zero_on_another_clock():
    # A window set on the steady clock says nothing about sim time (and back): zero, not the
    # held twist, whatever the other clock reads.
    hold = TwistHold()
    twist = Twist(np.array([0.1, 0, 0]), np.zeros(3))
    hold.set(twist, now=5000.0, duration=0.2, clock="steady")
    assert hold.current(5000.1, clock="steady") is twist
    assert hold.current(100.0, clock="ros").is_zero()
    hold.set(twist, now=100.0, duration=0.2, clock="ros")
    assert hold.current(100.1, clock="ros") is twist
    assert hold.current(50.0, clock="steady").is_zero()
