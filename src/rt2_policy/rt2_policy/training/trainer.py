"""The co-fine-tuning loop: one VLM trained on robot actions and vision-language answers.

RT-2 (Brohan et al., 2023, §3.2) fine-tunes a VLM on robot trajectories whose actions are
written as text tokens, *co-fine-tuned* with the original web vision-language data so that the
model keeps its language and visual knowledge (Table 6: co-fine-tuning beats fine-tuning alone).
:class:`Trainer` does that on a CPU-sized scale:

* data: robot frames (LeRobot format) and VQA examples, mixed per batch at
  ``robot_fraction`` (:mod:`rt2_policy.training.mixture`), encoded once per example
  (:mod:`rt2_policy.training.collate`), optionally with chain-of-thought plans (RT-2 §4.4);
* model: a fresh tiny Idefics3 (``model="tiny"``, vocabulary built from the data's words) or any
  ``AutoModelForImageTextToText`` checkpoint; full fine-tuning, or peft LoRA for large ones;
* loss: next-token cross-entropy on target tokens only; the LM head runs on labelled positions
  only (cheap with large vocabularies); robot and VQA losses are logged separately; optionally
  ordinal label smoothing of action bins (``action_label_sigma``) and a pointer loss over the
  image tokens on pointing questions and robot frames' target points
  (``grounding_loss_weight``, :mod:`rt2_policy.training.grounding`), and a second one on robot
  frames' reference-object points (``reference_grounding_loss_weight``); their heads are kept in
  ``training_state.pt``;
* AdamW, linear warm-up then cosine/linear decay, global-norm gradient clipping, optional bf16
  autocast, a wall-clock budget;
* output (``output_dir``): ``checkpoint-NNNNNNN/`` directories loadable with
  :meth:`rt2_policy.vla_policy.VLAPolicy.from_pretrained` (model + processor +
  ``action_tokenizer_config.json``; LoRA runs save the merged model plus ``adapter/``) and
  holding ``training_state.pt`` (optimizer, scheduler and RNG state as plain state dicts, loaded
  with ``weights_only=True``); a ``latest`` symlink; ``metrics.jsonl``; ``training_curve.png``;
  ``config.json``. A rerun with the same ``output_dir`` resumes from the latest checkpoint.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import contextlib  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rt2_policy.action_tokenizer import ACTION_CONFIG_NAME, ActionTokenizer  # noqa: E402
from rt2_policy.contract import ACTION_DIMS  # noqa: E402
from rt2_policy.plans import GOAL_PLAN_KINDS, GOAL_PLAN_PHASES, plan_target_text  # noqa: E402
from rt2_policy.prompts import action_prompt, vqa_prompt  # noqa: E402
from rt2_policy.token_mapping import (  # noqa: E402
    ActionTokenMapping,
    load_action_config,
    load_grasp_memory,
    load_gripper_state,
    load_image_position,
    load_tcp_position,
    save_action_config,
)
from rt2_policy.training.collate import (  # noqa: E402
    IGNORE_INDEX,
    KIND_ROBOT,
    KIND_VQA,
    ExampleEncoder,
    MixtureBatches,
)
from rt2_policy.training.config import TrainConfig  # noqa: E402
from rt2_policy.training.grounding import GroundingHead, grounding_loss  # noqa: E402
from rt2_policy.training.mixture import ROBOT, VQA, MixtureSampler  # noqa: E402
from rt2_policy.training.resolution import resize_image_input  # noqa: E402
from rt2_policy.training.sources import (  # noqa: E402
    GraspMemoryFrames,
    open_robot_datasets,
    open_vqa_datasets,
    robot_texts,
    vqa_texts,
)

#: The pointer losses over the image tokens: (batch key of the points, training_state.pt key
#: of the head, metric prefix, TrainConfig field of the weight). "point": the object a pointing
#: question names or a robot frame's target; "reference_point": a robot frame's reference
#: object (move near / place), which the action needs as much as the target.
GROUNDING_LOSSES = (
    ("point", "grounding_head", "grounding", "grounding_loss_weight"),
    ("reference_point", "reference_head", "reference_grounding",
     "reference_grounding_loss_weight"),
)

log = logging.getLogger("rt2_policy.training")

#: Layout version of ``training_state.pt``.
STATE_FORMAT_VERSION = 1
STATE_NAME = "training_state.pt"
METRICS_NAME = "metrics.jsonl"
CURVE_NAME = "training_curve.png"
LATEST_NAME = "latest"
_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainResult:
    """Summary of one :meth:`Trainer.train` call.

    Attributes:
        start_step: step the run started from (0, or the resumed checkpoint's step).
        step: steps completed in total.
        seconds: wall-clock seconds of the training loop of this call.
        steps_per_s: optimizer steps per second in this call (after the first step).
        stopped: ``"max_steps"``, ``"time_budget"`` or ``"interrupted"``.
        checkpoint: directory of the last checkpoint written.
        metrics: the last logged training metrics and the last evaluation.
    """

    start_step: int
    step: int
    seconds: float
    steps_per_s: float
    stopped: str
    checkpoint: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"start_step": self.start_step, "step": self.step,
                "seconds": round(self.seconds, 3), "steps_per_s": round(self.steps_per_s, 3),
                "stopped": self.stopped, "checkpoint": self.checkpoint, **self.metrics}


def lr_factor(step: int, config: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up over ``warmup_steps``,
    then ``cosine``/``linear`` decay to ``min_lr_ratio`` at ``max_steps``, or ``constant``.

    With ``config.schedule_to_budget`` the decay's progress is the larger of the step
    fraction and ``elapsed_s`` (seconds of training so far, resumes included) over
    ``time_budget_min``: the schedule ends where the run will, whichever limit comes first
    (budgeted training, Li et al., ICLR 2020). The warm-up stays counted in steps."""
    warmup = config.warmup_steps
    if warmup and step < warmup:
        return (step + 1) / warmup
    if config.lr_schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, config.max_steps - warmup)
    if config.schedule_to_budget and config.time_budget_min > 0:
        progress = max(progress, elapsed_s / (60.0 * config.time_budget_min))
    progress = min(1.0, max(0.0, progress))
    floor = config.min_lr_ratio
    if config.lr_schedule == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return floor + (1.0 - floor) * (1.0 - progress)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step under ``output_dir``, or None."""
    best: tuple[int, Path] | None = None
    root = Path(output_dir)
    if not root.is_dir():
        return None
    for child in root.iterdir():
        match = _CKPT_RE.match(child.name)
        if match and (child / STATE_NAME).is_file():
            step = int(match.group(1))
            if best is None or step > best[0]:
                best = (step, child)
    return best[1] if best else None


def _backbone_and_head(model: Any):
    """``(decoder_model, lm_head)`` of a ``*ForConditionalGeneration`` (peft-wrapped or not)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if inner is None or head is None:
        return None, None
    return inner, head


