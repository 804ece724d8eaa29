"""The local RT-2-style VLA policy: a Hugging Face VLM + action tokenizer + constrained decoding.

:class:`VLAPolicy` implements :class:`rt2_policy.contract.Policy`. One ``infer`` call:

1. wraps the instruction in RT-2's prompt (Brohan et al., 2023, §3.2)
   ``"Q: what action should the robot take to {instruction}? A:"`` prefixed with the processor's
   ``<image>`` placeholder (no chat template);
2. runs the processor on the RGB frame and prompt;
3. greedily decodes exactly 8 tokens restricted to the action vocabulary
   (:class:`rt2_policy.constrained_decoding.ActionDecoder`; step 0 only bins 0/1);
4. maps the tokens to bins (:class:`rt2_policy.token_mapping.ActionTokenMapping`) and the bins
   to a :class:`~rt2_policy.contract.RobotAction`
   (:class:`rt2_policy.action_tokenizer.ActionTokenizer`).

The same weights also answer free-form questions over the full vocabulary
(:meth:`VLAPolicy.answer`), RT-2's "one model, two jobs". A checkpoint directory holds the
model, the processor and ``action_tokenizer_config.json``
(see :func:`rt2_policy.token_mapping.save_action_config`).

Nothing in this module imports rclpy.
"""

from __future__ import annotations

import os

# Must precede the first torch import: with OMP's default active waiting, 2-thread CPU forward
# passes stall at random on small machines.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rt2_policy.action_tokenizer import (  # noqa: E402
    ACTION_CONFIG_NAME,
    ActionBounds,
    ActionTokenizer,
)
from rt2_policy.constrained_decoding import (  # noqa: E402
    ActionDecoder,
    build_allowed_mask,
    generate_text,
    terminate_logit_offset,
)
from rt2_policy.contract import ACTION_DIM_NAMES, ACTION_DIMS, Observation, RobotAction  # noqa: E402
from rt2_policy.plans import GOAL_PLAN_KINDS, GOAL_PLAN_PHASES, goal_plan_grammar  # noqa: E402
from rt2_policy.prompts import (  # noqa: E402
    ACTION_PROMPT_TEMPLATE,
    DEFAULT_IMAGE_TOKEN,
    action_prompt,
    check_image_position,
    vqa_prompt,
    with_image,
)
from rt2_policy.token_mapping import (  # noqa: E402
    DEFAULT_TERMINATE_THRESHOLD,
    SCHEMES,
    ActionTokenMapping,
    stored_chain_of_thought,
    stored_cot_plan,
    stored_grasp_memory,
    stored_gripper_state,
    stored_image_position,
    stored_tcp_position,
    stored_terminate_threshold,
)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    """``None``/``"auto"``/a torch dtype/a dtype name → what ``from_pretrained(dtype=)`` takes."""
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise ValueError(f"dtype: expected one of {sorted(_DTYPES)} or 'auto', got {dtype!r}")


def _read_action_config(path_or_hub_id: str) -> dict[str, Any] | None:
    """The JSON of ``action_tokenizer_config.json`` in a local dir or (cached) Hub repo, or None."""
    local = Path(path_or_hub_id)
    if local.is_dir():
        file = local / ACTION_CONFIG_NAME
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        file = hf_hub_download(str(path_or_hub_id), ACTION_CONFIG_NAME)
    except Exception:  # noqa: BLE001 - absent file / offline hub: caller decides
        return None
    return json.loads(Path(file).read_text(encoding="utf-8"))


