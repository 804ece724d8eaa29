"""A policy double that replays RT-2 action strings: for tests, dry runs and bring-up checks.

It implements the same contract as the VLA (``infer``/``reset``) so the node cannot tell them
apart. Each ``infer`` call returns the next action of the script; the last one repeats.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from rt2_policy.action_tokenizer import ActionBounds, ActionTokenizer
from rt2_policy.contract import Observation, RobotAction


class ScriptedPolicy:
    """Replays a fixed list of actions in RT-2's text form, e.g. ``"0 128 128 200 128 128 128 0"``.

    Args:
        actions: one or more strings of 8 bin ids (see :meth:`ActionTokenizer.from_text`).
        bounds: per-step action bounds used to decode the bins.
        delay: seconds each ``infer`` sleeps, to emulate model latency (≥ 0).

    Raises:
        ValueError: on an empty script, a malformed action string, or a negative delay.
    """

    def __init__(self, actions: Sequence[str], bounds: ActionBounds | None = None,
                 delay: float = 0.0) -> None:
        if not actions:
            raise ValueError("actions: expected at least one action string, got none")
        if delay < 0:
            raise ValueError(f"delay: expected >= 0 s, got {delay!r}")
        self.tokenizer = ActionTokenizer(bounds or ActionBounds())
        self._bins = [self.tokenizer.from_text(a) for a in actions]
        self.delay = float(delay)
        self._index = 0
        self.observations: list[Observation] = []
        self.questions: list[tuple[str, tuple[int, ...]]] = []  # (question, image shape) asked

    def infer(self, observation: Observation) -> RobotAction:
        start = time.perf_counter()
        if self.delay:
            time.sleep(self.delay)
        bins = self._bins[min(self._index, len(self._bins) - 1)]
        self._index += 1
        self.observations.append(observation)
        return self.tokenizer.decode(bins, latency=time.perf_counter() - start)

    def reset(self) -> None:
        self._index = 0
        self.observations.clear()

    def answer(self, image: np.ndarray, question: str, max_new_tokens: int = 32) -> str:
        """Echo double of :meth:`rt2_policy.vla_policy.VLAPolicy.answer` (tests, bring-up).

        Returns:
            ``"scripted answer: {question}"`` cut to ``max_new_tokens`` words.

        Raises:
            ValueError: on an image that is not ``(H, W, 3)`` uint8, an empty question or
                ``max_new_tokens < 1``.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected an (H, W, 3) uint8 array, got {image.shape} "
                             f"{image.dtype}")
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question: expected a non-empty string, got {question!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: expected >= 1, got {max_new_tokens}")
        self.questions.append((question, tuple(image.shape)))
        return " ".join(f"scripted answer: {question.strip()}".split()[:max_new_tokens])

    @property
    def metadata(self) -> dict:
        return {"model_id": "scripted", "action_bounds": self.tokenizer.bounds.to_dict(),
                "num_bins": self.tokenizer.num_bins}
