import pytest

from rt2_policy.episode import Episode, EpisodeLimits, EpisodeState, Outcome


def test_terminate_succeeds():
    ep = Episode("pick up the red cube", EpisodeLimits(max_steps=10), now=0.0)
    assert not ep.record_step(False, 0.2)
    assert ep.record_step(True, 0.4)
    snap = ep.snapshot()
    assert (snap.state, snap.outcome, snap.step) == (EpisodeState.FINISHED, Outcome.SUCCEEDED, 2)
    assert snap.duration == pytest.approx(0.4)
    assert ep.finished_event.is_set()
    assert not ep.finish(Outcome.CANCELED, "late", 1.0)  # first outcome wins
    assert ep.snapshot().outcome == Outcome.SUCCEEDED


def test_step_and_time_limits():
    ep = Episode("x", EpisodeLimits(max_steps=2, time_limit=100.0), now=0.0)
    ep.record_step(False, 0.1)
    ep.record_step(False, 0.2)
    assert ep.check_limits(0.3)
    assert ep.snapshot().outcome == Outcome.TIMED_OUT
    ep = Episode("x", EpisodeLimits(max_steps=100, time_limit=1.0), now=5.0)
    assert not ep.check_limits(5.5)
    assert ep.check_limits(6.0)
    assert "time limit" in ep.snapshot().message


def test_faults_hold_then_abort_and_reset_on_success():
    ep = Episode("x", EpisodeLimits(max_consecutive_faults=3), now=0.0)
    assert not ep.record_fault("stale camera", 0.1)
    assert ep.snapshot().state == EpisodeState.HOLDING
    assert not ep.record_fault("stale camera", 0.2)
    ep.record_step(False, 0.3)  # a good step resets the counter
    assert ep.snapshot().state == EpisodeState.RUNNING
    assert not ep.record_fault("stale camera", 0.4)
    assert not ep.record_fault("stale camera", 0.5)
    assert ep.record_fault("stale camera", 0.6)
    snap = ep.snapshot()
    assert snap.outcome == Outcome.ABORTED and "stale camera" in snap.message


def test_validation_messages():
    with pytest.raises(ValueError, match="instruction: expected a non-empty string"):
        Episode("   ", EpisodeLimits(), now=0.0)
    with pytest.raises(ValueError, match="max_steps: expected an integer >= 1, got 0"):
        EpisodeLimits(max_steps=0)
    with pytest.raises(ValueError, match="time_limit"):
        EpisodeLimits(time_limit=float("inf"))


def test_enum_values_match_messages():
    msgs = pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built (run make setup)")
    status = msgs.EpisodeStatus
    assert Outcome.SUCCEEDED == status.OUTCOME_SUCCEEDED
    assert Outcome.TIMED_OUT == status.OUTCOME_TIMED_OUT
    assert Outcome.ABORTED == status.OUTCOME_ABORTED
    assert Outcome.CANCELED == status.OUTCOME_CANCELED
    assert EpisodeState.HOLDING == status.STATE_HOLDING
    assert EpisodeState.FINISHED == status.STATE_FINISHED
