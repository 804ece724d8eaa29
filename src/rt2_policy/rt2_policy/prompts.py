"""Prompt templates of RT-2 (Brohan et al., 2023, §3.2) and their image-token placement.

RT-2 casts control as visual question answering: the instruction is wrapped as
``"Q: what action should the robot take to {instruction}? A:"`` and the model answers with the
8 action integers. The same model answers ordinary questions (``"Q: {question} A:"``), which is
what :meth:`rt2_policy.vla_policy.VLAPolicy.answer` uses.

Nothing in this module imports torch, transformers or rclpy.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

#: RT-2 §3.2 action prompt; ``{instruction}`` is the normalised task.
ACTION_PROMPT_TEMPLATE = "Q: what action should the robot take to {instruction}? A:"

#: Plain VQA prompt used for non-action questions.
VQA_PROMPT_TEMPLATE = "Q: {question} A:"

#: The placeholder that ``Idefics3Processor`` expands into the image token sequence.
DEFAULT_IMAGE_TOKEN = "<image>"

_WS_RE = re.compile(r"\s+")


def normalize_instruction(instruction: str) -> str:
    """Strip, collapse runs of whitespace to one space and drop trailing periods.

    ``"  Pick up   the red cube. "`` → ``"Pick up the red cube"``. Case is kept.

    Raises:
        ValueError: when ``instruction`` is not a string or is empty after normalisation.
    """
    if not isinstance(instruction, str):
        raise ValueError(f"instruction: expected a string, got {type(instruction).__name__}")
    text = _WS_RE.sub(" ", instruction).strip().rstrip(".").rstrip()
    if not text:
        raise ValueError(f"instruction: expected a non-empty string, got {instruction!r}")
    return text


#: Bins of the gripper state in the prompt: RT-2's 256 (§3.2), the action's own gripper scale.
GRIPPER_STATE_BINS = 256


def gripper_state_bin(gripper_state: float) -> int:
    """The gripper state as the integer written into the prompt: ``round(state * 255)``.

    Args:
        gripper_state: how far the gripper is closed, in [0, 1]: 0 fully open, 1 fully closed
            (the convention of :attr:`rt2_policy.contract.RobotAction.gripper`); a gripper
            closed on an object reads in between.

    Raises:
        ValueError: "expected a finite number in [0, 1], got …".
    """
    if isinstance(gripper_state, bool) or not isinstance(gripper_state, numbers.Real):
        raise ValueError(f"gripper_state: expected a finite number in [0, 1], "
                         f"got {gripper_state!r}")
    value = float(gripper_state)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"gripper_state: expected a finite number in [0, 1], got {value!r}")
    return int(round(value * (GRIPPER_STATE_BINS - 1)))


def instruction_with_gripper_state(instruction: str, gripper_state: float) -> str:
    """``"{instruction}, gripper {bin}"``: the task with the gripper state appended, as integer
    tokens like the action's (PaLI-X style, RT-2 §3.2); see :func:`action_prompt`.

    Raises:
        ValueError: on an empty instruction or a state outside [0, 1].
    """
    return f"{normalize_instruction(instruction)}, gripper {gripper_state_bin(gripper_state)}"


#: Box the tcp position is binned over, per axis ``(low, high)`` in metres, in the arm's base
#: frame (``panda_link0``, REP 103 axes): 256 bins of 3.9 mm per axis, saturating outside.
TCP_POSITION_BOUNDS = ((0.0, 1.0), (-0.5, 0.5), (-0.1, 0.9))


def tcp_position_bins(tcp_position: Any,
                      bounds: Sequence[Sequence[float]] = TCP_POSITION_BOUNDS
                      ) -> tuple[int, int, int]:
    """The tcp position as the three integers written into the prompt: per axis,
    ``round((p - low) / (high - low) * 255)``, clipped to 0..255 (RT-2's 256 uniform bins, §3.2).

    Args:
        tcp_position: ``(x, y, z)`` of the tool centre point in the arm's base frame, metres
            (:func:`rt2_policy.proprioception.panda_tcp_position`).
        bounds: per axis ``(low, high)``, metres, low < high.

    Raises:
        ValueError: "expected 3 finite metres, got …", or on bad bounds.
    """
    try:
        position = np.asarray(tcp_position, dtype=float).ravel()
    except (TypeError, ValueError):
        position = np.array([np.nan])
    if position.shape != (3,) or not np.all(np.isfinite(position)):
        raise ValueError(f"tcp_position: expected 3 finite metres (x, y, z), got "
                         f"{tcp_position!r}")
    box = np.asarray(bounds, dtype=float)
    if box.shape != (3, 2) or not np.all(np.isfinite(box)) or not np.all(box[:, 0] < box[:, 1]):
        raise ValueError(f"bounds: expected 3 finite (low, high) pairs with low < high, got "
                         f"{bounds!r}")
    scaled = (position - box[:, 0]) / (box[:, 1] - box[:, 0]) * (GRIPPER_STATE_BINS - 1)
    return tuple(int(b) for b in np.clip(np.round(scaled), 0, GRIPPER_STATE_BINS - 1))


def action_prompt(instruction: str, gripper_state: float | None = None,
                  tcp_position: Any = None, grasped: bool | None = None) -> str:
    """RT-2's action prompt (§3.2): ``"Q: what action should the robot take to {instruction}? A:"``.

    With ``gripper_state`` (for models trained with it, ``"prompt": {"gripper_state": true}`` in
    ``action_tokenizer_config.json``) the question carries the proprioception RT-2's single
    camera frame cannot show at low resolution, whether the fingers are closed (on the object):
    ``"Q: what action should the robot take to pick up the red cube, gripper 96? A:"``. With
    ``tcp_position`` (``"tcp_position": true``) it also carries where the tool centre point is,
    binned by :func:`tcp_position_bins`: ``"…, gripper 96, tcp 120 131 33? A:"``. With
    ``grasped`` (``"grasp_memory": true``) it ends with the episode memory of
    :mod:`rt2_policy.grasp_memory`, whether the gripper has held an object so far this episode,
    as ``", grasp 1"`` or ``", grasp 0"``: ``"…, tcp 120 131 33, grasp 1? A:"``.

    Raises:
        ValueError: on an empty or non-string instruction (see :func:`normalize_instruction`),
            a gripper state outside [0, 1], a non-finite tcp position or a ``grasped`` that is
            not a bool.
    """
    if gripper_state is not None:
        instruction = instruction_with_gripper_state(instruction, gripper_state)
    if tcp_position is not None:
        x, y, z = tcp_position_bins(tcp_position)
        instruction = f"{normalize_instruction(instruction)}, tcp {x} {y} {z}"
    if grasped is not None:
        if not isinstance(grasped, (bool, np.bool_)):
            raise ValueError(f"grasped: expected None or a bool, got {grasped!r}")
        instruction = f"{normalize_instruction(instruction)}, grasp {int(grasped)}"
    return ACTION_PROMPT_TEMPLATE.format(instruction=normalize_instruction(instruction))


def vqa_prompt(question: str) -> str:
    """Plain question prompt ``"Q: {question} A:"`` (whitespace-normalised, case kept).

    Raises:
        ValueError: on an empty or non-string question.
    """
    if not isinstance(question, str):
        raise ValueError(f"question: expected a string, got {type(question).__name__}")
    text = _WS_RE.sub(" ", question).strip()
    if not text:
        raise ValueError(f"question: expected a non-empty string, got {question!r}")
    return VQA_PROMPT_TEMPLATE.format(question=text)


#: Where the image placeholder goes relative to the text prompt (see :func:`with_image`).
IMAGE_POSITIONS = ("prefix", "suffix")


def check_image_position(position: str) -> str:
    """Return ``position`` if it is a known prompt layout (:data:`IMAGE_POSITIONS`).

    Raises:
        ValueError: "expected one of ('prefix', 'suffix'), got …".
    """
    if position not in IMAGE_POSITIONS:
        raise ValueError(f"position: expected one of {IMAGE_POSITIONS}, got {position!r}")
    return position


def with_image(prompt: str, image_token: str = DEFAULT_IMAGE_TOKEN,
               position: str = "prefix") -> str:
    """``prompt`` with one image placeholder, the layout ``Idefics3Processor`` expands.

    The processor replaces each ``<image>`` with
    ``<fake_token_around_image><global-img><image>×image_seq_len<fake_token_around_image>``.
    ``position="prefix"`` (image, then text: PaLI-X, PaliGemma, Idefics3 chat templates) suits
    pretrained checkpoints. ``"suffix"`` (text, then image, then the answer) is for models
    trained from scratch: with the image first, a causal decoder trained from random weights
    turns the image tokens into its attention sink (the first tokens every position can see),
    inflating them to one constant massive activation that carries no image content (measured
    in this project: image-token norm 9 → 190 and no image dependence by step 1,000; Sun et al.,
    2024, "Massive activations in large language models"; Xiao et al., 2024, attention sinks).
    The choice is stored with the model (``action_tokenizer_config.json``, ``"prompt"``).

    Raises:
        ValueError: when ``prompt`` already contains ``image_token``, or on an unknown
            ``position``.
    """
    if image_token in prompt:
        raise ValueError(f"prompt: expected no {image_token!r} placeholder, got {prompt!r}")
    check_image_position(position)
    return f"{image_token}{prompt}" if position == "prefix" else f"{prompt}{image_token}"
