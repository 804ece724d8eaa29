"""Configuration of the co-fine-tuning trainer: frozen dataclasses, file loading, CLI flags.

:class:`TrainConfig` holds everything a run needs. It is validated on construction
(``"<field>: expected X, got Y"`` errors), saved as ``config.json`` in the output directory,
and can be loaded from a JSON or YAML file (:meth:`TrainConfig.from_file`) and overridden field
by field from the command line (:func:`add_arguments` / :func:`config_from_args`): top-level
fields as ``--max-steps 2000``, nested ones as ``--lora.r 8`` / ``--tiny.image-size 128``.

Defaults follow RT-2 (Brohan et al., 2023) where it states them — robot data is half of each
batch for RT-2-PaLI-X co-fine-tuning (§3.2 / Appendix) — and the 2-core CPU budget of this
project elsewhere (batch 16, a few thousand steps of the ~6 M-parameter tiny model).

Nothing in this module imports torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rt2_policy.prompts import IMAGE_POSITIONS

#: Token schemes of :mod:`rt2_policy.token_mapping` ("" = the checkpoint's stored mapping).
TOKEN_SCHEMES = ("", "integer_tokens", "least_used", "last_n")

#: Learning-rate schedules after the linear warm-up.
LR_SCHEDULES = ("cosine", "linear", "constant")
#: What the pointer loss points at on robot frames (TrainingConfig.grounding_point).
GROUNDING_POINTS = ("target", "goal")
#: What a chain-of-thought plan says (TrainingConfig.cot_plan).
COT_PLANS = ("task", "goal", "waypoint")


def _doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field with a ``help`` text (used by the CLI and the docs)."""
    return field(metadata={"help": text}, **kwargs)


def _check(cond: bool, name: str, expected: str, got: Any) -> None:
    if not cond:
        raise ValueError(f"{name}: expected {expected}, got {got!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _str_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, Path)):
        value = (value,)
    _check(isinstance(value, Sequence) and all(isinstance(v, (str, Path)) for v in value),
           name, "a sequence of strings", value)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class TinyModelConfig:
    """Architecture of a freshly built tiny model (``TrainConfig.model == "tiny"``).

    See :func:`rt2_policy.tiny_model.build_tiny_vla`; the WordLevel vocabulary is extended with
    every word of the training texts (instructions, plans, questions, answers, ``words_files``).
    """

    image_size: int = _doc("square input resolution, pixels; multiple of scale_factor * patch_size",
                           default=96)
    patch_size: int = _doc("vision patch size, pixels", default=16)
    scale_factor: int = _doc("pixel-shuffle factor of the connector: (image_size / patch_size / "
                             "scale_factor)^2 image tokens (1 = one token per patch)", default=2)
    text_hidden_size: int = _doc("Llama decoder width", default=256)
    text_layers: int = _doc("Llama decoder layers", default=4)
    text_heads: int = _doc("decoder query heads (even; KV heads = half)", default=4)
    vision_hidden_size: int = _doc("SigLIP encoder width", default=192)
    vision_layers: int = _doc("SigLIP encoder layers", default=4)
    vision_heads: int = _doc("SigLIP attention heads", default=4)
    token_scheme: str = _doc("action token scheme: integer_tokens, least_used or last_n",
                             default="integer_tokens")
    image_position: str = _doc("image placeholder before ('prefix') or after ('suffix') the "
                               "text; suffix keeps a from-scratch decoder from making the image "
                               "its attention sink (rt2_policy.prompts.with_image)",
                               default="prefix")
    words_files: tuple[str, ...] = _doc("UTF-8 text files whose words join the vocabulary",
                                        default=())

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "scale_factor", "text_hidden_size",
                     "text_layers", "text_heads", "vision_hidden_size", "vision_layers",
                     "vision_heads"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, name, "an int >= 1", value)
        _check(self.image_size % (self.scale_factor * self.patch_size) == 0, "image_size",
               f"a multiple of scale_factor * patch_size = {self.scale_factor * self.patch_size}",
               self.image_size)
        _check(self.token_scheme in TOKEN_SCHEMES[1:], "token_scheme",
               f"one of {TOKEN_SCHEMES[1:]}", self.token_scheme)
        _check(self.image_position in IMAGE_POSITIONS, "image_position",
               " or ".join(map(repr, IMAGE_POSITIONS)), self.image_position)
        object.__setattr__(self, "words_files", _str_tuple("words_files", self.words_files))


