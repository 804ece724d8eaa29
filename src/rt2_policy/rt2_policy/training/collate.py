"""Turn robot and VQA examples into token/label tensors and batches for next-token training.

Each example becomes ``prompt ‖ target`` where the prompt is exactly what the policy sees at
inference (:mod:`rt2_policy.prompts`, image placeholder first, expanded by the processor):

* robot (RT-2 §3.2): prompt ``"<image>Q: what action should the robot take to {task}? A:"``,
  target = the 8 action token ids (the checkpoint's
  :class:`~rt2_policy.token_mapping.ActionTokenMapping` of the
  :class:`~rt2_policy.action_tokenizer.ActionTokenizer` bins of the continuous action) + EOS;
  with a chain-of-thought plan (RT-2 §4.4) the ids of ``" plan: {plan}."`` and ``" action:"``
  come first (:mod:`rt2_policy.plans`);
* VQA: prompt ``"<image>Q: {question} A:"``, target = ids of ``" {answer}"`` + EOS.

Labels are the target ids and ``-100`` (ignored by cross-entropy) on every prompt, image and
padding position, so only answer tokens are learned. Action ids are spliced in as ids, not
re-tokenised text, so every token scheme (``integer_tokens``, ``least_used``, ``last_n``) trains
exactly the ids the constrained decoder reads.

Preprocessing (image decode + processor) runs once per example: :class:`MixtureBatches` keeps
encoded examples in a bounded in-memory cache (floating image tensors stored as float16, a
half-step of 8-bit pixel precision at most) and assembles batches from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rt2_policy.action_tokenizer import ActionTokenizer  # noqa: E402
from rt2_policy.contract import ACTION_DIMS  # noqa: E402
from rt2_policy.data.lerobot_dataset import (  # noqa: E402
    GOAL_POSITION_KEY,
    REFERENCE_POINT_KEY,
    STATE_KEY,
    TARGET_POINT_KEY,
)
from rt2_policy.plans import (  # noqa: E402
    action_marker_ids,
    goal_plan,
    goal_plan_phase,
    plan_prefix_ids,
)
from rt2_policy.prompts import (  # noqa: E402
    DEFAULT_IMAGE_TOKEN,
    action_prompt,
    check_image_position,
    tcp_position_bins,
    vqa_prompt,
    with_image,
)
from rt2_policy.proprioception import (  # noqa: E402
    PANDA_FINGER_OPEN_POSITION,
    PANDA_TCP_OFFSET,
    gripper_state,
    holds_object,
    panda_tcp_position,
)
from rt2_policy.token_mapping import ActionTokenMapping  # noqa: E402
from rt2_policy.training.config import COT_PLANS, GROUNDING_POINTS  # noqa: E402
from rt2_policy.training.cot import choose_plan, example_plan  # noqa: E402
from rt2_policy.training.grounding import answer_point  # noqa: E402
from rt2_policy.training.mixture import ROBOT, VQA, MixtureSampler  # noqa: E402

#: Label value ignored by ``torch.nn.functional.cross_entropy``.
IGNORE_INDEX = -100

#: ``kind`` codes of a batch row.
KIND_ROBOT = 0
KIND_VQA = 1

#: Processor outputs that are text, not image tensors.
_TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def to_pil(image: Any):
    """``(H, W, 3)`` uint8 RGB array, PIL image or image file path → RGB PIL image
    (arrays and PIL images as at inference: :func:`rt2_policy.vla_policy.to_pil_rgb`).

    Raises:
        ValueError: on anything else.
    """
    if isinstance(image, (str, Path)):
        from PIL import Image

        with Image.open(image) as img:
            return img.convert("RGB")
    from PIL import Image

    if not isinstance(image, (np.ndarray, Image.Image)):
        raise ValueError(
            f"image: expected an array, PIL image or path, got {type(image).__name__}")
    from rt2_policy.vla_policy import to_pil_rgb

    return to_pil_rgb(image)


@dataclass(frozen=True)
class EncodedExample:
    """One preprocessed example, before augmentation.

    Attributes:
        kind: :data:`KIND_ROBOT` or :data:`KIND_VQA`.
        prompt_ids: prompt token ids incl. BOS and expanded image tokens, shape ``(T,)``, int64.
        images: processor image tensors with a leading batch dim of 1 (Idefics3:
            ``pixel_values`` ``(1, 1, 3, H, W)``, ``pixel_attention_mask`` ``(1, 1, H, W)``);
            floating ones stored as float16, 0/1 attention masks as bool.
        target_ids: robot: the 8 action token ids; VQA: the answer ids (EOS not included).
        plan: robot: the chain-of-thought plan source (``{"task", "plan"}``), else empty.
        point: VQA pointing answer, or a robot frame's target point, ``(x, y)`` in 0..255
            (for the grounding loss, :mod:`rt2_policy.training.grounding`), else None.
        reference_point: a robot frame's reference-object point (move near, place), ``(x, y)``
            in 0..255 (for the reference grounding loss), else None.
    """

    kind: int
    prompt_ids: torch.Tensor
    images: dict[str, torch.Tensor]
    target_ids: tuple[int, ...]
    plan: dict[str, str] = field(default_factory=dict)
    point: tuple[int, int] | None = None
    reference_point: tuple[int, int] | None = None

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the tensors, bytes."""
        return int(self.prompt_ids.nbytes + sum(t.nbytes for t in self.images.values()))