def token_losses(model: Any, batch: dict[str, torch.Tensor], autocast: bool = False,
                 return_hidden: bool = False):
    """Per-token next-token cross-entropy on the labelled positions of ``batch``.

    Args:
        model: the VLM (train or eval mode).
        batch: :func:`rt2_policy.training.collate.collate` output on the model's device.
        autocast: run the forward under bfloat16 autocast.
        return_hidden: also return the final hidden states ``(B, L, D)`` (for the grounding
            loss; None for models without a separate decoder and head).

    Returns:
        ``(losses (N,) float32, logits (N, V), targets (N,) int64, kinds (N,) int64,
        rows (N,) int64)`` over the N labelled tokens, in row-major order, then ``hidden``
        when ``return_hidden``.
    """
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items()
              if k not in ("labels", "kind", "step", *(g[0] for g in GROUNDING_LOSSES))}
    mask = labels[:, 1:] != IGNORE_INDEX  # token t+1 is predicted at position t
    device_type = labels.device.type
    ctx = (torch.autocast(device_type, dtype=torch.bfloat16) if autocast
           else contextlib.nullcontext())
    backbone, head = _backbone_and_head(model)
    hidden = None
    with ctx:
        if backbone is not None:
            hidden = backbone(**inputs, use_cache=False).last_hidden_state
            logits = head(hidden[:, :-1][mask])
        else:
            logits = model(**inputs, use_cache=False).logits[:, :-1][mask]
    targets = labels[:, 1:][mask]
    losses = F.cross_entropy(logits.float(), targets, reduction="none")
    rows = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(mask)[mask]
    kinds = batch["kind"].to(labels.device)[rows]
    if return_hidden:
        return losses, logits, targets, kinds, rows, hidden
    return losses, logits, targets, kinds, rows


#: Parameter-name fragments of vision towers and vision-to-text connectors (Idefics3/SmolVLM,
#: LLaVA, PaliGemma), for ``TrainConfig.vision_lr_scale``.
VISION_PARAM_MARKERS = ("vision_model", "connector", "vision_tower", "multi_modal_projector")


def _bin_lookup(action_ids: torch.Tensor, size: int) -> torch.Tensor:
    """``(size,)`` int64: the bin of each vocabulary id below ``size``, ``-1`` for other ids."""
    bin_of = torch.full((size,), -1, dtype=torch.int64, device=action_ids.device)
    bin_of[action_ids] = torch.arange(action_ids.numel(), device=action_ids.device)
    return bin_of


def rank_from_end(rows: torch.Tensor) -> torch.Tensor:
    """Position of each element from the end of its run of equal ``rows`` values.

    Args:
        rows: ``(N,)`` int64 row index of each selected target token, non-decreasing (the
            order of :func:`token_losses`' output).

    Returns:
        ``(N,)`` int64: 0 for the last token of its row, 1 for the one before, …
    """
    if rows.numel() == 0:
        return rows.new_zeros(0)
    _, counts = torch.unique_consecutive(rows, return_counts=True)
    ends = torch.repeat_interleave(torch.cumsum(counts, 0) - 1, counts)
    return ends - torch.arange(rows.numel(), device=rows.device)


def ordinal_smoothed_losses(losses: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor,
                            kinds: torch.Tensor, rows: torch.Tensor, action_ids: torch.Tensor,
                            sigma: float) -> torch.Tensor:
    """Cross-entropy against a discretised Gaussian over neighbouring bins for bin tokens.

    RT-2 trains bins as unrelated classes (plain cross-entropy); bin ``b`` and ``b + 1`` are
    almost the same action, so a target spread as ``exp(-(k - b)² / 2σ²)`` over the bins
    ``k`` (renormalised, truncated at the range ends) teaches the ordering and gives neighbours
    of a rare bin a gradient, which matters with few demonstrations. Applies to every target
    token that is a bin id (``action_ids``) except each robot row's terminate flag (discrete,
    RT-2 §3.2: the first of the row's last 8 bin tokens, after any plan); VQA answers and goal
    plans written with bin tokens (pointing coordinates) are smoothed too. Other tokens keep
    their plain loss.

    Args:
        losses: plain per-token cross-entropy, ``(N,)`` float32 (from :func:`token_losses`).
        logits, targets, kinds, rows: the rest of :func:`token_losses`' output, ``(N, V)``,
            ``(N,)``, ``(N,)``, ``(N,)``.
        action_ids: vocabulary id of each bin, ``(num_bins,)`` int64.
        sigma: Gaussian width in bins; ``<= 0`` returns ``losses`` unchanged.

    Returns:
        ``(N,)`` float32 per-token losses (nats).
    """
    if sigma <= 0 or targets.numel() == 0:
        return losses
    num_bins = action_ids.numel()
    target_bins = _bin_lookup(action_ids.to(targets.device), logits.shape[-1])[targets]
    smooth = target_bins >= 0
    # terminate, the first of the 8 action tokens that end each robot row's bin tokens (a
    # goal plan's point comes before them), keeps a hard label
    idx = torch.nonzero(smooth & (kinds == KIND_ROBOT)).flatten()
    if idx.numel():
        smooth[idx[rank_from_end(rows[idx]) == ACTION_DIMS - 1]] = False
    if not bool(smooth.any()):
        return losses
    sel = torch.nonzero(smooth).flatten()
    log_probs = F.log_softmax(logits[sel].float(), dim=-1)[:, action_ids]  # (M, num_bins)
    k = torch.arange(num_bins, device=targets.device, dtype=torch.float32)
    weights = torch.exp(-0.5 * ((k[None] - target_bins[sel, None].float()) / sigma) ** 2)
    weights = weights / weights.sum(dim=1, keepdim=True)
    out = losses.clone()
    out[sel] = -(weights * log_probs).sum(dim=1)
    return out


