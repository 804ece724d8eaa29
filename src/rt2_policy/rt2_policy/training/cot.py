"""Chain-of-thought augmentation of robot targets (RT-2 §4.4, Fig. 9: "Plan: … Action: …").

With probability ``TrainConfig.cot`` a robot example's target becomes
``"plan: {plan}. action: {8 action tokens}"`` instead of the 8 action tokens alone (format and
parser: :mod:`rt2_policy.plans`). The plan is the example's ``"plan"`` field when the dataset
provides one, else the entry of ``TrainConfig.plans_file`` for its instruction (e.g. the
concrete task behind an abstract or paraphrased instruction, as RT-2's "I am hungry" → "pick
rxbar chocolate"), else the instruction itself, normalised — so a dataset without plans still
teaches the format, and the policy's plan then restates the task it is pursuing.

Nothing in this module imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rt2_policy.plans import (
    ACTION_MARKER,
    PLAN_PREFIX,
    normalize_plan,
    parse_plan_and_action,
    plan_prefix_text,
    plan_target_text,
)
from rt2_policy.prompts import normalize_instruction

__all__ = [
    "ACTION_MARKER",
    "PLAN_PREFIX",
    "choose_plan",
    "example_plan",
    "parse_plan_and_action",
    "plan_prefix_text",
    "plan_target_text",
]


def example_plan(example: Mapping[str, Any]) -> str:
    """The plan of a robot example: its non-empty ``"plan"`` field, else its ``"task"``.

    Returns:
        the normalised plan (see :func:`rt2_policy.plans.normalize_plan`), lower-cased.

    Raises:
        ValueError: when neither field holds usable text.
    """
    plan = example.get("plan")
    if isinstance(plan, str) and plan.strip():
        return normalize_plan(plan).lower()
    task = example.get("task")
    return normalize_plan(normalize_instruction(task)).lower()


def choose_plan(example: Mapping[str, Any], rng: np.random.Generator,
                probability: float) -> str | None:
    """Draw whether this robot example gets a plan; return it, or None for a plain target.

    Args:
        example: a robot example (``"task"``, optional ``"plan"``).
        rng: the batch's augmentation generator (one draw per call, even at probability 0 or 1,
            so the draws of later examples do not depend on the setting).
        probability: in [0, 1].

    Raises:
        ValueError: on a probability outside [0, 1], or as :func:`example_plan`.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability: expected a number in [0, 1], got {probability}")
    draw = rng.random()
    if draw >= probability:
        return None
    return example_plan(example)
