import math

import numpy as np
import pytest

from rt2_policy.contract import RobotAction
from rt2_policy.control_loop import (
    ControlConfig,
    ControlLoop,
    Frame,
    GripperReading,
    TcpReading,
)
from rt2_policy.episode import Episode, EpisodeLimits, EpisodeState, Outcome
from rt2_policy.scripted_policy import ScriptedPolicy

IMAGE = np.zeros((8, 8, 3), np.uint8)


def _frame(stamp):
    return Frame(stamp=stamp, to_rgb=lambda: IMAGE)


def _loop(actions, **cfg):
    return ControlLoop(ScriptedPolicy(actions), ControlConfig(control_rate=5.0, **cfg))


def test_moves_then_terminates():
    loop = _loop(["0 255 128 128 128 128 128 200", "1 128 128 128 128 128 128 200"])
    ep = Episode("pick up the red cube", EpisodeLimits(), now=0.0)
    first = loop.step(ep, _frame(0.0), now=0.1)
    assert first.fault is None and not first.finished
    dx = first.action.delta_position[0]
    assert first.twist.linear[0] == pytest.approx(dx / 0.2)  # delta / period
    assert first.gripper == pytest.approx(first.action.gripper)
    second = loop.step(ep, _frame(0.2), now=0.3)
    assert second.finished and second.twist.is_zero()
    assert ep.snapshot().outcome == Outcome.SUCCEEDED
    assert loop.policy.observations[0].instruction == "pick up the red cube"


def test_stale_missing_and_bad_frames_hold_still():
    loop = _loop(["0 255 128 128 128 128 128 0"], max_image_age=0.5)
    ep = Episode("x", EpisodeLimits(max_consecutive_faults=3), now=0.0)
    missing = loop.step(ep, None, now=0.1)
    assert missing.twist.is_zero() and "no camera frame" in missing.fault
    stale = loop.step(ep, _frame(0.0), now=2.0)
    assert stale.twist.is_zero() and "stale camera" in stale.fault
    assert loop.policy.observations == []  # the policy never saw a stale frame

    def broken():
        raise ValueError("expected encoding rgb8, got '32FC1'")

    bad = loop.step(ep, Frame(stamp=2.0, to_rgb=broken), now=2.1)
    assert bad.twist.is_zero() and "32FC1" in bad.fault and bad.finished
    assert ep.snapshot().outcome == Outcome.ABORTED


class _NaNPolicy:
    def infer(self, observation):
        return RobotAction(bins=np.zeros(8, np.int64), terminate=False,
                           delta_position=np.array([math.nan, 0, 0]),
                           delta_rotation=np.zeros(3), gripper=0.0)

    def reset(self):
        pass


class _FailingPolicy(_NaNPolicy):
    def infer(self, observation):
        raise ConnectionError("policy server lost")


@pytest.mark.parametrize("policy,text", [(_NaNPolicy(), "non-finite"),
                                         (_FailingPolicy(), "server lost")])
def test_backend_faults_hold_still(policy, text):
    loop = ControlLoop(policy, ControlConfig())
    ep = Episode("x", EpisodeLimits(), now=0.0)
    result = loop.step(ep, _frame(0.0), now=0.01)
    assert result.twist.is_zero() and text in result.fault and not result.finished


def test_limits_end_episode_before_inference():
    loop = _loop(["0 200 128 128 128 128 128 0"])
    ep = Episode("x", EpisodeLimits(max_steps=1), now=0.0)
    assert not loop.step(ep, _frame(0.0), now=0.0).finished
    result = loop.step(ep, _frame(0.2), now=0.2)
    assert result.finished and result.action is None
    assert ep.snapshot().outcome == Outcome.TIMED_OUT


def test_config_validation():
    with pytest.raises(ValueError, match="control_rate"):
        ControlConfig(control_rate=0.0)
    with pytest.raises(ValueError, match="at least one action"):
        ScriptedPolicy([])


# ---------------------------------------------------------------------------- gripper state
MOVE = "0 255 128 128 128 128 128 200"


class _Needs(ScriptedPolicy):
    """Like a VLAPolicy trained with proprioception in its prompt: refuses an observation
    without ``field`` (``"gripper_state"`` or ``"tcp_position"``)."""

    def __init__(self, field: str, actions):
        super().__init__(actions)
        self.field = field

    def infer(self, observation):
        if getattr(observation, self.field) is None:
            raise ValueError(f"observation.{self.field}: expected a value, got None")
        return super().infer(observation)


def test_fresh_gripper_reading_reaches_the_policy():
    loop = _loop([MOVE], max_image_age=0.5)
    ep = Episode("pick up the red cube", EpisodeLimits(), now=0.0)
    result = loop.step(ep, _frame(1.0), now=1.1, gripper=GripperReading(stamp=1.05, state=0.75))
    assert result.fault is None
    # exactly max_image_age old is still fresh
    loop.step(ep, _frame(1.2), now=1.5, gripper=GripperReading(stamp=1.0, state=0.25))
    assert [o.gripper_state for o in loop.policy.observations] == [0.75, 0.25]


def test_stale_or_missing_gripper_reading_gives_none():
    loop = _loop([MOVE], max_image_age=0.5)
    ep = Episode("pick up the red cube", EpisodeLimits(), now=0.0)
    stale = loop.step(ep, _frame(2.0), now=2.1, gripper=GripperReading(stamp=1.0, state=0.75))
    assert stale.fault is None  # a policy without the state runs on: only the state is dropped
    loop.step(ep, _frame(2.2), now=2.3)  # no reading at all
    loop.step(ep, _frame(2.4), now=2.5, gripper=None)
    assert [o.gripper_state for o in loop.policy.observations] == [None, None, None]