def robot_token_weighted_losses(losses: torch.Tensor, targets: torch.Tensor,
                                kinds: torch.Tensor, rows: torch.Tensor,
                                action_ids: torch.Tensor, gripper_weight: float = 1.0,
                                plan_word_weight: float = 1.0) -> torch.Tensor:
    """Scale the losses of the decision tokens of robot rows.

    A robot row's targets are ``[plan words and bins…, marker…,] 8 action bins, EOS``
    (RT-2 §3.2; §4.4 for the plan).

    * ``gripper_weight``: the gripper is the last of the 8 action dims, so its token is the
      row's last bin token. Nearly every gripper label repeats the state the prompt already
      gives; the few that change it (close on the object, let go over the destination) are
      rare, and the weight lets their gradient count.
    * ``plan_word_weight``: the plan's words, the target tokens that are not bin ids except the
      row's last (EOS). In a goal or waypoint plan (``plan: bring 139 85 51. action:``) every
      word but the phase is fixed, so the weight falls on the phase: the decision to carry on,
      let go (``bring`` → ``drop``) or end the episode (:mod:`rt2_policy.plans`); the action
      then follows it. Rows without a plan have no such words.

    The trainer's logged losses include the weights.

    Args:
        losses: per-token losses, ``(N,)`` float32 (from :func:`token_losses` or
            :func:`ordinal_smoothed_losses`).
        targets, kinds, rows: :func:`token_losses`' output, ``(N,)`` each.
        action_ids: vocabulary id of each bin, ``(num_bins,)`` int64.
        gripper_weight, plan_word_weight: factors, >= 0; both ``1`` returns ``losses``
            unchanged.

    Returns:
        ``(N,)`` float32 per-token losses.
    """
    if (gripper_weight == 1 and plan_word_weight == 1) or targets.numel() == 0:
        return losses
    size = max(int(targets.max()), int(action_ids.max())) + 1
    is_bin = _bin_lookup(action_ids.to(targets.device), size)[targets] >= 0
    robot = kinds == KIND_ROBOT
    out = losses.clone()
    words = ~is_bin & robot & (rank_from_end(rows) > 0)
    out[words] = out[words] * plan_word_weight
    bins = torch.nonzero(is_bin & robot).flatten()
    gripper = bins[rank_from_end(rows[bins]) == 0]
    out[gripper] = out[gripper] * gripper_weight
    return out


