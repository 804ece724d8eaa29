"""Chain-of-thought "Plan:" targets of RT-2 §4.4 (Fig. 9): a plan in words before the action.

RT-2 augments robot data so that the answer first states a plan, then the action tokens:
``"Plan: pick rxbar chocolate. Action: 1 128 124 136 121 158 111 255."``. rt2 writes the
answer of an action prompt as::

    plan: {plan}. action: {8 action tokens}

lower-case and with ``":"``/``"."`` as separate words, because the tiny model's WordLevel
tokenizer (:mod:`rt2_policy.tiny_model`) lower-cases text and isolates punctuation: the target
becomes the tokens ``plan : pick up the red cube . action : 0 132 …`` and every one of them is in
its vocabulary. Subword tokenizers (Gemma, Qwen2, Llama) spell the same text with their own
pieces. The action tokens are whatever the checkpoint's
:class:`~rt2_policy.token_mapping.ActionTokenMapping` maps the bins to (for ``integer_tokens``
the text ``"0 132 …"``; for other schemes the ids are spliced in directly, see
:mod:`rt2_policy.training.collate`).

At inference (:meth:`rt2_policy.vla_policy.VLAPolicy.infer` with ``chain_of_thought=True``) the
plan is generated over the full vocabulary until the tokens of :data:`ACTION_MARKER`, then the
8 action tokens are decoded with the constrained decoder on prompt + plan.

Nothing in this module imports torch, transformers or rclpy.
"""

from __future__ import annotations

import re

#: Word that opens the plan (RT-2 Fig. 9: "Plan:").
PLAN_PREFIX = "plan:"

#: Marker between plan and action tokens (RT-2 Fig. 9: "Action:"); generation of the plan
#: stops once the model has written it.
ACTION_MARKER = "action:"

_WS_RE = re.compile(r"\s+")
_MARKER_RE = re.compile(r"\baction\s*:", re.IGNORECASE)
_PREFIX_RE = re.compile(r"^\s*plan\s*:", re.IGNORECASE)


def normalize_plan(plan: str) -> str:
    """Collapse whitespace, strip, drop trailing periods; e.g. ``" Pick  up the cube. "`` →
    ``"Pick up the cube"``.

    Raises:
        ValueError: when ``plan`` is not a string, is empty after normalisation, or contains the
            :data:`ACTION_MARKER` (the plan would end early when parsed).
    """
    if not isinstance(plan, str):
        raise ValueError(f"plan: expected a string, got {type(plan).__name__}")
    text = _WS_RE.sub(" ", plan).strip().rstrip(".").rstrip()
    if not text:
        raise ValueError(f"plan: expected a non-empty string, got {plan!r}")
    if _MARKER_RE.search(text):
        raise ValueError(f"plan: expected no {ACTION_MARKER!r} marker inside, got {plan!r}")
    return text


def plan_prefix_text(plan: str) -> str:
    """The text before the action marker: ``"plan: {plan}."`` (plan normalised).

    Raises:
        ValueError: as :func:`normalize_plan`.
    """
    return f"{PLAN_PREFIX} {normalize_plan(plan)}."


def plan_target_text(plan: str, action_text: str) -> str:
    """The full chain-of-thought answer ``"plan: {plan}. action: {action_text}"``.

    Args:
        plan: natural-language plan, e.g. ``"pick up the red cube"``.
        action_text: the 8 action tokens as text, e.g. ``"0 132 128 90 128 128 128 255"``.

    Raises:
        ValueError: as :func:`normalize_plan`, or on an empty ``action_text``.
    """
    if not isinstance(action_text, str) or not action_text.strip():
        raise ValueError(f"action_text: expected a non-empty string, got {action_text!r}")
    return f"{plan_prefix_text(plan)} {ACTION_MARKER} {action_text.strip()}"


def parse_plan_and_action(text: str) -> tuple[str, str]:
    """Split a chain-of-thought answer into ``(plan, action_text)``.

    Accepts what :func:`plan_target_text` writes and what a WordLevel tokenizer decodes it to
    (``"plan : pick up the red cube . action : 0 132 …"``); case-insensitive. The plan is the
    text between the optional ``"plan:"`` prefix and the first ``"action:"`` marker, with
    whitespace collapsed and trailing periods dropped; ``action_text`` is the rest, stripped
    (``""`` when the model stopped right after the marker).

    Raises:
        ValueError: when ``text`` is not a string or has no ``"action:"`` marker.
    """
    if not isinstance(text, str):
        raise ValueError(f"text: expected a string, got {type(text).__name__}")
    match = _MARKER_RE.search(text)
    if match is None:
        raise ValueError(f"text: expected an {ACTION_MARKER!r} marker, got {text!r}")
    head = _PREFIX_RE.sub("", text[: match.start()], count=1)
    plan = _WS_RE.sub(" ", head).strip().rstrip(".").rstrip()
    action = _WS_RE.sub(" ", text[match.end():]).strip()
    return plan, action


def _text_ids(tokenizer: object, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    return [int(i) for i in ids]


def action_marker_ids(tokenizer: object) -> list[int]:
    """Token ids of ``" action:"`` under ``tokenizer`` (no special tokens).

    Training targets and the inference stop condition both use these ids, so the plan ends
    where the model was taught to end it, whatever the tokenizer.

    Raises:
        ValueError: when the tokenizer returns no ids for the marker.
    """
    ids = _text_ids(tokenizer, " " + ACTION_MARKER)
    if not ids:
        raise ValueError(f"tokenizer: expected ids for {ACTION_MARKER!r}, got none")
    return ids


def plan_prefix_ids(tokenizer: object, plan: str) -> list[int]:
    """Token ids of ``" plan: {plan}."`` (see :func:`plan_prefix_text`), no special tokens.

    Raises:
        ValueError: as :func:`normalize_plan`.
    """
    return _text_ids(tokenizer, " " + plan_prefix_text(plan))