def to_pil_rgb(image: Any):
    """``(H, W, 3)`` uint8 RGB array or PIL image → RGB PIL image.

    Raises:
        ValueError: on any other input.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image: expected an (H, W, 3) uint8 array, got {image.shape} {image.dtype}"
            )
        return Image.fromarray(np.ascontiguousarray(image))
    raise ValueError(f"image: expected a numpy array or PIL image, got {type(image).__name__}")


class VLAPolicy:
    """RT-2-style VLA policy on a Hugging Face image-text-to-text model (implements ``Policy``).

    Build with :meth:`from_pretrained`; the constructor takes already-loaded parts.

    Args:
        model: e.g. ``Idefics3ForConditionalGeneration``; put in eval mode here.
        processor: its processor; must expand ``<image>`` placeholders in text.
        action_tokenizer: bounds and bins of the 8-dim action.
        token_mapping: bins ↔ vocabulary ids; every id must be below the model's vocabulary size.
        model_id: what ``metadata["model_id"]`` reports.
        cache, compile: KV cache kind (``"dynamic"``/``"static"``) and ``torch.compile`` of the
            action decoder (:class:`~rt2_policy.constrained_decoding.ActionDecoder`).
        chain_of_thought: RT-2 §4.4 "Plan:" inference: generate a plan over the full vocabulary
            until the ``" action:"`` marker (at most ``max_plan_tokens`` tokens), then decode the
            8 action tokens on prompt + plan; ``RobotAction.plan`` carries the plan
            (:mod:`rt2_policy.plans`). Needs a checkpoint trained with plans (``cot`` > 0).
        max_plan_tokens: token budget of the plan, >= 1.
        image_position: ``"prefix"``/``"suffix"``, where the prompt puts the image
            (:func:`rt2_policy.prompts.with_image`; stored with the checkpoint).
        gripper_state: the model was trained with the gripper state in its action prompt
            (:func:`rt2_policy.prompts.action_prompt`; stored with the checkpoint): ``infer``
            then needs ``Observation.gripper_state``.
        tcp_position: the model was trained with the tool centre point's position in its action
            prompt (stored with the checkpoint): ``infer`` then needs
            ``Observation.tcp_position``.
        grasp_memory: the model was trained with the episode's grasp memory in its action
            prompt (:mod:`rt2_policy.grasp_memory`; stored with the checkpoint): ``infer`` then
            needs ``Observation.grasped`` (wrap the policy in
            :class:`rt2_policy.grasp_memory.GraspMemory`, as
            :func:`rt2_policy.policy_factory.make_policy` does).
        cot_plan: what the model's plans say (``TrainConfig.cot_plan``, stored with the
            checkpoint): ``"task"`` (words), or a kind of goal plan of
            :data:`rt2_policy.plans.GOAL_PLAN_KINDS`, ``"goal"`` (``"reach X Y"``, an image
            point) or ``"waypoint"`` (``"reach X Y Z"``, in the prompt's tcp bins). For goal
            plans, with ``chain_of_thought`` and a tokenizer that spells them one token per
            word (:func:`rt2_policy.plans.goal_plan_grammar`), plan and action are one
            constrained greedy decode, batched: ``" plan:"`` is appended to the prompt, then
            the phase, the point's coordinates, the forced period and ``" action:"``, then the
            8 action tokens (so the plan always parses); otherwise the plan is generated as for
            plans in words.
        terminate_threshold: probability of terminate (bin 1 of the first action token) the
            decode needs to end the episode, in (0, 1); 0.5 is RT-2's greedy decode (§3.2),
            higher values keep acting through frames the model is unsure about (a logit offset
            on that token, :func:`~rt2_policy.constrained_decoding.terminate_logit_offset`;
            the other 7 tokens are decoded after it, as always). Goal plans decide to stop at
            their phase word first (``done``, :data:`rt2_policy.plans.GOAL_PLAN_PHASES`): the
            same offset goes on ``done``, which then wins only when its probability is at
            least ``t / (1 - t)`` times that of the likeliest other phase (for two phases
            that is ``p > t``), and on the terminate token after the plan.

    The processor's tokenizer is switched to left padding (batched decoding needs it).

    Raises:
        ValueError: when the mapping does not fit the model's vocabulary or bin count.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        action_tokenizer: ActionTokenizer,
        token_mapping: ActionTokenMapping,
        model_id: str = "",
        cache: str = "dynamic",
        compile: bool = False,
        chain_of_thought: bool = False,
        max_plan_tokens: int = 24,
        image_position: str = "prefix",
        gripper_state: bool = False,
        tcp_position: bool = False,
        grasp_memory: bool = False,
        cot_plan: str = "task",
        terminate_threshold: float = DEFAULT_TERMINATE_THRESHOLD,
    ) -> None:
        if max_plan_tokens < 1:
            raise ValueError(f"max_plan_tokens: expected >= 1, got {max_plan_tokens}")
        self.chain_of_thought = bool(chain_of_thought)
        self.max_plan_tokens = int(max_plan_tokens)
        if token_mapping.num_bins != action_tokenizer.num_bins:
            raise ValueError(
                f"token_mapping.num_bins: expected {action_tokenizer.num_bins}, "
                f"got {token_mapping.num_bins}"
            )
        self.model = model.eval()
        self.processor = processor
        self.action_tokenizer = action_tokenizer
        self.token_mapping = token_mapping
        self.model_id = str(model_id)
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # batched decoding needs left padding
        self.image_token = getattr(processor, "image_token", None) or DEFAULT_IMAGE_TOKEN
        check_image_position(image_position)
        self.image_position = image_position
        self.gripper_state = bool(gripper_state)
        self.tcp_position = bool(tcp_position)
        self.grasp_memory = bool(grasp_memory)
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        # Precomputed once: (8, vocab) bool, True where a token may be emitted at that step.
        self._allowed = build_allowed_mask(
            token_mapping.allowed_ids_per_step(), self.vocab_size, device=self.device
        )
        # Fast path of the same decode (equal ids): reduced LM head, optional static cache and
        # torch.compile (see rt2_policy.constrained_decoding.ActionDecoder).
        offset = terminate_logit_offset(terminate_threshold)  # checks it: (0, 1); 0.5 → 0.0
        self.terminate_threshold = float(terminate_threshold)
        terminate_id = int(token_mapping.bin_to_token_id(1))
        self._decoder = ActionDecoder(self.model, self._allowed, cache=cache, compile=compile,
                                      logit_offsets={(0, terminate_id): offset})
        # Goal plans in one constrained decode: plan steps, then the action's.
        self._goal_grammar = (goal_plan_grammar(tokenizer, GOAL_PLAN_KINDS[cot_plan])
                              if cot_plan in GOAL_PLAN_KINDS and self.chain_of_thought
                              and tokenizer is not None else None)
        self._goal_decoder = None
        if self._goal_grammar is not None:
            head = self._goal_grammar.allowed_ids_per_step()  # plan and " action:" marker
            steps = [*head, *token_mapping.allowed_ids_per_step()]
            done_id = self._goal_grammar.phase_ids[GOAL_PLAN_PHASES.index("done")]
            self._goal_decoder = ActionDecoder(
                self.model, build_allowed_mask(steps, self.vocab_size, device=self.device),
                cache=cache, compile=compile,
                logit_offsets={(0, done_id): offset, (len(head), terminate_id): offset})

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        token_scheme: str | None = None,
        bounds: ActionBounds | None = None,
        attn_implementation: str | None = None,
        cache: str = "dynamic",
        compile: bool = False,
        chain_of_thought: bool = False,
        terminate_threshold: float | None = None,
    ) -> VLAPolicy:
        """Load model, processor and action config from one checkpoint.

        The model is loaded with ``AutoModelForImageTextToText``, the processor with
        ``AutoProcessor``, bounds and token mapping from ``action_tokenizer_config.json``.

        Args:
            path_or_hub_id: checkpoint directory, or a Hub id already in the local cache.
            device: torch device for the model, e.g. ``"cpu"`` or ``"cuda:0"``.
            dtype: ``None`` (checkpoint default), ``"auto"``, a torch dtype or
                ``"float32"``/``"bfloat16"``/``"float16"``.
            token_scheme: override the stored token mapping with ``"integer_tokens"`` or
                ``"last_n"`` built from the processor's tokenizer; None keeps the stored one.
            bounds: override the stored action bounds.
            attn_implementation: ``None`` (transformers' default, SDPA where supported),
                ``"eager"``, ``"sdpa"`` or ``"flash_attention_2"`` (GPU, needs ``flash-attn``).
            cache: KV cache of the action decode, ``"dynamic"`` or ``"static"`` (preallocated).
            compile: ``torch.compile`` the one-token decode step (implies a static cache).
            chain_of_thought: plan before acting (RT-2 §4.4), see the class docstring. A
                checkpoint trained with a plan before every action (``TrainConfig.cot`` = 1,
                stored as ``{"prompt": {"chain_of_thought": true}}``) always plans: it was
                never taught to act without one.
            terminate_threshold: see the class docstring; None takes the checkpoint's
                (``{"decoding": {"terminate_threshold": ...}}`` in its action config, 0.5 when
                absent).

        Raises:
            ValueError: when no action config is stored and no ``token_scheme`` is given, for
                ``token_scheme="least_used"`` without a stored least-used mapping (it needs corpus
                counts: build it with :meth:`ActionTokenMapping.least_used`), or a bad dtype.
            OSError: when the model or processor cannot be loaded.
        """
        from transformers import AutoModelForImageTextToText, AutoProcessor

        source = str(path_or_hub_id)
        torch_dtype = _resolve_dtype(dtype)
        kwargs: dict[str, Any] = {} if torch_dtype is None else {"dtype": torch_dtype}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        model.to(device)
        processor = AutoProcessor.from_pretrained(source)

        data = _read_action_config(source) or {}
        stored_tok = data.get("action_tokenizer")
        action_tokenizer = (
            ActionTokenizer.from_dict(stored_tok) if stored_tok is not None else ActionTokenizer()
        )
        if bounds is not None:
            action_tokenizer = ActionTokenizer(bounds, action_tokenizer.num_bins)
        stored_map = data.get("token_mapping")
        if token_scheme is None or (stored_map and stored_map.get("scheme") == token_scheme):
            if stored_map is None:
                raise ValueError(
                    f"{source}: expected {ACTION_CONFIG_NAME} with a token mapping, got none; "
                    f"pass token_scheme= one of ('integer_tokens', 'last_n')"
                )
            mapping = ActionTokenMapping.from_dict(stored_map)
        elif token_scheme == "least_used":
            raise ValueError(
                "token_scheme: 'least_used' needs corpus token counts; build it with "
                "ActionTokenMapping.least_used(...) and save_action_config(), got no stored one"
            )
        elif token_scheme in SCHEMES:
            mapping = ActionTokenMapping.from_tokenizer(
                processor.tokenizer, token_scheme, action_tokenizer.num_bins
            )
        else:
            raise ValueError(
                f"token_scheme: expected one of {SCHEMES} or None, got {token_scheme!r}"
            )
        return cls(model, processor, action_tokenizer, mapping, model_id=source, cache=cache,
                   compile=compile,
                   chain_of_thought=chain_of_thought or stored_chain_of_thought(data),
                   cot_plan=stored_cot_plan(data),
                   image_position=stored_image_position(data),
                   gripper_state=stored_gripper_state(data),
                   tcp_position=stored_tcp_position(data),
                   grasp_memory=stored_grasp_memory(data),
                   terminate_threshold=(stored_terminate_threshold(data)
                                        if terminate_threshold is None else terminate_threshold))

    # ------------------------------------------------------------------ helpers
    def _with_image(self, prompt: str) -> str:
        """``prompt`` with the image placeholder where this model expects it."""
        return with_image(prompt, self.image_token, self.image_position)

    def _prepare(self, images: list[Any], prompts: list[str]) -> dict[str, torch.Tensor]:
        """Processor call → tensors on the model's device (pixel values in the model's dtype)."""
        try:
            batch = self.processor(
                text=prompts,
                images=[[img] for img in images],
                return_tensors="pt",
                padding=True,
            )
        except Exception as exc:  # noqa: BLE001 - processor errors mean unusable input
            raise ValueError(f"processor: could not encode the observation: {exc}") from exc
        inputs: dict[str, torch.Tensor] = {}
        for key, value in batch.items():
            if not isinstance(value, torch.Tensor):
                continue
            value = value.to(self.device)
            if key == "pixel_values":
                value = value.to(self.dtype)
            inputs[key] = value
        return inputs

    def _decode(self, inputs: dict[str, torch.Tensor], decoder: ActionDecoder | None = None):
        """Constrained decode (``decoder``, default the action's); any failure surfaces as
        RuntimeError (the caller stops the arm)."""
        try:
            return (decoder or self._decoder)(inputs)
        except RuntimeError:
            raise
        except Exception as exc:  # noqa: BLE001 - any backend failure stops the arm
            raise RuntimeError(f"VLA decoding failed: {exc}") from exc

    def _check_observation(self, observation: Any) -> Observation:
        if not isinstance(observation, Observation):
            raise ValueError(
                f"observation: expected rt2_policy.contract.Observation, "
                f"got {type(observation).__name__}"
            )
        if self.gripper_state and observation.gripper_state is None:
            raise ValueError(
                "observation.gripper_state: expected a number in [0, 1] (this model reads the "
                "gripper state in its prompt; the node takes it from the finger joints on "
                "/joint_states), got None"
            )
        if self.tcp_position and observation.tcp_position is None:
            raise ValueError(
                "observation.tcp_position: expected 3 finite metres (this model reads the tool "
                "centre point's position in its prompt; the node computes it from the arm "
                "joints on /joint_states), got None"
            )
        if self.grasp_memory and observation.grasped is None:
            raise ValueError(
                "observation.grasped: expected a bool (this model reads whether the episode has "
                "grasped something in its prompt; rt2_policy.grasp_memory.GraspMemory fills it "
                "in from the gripper states since reset()), got None"
            )
        return observation

    def _action_prompt(self, observation: Observation) -> str:
        """The action prompt for ``observation``, with the gripper state if the model reads it."""
        state = observation.gripper_state if self.gripper_state else None
        tcp = observation.tcp_position if self.tcp_position else None
        grasped = observation.grasped if self.grasp_memory else None
        return self._with_image(action_prompt(observation.instruction, state, tcp, grasped))

    def _actions(self, token_ids: torch.Tensor, latency: float) -> list[RobotAction]:
        """``(B, 8)`` action token ids → B actions (``extra`` holds ids and raw decoded text)."""
        ids = token_ids.numpy()
        try:
            bins = self.token_mapping.token_id_to_bin(ids)
        except ValueError as exc:  # cannot happen with the mask; guard anyway
            raise RuntimeError(f"VLA emitted a non-action token: {exc}") from exc
        tokenizer = getattr(self.processor, "tokenizer", None)
        actions = []
        for row in range(ids.shape[0]):
            action = self.action_tokenizer.decode(bins[row], latency=latency)
            if not action.is_finite():
                raise RuntimeError(f"VLA produced a non-finite action: {action}")
            raw = tokenizer.decode(ids[row].tolist()) if tokenizer is not None else ""
            action.extra.update(token_ids=ids[row].copy(), raw_text=raw)
            actions.append(action)
        return actions

    # ------------------------------------------------------------------ Policy API
    @torch.inference_mode()
    def infer(self, observation: Observation) -> RobotAction:
        """Return the action for one observation (8 constrained greedy tokens).

        Returns:
            :class:`RobotAction` with ``bins`` ``(8,)`` int64, ``text`` the RT-2 string
            (``"0 128 91 …"``), ``latency`` wall-clock seconds of this call (pre-processing
            included), ``extra`` = ``{"prompt", "step_times", "token_ids", "raw_text"}``.

        Raises:
            ValueError: when ``observation`` is not an :class:`Observation`, cannot be encoded,
                or lacks the gripper state, tcp position or grasp memory this model reads
                (``self.gripper_state``, ``self.tcp_position``, ``self.grasp_memory``).
            RuntimeError: on non-finite logits or any model failure.
        """
        return self.infer_batch([observation])[0]

    @torch.inference_mode()
    def infer_batch(self, observations: Sequence[Observation]) -> list[RobotAction]:
        """Actions for several observations in one left-padded batch.

        Each action's ``latency`` is the wall-clock time of the whole batch, seconds; results
        equal per-observation :meth:`infer` up to floating-point ties.

        Raises:
            ValueError / RuntimeError: as :meth:`infer`.
        """
        start = time.perf_counter()
        obs = [self._check_observation(o) for o in observations]
        if not obs:
            return []
        if self._goal_decoder is not None:
            return self._goal_plans_and_acts(obs, start)
        if self.chain_of_thought:
            return [self._plan_and_act(o) for o in obs]
        prompts = [self._action_prompt(o) for o in obs]
        images = [to_pil_rgb(o.image) for o in obs]
        inputs = self._prepare(images, prompts)
        result = self._decode(inputs)
        latency = time.perf_counter() - start
        actions = []
        for i, action in enumerate(self._actions(result.token_ids, latency)):
            action.extra.update(prompt=prompts[i], step_times=result.step_times)
            actions.append(action)
        return actions

    def _goal_plans_and_acts(self, obs: list[Observation], start: float) -> list[RobotAction]:
        """Goal plan and action in one constrained decode per batch (see ``cot_plan``)."""
        grammar = self._goal_grammar
        assert grammar is not None and self._goal_decoder is not None
        prompts = [self._action_prompt(o) for o in obs]
        inputs = self._prepare([to_pil_rgb(o.image) for o in obs], prompts)
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        head = torch.as_tensor(grammar.head_ids, dtype=ids.dtype,
                               device=ids.device).expand(ids.shape[0], -1)
        inputs["input_ids"] = torch.cat([ids, head], dim=1)  # left padded: append on the right
        if mask is not None:
            inputs["attention_mask"] = torch.cat([mask, torch.ones_like(head, dtype=mask.dtype)],
                                                 dim=1)
        result = self._decode(inputs, self._goal_decoder)
        plan_ids = result.token_ids[:, :grammar.plan_steps]
        actions = self._actions(result.token_ids[:, -ACTION_DIMS:], time.perf_counter() - start)
        out = []
        for row, action in enumerate(actions):
            ids = plan_ids[row].tolist()
            action.extra.update(prompt=prompts[row], step_times=result.step_times,
                                plan_token_ids=ids)
            out.append(replace(action, plan=grammar.plan_of(ids)))
        return out

    def _plan_and_act(self, observation: Observation) -> RobotAction:
        """RT-2 §4.4: greedy plan over the full vocabulary up to the action marker (forced if
        the budget runs out), then the constrained 8-token decode on prompt + plan."""
        from transformers import StoppingCriteria, StoppingCriteriaList

        from rt2_policy.plans import ACTION_MARKER, action_marker_ids, parse_plan_and_action

        start = time.perf_counter()
        prompt = self._action_prompt(observation)
        inputs = self._prepare([to_pil_rgb(observation.image)], [prompt])
        tokenizer = self.processor.tokenizer
        marker = action_marker_ids(tokenizer)
        prompt_len = int(inputs["input_ids"].shape[1])
        marker_t = torch.as_tensor(marker, device=self.device)

        class _AtMarker(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
                if input_ids.shape[1] - prompt_len >= len(marker):
                    done = (input_ids[:, -len(marker):] == marker_t).all(dim=1)
                return done

        try:
            out = self.model.generate(
                **inputs, max_new_tokens=self.max_plan_tokens, do_sample=False,
                stopping_criteria=StoppingCriteriaList([_AtMarker()]),
                pad_token_id=tokenizer.pad_token_id)
        except Exception as exc:  # noqa: BLE001 - backend failure stops the arm
            raise RuntimeError(f"VLA plan generation failed: {exc}") from exc
        new = out[0, prompt_len:].tolist()
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        cut = next((i for i, t in enumerate(new) if t in eos), len(new))  # plan ends at EOS
        at = next((i for i in range(cut - len(marker) + 1) if new[i:i + len(marker)] == marker),
                  cut)  # ... or at the first marker; a missing marker is appended
        new = new[:at]
        plan_text = tokenizer.decode(new, skip_special_tokens=True)
        plan, _ = parse_plan_and_action(f"{plan_text} {ACTION_MARKER}")
        ids = torch.cat([inputs["input_ids"],
                         torch.as_tensor([new + marker], dtype=inputs["input_ids"].dtype,
                                         device=self.device)], dim=1)
        action_inputs = dict(inputs, input_ids=ids, attention_mask=torch.ones_like(ids))
        result = self._decode(action_inputs)
        action = self._actions(result.token_ids, time.perf_counter() - start)[0]
        action.extra.update(prompt=prompt, step_times=result.step_times,
                            plan_token_ids=list(new))
        return replace(action, plan=plan)

    def reset(self) -> None:
        """No per-episode state: RT-2 conditions on the current frame only."""

    @torch.inference_mode()
    def answer(self, image: Any, question: str, max_new_tokens: int = 32) -> str:
        """Answer a free-form question about ``image`` over the full vocabulary (greedy).

        Args:
            image: ``(H, W, 3)`` uint8 RGB array or PIL image.
            question: e.g. ``"what is on the table?"``; wrapped as ``"Q: {question} A:"``.
            max_new_tokens: generation budget, >= 1.

        Returns:
            the decoded answer, special tokens removed, stripped.

        Raises:
            ValueError: on a bad image, empty question or ``max_new_tokens < 1``.
            RuntimeError: on model failure.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: expected >= 1, got {max_new_tokens}")
        prompt = self._with_image(vqa_prompt(question))
        inputs = self._prepare([to_pil_rgb(image)], [prompt])
        try:
            return generate_text(self.model, self.processor, inputs, max_new_tokens).texts[0]
        except Exception as exc:  # noqa: BLE001 - backend failure
            raise RuntimeError(f"VLA generation failed: {exc}") from exc

    # ------------------------------------------------------------------ description
    @property
    def image_size(self) -> int | None:
        """Square model input resolution in pixels, if the config states it."""
        vision = getattr(self.model.config, "vision_config", None)
        size = getattr(vision, "image_size", None)
        return int(size) if isinstance(size, int) else None

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description: model id, action space, bounds, image size, scheme."""
        return {
            "model_id": self.model_id,
            "model_type": getattr(self.model.config, "model_type", ""),
            "num_parameters": int(sum(p.numel() for p in self.model.parameters())),
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "image_size": self.image_size,
            "prompt_template": ACTION_PROMPT_TEMPLATE.format(
                instruction="{instruction}"
                + (", gripper {gripper_state_bin}" if self.gripper_state else "")
                + (", tcp {x_bin} {y_bin} {z_bin}" if self.tcp_position else "")
                + (", grasp {grasped}" if self.grasp_memory else "")),
            "gripper_state": self.gripper_state,
            "tcp_position": self.tcp_position,
            "grasp_memory": self.grasp_memory,
            "action_space": {
                "dims": list(ACTION_DIM_NAMES),
                "num_bins": self.action_tokenizer.num_bins,
                "terminate": "discrete {0, 1}",
                "units": "delta position m, delta rotation rad (roll, pitch, yaw), gripper 0..1",
                "frame": "command frame, REP 103 (x forward, y left, z up)",
            },
            "bounds": self.action_tokenizer.bounds.to_dict(),
            "token_scheme": self.token_mapping.scheme,
            "chain_of_thought": self.chain_of_thought,
            "terminate_threshold": self.terminate_threshold,
        }