class Trainer:
    """Co-fine-tunes a VLA as configured (see the module docstring).

    Args:
        config: the run.
        robot, vqa: training sequences; default: opened from ``config.robot_datasets`` /
            ``config.vqa_datasets``. Tests pass in-memory lists here.
        eval_robot, eval_vqa: evaluation sequences; default: ``config.eval_*_datasets``, else
            the training data.

    Raises:
        ValueError: when the data do not fit the config (no examples, a robot fraction that
            needs a missing source).
    """

    def __init__(self, config: TrainConfig, robot: Sequence | None = None,
                 vqa: Sequence | None = None, eval_robot: Sequence | None = None,
                 eval_vqa: Sequence | None = None) -> None:
        self.config = config
        self.out = Path(config.output_dir)
        #: seconds of training so far, resumes included (the budget-fitted schedule's clock;
        #: 0 until the training loop starts it)
        self._elapsed_s: Callable[[], float] = lambda: 0.0
        self.robot = robot if robot is not None else open_robot_datasets(config.robot_datasets)
        self.vqa = vqa if vqa is not None else open_vqa_datasets(config.vqa_datasets)
        if eval_robot is None:
            eval_robot = (open_robot_datasets(config.eval_robot_datasets)
                          if config.eval_robot_datasets else self.robot)
        if eval_vqa is None:
            eval_vqa = (open_vqa_datasets(config.eval_vqa_datasets)
                        if config.eval_vqa_datasets else self.vqa)
        if config.grasp_memory:  # the episode's grasp memory on every robot frame
            wrap = self._with_grasp_memory
            same = eval_robot is self.robot
            self.robot = wrap(self.robot)
            eval_robot = self.robot if same else wrap(eval_robot)
        self.eval_robot, self.eval_vqa = eval_robot, eval_vqa
        if len(self.robot) + len(self.vqa) == 0:
            raise ValueError("datasets: expected robot or VQA examples, got none")
        fraction = config.robot_fraction
        if len(self.vqa) == 0 and fraction < 1.0:
            log.warning("no VQA examples: robot_fraction %.2f -> 1.0 (robot-only fine-tuning)",
                        fraction)
            fraction = 1.0
        if len(self.robot) == 0 and fraction > 0.0:
            log.warning("no robot examples: robot_fraction %.2f -> 0.0 (VQA only)", fraction)
            fraction = 0.0
        self.robot_fraction = fraction
        self.device = torch.device(config.device)
        #: batch key of the points → its pointer head (only the losses with a weight > 0)
        self._grounding_heads: dict[str, GroundingHead] = {}
        self._image_token_id = -1
        self._corpus_cache: list[str] | None = None

    def _with_grasp_memory(self, data: Sequence) -> Sequence:
        """``data``'s frames with the episode's grasp memory (``"grasped"``); empty stays empty."""
        if not len(data):
            return data
        return GraspMemoryFrames(data, self.config.gripper_state_indices,
                                 self.config.gripper_open_position)

    # ------------------------------------------------------------------ model
    def _corpus(self) -> list[str]:
        """Every text the model must spell: prompts, plans, answers, words files (memoised)."""
        if self._corpus_cache is not None:
            return self._corpus_cache
        texts = []
        robot_sets = [self.robot] + ([self.eval_robot] if self.eval_robot is not self.robot
                                     else [])
        vqa_sets = [self.vqa] + ([self.eval_vqa] if self.eval_vqa is not self.vqa else [])
        for data in robot_sets:
            for task in robot_texts(data) if len(data) else ():
                texts.append(action_prompt(
                    task, 0.0 if self.config.gripper_state_indices else None,
                    (0.5, 0.0, 0.4) if self.config.tcp_position_indices else None,
                    False if self.config.grasp_memory else None))
                texts.append(plan_target_text(task, "0"))
        for data in vqa_sets:
            if len(data):
                texts.extend(vqa_texts(data))
        texts.append(vqa_prompt("what"))
        texts.extend(self._plans().values())
        if self.config.cot_plan in GOAL_PLAN_KINDS:
            texts.append(" ".join(GOAL_PLAN_PHASES))
        for path in self.config.tiny.words_files:
            texts.append(Path(path).read_text(encoding="utf-8"))
        self._corpus_cache = texts
        return texts

    def _plans(self) -> dict[str, str]:
        """The ``plans_file`` mapping (instruction → plan), or {}.

        Raises:
            ValueError: when the file is not a JSON object of strings.
        """
        if not self.config.plans_file:
            return {}
        data = json.loads(Path(self.config.plans_file).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in data.items()):
            raise ValueError(f"plans_file: expected a JSON object of strings, got "
                             f"{type(data).__name__} in {self.config.plans_file}")
        return data

    def _build_tiny(self) -> Path:
        from rt2_policy.tiny_model import build_tiny_vla

        tiny = self.config.tiny
        target = self.out / "tiny_init"
        started = time.perf_counter()
        path = build_tiny_vla(
            target, seed=self.config.seed, image_size=tiny.image_size,
            token_scheme=tiny.token_scheme, patch_size=tiny.patch_size, corpus=self._corpus(),
            text_hidden_size=tiny.text_hidden_size, text_layers=tiny.text_layers,
            text_heads=tiny.text_heads, vision_hidden_size=tiny.vision_hidden_size,
            vision_layers=tiny.vision_layers, vision_heads=tiny.vision_heads,
            image_position=tiny.image_position, scale_factor=tiny.scale_factor)
        log.info("built tiny model in %s (%.1f s)", path, time.perf_counter() - started)
        return path

    def _pretrain_vision(self, source: str) -> str:
        """Dense vision pre-training (:mod:`rt2_policy.training.vision_pretrain`) of ``source``
        into ``output_dir/vision_pretrained``; returns that directory."""
        from rt2_policy.training.vision_pretrain import pretrain_vision

        cfg = self.config
        target = self.out / "vision_pretrained"
        summary = pretrain_vision(source, cfg.vision_pretrain_data, target,
                                  steps=cfg.vision_pretrain_steps, seed=cfg.seed,
                                  log=log.info)
        log.info("vision pre-training: %s", json.dumps(summary))
        return str(target)

    def _action_config(self, source: str, tokenizer: Any) -> tuple[ActionTokenizer,
                                                                   ActionTokenMapping]:
        scheme = self.config.token_scheme
        local = Path(source)
        stored = (local / ACTION_CONFIG_NAME).is_file() if local.is_dir() else False
        if stored and not scheme:
            return load_action_config(local)
        action_tokenizer = (ActionTokenizer.from_pretrained(local) if stored
                            else ActionTokenizer())
        if not scheme:
            try:
                from rt2_policy.vla_policy import _read_action_config

                data = _read_action_config(source)
            except Exception:  # noqa: BLE001 - hub unreachable: fall through
                data = None
            if data and "token_mapping" in data:
                return (ActionTokenizer.from_dict(data.get("action_tokenizer", {})),
                        ActionTokenMapping.from_dict(data["token_mapping"]))
            raise ValueError(f"{source}: expected {ACTION_CONFIG_NAME}, got none; set "
                             "token_scheme to integer_tokens, least_used or last_n")
        if scheme == "least_used":
            mapping = ActionTokenMapping.least_used(tokenizer, corpus=self._corpus(),
                                                    num_bins=action_tokenizer.num_bins)
        else:
            mapping = ActionTokenMapping.from_tokenizer(tokenizer, scheme,
                                                        action_tokenizer.num_bins)
        return action_tokenizer, mapping

    def _load(self, resume: Path | None):
        """Model (peft-wrapped for LoRA), processor, action tokenizer, mapping."""
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        cfg = self.config
        if resume is not None and not cfg.lora.enabled:
            source = str(resume)
        elif cfg.is_tiny:
            tiny_dir = self.out / "tiny_init"
            # the tiny base of a resumed LoRA run is rebuilt identically (same seed and data)
            source = str(self._build_tiny() if resume is None or not tiny_dir.is_dir()
                         else tiny_dir)
        else:
            source = cfg.model
        if resume is None and cfg.vision_pretrain_data:
            source = self._pretrain_vision(source)
        model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(source)
        if cfg.image_size and resize_image_input(model, processor, cfg.image_size):
            log.info("input images resized to %d px (%d image tokens)", cfg.image_size,
                     processor.image_seq_len)
        action_tokenizer, mapping = self._action_config(source, processor.tokenizer)
        self.image_position = load_image_position(source)
        if load_gripper_state(source) and not cfg.gripper_state_indices:
            raise ValueError(f"gripper_state_indices: expected the finger joints' positions in "
                             f"observation.state ({source} reads the gripper state in its "
                             f"prompt), got ()")
        if load_tcp_position(source) and not cfg.tcp_position_indices:
            raise ValueError(f"tcp_position_indices: expected the arm joints' positions in "
                             f"observation.state ({source} reads the tcp position in its "
                             f"prompt), got ()")
        if load_grasp_memory(source) and not cfg.grasp_memory:
            raise ValueError(f"grasp_memory: expected true ({source} reads the episode's grasp "
                             f"memory in its prompt), got false")
        vocab = int(model.get_output_embeddings().weight.shape[0])
        if max(mapping.token_ids) >= vocab:
            raise ValueError(f"token_mapping: expected ids < model vocabulary {vocab}, got "
                             f"{max(mapping.token_ids)}")
        if cfg.lora.enabled:
            model = self._wrap_lora(model, mapping, resume)
        model.to(self.device)
        self._report_unknown_words(processor.tokenizer)
        return model, processor, action_tokenizer, mapping

    def _wrap_lora(self, model: Any, mapping: ActionTokenMapping, resume: Path | None):
        from peft import LoraConfig, PeftModel, get_peft_model

        lora = self.config.lora
        if resume is not None and (resume / "adapter").is_dir():
            with warnings.catch_warnings():  # see below
                warnings.simplefilter("ignore", FutureWarning)
                return PeftModel.from_pretrained(model, resume / "adapter", is_trainable=True)
        targets: Any = list(lora.target_modules)
        if targets == ["all-linear"]:
            targets = "all-linear"
        token_indices = None
        if lora.train_action_tokens and lora.token_modules:
            ids = [int(i) for i in mapping.token_ids]
            token_indices = {name: ids for name in lora.token_modules}
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=targets, trainable_token_indices=token_indices)
        with warnings.catch_warnings():  # peft 0.21 calls a transformers API deprecated in v5
            warnings.simplefilter("ignore", FutureWarning)
            return get_peft_model(model, config)

    def _report_unknown_words(self, tokenizer: Any) -> None:
        unk = getattr(tokenizer, "unk_token_id", None)
        if unk is None:
            return
        texts = self._corpus()
        unknown: dict[str, None] = {}
        for text in texts:
            encoded = tokenizer(text, add_special_tokens=False)
            ids = encoded["input_ids"]
            if unk in ids:
                words = text.split()
                unknown.update(dict.fromkeys(words[:3]))
        if unknown:
            log.warning("some training texts contain words outside the vocabulary (<unk>), "
                        "e.g. in: %s", " | ".join(list(unknown)[:10]))

    # ------------------------------------------------------------------ optimisation
    def _make_grounding_heads(self, model: Any, resumed: dict | None = None
                              ) -> dict[str, GroundingHead]:
        """One pointer head per :data:`GROUNDING_LOSSES` entry whose weight is > 0, by batch
        key. Each head's weights come from ``resumed`` (the ``training_state.pt`` of the
        checkpoint a run resumes from), else from the fine-tuned checkpoint's own
        ``training_state.pt`` (e.g. a DAgger round starting from the previous round), else a
        fresh initialisation (also when that state has no such head yet).

        Raises:
            ValueError: when the checkpoint's prompt layout is not ``"suffix"`` (image tokens
                placed before the question cannot know which object it names).
        """
        wanted = [(key, state_key, field) for key, state_key, _prefix, field in GROUNDING_LOSSES
                  if getattr(self.config, field) > 0]
        if not wanted:
            return {}
        field = wanted[0][2]
        if self.image_position != "suffix":
            raise ValueError(f"{field}: expected a checkpoint with image_position 'suffix' "
                             "(image after the question, --tiny.image-position suffix), got "
                             f"{self.image_position!r}")
        _backbone, head = _backbone_and_head(model)
        if head is None:
            raise ValueError(f"{field}: expected a model with a decoder and an output "
                             f"embedding, got {type(model).__name__}")
        saved = Path(self.config.model) / STATE_NAME
        if resumed is None and self.config.model != "tiny" and saved.is_file():
            resumed = torch.load(saved, map_location="cpu", weights_only=True)
            log.info("grounding heads from %s", saved)
        heads = {}
        for key, state_key, _field in wanted:
            heads[key] = GroundingHead(int(head.weight.shape[1])).to(self.device)
            if resumed is not None and state_key in resumed:
                heads[key].load_state_dict(resumed[state_key])
        return heads

    def _grounding(self, hidden: torch.Tensor | None, batch: dict[str, torch.Tensor]
                   ) -> dict[str, tuple[torch.Tensor | None, int, int]]:
        """:func:`grounding_loss` of a batch per active head, by metric prefix:
        ``(loss or None, right, rows)``; empty when no pointer loss is on or the model gives no
        hidden states."""
        if not self._grounding_heads or hidden is None:
            return {}
        out = {}
        for key, _state_key, prefix, _field in GROUNDING_LOSSES:
            if key in self._grounding_heads:
                out[prefix] = grounding_loss(self._grounding_heads[key], hidden,
                                             batch["input_ids"], batch[key],
                                             self._image_token_id)
        return out

    def _optimizer(self, model: Any, extra: torch.nn.Module | None = None):
        """AdamW with decoupled weight decay on matrices only; the vision tower and the
        vision-to-text connector (:data:`VISION_PARAM_MARKERS`) learn at
        ``learning_rate * vision_lr_scale``; ``extra`` (the grounding heads) at
        ``learning_rate``, without decay."""
        lr = self.config.learning_rate
        vision_lr = lr * self.config.vision_lr_scale
        buckets: dict[tuple[bool, bool], list] = {}
        for name, param in model.named_parameters():
            if param.requires_grad:
                key = (param.ndim >= 2, any(m in name for m in VISION_PARAM_MARKERS))
                buckets.setdefault(key, []).append(param)
        groups = [{"params": params, "weight_decay": self.config.weight_decay if decay else 0.0,
                   "lr": vision_lr if vision else lr}
                  for (decay, vision), params in sorted(buckets.items())]
        if extra is not None:
            groups.append({"params": list(extra.parameters()), "weight_decay": 0.0, "lr": lr})
        optimizer = torch.optim.AdamW(groups, lr=lr, betas=self.config.adam_betas)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, self.config, self._elapsed_s()))
        return optimizer, scheduler, [p for g in groups for p in g["params"]]

    # ------------------------------------------------------------------ checkpoints
    def _save(self, step: int, model: Any, processor: Any, action_tokenizer: ActionTokenizer,
              mapping: ActionTokenMapping, optimizer: Any, scheduler: Any,
              elapsed: float) -> Path:
        final = self.out / f"checkpoint-{step:07d}"
        tmp = self.out / f".checkpoint-{step:07d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.config.lora.enabled:
            model.save_pretrained(tmp / "adapter")
            merged = copy.deepcopy(model).merge_and_unload()
            merged.save_pretrained(tmp)
            del merged
        else:
            model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        save_action_config(tmp, action_tokenizer, mapping, self.image_position,
                           gripper_state=bool(self.config.gripper_state_indices),
                           tcp_position=bool(self.config.tcp_position_indices),
                           grasp_memory=self.config.grasp_memory,
                           chain_of_thought=self.config.always_plans,
                           cot_plan=self.config.cot_plan if self.config.cot > 0 else None)
        state = {
            "format_version": STATE_FORMAT_VERSION,
            "step": int(step),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "elapsed_s": float(elapsed),
            "config": self.config.to_dict(),
        }
        for key, state_key, _prefix, _field in GROUNDING_LOSSES:
            if key in self._grounding_heads:
                state[state_key] = self._grounding_heads[key].state_dict()
        torch.save(state, tmp / STATE_NAME)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        link = self.out / LATEST_NAME
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(final.name)
        self._prune(keep=final)
        return final

    def _prune(self, keep: Path) -> None:
        limit = self.config.save_total_limit
        if not limit:
            return
        ckpts = sorted((int(m.group(1)), p) for p in self.out.iterdir()
                       if (m := _CKPT_RE.match(p.name)))
        for _step, path in ckpts[:-limit]:
            if path != keep:
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------ metrics
    def _write_metrics(self, record: dict[str, Any]) -> None:
        with open(self.out / METRICS_NAME, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _truncate_metrics(self, step: int) -> None:
        path = self.out / METRICS_NAME
        if not path.is_file():
            return
        kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def _eval_samples(self) -> list[tuple[str, int]]:
        """Up to ``eval_examples`` evenly spaced examples of each evaluation source."""
        n = self.config.eval_examples
        samples: list[tuple[str, int]] = []
        for source, data in ((ROBOT, self.eval_robot), (VQA, self.eval_vqa)):
            if len(data):
                idx = np.unique(np.linspace(0, len(data) - 1, min(n, len(data))).astype(int))
                samples.extend((source, int(i)) for i in idx)
        return samples

    @torch.inference_mode()
    def evaluate(self, model: Any, batches: list[dict[str, torch.Tensor]],
                 mapping: ActionTokenMapping, eos_len: int) -> dict[str, float]:
        """Teacher-forced metrics on fixed batches (with their plans when the run always
        plans, see :meth:`MixtureBatches.fixed_batches`; the action metrics read the last
        8 + ``eos_len`` target tokens of each robot row).

        Returns:
            ``eval_robot_loss``/``eval_vqa_loss`` (mean per token, nats),
            ``eval_action_acc`` (argmax over the action ids equals the target, over the 8
            action tokens), ``eval_action_bin_l1`` (mean |predicted − target bin| over the 7
            continuous dims), ``eval_vqa_token_acc`` (argmax over the vocabulary) and, when VQA
            answers hold bin tokens (pointing: ``"x y"``, 0..255), ``eval_point_l1`` (mean
            |predicted − target| over those tokens, argmax over the bin ids): a direct
            reading of how well the vision tower localises objects and the gripper;
            ``eval_grounding_acc`` (share of pointing questions whose grounding head picks the
            image token holding the point) when the grounding loss is on.
        """
        was_training = model.training
        model.eval()
        sums = {KIND_ROBOT: [0.0, 0], KIND_VQA: [0.0, 0]}
        correct, total, l1, l1_n, vqa_ok, vqa_n = 0, 0, 0.0, 0, 0, 0
        point_l1, point_n = 0.0, 0
        grounded: dict[str, list[int]] = {}  # metric prefix → [right, rows]
        action_ids = torch.as_tensor(mapping.token_ids, device=self.device)
        bin_of = _bin_lookup(action_ids, int(action_ids.max()) + 1)
        for batch in batches:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            losses, logits, targets, kinds, rows, hidden = token_losses(
                model, batch, self.config.bf16, return_hidden=True)
            for prefix, (_loss, ok, n) in self._grounding(hidden, batch).items():
                tally = grounded.setdefault(prefix, [0, 0])
                tally[0] += ok
                tally[1] += n
            for kind in (KIND_ROBOT, KIND_VQA):
                sel = kinds == kind
                sums[kind][0] += float(losses[sel].sum())
                sums[kind][1] += int(sel.sum())
            robot = kinds == KIND_ROBOT
            if robot.any():
                width = ACTION_DIMS + eos_len
                robot = robot & (rank_from_end(rows) < width)  # the action, not the plan
                r_logits = logits[robot].reshape(-1, width, logits.shape[-1])[:, :ACTION_DIMS]
                r_targets = targets[robot].reshape(-1, width)[:, :ACTION_DIMS]
                pred = action_ids[r_logits.float()[..., action_ids].argmax(-1)]
                correct += int((pred == r_targets).sum())
                total += r_targets.numel()
                pred_bins = torch.as_tensor(mapping.token_id_to_bin(pred.cpu().numpy()))
                true_bins = torch.as_tensor(mapping.token_id_to_bin(r_targets.cpu().numpy()))
                l1 += float((pred_bins[:, 1:] - true_bins[:, 1:]).abs().float().sum())
                l1_n += pred_bins[:, 1:].numel()
            vqa = kinds == KIND_VQA
            if vqa.any():
                vqa_ok += int((logits[vqa].argmax(-1) == targets[vqa]).sum())
                vqa_n += int(vqa.sum())
                v_targets = targets[vqa]
                in_range = v_targets <= bin_of.numel() - 1
                v_bins = torch.where(in_range, bin_of[v_targets.clamp(max=bin_of.numel() - 1)],
                                     torch.full_like(v_targets, -1))
                points = v_bins >= 0
                if points.any():
                    guess = logits[vqa][points].float()[:, action_ids].argmax(-1)
                    point_l1 += float((guess - v_bins[points]).abs().float().sum())
                    point_n += int(points.sum())
        model.train(was_training)
        out: dict[str, float] = {}
        if sums[KIND_ROBOT][1]:
            out["eval_robot_loss"] = sums[KIND_ROBOT][0] / sums[KIND_ROBOT][1]
            out["eval_action_acc"] = correct / max(1, total)
            out["eval_action_bin_l1"] = l1 / max(1, l1_n)
        if sums[KIND_VQA][1]:
            out["eval_vqa_loss"] = sums[KIND_VQA][0] / sums[KIND_VQA][1]
            out["eval_vqa_token_acc"] = vqa_ok / max(1, vqa_n)
        if point_n:
            out["eval_point_l1"] = point_l1 / point_n
        for prefix, (ok, n) in grounded.items():
            if n:
                out[f"eval_{prefix}_acc"] = ok / n
        return {k: round(v, 5) for k, v in out.items()}

    # ------------------------------------------------------------------ main loop
    def train(self) -> TrainResult:
        """Run (or resume) training up to ``max_steps`` or the time budget.

        Returns:
            :class:`TrainResult`.

        Raises:
            RuntimeError: when the loss is not finite for 10 steps in a row.
            ValueError / OSError: on unusable data or checkpoints.
        """
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)

        resume = latest_checkpoint(self.out) if cfg.resume else None
        state = (torch.load(resume / STATE_NAME, map_location="cpu", weights_only=True)
                 if resume is not None else None)
        model, processor, action_tokenizer, mapping = self._load(resume)
        if state is not None and int(state.get("format_version", 0)) != STATE_FORMAT_VERSION:
            raise ValueError(f"{resume / STATE_NAME}: expected format_version "
                             f"{STATE_FORMAT_VERSION}, got {state.get('format_version')}")
        self._grounding_heads = self._make_grounding_heads(model, state)
        heads = torch.nn.ModuleDict(self._grounding_heads) if self._grounding_heads else None
        optimizer, scheduler, params = self._optimizer(model, heads)
        start_step = 0
        elapsed_before = 0.0
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            random.setstate(state["python_rng"])
            start_step = int(state["step"])
            elapsed_before = float(state.get("elapsed_s", 0.0))
            log.info("resumed from %s at step %d", resume, start_step)
            saved = state.get("config", {})
            for key in ("model", "robot_datasets", "vqa_datasets", "robot_fraction", "cot"):
                now = cfg.to_dict()[key]
                if key in saved and saved[key] != now:
                    log.warning("resuming with %s=%r; the checkpoint was trained with %r", key,
                                now, saved[key])
            self._truncate_metrics(start_step)
        elif (self.out / METRICS_NAME).exists():
            (self.out / METRICS_NAME).unlink()
        (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n",
                                              encoding="utf-8")
        n_head = sum(p.numel() for h in self._grounding_heads.values() for p in h.parameters())
        n_trainable = sum(p.numel() for p in params) - n_head
        n_total = sum(p.numel() for p in model.parameters())
        log.info("parameters: %d trainable of %d%s", n_trainable, n_total,
                 f" (+{n_head} in the grounding heads)" if n_head else "")
        checkpoint = str(resume) if resume is not None else ""
        if start_step >= cfg.max_steps:  # before the cache: a finished stage reruns in seconds
            log.info("nothing to do: step %d >= max_steps %d", start_step, cfg.max_steps)
            return TrainResult(start_step, start_step, 0.0, 0.0, "max_steps", checkpoint)

        encoder = ExampleEncoder(processor, action_tokenizer, mapping, plans=self._plans(),
                                 image_position=self.image_position,
                                 gripper_state_indices=cfg.gripper_state_indices,
                                 gripper_open_position=cfg.gripper_open_position,
                                 grounding_point=cfg.grounding_point,
                                 tcp_position_indices=cfg.tcp_position_indices,
                                 tcp_offset=cfg.tcp_offset, cot_plan=cfg.cot_plan,
                                 grasp_memory=cfg.grasp_memory)
        action_ids = torch.as_tensor(mapping.token_ids, dtype=torch.int64, device=self.device)
        self._image_token_id = int(processor.tokenizer.convert_tokens_to_ids(encoder.image_token))
        sampler = MixtureSampler(len(self.robot), len(self.vqa), cfg.batch_size,
                                 self.robot_fraction, cfg.seed)
        batches = MixtureBatches(self.robot, self.vqa, encoder, sampler, cot=cfg.cot,
                                 cache_bytes=cfg.cache_mb * 2**20)
        if cfg.preload and cfg.cache_mb:
            started = time.perf_counter()
            cached = batches.preload(progress=cfg.progress)
            log.info("preprocessed %d examples into the cache (%.0f MiB) in %.1f s", cached,
                     batches.cached_bytes / 2**20, time.perf_counter() - started)
        same_data = self.eval_robot is self.robot and self.eval_vqa is self.vqa
        eval_data = batches if same_data else MixtureBatches(
            self.eval_robot, self.eval_vqa, encoder, None, cache_bytes=0)
        eval_samples = self._eval_samples()
        eval_batches = eval_data.fixed_batches(eval_samples, cfg.batch_size,
                                               plans=cfg.always_plans)

        loader = torch.utils.data.DataLoader(
            batches, batch_size=None, sampler=range(start_step, cfg.max_steps),
            num_workers=cfg.num_workers, worker_init_fn=_worker_init,
            prefetch_factor=2 if cfg.num_workers else None,
            multiprocessing_context="fork" if cfg.num_workers else None)
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=start_step, unit="step", desc="train",
                   disable=not cfg.progress, mininterval=1.0, dynamic_ncols=True)
        model.train()
        eos_len = len(encoder.eos_ids)
        window = _Window()
        last_train: dict[str, Any] = {}
        last_eval: dict[str, Any] = {}
        t0 = time.perf_counter()
        self._elapsed_s = lambda: elapsed_before + time.perf_counter() - t0
        t_first = None
        step = start_step
        bad_steps = 0
        stopped = "max_steps"
        saved_at = -1
        # The budget covers the whole run: a resumed run gets what its earlier parts left.
        budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else float("inf")
        grounding_weights = {prefix: getattr(cfg, field)
                             for _key, _state, prefix, field in GROUNDING_LOSSES}
        if elapsed_before >= budget_s:
            log.info("time budget of %.1f min already spent at step %d", cfg.time_budget_min,
                     step)
            loader, stopped = (), "time_budget"
        try:
            for batch in loader:
                step_index = int(batch.pop("step"))
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                losses, logits, targets, kinds, rows, hidden = token_losses(
                    model, batch, cfg.bf16, return_hidden=True)
                losses = ordinal_smoothed_losses(losses, logits, targets, kinds, rows,
                                                 action_ids, cfg.action_label_sigma)
                losses = robot_token_weighted_losses(losses, targets, kinds, rows, action_ids,
                                                     cfg.gripper_loss_weight,
                                                     cfg.plan_word_loss_weight)
                loss = losses.mean()
                for prefix, (g_loss, g_ok, g_n) in self._grounding(hidden, batch).items():
                    if g_loss is not None:
                        loss = loss + grounding_weights[prefix] * g_loss
                        window.add_grounding(prefix, float(g_loss.detach()), g_ok, g_n)
                optimizer.zero_grad(set_to_none=True)
                if not torch.isfinite(loss):
                    bad_steps += 1
                    log.warning("step %d: non-finite loss %s, update skipped", step_index,
                                float(loss))
                    if bad_steps >= 10:
                        raise RuntimeError(f"loss: expected finite values, got {float(loss)} "
                                           "for 10 steps in a row")
                    scheduler.step()
                    step = step_index + 1
                    continue
                bad_steps = 0
                loss.backward()
                if cfg.grad_clip > 0:
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
                else:
                    grad_norm = float(torch.norm(torch.stack(
                        [p.grad.norm() for p in params if p.grad is not None])))
                optimizer.step()
                lr = scheduler.get_last_lr()[0]
                scheduler.step()
                step = step_index + 1
                if t_first is None:
                    t_first = time.perf_counter()
                window.add(losses.detach(), kinds, grad_norm)
                bar.update(1)

                if step % cfg.log_interval == 0 or step == cfg.max_steps:
                    last_train = window.flush(step, lr, time.perf_counter())
                    last_train["elapsed_s"] = round(elapsed_before + time.perf_counter() - t0, 2)
                    self._write_metrics(last_train)
                    bar.set_postfix({k: last_train[k] for k in
                                     ("robot_loss", "vqa_loss", "steps_per_s")
                                     if k in last_train})
                if cfg.eval_interval and step % cfg.eval_interval == 0 and eval_batches:
                    last_eval = {"step": step, **self.evaluate(model, eval_batches, mapping,
                                                               eos_len)}
                    self._write_metrics(last_eval)
                    log.info("eval %s", last_eval)
                budget_hit = elapsed_before + time.perf_counter() - t0 >= budget_s
                if (cfg.save_interval and step % cfg.save_interval == 0) or budget_hit:
                    checkpoint = str(self._save(step, model, processor, action_tokenizer,
                                                mapping, optimizer, scheduler,
                                                elapsed_before + time.perf_counter() - t0))
                    saved_at = step
                    self._plot()
                if budget_hit:
                    stopped = "time_budget"
                    log.info("time budget of %.1f min reached at step %d", cfg.time_budget_min,
                             step)
                    break
        except KeyboardInterrupt:
            stopped = "interrupted"
            log.warning("interrupted at step %d: saving", step)
        finally:
            bar.close()
        t_end = time.perf_counter()
        seconds = t_end - t0
        if window.steps:  # steps since the last log line (time budget, interrupt)
            last_train = window.flush(step, scheduler.get_last_lr()[0], t_end)
            last_train["elapsed_s"] = round(elapsed_before + seconds, 2)
            self._write_metrics(last_train)
        if eval_batches and (not last_eval or last_eval.get("step") != step):
            last_eval = {"step": step, **self.evaluate(model, eval_batches, mapping, eos_len)}
            self._write_metrics(last_eval)
        if saved_at != step and step > start_step:
            checkpoint = str(self._save(step, model, processor, action_tokenizer, mapping,
                                        optimizer, scheduler, elapsed_before + seconds))
        self._plot()
        done = step - start_step
        rate = ((done - 1) / max(1e-9, t_end - t_first)
                if t_first is not None and done > 1 else 0.0)
        metrics = {k: v for k, v in last_train.items() if k != "step"}
        metrics.update({k: v for k, v in last_eval.items() if k != "step"})
        metrics["encoded_examples_main_process"] = batches.encoded_count
        metrics["trainable_parameters"] = int(n_trainable)
        metrics["parameters"] = int(n_total)
        return TrainResult(start_step, step, seconds, rate, stopped, checkpoint, metrics)

    def _plot(self) -> None:
        try:
            plot_metrics(self.out / METRICS_NAME, self.out / CURVE_NAME)
        except Exception as exc:  # noqa: BLE001 - a plot must never stop training
            log.warning("could not plot the training curve: %s", exc)


