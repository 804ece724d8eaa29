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

Besides plans in words, :func:`goal_plan` writes a *goal plan*: the phase of the task and
the image point of where the arm is heading, ``"reach 112 80"`` (to the instructed object) or
``"bring 40 141"`` (holding it, to where it goes), ``"drop 40 141"`` on a frame whose action
lets go of it there, or ``"done …"`` on a frame whose action terminates the episode. The point
is in the 0..255 image coordinates of the pointing answers (PaLI-X-style integer tokens, RT-2
§3.1), so the model first writes down *where* it goes, in the words it already uses to point
at objects, and the 8 action tokens then attend to that point (trained with
``TrainConfig.cot_plan="goal"``).
A *waypoint plan* (``TrainConfig.cot_plan="waypoint"``) names the point in the arm's base
frame instead, in the bins of the prompt's tcp position (``"bring 131 140 25"``,
:func:`rt2_policy.prompts.tcp_position_bins`): the demonstrator's current waypoint, so the
action is the step from the prompt's tcp towards the plan's point, the same units on both sides.

Nothing in this module imports torch, transformers or rclpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Word that opens the plan (RT-2 Fig. 9: "Plan:").
PLAN_PREFIX = "plan:"

#: Marker between plan and action tokens (RT-2 Fig. 9: "Action:"); generation of the plan
#: stops once the model has written it.
ACTION_MARKER = "action:"

#: Phases of a goal plan: moving to the instructed object, carrying it (the gripper holds it)
#: to where the task puts it, letting go of it there (the action opens a gripper that holds
#: it), and done (the frame's action terminates the episode, RT-2's terminate dimension), so
#: that the plan names each decision the gripper and terminate tokens then carry out (README
#: "Status", items 16 and 18). Decoding does not force the action to agree with the phase
#: (item 16: measured, forcing terminate would not have helped).
GOAL_PLAN_PHASES = ("reach", "bring", "drop", "done")

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


#: Coordinates of the point of each kind of goal plan, by ``TrainConfig.cot_plan`` (the kind a
#: checkpoint stores, ``"prompt": {"cot_plan": …}``): 2 for an image point, 3 for a waypoint
#: in the prompt's tcp bins; plans in words (``"task"``) are absent.
GOAL_PLAN_KINDS = {"goal": 2, "waypoint": 3}
#: The coordinate counts a goal plan's point may have.
GOAL_PLAN_COORDINATES = tuple(sorted(set(GOAL_PLAN_KINDS.values())))


def goal_plan_phase(carrying: bool, terminate: bool = False, releasing: bool = False) -> str:
    """The phase of a frame's goal plan (:data:`GOAL_PLAN_PHASES`): ``"done"`` when its action
    terminates the episode, else ``"drop"`` when it opens a gripper that holds the instructed
    object (``releasing``), else ``"bring"`` when the gripper holds it (``carrying``), else
    ``"reach"``."""
    if terminate:
        return "done"
    if releasing:
        return "drop"
    return "bring" if carrying else "reach"


def goal_plan(phase: str, point: tuple[int, ...] | None) -> str:
    """The goal plan of one frame: ``"{phase} {x} {y}"`` (an image point), ``"{phase} {x} {y}
    {z}"`` (a waypoint in tcp bins), or ``"{phase}"`` without a point.

    Args:
        phase: one of :data:`GOAL_PLAN_PHASES` (:func:`goal_plan_phase`).
        point: where the arm is heading, ints in 0..255: ``(x, y)`` in image coordinates
            scaled to 256 per axis (x right, y down, as ``observation.target_point``), or
            ``(x, y, z)`` in the bins of the prompt's tcp position
            (:func:`rt2_policy.prompts.tcp_position_bins`, ``panda_link0``); None when it is
            out of view.

    Raises:
        ValueError: on an unknown phase, or a point that is not two or three ints in 0..255.
    """
    if phase not in GOAL_PLAN_PHASES:
        raise ValueError(f"phase: expected one of {GOAL_PLAN_PHASES}, got {phase!r}")
    if point is None:
        return phase
    if (len(point) not in GOAL_PLAN_COORDINATES
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255
                       for v in point)):
        raise ValueError(f"point: expected two or three ints in 0..255, got {point!r}")
    return " ".join([phase, *(str(v) for v in point)])


def parse_goal_plan(plan: str) -> tuple[str, tuple[int, ...] | None] | None:
    """``(phase, point)`` of a goal plan written by :func:`goal_plan`, or None when ``plan`` is
    not one (a plan in words, or a malformed generation); ``point`` is None when absent, else
    two (image point) or three (waypoint) ints."""
    if not isinstance(plan, str):
        return None
    words = plan.lower().replace(".", " ").split()
    if (not words or words[0] not in GOAL_PLAN_PHASES
            or len(words) - 1 not in (0, *GOAL_PLAN_COORDINATES)):
        return None
    if len(words) == 1:
        return words[0], None
    if not all(w.isdigit() and int(w) <= 255 for w in words[1:]):
        return None
    return words[0], tuple(int(w) for w in words[1:])


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