def test_policy_that_needs_the_gripper_state_holds_without_it():
    loop = ControlLoop(_Needs("gripper_state", [MOVE]), ControlConfig(control_rate=5.0))
    ep = Episode("pick up the red cube", EpisodeLimits(max_consecutive_faults=3), now=0.0)
    for now, reading in ((0.1, None), (0.3, GripperReading(stamp=0.3 - 0.6, state=0.75))):
        held = loop.step(ep, _frame(now), now=now, gripper=reading)
        assert held.twist.is_zero() and held.action is None and held.gripper is None
        assert held.fault.startswith("policy failed: ") and "gripper_state" in held.fault
        assert not held.finished and ep.snapshot().state == EpisodeState.HOLDING
    # a fresh reading lets it act again
    moved = loop.step(ep, _frame(0.5), now=0.5, gripper=GripperReading(stamp=0.45, state=0.75))
    assert moved.fault is None and not moved.twist.is_zero()
    assert ep.snapshot().state == EpisodeState.RUNNING
    assert [o.gripper_state for o in loop.policy.observations] == [0.75]
    # ... and faults without it count towards the abort like any other
    for now in (0.7, 0.9):
        assert not loop.step(ep, _frame(now), now=now).finished
    last = loop.step(ep, _frame(1.1), now=1.1)
    assert last.finished and last.twist.is_zero()
    assert ep.snapshot().outcome == Outcome.ABORTED


# ---------------------------------------------------------------------------- tcp position
TCP = np.array([0.45, -0.1, 0.3])


def test_fresh_tcp_reading_reaches_the_policy():
    loop = _loop([MOVE], max_image_age=0.5)
    ep = Episode("pick up the red cube", EpisodeLimits(), now=0.0)
    result = loop.step(ep, _frame(1.0), now=1.1, tcp=TcpReading(stamp=1.05, position=TCP))
    assert result.fault is None
    # exactly max_image_age old is still fresh; a list works like an array
    loop.step(ep, _frame(1.2), now=1.5, tcp=TcpReading(stamp=1.0, position=[0.5, 0.0, 0.4]))
    first, second = (o.tcp_position for o in loop.policy.observations)
    assert isinstance(first, np.ndarray) and first.dtype == np.float64 and first.shape == (3,)
    np.testing.assert_array_equal(first, TCP)
    np.testing.assert_array_equal(second, [0.5, 0.0, 0.4])
    assert [o.gripper_state for o in loop.policy.observations] == [None, None]


def test_stale_or_missing_tcp_reading_gives_none():
    loop = _loop([MOVE], max_image_age=0.5)
    ep = Episode("pick up the red cube", EpisodeLimits(), now=0.0)
    stale = loop.step(ep, _frame(2.0), now=2.1, tcp=TcpReading(stamp=1.0, position=TCP))
    assert stale.fault is None  # a policy without the tcp runs on: only the tcp is dropped
    loop.step(ep, _frame(2.2), now=2.3)  # no reading at all
    loop.step(ep, _frame(2.4), now=2.5, tcp=None)
    assert [o.tcp_position is None for o in loop.policy.observations] == [True, True, True]


def test_gripper_and_tcp_readings_are_judged_each_on_its_own_stamp():
    loop = _loop([MOVE], max_image_age=0.5)
    ep = Episode("pick up the red cube", EpisodeLimits(), now=0.0)
    loop.step(ep, _frame(2.0), now=2.1, gripper=GripperReading(stamp=2.05, state=0.75),
              tcp=TcpReading(stamp=1.0, position=TCP))  # tcp stale
    loop.step(ep, _frame(2.2), now=2.3, gripper=GripperReading(stamp=1.0, state=0.75),
              tcp=TcpReading(stamp=2.25, position=TCP))  # gripper stale
    loop.step(ep, _frame(2.4), now=2.5, gripper=GripperReading(stamp=2.45, state=0.25),
              tcp=TcpReading(stamp=2.45, position=TCP))  # both fresh
    observations = loop.policy.observations
    assert [o.gripper_state for o in observations] == [0.75, None, 0.25]
    assert observations[0].tcp_position is None
    np.testing.assert_array_equal(observations[1].tcp_position, TCP)
    np.testing.assert_array_equal(observations[2].tcp_position, TCP)


def test_policy_that_needs_the_tcp_position_holds_without_it():
    loop = ControlLoop(_Needs("tcp_position", [MOVE]), ControlConfig(control_rate=5.0))
    ep = Episode("pick up the red cube", EpisodeLimits(max_consecutive_faults=3), now=0.0)
    for now, reading in ((0.1, None), (0.3, TcpReading(stamp=0.3 - 0.6, position=TCP))):
        held = loop.step(ep, _frame(now), now=now, tcp=reading)
        assert held.twist.is_zero() and held.action is None
        assert held.fault.startswith("policy failed: ") and "tcp_position" in held.fault
        assert not held.finished and ep.snapshot().state == EpisodeState.HOLDING
    moved = loop.step(ep, _frame(0.5), now=0.5, tcp=TcpReading(stamp=0.45, position=TCP))
    assert moved.fault is None and not moved.twist.is_zero()
    assert ep.snapshot().state == EpisodeState.RUNNING
    assert len(loop.policy.observations) == 1


def test_bad_tcp_reading_is_a_fault_not_a_crash():
    loop = _loop([MOVE], max_image_age=0.5)
    ep = Episode("pick up the red cube", EpisodeLimits(max_consecutive_faults=3), now=0.0)
    bad = loop.step(ep, _frame(1.0), now=1.1,
                    tcp=TcpReading(stamp=1.05, position=np.array([math.nan, 0.0, 0.4])))
    assert bad.twist.is_zero() and bad.action is None
    assert bad.fault.startswith("bad observation: tcp_position")
    assert loop.policy.observations == []