def _state_at(example: Mapping[str, Any], indices: tuple[int, ...], field: str) -> np.ndarray:
    """``observation.state[indices]`` of a robot frame, float64.

    Raises:
        ValueError: on a frame without state, or indices past its end (naming ``field``).
    """
    # LeRobotDataset frames name it "state"; raw LeRobot rows "observation.state".
    state = example.get("state", example.get(STATE_KEY))
    if state is None:
        raise ValueError(f"robot example: expected key 'state' or {STATE_KEY!r} for "
                         f"{field}, got {sorted(example)}")
    state = np.asarray(state, dtype=float).ravel()
    if max(indices) >= state.size:
        raise ValueError(f"{field}: expected positions < {state.size} (the length of "
                         f"{STATE_KEY}), got {indices}")
    return state[list(indices)]


class ExampleEncoder:
    """Encode robot / VQA examples for one checkpoint's processor and action token mapping.

    Args:
        processor: the checkpoint's processor (expands ``image_token`` in text; has
            ``.tokenizer`` with ``eos_token_id``).
        action_tokenizer: bounds and bins of the 8-dim action.
        token_mapping: bins → vocabulary ids.
        plans: instruction → chain-of-thought plan, for robot examples without a ``"plan"``
            field (e.g. a paraphrased instruction → its canonical task).
        image_position: ``"prefix"`` or ``"suffix"``, the checkpoint's prompt layout
            (:func:`rt2_policy.prompts.with_image`).
        gripper_state_indices: positions of the finger joints (metres) in a robot frame's
            ``observation.state``; when non-empty the action prompt carries the gripper state
            (:func:`rt2_policy.proprioception.gripper_state` with ``gripper_open_position``).
        grounding_point: ``"target"``: a robot frame's ``point`` is its target point;
            ``"goal"``: the reference point instead while the target is held (the action
            closes the gripper and, with ``gripper_state_indices``, the fingers are between
            :data:`~rt2_policy.proprioception.HOLDING_STATE` bounds: on something, not closed
            on nothing), so the pointer follows what the arm moves towards (the target, then
            where it goes).
        tcp_position_indices: positions of the 7 arm joints (radians) in a robot frame's
            ``observation.state``; when given the action prompt carries the tool centre point
            (:func:`rt2_policy.proprioception.panda_tcp_position` with ``tcp_offset``, metres).
        cot_plan: what a robot frame's chain-of-thought plan says: ``"task"`` (its ``"plan"``
            field, its ``plans`` entry, else the instruction) or ``"goal"``
            (:func:`rt2_policy.plans.goal_plan`: ``"reach X Y"`` at the target point, then
            ``"bring X Y"`` at the reference point while the target is held, ``"drop X Y"``
            there on the frame that opens the gripper around it, as
            ``grounding_point="goal"`` decides; the target point when there is no reference;
            ``"done X Y"`` when the frame's action terminates,
            :func:`~rt2_policy.plans.goal_plan_phase`)
            or ``"waypoint"`` (the same phases with the frame's ``observation.goal_position``,
            where the demonstrator's action heads the tcp, in the prompt's tcp bins:
            ``"bring 131 140 25"``, :func:`rt2_policy.prompts.tcp_position_bins`).
        grasp_memory: the action prompt ends with the frame's ``"grasped"`` (the episode's
            grasp memory, :mod:`rt2_policy.grasp_memory`; robot frames then need it,
            :class:`rt2_policy.training.sources.GraspMemoryFrames` adds it).

    Raises:
        ValueError: when the processor has no tokenizer, the mapping and tokenizer disagree on
            the number of bins, ``grounding_point`` is not one of
            :data:`rt2_policy.training.config.GROUNDING_POINTS` or ``cot_plan`` not one of
            :data:`rt2_policy.training.config.COT_PLANS`.
    """

    def __init__(self, processor: Any, action_tokenizer: ActionTokenizer,
                 token_mapping: ActionTokenMapping,
                 plans: Mapping[str, str] | None = None, image_position: str = "prefix",
                 gripper_state_indices: Sequence[int] = (),
                 gripper_open_position: float = PANDA_FINGER_OPEN_POSITION,
                 grounding_point: str = "target",
                 tcp_position_indices: Sequence[int] = (),
                 tcp_offset: float = PANDA_TCP_OFFSET, cot_plan: str = "task",
                 grasp_memory: bool = False) -> None:
        if grounding_point not in GROUNDING_POINTS:
            raise ValueError(f"grounding_point: expected one of {GROUNDING_POINTS}, got "
                             f"{grounding_point!r}")
        if cot_plan not in COT_PLANS:
            raise ValueError(f"cot_plan: expected one of {COT_PLANS}, got {cot_plan!r}")
        self.cot_plan = cot_plan
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("processor: expected a .tokenizer attribute, got none")
        if token_mapping.num_bins != action_tokenizer.num_bins:
            raise ValueError(f"token_mapping.num_bins: expected {action_tokenizer.num_bins}, "
                             f"got {token_mapping.num_bins}")
        self.processor = processor
        self.tokenizer = tokenizer
        self.action_tokenizer = action_tokenizer
        self.token_mapping = token_mapping
        self.image_token = getattr(processor, "image_token", None) or DEFAULT_IMAGE_TOKEN
        check_image_position(image_position)
        self.image_position = image_position
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                          else tokenizer.eos_token_id)
        eos = tokenizer.eos_token_id
        self.eos_ids: tuple[int, ...] = () if eos is None else (int(eos),)
        self.marker_ids: tuple[int, ...] = tuple(action_marker_ids(tokenizer))
        self._text_cache: dict[str, tuple[int, ...]] = {}
        self.plans = dict(plans or {})
        self.gripper_state_indices = tuple(int(i) for i in gripper_state_indices)
        self.gripper_open_position = float(gripper_open_position)
        self.grounding_point = grounding_point
        self.tcp_position_indices = tuple(int(i) for i in tcp_position_indices)
        if self.tcp_position_indices and len(self.tcp_position_indices) != 7:
            raise ValueError(f"tcp_position_indices: expected the 7 arm joints' positions, got "
                             f"{self.tcp_position_indices}")
        self.tcp_offset = float(tcp_offset)
        self.grasp_memory = bool(grasp_memory)

    # ------------------------------------------------------------------ pieces
    def text_ids(self, text: str) -> tuple[int, ...]:
        """Token ids of ``text`` without special tokens (memoised)."""
        ids = self._text_cache.get(text)
        if ids is None:
            ids = tuple(int(i) for i in
                        self.tokenizer(text, add_special_tokens=False)["input_ids"])
            self._text_cache[text] = ids
        return ids

    def action_ids(self, action: Any) -> tuple[int, ...]:
        """The 8 vocabulary ids of a continuous RT-2 action.

        Args:
            action: shape ``(8,)``: terminate (>= 0.5 means 1), Δx Δy Δz (m), Δroll Δpitch
                Δyaw (rad), gripper (0 open … 1 closed); out-of-bounds values saturate.

        Raises:
            ValueError: on a wrong shape or non-finite values.
        """
        arr = np.asarray(action, dtype=np.float64)
        if arr.shape != (ACTION_DIMS,):
            raise ValueError(f"action: expected shape ({ACTION_DIMS},), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"action: expected finite values, got {arr.tolist()}")
        bins = self.action_tokenizer.encode(bool(arr[0] >= 0.5), arr[1:4], arr[4:7], arr[7])
        return tuple(int(i) for i in self.token_mapping.bin_to_token_id(bins))

    def encode_prompt(self, image: Any, prompt: str) -> tuple[torch.Tensor, dict]:
        """Run the processor once: ``(prompt_ids (T,) int64, image tensors (float16))``.

        Raises:
            ValueError: when the processor cannot encode the image/prompt.
        """
        try:
            out = self.processor(text=[with_image(prompt, self.image_token, self.image_position)],
                                 images=[[to_pil(image)]], return_tensors="pt")
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - processor errors mean unusable input
            raise ValueError(f"processor: could not encode the example: {exc}") from exc
        prompt_ids = out["input_ids"][0].to(torch.int64).clone()
        images = {}
        for key, value in out.items():
            if key in _TEXT_KEYS or not isinstance(value, torch.Tensor):
                continue
            if value.is_floating_point():
                value = value.to(torch.float16)
            elif key.endswith("attention_mask") and bool(((value == 0) | (value == 1)).all()):
                value = value.to(torch.bool)  # 8x smaller; collate restores int64
            images[key] = value
        return prompt_ids, images

    # ------------------------------------------------------------------ examples
    def encode_robot(self, example: Mapping[str, Any]) -> EncodedExample:
        """Encode ``{"image", "task", "action"[, "plan"][, "observation.target_point"]
        [, "observation.reference_point"][, "observation.goal_position"]}`` (a LeRobot frame;
        the target point, ``(x, y)`` in 0..255 or negative when out of view, feeds the
        grounding loss; the reference point, likewise, the reference grounding loss; the goal
        position, ``(x, y, z)`` metres in ``panda_link0``, the waypoint plan).

        Raises:
            ValueError: on a missing key, empty task, bad image or bad action; with
                ``cot_plan="waypoint"``, on a frame without a finite goal position.
        """
        for key in ("image", "task", "action"):
            if key not in example:
                raise ValueError(f"robot example: expected key {key!r}, got {sorted(example)}")
        state = self.gripper_state_of(example)
        prompt_ids, images = self.encode_prompt(
            example["image"], action_prompt(example["task"], state, self.tcp_position_of(example),
                                            self.grasped_of(example)))
        action_ids = self.action_ids(example["action"])  # validates the action's shape
        target = _target_point(example.get(TARGET_POINT_KEY))
        reference = _target_point(example.get(REFERENCE_POINT_KEY))
        action = np.asarray(example["action"], dtype=float)
        gripper_command = float(action[7])
        carrying = _carrying(gripper_command, state)
        releasing = _releasing(gripper_command, state)
        goal = reference if (carrying or releasing) and reference is not None else target
        phase = goal_plan_phase(carrying, terminate=bool(action[0] >= 0.5), releasing=releasing)
        plan = {"task": str(example["task"])}
        if self.cot_plan == "goal":
            plan["plan"] = goal_plan(phase, goal)
        elif self.cot_plan == "waypoint":
            plan["plan"] = goal_plan(phase, _goal_position_bins(example))
        elif isinstance(example.get("plan"), str) and example["plan"].strip():
            plan["plan"] = example["plan"]
        elif plan["task"] in self.plans:
            plan["plan"] = self.plans[plan["task"]]
        point = goal if self.grounding_point == "goal" else target
        return EncodedExample(KIND_ROBOT, prompt_ids, images, action_ids, plan,
                              point=point, reference_point=reference)

    def gripper_state_of(self, example: Mapping[str, Any]) -> float | None:
        """The frame's gripper state for its prompt, or None when this encoder adds none.

        Raises:
            ValueError: when the frame has no ``state`` (``observation.state``) or it is too
                short.
        """
        if not self.gripper_state_indices:
            return None
        state = _state_at(example, self.gripper_state_indices, "gripper_state_indices")
        return gripper_state(state, self.gripper_open_position)

    def grasped_of(self, example: Mapping[str, Any]) -> bool | None:
        """The frame's grasp memory for its prompt (``example["grasped"]``, added by
        :class:`rt2_policy.training.sources.GraspMemoryFrames`), or None when this encoder adds
        none.

        Raises:
            ValueError: when the frame has no bool ``grasped``.
        """
        if not self.grasp_memory:
            return None
        grasped = example.get("grasped")
        if not isinstance(grasped, (bool, np.bool_)):
            raise ValueError(f"robot example: expected a bool 'grasped' (the episode's grasp "
                             f"memory, rt2_policy.training.sources.GraspMemoryFrames), got "
                             f"{grasped!r}")
        return bool(grasped)

    def tcp_position_of(self, example: Mapping[str, Any]) -> np.ndarray | None:
        """The frame's tool centre point, ``(x, y, z)`` metres in the arm's base frame, for its
        prompt, or None when this encoder adds none.

        Raises:
            ValueError: when the frame has no ``state`` (``observation.state``), it is too
                short, or the joint positions are not finite.
        """
        if not self.tcp_position_indices:
            return None
        joints = _state_at(example, self.tcp_position_indices, "tcp_position_indices")
        return panda_tcp_position(joints, self.tcp_offset)

    def encode_vqa(self, example: Mapping[str, Any]) -> EncodedExample:
        """Encode ``{"image", "question", "answer"}``.

        Raises:
            ValueError: on a missing key, empty question/answer or a bad image.
        """
        for key in ("image", "question", "answer"):
            if key not in example:
                raise ValueError(f"VQA example: expected key {key!r}, got {sorted(example)}")
        answer = example["answer"]
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(f"answer: expected a non-empty string, got {answer!r}")
        prompt_ids, images = self.encode_prompt(example["image"], vqa_prompt(example["question"]))
        return EncodedExample(KIND_VQA, prompt_ids, images, self.text_ids(" " + answer.strip()),
                              point=answer_point(answer))

    def target_ids(self, encoded: EncodedExample, plan: str | None = None) -> tuple[int, ...]:
        """The labelled ids of an example: robot ``[plan ids, marker ids,] 8 action ids, EOS``;
        VQA ``answer ids, EOS``."""
        if encoded.kind == KIND_ROBOT and plan:
            return (*plan_prefix_ids(self.tokenizer, plan), *self.marker_ids,
                    *encoded.target_ids, *self.eos_ids)
        return (*encoded.target_ids, *self.eos_ids)


def _carrying(gripper_command: float, state: float | None) -> bool:
    """The action keeps the gripper closed and (when the encoder reads the gripper ``state``)
    the fingers are on something (:func:`~rt2_policy.proprioception.holds_object`): the target
    is being carried."""
    return gripper_command >= 0.5 and (state is None or holds_object(state))


def _releasing(gripper_command: float, state: float | None) -> bool:
    """The action opens the gripper while the fingers are on something
    (:func:`~rt2_policy.proprioception.holds_object`): the carried target is let go. Always
    False without the gripper ``state``, which alone tells a release from a gripper that is
    already open."""
    return gripper_command < 0.5 and holds_object(state)


def _target_point(value: Any) -> tuple[int, int] | None:
    """``(x, y)`` ints in 0..255 of a frame's target (or reference) point, None when absent or
    out of view."""
    if value is None:
        return None
    point = np.asarray(value, dtype=np.float64).reshape(-1)
    if point.shape != (2,) or not np.all(np.isfinite(point)) or np.any(point < 0):
        return None
    x, y = np.minimum(np.floor(point), 255).astype(int)
    return int(x), int(y)


def _goal_position_bins(example: Mapping[str, Any]) -> tuple[int, int, int]:
    """A frame's ``observation.goal_position`` in the prompt's tcp bins.

    Raises:
        ValueError: when the frame has none (demonstrations recorded without a scripted expert)
            or it is not 3 finite metres.
    """
    if example.get(GOAL_POSITION_KEY) is None:
        raise ValueError(f"robot example: cot_plan 'waypoint' expected key {GOAL_POSITION_KEY!r} "
                         f"(x, y, z metres in panda_link0, rt2_sim.generate_demos), got "
                         f"{sorted(example)}")
    try:
        return tcp_position_bins(example[GOAL_POSITION_KEY])
    except ValueError as err:
        raise ValueError(f"{GOAL_POSITION_KEY}: {err}") from None


def _points(points: Sequence[tuple[int, int] | None]) -> torch.Tensor:
    """``(B, 2)`` int64 points, ``(-1, -1)`` in rows without one."""
    return torch.as_tensor([p if p is not None else (-1, -1) for p in points],
                           dtype=torch.int64)


def collate(rows: Sequence[tuple[EncodedExample, Sequence[int]]], pad_id: int,
            dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Right-pad ``(example, target_ids)`` rows into one batch.

    Returns:
        ``input_ids`` ``(B, T)`` int64 (prompt ‖ target, pad after), ``attention_mask``
        ``(B, T)`` int64, ``labels`` ``(B, T)`` int64 (:data:`IGNORE_INDEX` except on
        targets), ``kind`` ``(B,)`` int64, ``point`` and ``reference_point`` ``(B, 2)`` int64
        (``(x, y)`` in 0..255, ``-1`` in rows without one), and each image tensor concatenated
        along dim 0 (floating ones cast to ``dtype``, bool masks to int64).

    Raises:
        ValueError: on no rows, or image tensors whose shapes cannot be concatenated.
    """
    if not rows:
        raise ValueError("rows: expected at least one example, got none")
    lengths = [len(ex.prompt_ids) + len(target) for ex, target in rows]
    width = max(lengths)
    batch = len(rows)
    input_ids = torch.full((batch, width), int(pad_id), dtype=torch.int64)
    labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.int64)
    attention = torch.zeros((batch, width), dtype=torch.int64)
    for row, ((ex, target), length) in enumerate(zip(rows, lengths, strict=True)):
        n_prompt = len(ex.prompt_ids)
        target_t = torch.as_tensor(list(target), dtype=torch.int64)
        input_ids[row, :n_prompt] = ex.prompt_ids
        input_ids[row, n_prompt:length] = target_t
        labels[row, n_prompt:length] = target_t
        attention[row, :length] = 1
    out = {"input_ids": input_ids, "attention_mask": attention, "labels": labels,
           "kind": torch.as_tensor([ex.kind for ex, _ in rows], dtype=torch.int64),
           "point": _points([ex.point for ex, _ in rows]),
           "reference_point": _points([ex.reference_point for ex, _ in rows])}
    for key in rows[0][0].images:
        try:
            value = torch.cat([ex.images[key] for ex, _ in rows], dim=0)
        except (KeyError, RuntimeError) as exc:
            raise ValueError(f"{key}: expected the same image layout in every example: "
                             f"{exc}") from exc
        if value.is_floating_point():
            value = value.to(dtype)
        elif value.dtype == torch.bool:
            value = value.to(torch.int64)
        out[key] = value
    return out


class MixtureBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item ``b`` is the collated batch of :meth:`MixtureSampler.plan`.

    Used with ``DataLoader(batch_size=None, sampler=range(start, stop))``; example encoding
    happens here (in the DataLoader worker when ``num_workers=1``).

    Args:
        robot: sequence of robot examples (``len``, ``[i]`` → ``{"image", "action", "task"}``).
        vqa: sequence of VQA examples (``{"image", "question", "answer"}``).
        encoder: the checkpoint's :class:`ExampleEncoder`.
        sampler: the :class:`MixtureSampler` over ``len(robot)``, ``len(vqa)`` (None: only
            :meth:`fixed_batches` is used).
        cot: probability in [0, 1] of a chain-of-thought plan in a robot target.
        cache_bytes: memory for encoded examples, bytes (0 = no cache).
    """

    def __init__(self, robot: Sequence, vqa: Sequence, encoder: ExampleEncoder,
                 sampler: MixtureSampler | None, cot: float = 0.0, cache_bytes: int = 0) -> None:
        self.sources = {ROBOT: robot, VQA: vqa}
        self.encoder = encoder
        self.sampler = sampler
        self.cot = float(cot)
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[tuple[str, int], EncodedExample] = {}
        self._cached_bytes = 0
        self._last_nbytes = 0
        self.encoded_count = 0  # examples run through the processor (a cache miss each)

    def __len__(self) -> int:
        return 2**62

    def example(self, source: str, index: int) -> EncodedExample:
        """The encoded example ``index`` of ``source`` (from the cache when possible).

        Raises:
            ValueError: naming the source and index, when the example cannot be encoded.
        """
        key = (source, int(index))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            raw = self.sources[source][int(index)]
            encoded = (self.encoder.encode_robot(raw) if source == ROBOT
                       else self.encoder.encode_vqa(raw))
        except ValueError as exc:
            raise ValueError(f"{source} example {index}: {exc}") from exc
        self.encoded_count += 1
        self._last_nbytes = encoded.nbytes
        if self._cached_bytes + encoded.nbytes <= self.cache_bytes:
            self._cache[key] = encoded
            self._cached_bytes += encoded.nbytes
        return encoded

    def preload(self, progress: bool = False) -> int:
        """Encode examples in index order (sequential reads: LeRobot episodes are read once)
        until the cache is full or every example is cached.

        Returns:
            the number of examples cached.
        """
        total = sum(len(data) for data in self.sources.values())
        from tqdm.auto import tqdm

        with tqdm(total=total, desc="preprocess", unit="ex", disable=not progress,
                  mininterval=1.0) as bar:
            for source, data in self.sources.items():
                for i in range(len(data)):
                    if (source, i) not in self._cache:
                        self.example(source, i)
                    bar.update(1)
                    if self._cached_bytes + self._last_nbytes > self.cache_bytes:
                        return len(self._cache)
        return len(self._cache)

    @property
    def cached_bytes(self) -> int:
        """Memory held by cached examples, bytes."""
        return self._cached_bytes

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        plan = self.sampler.plan(int(index))
        rng = plan.augmentation_rng()
        rows = []
        for source, i in plan.samples:
            encoded = self.example(source, i)
            cot_plan = None
            if encoded.kind == KIND_ROBOT:
                cot_plan = choose_plan(encoded.plan, rng, self.cot)
            rows.append((encoded, self.encoder.target_ids(encoded, cot_plan)))
        batch = collate(rows, self.encoder.pad_id)
        batch["step"] = torch.tensor(int(index))
        return batch

    def fixed_batches(self, samples: Sequence[tuple[str, int]], batch_size: int,
                      plans: bool = False) -> list[dict[str, torch.Tensor]]:
        """Collated batches of the given ``(source, index)`` samples (evaluation): robot
        targets with their plan when ``plans`` (a run that always plans), else without."""
        rows = []
        for source, i in samples:
            encoded = self.example(source, i)
            plan = example_plan(encoded.plan) if plans and encoded.kind == KIND_ROBOT else None
            rows.append((encoded, self.encoder.target_ids(encoded, plan)))
        return [collate(rows[s:s + batch_size], self.encoder.pad_id)
                for s in range(0, len(rows), batch_size)]
