"""Episode memory of grasps: has the gripper held an object earlier in this episode?

RT-2 conditions each action on one camera frame (Brohan et al., 2023, §3.2). For "move X near Y"
and "place X on Y" that frame is ambiguous at the end: with the gripper open above the
destination, the task may be done (the object was just let go) or not begun (nothing was
grasped yet). Traced in this project (README "Status", item 20), models stop early exactly
there. The finger joints tell the two apart over time: an episode whose gripper has read
"holding" (:data:`rt2_policy.proprioception.HOLDING_STATE`) for ``min_frames`` consecutive
control steps has grasped something.

- :func:`grasp_memory` computes the flag for every frame of a recorded episode (training labels,
  :mod:`rt2_policy.training.sources`);
- :class:`GraspTracker` computes it online, one observation at a time;
- :class:`GraspMemory` wraps any :class:`~rt2_policy.contract.Policy` and fills
  :attr:`~rt2_policy.contract.Observation.grasped` from the observations' gripper states, so a
  model trained with the flag in its prompt (``"prompt": {"grasp_memory": true}``,
  :func:`rt2_policy.prompts.action_prompt`) gets it from the policy node, the evaluation
  harness and the DAgger driver alike; :meth:`GraspMemory.reset` starts a new episode.

The flag is counted in observations, so it assumes one observation per control step, as the
demonstrations record them (5 Hz); ``min_frames`` = 3 is 0.6 s there, longer than a gripper
closing on nothing takes to pass through the holding band (1-2 frames in the demonstrations).

Nothing in this module imports torch, transformers or rclpy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from rt2_policy.contract import Observation, Policy, RobotAction
from rt2_policy.proprioception import holds_object

__all__ = ["GRASP_MEMORY_FRAMES", "GraspMemory", "GraspTracker", "grasp_memory"]

#: Consecutive observations reading "holding" that count as a grasp (0.6 s at 5 Hz).
GRASP_MEMORY_FRAMES = 3


def _check_min_frames(min_frames: Any) -> int:
    if isinstance(min_frames, bool) or not isinstance(min_frames, (int, np.integer)) \
            or min_frames < 1:
        raise ValueError(f"min_frames: expected an int >= 1 (observations), got {min_frames!r}")
    return int(min_frames)


class GraspTracker:
    """Online :func:`grasp_memory`: :meth:`update` with each control step's gripper state.

    Args:
        min_frames: consecutive observations reading "holding" that count as a grasp, >= 1.

    Raises:
        ValueError: "min_frames: expected an int >= 1 …".
    """

    def __init__(self, min_frames: int = GRASP_MEMORY_FRAMES) -> None:
        self.min_frames = _check_min_frames(min_frames)
        self.reset()

    def reset(self) -> None:
        """A new episode: nothing grasped yet."""
        self._run = 0
        self.grasped = False

    def update(self, state: float | None) -> bool:
        """Count one observation's gripper ``state`` (0 open .. 1 closed; None reads as not
        holding) and return whether the episode has grasped something so far (this one
        included)."""
        self._run = self._run + 1 if holds_object(state) else 0
        self.grasped = self.grasped or self._run >= self.min_frames
        return self.grasped


def grasp_memory(states: Iterable[float | None],
                 min_frames: int = GRASP_MEMORY_FRAMES) -> np.ndarray:
    """Per frame of one episode, whether the gripper has grasped something so far: True from the
    ``min_frames``-th of consecutive frames reading "holding" on, to the episode's end.

    Args:
        states: the episode's gripper states in order (0 open .. 1 closed,
            :func:`rt2_policy.proprioception.gripper_state`), length T.
        min_frames: as :class:`GraspTracker`.

    Returns:
        ``(T,)`` bool array; equal to :meth:`GraspTracker.update` called on each state in turn.
    """
    tracker = GraspTracker(min_frames)
    return np.array([tracker.update(s) for s in states], dtype=bool)


class GraspMemory:
    """A :class:`~rt2_policy.contract.Policy` that fills each observation's ``grasped`` from
    the gripper states it has seen since :meth:`reset` (see the module docstring); other
    attributes (``metadata``, ``answer``, ``close`` …) are the wrapped policy's.

    An observation that already carries ``grasped`` keeps it (the tracker still counts its
    gripper state); one without ``gripper_state`` passes through unchanged. ``infer_batch``
    is the wrapped policy's, untracked: a batch (a server's, of several robots) mixes episodes,
    so each observation must carry its own ``grasped`` (the remote client sends it).

    Args:
        policy: the policy to wrap.
        min_frames: as :class:`GraspTracker`.
    """

    def __init__(self, policy: Policy, min_frames: int = GRASP_MEMORY_FRAMES) -> None:
        self.policy = policy
        self.tracker = GraspTracker(min_frames)

    def __getattr__(self, name: str) -> Any:
        if name == "policy":  # not set yet (e.g. during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.policy, name)

    def reset(self) -> None:
        """Forget the episode's grasps, and reset the wrapped policy."""
        self.tracker.reset()
        self.policy.reset()

    def infer(self, observation: Observation) -> RobotAction:
        """The wrapped policy's action for ``observation`` with ``grasped`` filled in.

        Raises:
            ValueError, RuntimeError: as the wrapped policy's ``infer``.
        """
        if observation.gripper_state is None:
            return self.policy.infer(observation)
        grasped = self.tracker.update(observation.gripper_state)
        if observation.grasped is None:
            observation = replace(observation, grasped=grasped)
        return self.policy.infer(observation)
