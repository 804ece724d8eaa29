"""Episode bookkeeping of the policy node, free of ROS: limits, outcomes, fault counting.

An episode starts with an instruction and ends in exactly one outcome: the policy emitted
terminate (RT-2's first action dimension, Brohan et al., 2023, §3.2), a step or time limit was
reached, a fault persisted, or a user canceled it. The enum values equal the constants of
``rt2_msgs/msg/EpisodeStatus`` and ``rt2_msgs/action/ExecuteInstruction``.
"""

from __future__ import annotations

import math
import threading
import uuid
from dataclasses import dataclass
from enum import IntEnum


class EpisodeState(IntEnum):
    """Matches ``rt2_msgs/msg/EpisodeStatus`` ``STATE_*``."""

    IDLE = 0
    RUNNING = 1
    HOLDING = 2
    FINISHED = 3


class Outcome(IntEnum):
    """Matches ``rt2_msgs/msg/EpisodeStatus`` ``OUTCOME_*``."""

    NONE = 0
    SUCCEEDED = 1
    TIMED_OUT = 2
    ABORTED = 3
    CANCELED = 4


@dataclass(frozen=True)
class EpisodeLimits:
    """When an episode stops without a terminate action.

    Attributes:
        max_steps: control steps before the episode times out (≥ 1).
        time_limit: seconds from start before the episode times out (> 0).
        max_consecutive_faults: consecutive faulty steps (stale camera, bad action, backend error)
            after which the episode aborts (≥ 1).
    """

    max_steps: int = 100
    time_limit: float = 60.0
    max_consecutive_faults: int = 25

    def __post_init__(self) -> None:
        if not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps: expected an integer >= 1, got {self.max_steps!r}")
        if not (math.isfinite(self.time_limit) and self.time_limit > 0):
            raise ValueError(
                f"time_limit: expected a finite number > 0 s, got {self.time_limit!r}")
        if not (isinstance(self.max_consecutive_faults, int) and self.max_consecutive_faults >= 1):
            raise ValueError(
                "max_consecutive_faults: expected an integer >= 1, "
                f"got {self.max_consecutive_faults!r}"
            )


@dataclass(frozen=True)
class EpisodeSnapshot:
    """An immutable view of the episode for status messages and action results."""

    episode_id: str
    instruction: str
    state: EpisodeState
    outcome: Outcome
    step: int
    message: str
    started_at: float
    ended_at: float | None

    @property
    def duration(self) -> float:
        """Seconds from start to end (or to the last update while running)."""
        return 0.0 if self.ended_at is None else max(0.0, self.ended_at - self.started_at)


class Episode:
    """One episode's state machine. Thread-safe: the node's timers and action server share it.

    Times are seconds on the caller's clock (the node's ROS clock).
    """

    def __init__(self, instruction: str, limits: EpisodeLimits, now: float,
                 episode_id: str | None = None) -> None:
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"instruction: expected a non-empty string, got {instruction!r}")
        self.limits = limits
        self._lock = threading.Lock()
        self._id = episode_id or uuid.uuid4().hex[:12]
        self._instruction = instruction.strip()
        self._state = EpisodeState.RUNNING
        self._outcome = Outcome.NONE
        self._step = 0
        self._faults = 0
        self._backend_down_since: float | None = None
        self._message = "started"
        self._started = now
        self._ended: float | None = None
        self.finished_event = threading.Event()

    @property
    def episode_id(self) -> str:
        return self._id

    @property
    def instruction(self) -> str:
        return self._instruction

    def is_active(self) -> bool:
        """True while RUNNING or HOLDING."""
        with self._lock:
            return self._state in (EpisodeState.RUNNING, EpisodeState.HOLDING)

    def check_limits(self, now: float) -> bool:
        """Finish as TIMED_OUT when a limit is reached; True if the episode is (now) over."""
        with self._lock:
            if self._state == EpisodeState.FINISHED:
                return True
            if self._step >= self.limits.max_steps:
                self._finish_locked(Outcome.TIMED_OUT,
                                    f"step limit {self.limits.max_steps} reached", now)
                return True
            if now - self._started >= self.limits.time_limit:
                self._finish_locked(Outcome.TIMED_OUT,
                                    f"time limit {self.limits.time_limit:.1f} s reached", now)
                return True
            return False

    def record_step(self, terminate: bool, now: float) -> bool:
        """Count one executed action. Returns True if it ended the episode (terminate)."""
        with self._lock:
            if self._state == EpisodeState.FINISHED:
                return True
            self._step += 1
            self._faults = 0
            self._backend_down_since = None
            self._state = EpisodeState.RUNNING
            if terminate:
                self._finish_locked(Outcome.SUCCEEDED, "policy emitted terminate", now)
                return True
            self._message = "running"
            return False

    def record_fault(self, reason: str, now: float) -> bool:
        """Count one faulty step (the arm is held still). Returns True if the episode aborted."""
        with self._lock:
            if self._state == EpisodeState.FINISHED:
                return True
            self._faults += 1
            self._state = EpisodeState.HOLDING
            self._message = reason
            if self._faults >= self.limits.max_consecutive_faults:
                self._finish_locked(
                    Outcome.ABORTED,
                    f"aborted after {self._faults} consecutive faults: {reason}", now)
                return True
            return False

    def record_backend_fault(self, reason: str, now: float, timeout: float) -> bool:
        """Hold still because the policy backend is unreachable or late (e.g. a remote server
        restarting). Not counted as a consecutive fault: the episode aborts only once the backend
        has been failing for ``timeout`` seconds, and resumes on the next executed action.
        Returns True if the episode aborted."""
        with self._lock:
            if self._state == EpisodeState.FINISHED:
                return True
            if self._backend_down_since is None:
                self._backend_down_since = now
            down_for = now - self._backend_down_since
            self._state = EpisodeState.HOLDING
            self._message = f"{reason} (holding for {down_for:.1f} s of {timeout:.1f} s)"
            if down_for >= timeout:
                self._finish_locked(
                    Outcome.ABORTED,
                    f"aborted: policy backend unavailable for {down_for:.1f} s: {reason}", now)
                return True
            return False

    def finish(self, outcome: Outcome, message: str, now: float) -> bool:
        """End the episode with ``outcome`` unless it already ended; True if this call did."""
        with self._lock:
            if self._state == EpisodeState.FINISHED:
                return False
            self._finish_locked(outcome, message, now)
            return True

    def snapshot(self) -> EpisodeSnapshot:
        with self._lock:
            return EpisodeSnapshot(self._id, self._instruction, self._state, self._outcome,
                                   self._step, self._message, self._started, self._ended)

    def _finish_locked(self, outcome: Outcome, message: str, now: float) -> None:
        self._state = EpisodeState.FINISHED
        self._outcome = outcome
        self._message = message
        self._ended = now
        self.finished_event.set()