@dataclass(frozen=True)
class LoraSettings:
    """peft LoRA for large checkpoints (Hu et al., 2021); off by default (full fine-tuning).

    With ``least_used``/``last_n`` token schemes the action bins overwrite existing vocabulary
    rows, so those rows must train too: ``train_action_tokens`` passes the action ids as peft's
    ``trainable_token_indices`` for each module of ``token_modules`` (input embedding and LM
    head; see FIELD_NOTES "peft LoRA works on all of them").
    """

    enabled: bool = _doc("train LoRA adapters instead of all weights", default=False)
    r: int = _doc("LoRA rank", default=16)
    alpha: float = _doc("LoRA scaling numerator (scale = alpha / r)", default=32.0)
    dropout: float = _doc("dropout on the LoRA input, probability in [0, 1)", default=0.05)
    target_modules: tuple[str, ...] = _doc(
        "module names (suffixes) that get adapters; 'all-linear' for every linear layer",
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    train_action_tokens: bool = _doc("train the embedding / LM-head rows of the action tokens",
                                     default=True)
    token_modules: tuple[str, ...] = _doc(
        "modules whose action-token rows train (peft trainable_token_indices keys)",
        default=("embed_tokens", "lm_head"))

    def __post_init__(self) -> None:
        _check(isinstance(self.enabled, bool), "enabled", "a bool", self.enabled)
        _check(_is_int(self.r) and self.r >= 1, "r", "an int >= 1", self.r)
        _check(_is_number(self.alpha) and self.alpha > 0, "alpha", "a number > 0", self.alpha)
        _check(_is_number(self.dropout) and 0 <= self.dropout < 1, "dropout",
               "a probability in [0, 1)", self.dropout)
        object.__setattr__(self, "target_modules",
                           _str_tuple("target_modules", self.target_modules))
        _check(len(self.target_modules) > 0, "target_modules", "at least one module name",
               self.target_modules)
        _check(isinstance(self.train_action_tokens, bool), "train_action_tokens", "a bool",
               self.train_action_tokens)
        object.__setattr__(self, "token_modules", _str_tuple("token_modules", self.token_modules))


@dataclass(frozen=True)
class TrainConfig:
    """One co-fine-tuning run (RT-2 §3.2: robot actions + vision-language data in one model)."""

    model: str = _doc("checkpoint directory or Hugging Face hub id, or 'tiny' to build a fresh "
                      "tiny Idefics3 VLA whose vocabulary covers the datasets' words",
                      default="tiny")
    image_size: int = _doc(
        "pixels per side of the model's input image when fine-tuning a checkpoint at another "
        "size (Idefics3: the vision position embeddings resampled bicubically, the processor's "
        "size and image tokens updated; rt2_policy.training.resolution); a multiple of patch "
        "size × scale factor; 0 = the checkpoint's own. A fresh tiny model takes "
        "--tiny.image-size instead", default=0)
    robot_datasets: tuple[str, ...] = _doc("LeRobot-format dataset roots (robot episodes)",
                                           default=())
    vqa_datasets: tuple[str, ...] = _doc("VQA datasets (rt2_policy.data.vqa.load_vqa paths)",
                                         default=())
    eval_robot_datasets: tuple[str, ...] = _doc(
        "held-out robot datasets for eval; empty = a fixed subset of the training data",
        default=())
    eval_vqa_datasets: tuple[str, ...] = _doc(
        "held-out VQA datasets for eval; empty = a fixed subset of the training data",
        default=())
    output_dir: str = _doc("checkpoints, metrics.jsonl, training_curve.png, config.json",
                           default="runs/rt2")
    robot_fraction: float = _doc("share of robot examples per batch in [0, 1] (RT-2-PaLI-X: "
                                 "0.5); forced to 1 without VQA data", default=0.5)
    max_steps: int = _doc("optimizer steps in total (a resumed run continues up to it)",
                          default=2000)
    batch_size: int = _doc("examples per optimizer step", default=16)
    learning_rate: float = _doc("peak AdamW learning rate, 1/step", default=1e-3)
    warmup_steps: int = _doc("linear warm-up steps from 0 to learning_rate", default=100)
    vision_pretrain_data: str = _doc(
        "rt2_sim.patch_labels .npz: before training, pre-train the vision tower on what covers "
        "each image patch (rt2_policy.training.vision_pretrain); '' = off", default="")
    vision_pretrain_steps: int = _doc("steps of that pre-training (batch 32)", default=1000)
    vision_lr_scale: float = _doc("learning rate of the vision tower and connector relative to "
                                  "learning_rate (> 0; VLM recipes train them slower)",
                                  default=1.0)
    lr_schedule: str = _doc(f"decay after warm-up, one of {LR_SCHEDULES}", default="cosine")
    min_lr_ratio: float = _doc("final learning rate / peak for cosine and linear, in [0, 1]",
                               default=0.1)
    weight_decay: float = _doc("AdamW decoupled weight decay on matrices (not norms/biases)",
                               default=0.01)
    adam_betas: tuple[float, float] = _doc("AdamW (beta1, beta2)", default=(0.9, 0.95))
    grad_clip: float = _doc("max global L2 norm of the gradient; 0 disables clipping",
                            default=1.0)
    seed: int = _doc("seed of weights (tiny), sampling, augmentation and dropout", default=0)
    device: str = _doc("torch device for the model, e.g. cpu or cuda:0", default="cpu")
    num_threads: int = _doc("torch intra-op CPU threads; 0 = torch's default", default=0)
    num_workers: int = _doc("DataLoader worker processes for decoding/preprocessing, 0 or 1 "
                            "(1 helps when the data does not fit cache_mb)", default=0)
    cache_mb: int = _doc("memory for preprocessed examples (~64 KiB each at 96 px, ~142 KiB "
                         "at 144 px), MiB; 0 = preprocess every time", default=2048)
    preload: bool = _doc("preprocess the data in order into the cache before training "
                         "(reads each LeRobot episode once)", default=True)
    cot: float = _doc("probability in [0, 1] that a robot target starts with a "
                      "'plan: ... action:' chain of thought (RT-2 §4.4)", default=0.0)
    plans_file: str = _doc("JSON object instruction -> plan for chain-of-thought targets (e.g. "
                           "a paraphrase -> its canonical task); '' = plan from the data or the "
                           "instruction", default="")
    cot_plan: str = _doc(
        "what a chain-of-thought plan says: 'task' (the frame's plan, its plans_file entry or "
        "the instruction) or 'goal' (the phase and the image point, 0..255, of where the arm "
        "heads: 'reach X Y' to observation.target_point, 'bring X Y' to "
        "observation.reference_point while the target is held, 'done X Y' on a terminating "
        "frame; rt2_policy.plans.goal_plan) "
        "or 'waypoint' (the same phases with where the demonstrator's action heads the tcp, "
        "observation.goal_position, in the prompt's tcp bins: 'bring X Y Z')",
        default="task")
    gripper_state_indices: tuple[int, ...] = _doc(
        "positions of the finger joints (prismatic, metres) in each robot frame's "
        "observation.state, e.g. 7 8 for the Franka Hand in rt2_sim's demos; when given, the "
        "action prompt carries the gripper state (rt2_policy.prompts.action_prompt) and the "
        "checkpoint records it; () = RT-2's prompt without it", default=())
    gripper_open_position: float = _doc(
        "one finger's joint position when the gripper is fully open, metres (Franka Hand: "
        "0.04); used with gripper_state_indices", default=0.04)
    tcp_position_indices: tuple[int, ...] = _doc(
        "positions of the 7 arm joints (radians, panda_joint1..7) in each robot frame's "
        "observation.state, e.g. 0 1 2 3 4 5 6 in rt2_sim's demos; when given, the action "
        "prompt carries the tool centre point's position in the base frame, from Franka Panda "
        "forward kinematics (rt2_policy.proprioception.panda_tcp_position), binned over "
        "rt2_policy.prompts.TCP_POSITION_BOUNDS, and the checkpoint records it; () = without",
        default=())
    grasp_memory: bool = _doc(
        "the action prompt ends with the episode's grasp memory, ', grasp 1' once the gripper "
        "has held something for 3 consecutive frames earlier in the episode, else ', grasp 0' "
        "(rt2_policy.grasp_memory; from the finger joints of gripper_state_indices), and the "
        "checkpoint records it; false = without", default=False)
    tcp_offset: float = _doc(
        "flange to tool centre point along the flange z axis, metres (rt2_sim's Panda: 0.13; "
        "franka_description's panda_hand_tcp: 0.1034); used with tcp_position_indices",
        default=0.13)
    action_label_sigma: float = _doc(
        "width in bins of the Gaussian that spreads each bin target over its neighbours "
        "(ordinal label smoothing); 0 = plain cross-entropy as in RT-2", default=0.0)
    gripper_loss_weight: float = _doc(
        "weight of each robot row's gripper token (the last of its 8 action tokens) in the "
        "loss, relative to the other tokens' 1; most gripper labels repeat the gripper's state "
        "in the prompt, and the few that change it (grasp, release) are the decisions; "
        "1 = as RT-2", default=1.0)
    plan_word_loss_weight: float = _doc(
        "weight of the words of robot rows' plans (not their bins, not EOS) in the loss; in "
        "goal and waypoint plans every word but the phase is fixed, so this weights the "
        "phase, the decision to carry, let go or end (rt2_policy.plans); 1 = unweighted",
        default=1.0)
    grounding_loss_weight: float = _doc(
        "weight of the pointer loss over the image tokens on pointing questions (the token "
        "holding the named object; rt2_policy.training.grounding); needs the 'suffix' prompt "
        "layout; 0 = off", default=0.0)
    reference_grounding_loss_weight: float = _doc(
        "weight of a second pointer loss, on robot frames' reference object (the object to put "
        "the target near, or the container; their observation.reference_point): an action "
        "needs to know where the target goes as much as where it is; needs the 'suffix' "
        "prompt layout; 0 = off", default=0.0)
    grounding_point: str = _doc(
        "what the pointer loss points at on robot frames: 'target' (the instructed object, "
        "observation.target_point) or 'goal' (what the arm moves towards: the reference "
        "object, observation.reference_point, while the target is held or let go, i.e. the "
        "fingers hold something and the action keeps them closed or opens them, else the "
        "target)", default="target")
    bf16: bool = _doc("bfloat16 autocast for forward/backward (weights stay float32)",
                      default=False)
    time_budget_min: float = _doc("stop (and save) after this many minutes of training, "
                                  "counted over resumes too; 0 = no limit",
                                  default=0.0)
    schedule_to_budget: bool = _doc(
        "decay the learning rate over the time budget too: after warm-up the schedule's "
        "progress is max(steps / max_steps, minutes / time_budget_min), so a run its budget "
        "stops still ends at min_lr_ratio (budgeted training, Li et al., ICLR 2020); needs "
        "time_budget_min > 0", default=False)
    log_interval: int = _doc("steps between metrics.jsonl lines", default=10)
    eval_interval: int = _doc("steps between evaluations; 0 = only at the end", default=250)
    eval_examples: int = _doc("examples per source in the fixed evaluation set", default=64)
    save_interval: int = _doc("steps between checkpoints; 0 = only at the end", default=500)
    save_total_limit: int = _doc("checkpoints kept (oldest deleted); 0 = keep all", default=2)
    resume: bool = _doc("continue from the latest checkpoint in output_dir if there is one",
                        default=True)
    token_scheme: str = _doc("action token scheme for a checkpoint without "
                             "action_tokenizer_config.json; '' = stored one", default="")
    progress: bool = _doc("show a tqdm progress bar on stderr", default=True)
    tiny: TinyModelConfig = _doc("architecture of model='tiny'", default=TinyModelConfig())
    lora: LoraSettings = _doc("LoRA settings (large checkpoints)", default=LoraSettings())

    def __post_init__(self) -> None:
        _check(isinstance(self.device, str) and self.device.strip() != "", "device",
               "a torch device string such as 'cpu'", self.device)
        _check(isinstance(self.model, str) and self.model.strip() != "", "model",
               "'tiny', a checkpoint directory or a hub id", self.model)
        for name in ("robot_datasets", "vqa_datasets", "eval_robot_datasets",
                     "eval_vqa_datasets"):
            object.__setattr__(self, name, _str_tuple(name, getattr(self, name)))
        _check(len(self.robot_datasets) + len(self.vqa_datasets) > 0, "robot_datasets",
               "at least one robot or VQA dataset", self.robot_datasets)
        _check(isinstance(self.output_dir, (str, Path)) and str(self.output_dir) != "",
               "output_dir", "a directory path", self.output_dir)
        object.__setattr__(self, "output_dir", str(self.output_dir))
        for name in ("robot_fraction", "cot", "min_lr_ratio"):
            value = getattr(self, name)
            _check(_is_number(value) and 0.0 <= value <= 1.0, name, "a number in [0, 1]", value)
        for name in ("max_steps", "batch_size", "log_interval", "eval_examples",
                     "vision_pretrain_steps"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, name, "an int >= 1", value)
        for name in ("warmup_steps", "seed", "num_threads", "cache_mb", "eval_interval",
                     "save_interval", "save_total_limit", "image_size"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 0, name, "an int >= 0", value)
        _check(self.num_workers in (0, 1) and _is_int(self.num_workers), "num_workers",
               "0 or 1", self.num_workers)
        _check(_is_number(self.learning_rate) and self.learning_rate > 0, "learning_rate",
               "a number > 0 (1/step)", self.learning_rate)
        _check(_is_number(self.vision_lr_scale) and self.vision_lr_scale > 0, "vision_lr_scale",
               "a number > 0", self.vision_lr_scale)
        _check(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"one of {LR_SCHEDULES}",
               self.lr_schedule)
        for name in ("weight_decay", "grad_clip", "time_budget_min", "action_label_sigma",
                     "gripper_loss_weight", "plan_word_loss_weight", "grounding_loss_weight",
                     "reference_grounding_loss_weight"):
            value = getattr(self, name)
            _check(_is_number(value) and value >= 0, name, "a number >= 0", value)
        _check(self.grounding_point in GROUNDING_POINTS, "grounding_point",
               f"one of {GROUNDING_POINTS}", self.grounding_point)
        _check(self.cot_plan in COT_PLANS, "cot_plan", f"one of {COT_PLANS}", self.cot_plan)
        indices = self.gripper_state_indices
        _check(isinstance(indices, Sequence) and not isinstance(indices, str)
               and all(_is_int(i) and i >= 0 for i in indices), "gripper_state_indices",
               "a sequence of ints >= 0", indices)
        object.__setattr__(self, "gripper_state_indices", tuple(int(i) for i in indices))
        indices = self.tcp_position_indices
        _check(isinstance(indices, Sequence) and not isinstance(indices, str)
               and len(indices) in (0, 7) and all(_is_int(i) and i >= 0 for i in indices),
               "tcp_position_indices", "no or 7 ints >= 0 (the arm joints)", indices)
        object.__setattr__(self, "tcp_position_indices", tuple(int(i) for i in indices))
        _check(not (self.image_size and self.model == "tiny"), "image_size",
               "0 with model 'tiny' (a fresh tiny model takes --tiny.image-size)",
               self.image_size)
        _check(isinstance(self.grasp_memory, bool), "grasp_memory", "a bool", self.grasp_memory)
        _check(not self.grasp_memory or bool(self.gripper_state_indices), "grasp_memory",
               "false without gripper_state_indices (the memory reads the finger joints)",
               self.grasp_memory)
        _check(_is_number(self.tcp_offset) and 0 <= self.tcp_offset <= 1, "tcp_offset",
               "metres in [0, 1]", self.tcp_offset)
        _check(_is_number(self.gripper_open_position) and self.gripper_open_position > 0,
               "gripper_open_position", "metres > 0", self.gripper_open_position)
        betas = tuple(self.adam_betas)
        _check(len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas),
               "adam_betas", "two numbers in [0, 1)", self.adam_betas)
        object.__setattr__(self, "adam_betas", (float(betas[0]), float(betas[1])))
        for name in ("bf16", "resume", "progress", "preload", "schedule_to_budget"):
            _check(isinstance(getattr(self, name), bool), name, "a bool", getattr(self, name))
        _check(not self.schedule_to_budget or self.time_budget_min > 0, "time_budget_min",
               "a number > 0 with schedule_to_budget", self.time_budget_min)
        _check(isinstance(self.plans_file, str), "plans_file", "a path or ''", self.plans_file)
        _check(isinstance(self.vision_pretrain_data, str), "vision_pretrain_data",
               "a path or ''", self.vision_pretrain_data)
        _check(self.token_scheme in TOKEN_SCHEMES, "token_scheme", f"one of {TOKEN_SCHEMES}",
               self.token_scheme)
        if isinstance(self.tiny, Mapping):
            object.__setattr__(self, "tiny", TinyModelConfig(**self.tiny))
        if isinstance(self.lora, Mapping):
            object.__setattr__(self, "lora", LoraSettings(**self.lora))
        _check(isinstance(self.tiny, TinyModelConfig), "tiny", "a TinyModelConfig", self.tiny)
        _check(isinstance(self.lora, LoraSettings), "lora", "a LoraSettings", self.lora)

    # ------------------------------------------------------------------ (de)serialisation
    @property
    def always_plans(self) -> bool:
        """True when every robot target starts with a chain-of-thought plan (``cot`` = 1):
        the checkpoint then plans before every action and its evaluation reads plans."""
        return self.cot >= 1.0

    @property
    def is_tiny(self) -> bool:
        """True when the run builds a fresh tiny model."""
        return self.model == "tiny"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable nested dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; missing keys take defaults.

        Raises:
            ValueError: on unknown keys or invalid values.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TrainConfig: expected keys from {sorted(known)}, got {unknown}")
        values = dict(data)
        for name, sub in (("tiny", TinyModelConfig), ("lora", LoraSettings)):
            if isinstance(values.get(name), Mapping):
                sub_known = {f.name for f in dataclasses.fields(sub)}
                bad = sorted(set(values[name]) - sub_known)
                if bad:
                    raise ValueError(f"{name}: expected keys from {sorted(sub_known)}, got {bad}")
                values[name] = sub(**values[name])
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Load a ``.json`` or ``.yaml``/``.yml`` file holding :meth:`to_dict`'s layout.

        Raises:
            FileNotFoundError: when the file is missing.
            ValueError: on a bad format or invalid values.
        """
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a mapping of config fields, got {type(data)}")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------- command line
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _add_fields(parser: argparse.ArgumentParser, cls: type, prefix: str) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        dest = prefix + f.name
        help_text = f.metadata.get("help", "")
        if dataclasses.is_dataclass(hint):
            _add_fields(parser, hint, dest + ".")
            continue
        default = f.default
        help_text = f"{help_text} (default: {default!r})"
        flag = _flag(prefix + f.name)
        origin = typing.get_origin(hint)
        if hint is bool:
            parser.add_argument(flag, dest=dest, type=_parse_bool, metavar="BOOL",
                                default=argparse.SUPPRESS, help=help_text)
            continue
        metavar = f.name.upper()
        if origin is tuple:
            args = typing.get_args(hint)
            item = args[0] if args and args[0] in (float, int) else str
            parser.add_argument(flag, dest=dest, type=item, nargs="*", metavar=metavar,
                                default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, dest=dest, type=hint, default=argparse.SUPPRESS,
                                metavar=metavar, help=help_text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and one flag per :class:`TrainConfig` field (nested: ``--lora.r``)."""
    parser.add_argument("--config", type=Path, default=None,
                        help="JSON/YAML file with TrainConfig fields; flags override it")
    _add_fields(parser, TrainConfig, "")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build the config: defaults, then ``--config`` file, then explicit flags.

    Raises:
        ValueError: on invalid values.
    """
    data: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        data = TrainConfig.from_file(args.config).to_dict()
    for key, value in vars(args).items():
        if key == "config":
            continue
        if "." in key:
            section, sub = key.split(".", 1)
            data.setdefault(section, {})
            if not isinstance(data[section], dict):
                data[section] = dataclasses.asdict(data[section])
            data[section][sub] = tuple(value) if isinstance(value, list) else value
        else:
            data[key] = tuple(value) if isinstance(value, list) else value
    return TrainConfig.from_dict(data)