@dataclass(frozen=True)
class GoalPlanGrammar:
    """How a tokenizer spells ``" plan: {phase} {x} {y}[ {z}]. action:"``, one token per word.

    Constrained decoding of a goal plan (:class:`rt2_policy.vla_policy.VLAPolicy`) appends
    ``head_ids`` to the prompt, then decodes one of ``phase_ids``, ``coordinates`` of
    ``point_ids`` (``point_ids[v]`` spells the integer ``v``), then ``tail_ids`` (the period
    and the action marker) forced, then the 8 action tokens — so the plan always parses and
    the action follows exactly the ids training put after it (:func:`plan_prefix_ids` then
    :func:`action_marker_ids`).

    Attributes:
        head_ids: ids of ``" plan:"``.
        phase_ids: id of each of :data:`GOAL_PLAN_PHASES`.
        point_ids: id of ``"0"`` … ``"255"``, 256 entries.
        tail_ids: ids of the period after the point, then of :func:`action_marker_ids`.
        coordinates: integers in the point, one of :data:`GOAL_PLAN_COORDINATES`.
    """

    head_ids: tuple[int, ...]
    phase_ids: tuple[int, ...]
    point_ids: tuple[int, ...]
    tail_ids: tuple[int, ...]
    coordinates: int = 2

    @property
    def plan_steps(self) -> int:
        """Decoded steps of the plan: the phase and the point's coordinates."""
        return 1 + self.coordinates

    def allowed_ids_per_step(self) -> list[list[int]]:
        """The plan's steps for :func:`rt2_policy.constrained_decoding.build_allowed_mask`:
        phase, each coordinate, then one forced id per tail token (``plan_steps +
        len(tail_ids)`` steps)."""
        return [list(self.phase_ids), *(list(self.point_ids) for _ in range(self.coordinates)),
                *([i] for i in self.tail_ids)]

    def plan_of(self, ids: list[int]) -> str:
        """The :func:`goal_plan` text of the ids decoded at the plan's steps (phase, then the
        coordinates).

        Raises:
            ValueError: when an id is not one the grammar allows at its step, or there are not
                :attr:`plan_steps` ids.
        """
        if len(ids) != self.plan_steps:
            raise ValueError(f"ids: expected {self.plan_steps} (phase and {self.coordinates} "
                             f"coordinates), got {len(ids)}")
        phase, *point = ids
        return goal_plan(GOAL_PLAN_PHASES[self.phase_ids.index(phase)],
                         tuple(self.point_ids.index(v) for v in point))


def goal_plan_grammar(tokenizer: object, coordinates: int = 2) -> GoalPlanGrammar | None:
    """The :class:`GoalPlanGrammar` of ``tokenizer`` for points of ``coordinates`` integers, or
    None when it does not spell every phase and every integer 0..255 as one token each, or
    spells a whole plan differently from its pieces (e.g. subword tokenizers that merge
    ``"34."``); the caller then generates the plan over the full vocabulary instead.

    Raises:
        ValueError: ``coordinates`` not one of :data:`GOAL_PLAN_COORDINATES`.
    """
    if coordinates not in GOAL_PLAN_COORDINATES:
        raise ValueError(f"coordinates: expected one of {GOAL_PLAN_COORDINATES}, got "
                         f"{coordinates!r}")
    head = _text_ids(tokenizer, " " + PLAN_PREFIX)

    def single(word: str) -> int | None:
        ids = _text_ids(tokenizer, " " + word)
        return ids[0] if len(ids) == 1 else None

    phases = [single(p) for p in GOAL_PLAN_PHASES]
    points = [single(str(v)) for v in range(256)]
    if not head or None in phases or None in points:
        return None
    marker = action_marker_ids(tokenizer)
    tail: list[int] | None = None
    for phase, *point in ((0, 12, 34, 56), (1, 255, 0, 7), (2, 9, 100, 31)):
        point = point[:coordinates]
        full = plan_prefix_ids(tokenizer, goal_plan(GOAL_PLAN_PHASES[phase], tuple(point)))
        body = [*head, phases[phase], *(points[v] for v in point)]
        if full[:len(body)] != body or len(full) == len(body):
            return None
        if tail is not None and full[len(body):] != tail:
            return None
        tail = full[len(body):]
    return GoalPlanGrammar(tuple(head), tuple(phases), tuple(points),  # type: ignore[arg-type]
                           tuple([*(tail or ()), *marker]), coordinates)


def plan_prefix_ids(tokenizer: object, plan: str) -> list[int]:
    """Token ids of ``" plan: {plan}."`` (see :func:`plan_prefix_text`), no special tokens.

    Raises:
        ValueError: as :func:`normalize_plan`.
    """
    return _text_ids(tokenizer, " " + plan_prefix_text(plan))