class _Window:
    """Running sums of one logging window."""

    def __init__(self) -> None:
        self.reset(time.perf_counter())

    def reset(self, now: float) -> None:
        self.sums = {KIND_ROBOT: 0.0, KIND_VQA: 0.0}
        self.counts = {KIND_ROBOT: 0, KIND_VQA: 0}
        self.examples = {KIND_ROBOT: 0, KIND_VQA: 0}
        self.grad = 0.0
        self.steps = 0
        self.start = now
        #: metric prefix → [loss sum, steps, right, rows]
        self.grounding: dict[str, list[float]] = {}

    def add_grounding(self, prefix: str, loss: float, correct: int, rows: int) -> None:
        tally = self.grounding.setdefault(prefix, [0.0, 0, 0, 0])
        tally[0] += loss
        tally[1] += 1
        tally[2] += correct
        tally[3] += rows

    def add(self, losses: torch.Tensor, kinds: torch.Tensor, grad_norm: float) -> None:
        for kind in (KIND_ROBOT, KIND_VQA):
            sel = kinds == kind
            self.sums[kind] += float(losses[sel].sum())
            self.counts[kind] += int(sel.sum())
        self.grad += grad_norm
        self.steps += 1

    def flush(self, step: int, lr: float, now: float) -> dict[str, Any]:
        total = self.counts[KIND_ROBOT] + self.counts[KIND_VQA]
        record: dict[str, Any] = {
            "step": step,
            "loss": round((self.sums[KIND_ROBOT] + self.sums[KIND_VQA]) / max(1, total), 5),
            "lr": float(f"{lr:.6g}"),
            "grad_norm": round(self.grad / max(1, self.steps), 4),
            "steps_per_s": round(self.steps / max(1e-9, now - self.start), 3),
        }
        if self.counts[KIND_ROBOT]:
            record["robot_loss"] = round(self.sums[KIND_ROBOT] / self.counts[KIND_ROBOT], 5)
        if self.counts[KIND_VQA]:
            record["vqa_loss"] = round(self.sums[KIND_VQA] / self.counts[KIND_VQA], 5)
        for prefix, (loss_sum, steps, right, rows) in self.grounding.items():
            if steps:
                record[f"{prefix}_loss"] = round(loss_sum / steps, 5)
                record[f"{prefix}_acc"] = round(right / max(1, rows), 5)
        self.reset(now)
        return record


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (empty list when missing)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Draw the training curve: robot and VQA loss (train and eval, log scale), learning rate
    and eval action accuracy, against the step. Uses matplotlib's Agg backend.

    Returns:
        ``Path(png_path)``, or None when there is nothing to plot yet.
    """
    records = read_metrics(metrics_path)
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if any(k.startswith("eval_") for k in r)]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for key, label, style in (("robot_loss", "robot (train)", "-"),
                              ("vqa_loss", "VQA (train)", "-")):
        pts = [(r["step"], r[key]) for r in train if key in r]
        if pts:
            ax_loss.plot(*zip(*pts, strict=True), style, label=label)
    for key, label in (("eval_robot_loss", "robot (eval)"), ("eval_vqa_loss", "VQA (eval)")):
        pts = [(r["step"], r[key]) for r in evals if key in r]
        if pts:
            ax_loss.plot(*zip(*pts, strict=True), "o--", label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy per token (nats)")
    ax_loss.grid(True, which="both", alpha=0.3)
    ax_loss.legend()
    for key, label in (("eval_action_acc", "action token accuracy (eval)"),
                       ("eval_vqa_token_acc", "VQA token accuracy (eval)")):
        pts = [(r["step"], r[key]) for r in evals if key in r]
        if pts:
            ax_acc.plot(*zip(*pts, strict=True), "o-", label=label)
    ax_acc.set_ylim(0, 1)
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_xlabel("step")
    ax_acc.grid(True, alpha=0.3)
    lr_pts = [(r["step"], r["lr"]) for r in train if "lr" in r]
    if lr_pts:
        ax_lr = ax_acc.twinx()
        ax_lr.plot(*zip(*lr_pts, strict=True), color="gray", alpha=0.5, label="learning rate")
        ax_lr.set_ylabel("learning rate")
    if ax_acc.get_legend_handles_labels()[0]:
        ax_acc.legend(loc="upper left")
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
