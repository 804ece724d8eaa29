"""Greedy decoding of RT-2 action tokens restricted to the action vocabulary.

RT-2 (Brohan et al., 2023, §3.2, "Output constraint") samples only valid action tokens when the
model is prompted with a robot-action task, so a VLA that also speaks
English can never emit a word where a bin is expected. Here that is a manual greedy loop:

1. one *prefill* forward over the prompt (with ``pixel_values``), ``use_cache=True``;
2. at step ``i`` the logits of every id not in ``allowed_ids_per_step[i]`` are set to ``-inf``
   (RT-2: step 0 = terminate → ids of bins 0 and 1; steps 1..7 → the 256 action ids), the argmax
   is taken, and fed back as a single token with ``past_key_values`` — 1 prefill + 7 one-token
   forwards for 8 tokens.

Batches are left-padded (``attention_mask`` 0 on the left); ``position_ids`` are computed from
the mask as ``transformers``' ``GenerationMixin`` does, so each row decodes as if alone.

:func:`generate_text` is the unconstrained counterpart (full vocabulary, ``model.generate``)
for ordinary questions. Nothing in this module imports rclpy.

:class:`ActionDecoder` is the fast path of the same decode (what :class:`VLAPolicy` uses): it
emits the same ids as :func:`decode_action_tokens` (tested) with no per-token work beyond one
forward of the decoder and a ``(B, H) x (H, U)`` product:

* the LM head is evaluated on the ``U`` ids that any step allows (257 of the vocabulary for RT-2:
  the 256 bins, terminate included), not on the whole vocabulary — for a 256k-word Gemma/Llama
  vocabulary that is most of the head's cost; per-step masks are a precomputed additive bias
  (0 / −inf) over those ``U`` columns, then argmax — no logits processors, no full-vocabulary
  logits, no per-step allocation of masks or positions (views of preallocated buffers);
* the attention mask is dropped when no row is padded (then SDPA's causal path needs none);
* on Llama-family text models (Idefics3/SmolVLM, LLaVA-Llama; :data:`LEAN_TEXT_MODELS`) the
  one-token steps call the text model's embedding, decoder layers and norm directly
  (:class:`_LeanStep`: the same modules and mask in the same order, bitwise the same hidden
  state, tested) and compute the rotary embedding of all steps once, skipping the per-call
  wrappers of the multimodal and text ``forward`` — on a small model those cost more than the
  layers (about 7 % of an action on the tiny VLA, 1 thread);
* ``cache="static"`` decodes into a preallocated ``transformers.StaticCache`` reused across calls
  (bucketed lengths), which ``compile=True`` needs: the one-token step is then compiled once with
  ``torch.compile`` (fixed shapes per batch size and bucket), the setting for GPUs
  (CUDA graphs, ``mode="reduce-overhead"``) and also faster on a CPU (see the README's table).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rt2_policy.token_mapping import check_terminate_threshold

_LOG = logging.getLogger(__name__)

#: Keys of a processor output that only the prefill forward needs.
_PREFILL_ONLY_KEYS = ("pixel_values", "pixel_attention_mask", "image_sizes", "image_grid_thw")


@dataclass(frozen=True)
class DecodeResult:
    """Output of :func:`decode_action_tokens`.

    Attributes:
        token_ids: generated vocabulary ids, shape ``(batch, steps)``, int64, CPU.
        step_times: wall-clock seconds per generated token, length ``steps``; entry 0 includes
            the prefill forward (vision tower + prompt).
        total_time: wall-clock seconds of the whole decode.
        scores: with ``output_scores=True``, the raw (unmasked) next-token logits of every step,
            shape ``(batch, steps, vocab_size)``, float32, CPU; else None.
    """

    token_ids: torch.Tensor
    step_times: tuple[float, ...]
    total_time: float
    scores: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.token_ids.ndim != 2:
            raise ValueError(
                f"token_ids: expected shape (batch, steps), got {tuple(self.token_ids.shape)}"
            )
        if len(self.step_times) != self.token_ids.shape[1]:
            raise ValueError(
                f"step_times: expected {self.token_ids.shape[1]} entries, "
                f"got {len(self.step_times)}"
            )


@dataclass(frozen=True)
class TextGeneration:
    """Output of :func:`generate_text`.

    Attributes:
        texts: decoded continuation per batch row (special tokens skipped, stripped).
        token_ids: generated ids, shape ``(batch, new_tokens)``, int64, CPU (padded with the
            pad id after an early EOS).
        latency: wall-clock seconds of the generation.
    """

    texts: tuple[str, ...]
    token_ids: torch.Tensor
    latency: float


def build_allowed_mask(
    allowed_ids_per_step: Sequence[Sequence[int] | np.ndarray | torch.Tensor],
    vocab_size: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean mask of the ids allowed at each decoding step.

    Build it once per policy and pass it to :func:`decode_action_tokens` to avoid per-call work.

    Args:
        allowed_ids_per_step: one collection of vocabulary ids per step (e.g.
            :meth:`rt2_policy.token_mapping.ActionTokenMapping.allowed_ids_per_step`).
        vocab_size: size of the logits' last dimension.

    Returns:
        shape ``(steps, vocab_size)``, bool, True = allowed.

    Raises:
        ValueError: on no steps, an empty step, or an id outside ``[0, vocab_size)``.
    """
    if len(allowed_ids_per_step) == 0:
        raise ValueError("allowed_ids_per_step: expected at least one step, got 0")
    mask = torch.zeros((len(allowed_ids_per_step), int(vocab_size)), dtype=torch.bool)
    for step, ids in enumerate(allowed_ids_per_step):
        idx = torch.as_tensor(np.asarray(ids, dtype=np.int64).reshape(-1))
        if idx.numel() == 0:
            raise ValueError(f"allowed_ids_per_step[{step}]: expected at least one id, got none")
        if int(idx.min()) < 0 or int(idx.max()) >= vocab_size:
            raise ValueError(
                f"allowed_ids_per_step[{step}]: expected ids in [0, {vocab_size}), "
                f"got range [{int(idx.min())}, {int(idx.max())}]"
            )
        mask[step, idx] = True
    return mask.to(device) if device is not None else mask


def terminate_logit_offset(threshold: float) -> float:
    """Logit offset of the terminate token (bin 1) for a decision threshold on its probability.

    Greedy decoding emits terminate when ``p(1) > p(0)``, i.e. ``p(1) > 0.5`` over RT-2's two
    terminate bins (Brohan et al., 2023, §3.2). Adding ``-log(t / (1 - t))`` to the logit of
    bin 1 makes the argmax pick it only when ``p(1) = sigmoid(l1 - l0) > t``: ``t = 0.5`` gives
    0 (plain greedy), larger ``t`` asks for more confidence before the episode ends.

    Args:
        threshold: ``t``, a probability in (0, 1).

    Returns:
        The offset in logits (nats), a finite float.

    Raises:
        ValueError: when ``threshold`` is not a number in (0, 1).
    """
    t = check_terminate_threshold(threshold)
    return -math.log(t / (1.0 - t))


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding (as ``GenerationMixin``): cumsum − 1, pads set to 1."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


def _masked_argmax(logits: torch.Tensor, allowed: torch.Tensor, step: int) -> torch.Tensor:
    """Argmax over allowed ids; ``logits`` ``(B, V)``, ``allowed`` ``(V,)`` bool → ``(B,)``."""
    if logits.shape[-1] != allowed.shape[-1]:
        raise ValueError(
            f"logits: expected vocabulary size {allowed.shape[-1]}, got {logits.shape[-1]}"
        )
    masked = logits.masked_fill(~allowed, float("-inf"))
    best, ids = masked.max(dim=-1)
    if not bool(torch.isfinite(best).all()):
        raise RuntimeError(
            f"step {step}: expected finite logits for the allowed ids, got {best.tolist()}"
        )
    return ids


@torch.inference_mode()
def decode_action_tokens(
    model: Any,
    inputs: Mapping[str, torch.Tensor],
    allowed_ids_per_step: Sequence[Sequence[int] | np.ndarray | torch.Tensor] | torch.Tensor,
    *,
    use_cache: bool = True,
    output_scores: bool = False,
) -> DecodeResult:
    """Greedy decode of ``len(allowed_ids_per_step)`` tokens, each restricted to its allowed ids.

    Args:
        model: a causal VLM such as ``Idefics3ForConditionalGeneration`` (in eval mode) whose
            forward accepts ``input_ids``, ``attention_mask``, ``position_ids``,
            ``past_key_values``, ``use_cache`` and the processor's image tensors.
        inputs: processor output on the model's device: ``input_ids`` ``(B, T)`` int64,
            ``attention_mask`` ``(B, T)`` (0 = left padding; optional for ``B == 1``),
            ``pixel_values`` etc. (given to the prefill only).
        allowed_ids_per_step: per-step allowed ids, or a precomputed
            :func:`build_allowed_mask` tensor ``(steps, vocab_size)`` bool.
        use_cache: True: prefill once, then one-token forwards with ``past_key_values``.
            False: recompute the full sequence (with the image) every step — slow, the
            reference the cached path must match.
        output_scores: also return every step's raw logits (:attr:`DecodeResult.scores`).

    Returns:
        :class:`DecodeResult` with ``token_ids`` ``(B, steps)``.

    Raises:
        ValueError: on missing ``input_ids``, right padding, or ids outside the vocabulary.
        RuntimeError: when the logits of the allowed ids are not finite (NaN/inf model output).
    """
    start = time.perf_counter()
    if "input_ids" not in inputs:
        raise ValueError(f"inputs: expected 'input_ids', got keys {sorted(inputs)}")
    input_ids = inputs["input_ids"]
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids: expected shape (batch, seq), got {tuple(input_ids.shape)}")
    attention_mask = inputs.get("attention_mask")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if input_ids.shape[0] > 1 and not bool((attention_mask[:, -1] != 0).all()):
        raise ValueError("attention_mask: expected left padding (last column all 1), got 0s")

    if isinstance(allowed_ids_per_step, torch.Tensor) and allowed_ids_per_step.dtype == torch.bool:
        mask = allowed_ids_per_step
    else:
        vocab = model.get_output_embeddings().weight.shape[0]
        mask = build_allowed_mask(allowed_ids_per_step, vocab)
    mask = mask.to(input_ids.device)
    steps = mask.shape[0]

    batch = input_ids.shape[0]
    generated = torch.empty((batch, steps), dtype=torch.long, device=input_ids.device)
    step_times: list[float] = []
    scores: list[torch.Tensor] = []
    prefill_extra = {k: v for k, v in inputs.items() if k in _PREFILL_ONLY_KEYS}

    if use_cache:
        position_ids = _position_ids(attention_mask)
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **prefill_extra,
        )
        past = out.past_key_values
        t_prev = start
        for step in range(steps):
            logits = out.logits[:, -1, :]
            if output_scores:
                scores.append(logits.float().cpu())
            next_ids = _masked_argmax(logits, mask[step], step)
            generated[:, step] = next_ids
            if step + 1 < steps:
                attention_mask = torch.cat(
                    [attention_mask, attention_mask.new_ones((batch, 1))], dim=1
                )
                position_ids = position_ids[:, -1:] + 1
                out = model(
                    input_ids=next_ids[:, None],
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    past_key_values=past,
                    use_cache=True,
                )
                past = out.past_key_values
            now = time.perf_counter()
            step_times.append(now - t_prev)
            t_prev = now
    else:
        ids = input_ids
        t_prev = start
        for step in range(steps):
            out = model(
                input_ids=ids,
                attention_mask=attention_mask,
                position_ids=_position_ids(attention_mask),
                use_cache=False,
                **prefill_extra,
            )
            logits = out.logits[:, -1, :]
            if output_scores:
                scores.append(logits.float().cpu())
            next_ids = _masked_argmax(logits, mask[step], step)
            generated[:, step] = next_ids
            ids = torch.cat([ids, next_ids[:, None]], dim=1)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, 1))], dim=1)
            now = time.perf_counter()
            step_times.append(now - t_prev)
            t_prev = now

    return DecodeResult(
        token_ids=generated.cpu(),
        step_times=tuple(step_times),
        total_time=time.perf_counter() - start,
        scores=torch.stack(scores, dim=1) if output_scores else None,
    )


@torch.inference_mode()
def generate_text(
    model: Any,
    processor: Any,
    inputs: Mapping[str, torch.Tensor],
    max_new_tokens: int = 32,
) -> TextGeneration:
    """Unconstrained greedy generation over the full vocabulary (RT-2's VQA use of the model).

    Args:
        model: a ``GenerationMixin`` VLM in eval mode.
        processor: its processor (``batch_decode`` and ``tokenizer.pad_token_id`` are used).
        inputs: processor output on the model's device (left-padded when batched).
        max_new_tokens: upper bound on generated tokens (stops earlier at EOS); >= 1.

    Returns:
        :class:`TextGeneration`.

    Raises:
        ValueError: on ``max_new_tokens < 1`` or missing ``input_ids``.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected >= 1, got {max_new_tokens}")
    if "input_ids" not in inputs:
        raise ValueError(f"inputs: expected 'input_ids', got keys {sorted(inputs)}")
    start = time.perf_counter()
    prompt_len = inputs["input_ids"].shape[1]
    tokenizer = getattr(processor, "tokenizer", processor)
    output = model.generate(
        **inputs,
        max_new_tokens=int(max_new_tokens),
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    new_ids = output[:, prompt_len:].cpu()
    texts = tuple(t.strip() for t in processor.batch_decode(new_ids, skip_special_tokens=True))
    return TextGeneration(texts=texts, token_ids=new_ids, latency=time.perf_counter() - start)


#: Cache kinds of :class:`ActionDecoder`.
CACHE_KINDS = ("dynamic", "static")

#: Text-model classes whose ``forward`` is exactly: embed → causal mask
#: (``transformers.masking_utils.create_causal_mask``) → rotary embedding → decoder layers → norm
#: (transformers 5.x ``modeling_llama.LlamaModel.forward``), so :class:`ActionDecoder` may run a
#: one-token step through the same modules without the forward's wrappers. Others (Gemma scales
#: its embeddings, Mistral/Qwen have sliding windows, …) take the generic path.
LEAN_TEXT_MODELS = ("LlamaModel",)


def _lean_text_model(base: Any) -> Any | None:
    """The text model of ``base`` whose one-token step :class:`_LeanStep` may run, or None."""
    if base is None:
        return None
    candidates = [getattr(base, name, None) for name in ("text_model", "language_model")]
    for text in [*candidates, base]:
        if text is None or type(text).__name__ not in LEAN_TEXT_MODELS:
            continue
        rotary = getattr(text, "rotary_emb", None)
        rope_type = str(getattr(rotary, "rope_type", "default"))
        if rotary is None or "dynamic" in rope_type or rope_type == "longrope":
            return None  # inv_freq may change with the position: keep the model's own forward
        if text._forward_hooks or text._forward_pre_hooks or hasattr(text, "_hf_hook"):
            return None  # hooks (accelerate offload, output capture) run only via forward
        if not all(hasattr(text, n) for n in ("embed_tokens", "layers", "norm", "config")):
            return None
        return text
    return None


class _LeanStep:
    """One-token decode step through a Llama-style text model's own modules.

    Does what ``LlamaModel.forward`` does for one new token — the embedding, the mask from
    ``create_causal_mask`` (so padding and attention implementations are handled as the model
    handles them), the rotary embedding, every decoder layer with the KV cache, the final norm —
    in the same order with the same modules, so the hidden state is bitwise the same; minus
    the forward's per-call wrappers (config defaults, output capturing, output dataclasses) and
    the multimodal wrapper's checks, which cost more than the layers on a small model. The
    rotary embedding of all steps is computed once per decode (elementwise: the same values).
    """

    def __init__(self, text: Any) -> None:
        from transformers.masking_utils import create_causal_mask

        self._create_mask = create_causal_mask
        self.text = text
        self.config = text.config
        self.layers = list(text.layers[: self.config.num_hidden_layers])

    def hooked(self) -> bool:
        """True once hooks were registered on the text model (they only run via its forward)."""
        return bool(self.text._forward_hooks or self.text._forward_pre_hooks)

    def rotary(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, S)`` positions → cos, sin ``(B, S, head_dim)`` in the embeddings' dtype."""
        probe = self.text.embed_tokens.weight[:1].unsqueeze(0)
        return self.text.rotary_emb(probe, position_ids=positions)

    def __call__(self, ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 position_ids: torch.Tensor, past: Any,
                 rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """``(B, 1)`` ids → ``(B, H)`` last hidden state (normed); updates ``past``."""
        hidden = self.text.embed_tokens(ids)
        mask = self._create_mask(config=self.config, inputs_embeds=hidden,
                                 attention_mask=attention_mask, past_key_values=past,
                                 position_ids=position_ids)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary,
                           position_ids=position_ids, past_key_values=past, use_cache=True)
        return self.text.norm(hidden)[:, -1, :]


class ActionDecoder:
    """Fast constrained greedy decode of action tokens; ids equal :func:`decode_action_tokens`.

    Build once per model and allowed-id mask (:class:`~rt2_policy.vla_policy.VLAPolicy` does),
    then call it with processor outputs. Not thread-safe (the static cache is shared): one call
    at a time, which is how the policy server and the node use it.

    Args:
        model: a Hugging Face VLM in eval mode with a ``base_model`` whose forward returns
            ``last_hidden_state`` and an output embedding (``get_output_embeddings()``); for any
            other model the full forward with ``logits_to_keep=1`` is used.
        allowed: :func:`build_allowed_mask` output, ``(steps, vocab_size)`` bool.
        cache: ``"dynamic"`` (``DynamicCache``, grows by concatenation) or ``"static"``
            (preallocated ``StaticCache`` of ``bucket``-rounded length, reset between calls).
        compile: compile the one-token decode step with ``torch.compile`` (implies
            ``cache="static"``); the first call per batch size compiles (seconds to a minute).
            Falls back to eager, with a warning, if compiling fails (e.g. no C++ compiler).
        compile_mode: ``torch.compile`` mode, e.g. ``None`` (default) or ``"reduce-overhead"``
            (CUDA graphs on GPUs).
        bucket: static-cache lengths are rounded up to a multiple of this many tokens (≥ 1), so
            that prompts of similar length share one cache and one compiled graph.
        logit_offsets: ``{(step, vocabulary id): offset}``, a finite number added to that id's
            logit at that step before the argmax (the id must be allowed there), e.g. the
            terminate threshold of :class:`~rt2_policy.vla_policy.VLAPolicy`
            (:func:`terminate_logit_offset`). None, empty or all zero: plain greedy, the ids
            of :func:`decode_action_tokens`.

    Raises:
        ValueError: on a bad mask, cache kind, bucket or offset.
    """

    def __init__(self, model: Any, allowed: torch.Tensor, *, cache: str = "dynamic",
                 compile: bool = False, compile_mode: str | None = None,
                 bucket: int = 64,
                 logit_offsets: Mapping[tuple[int, int], float] | None = None) -> None:
        if not (isinstance(allowed, torch.Tensor) and allowed.dtype == torch.bool
                and allowed.ndim == 2 and allowed.shape[0] >= 1):
            raise ValueError(
                "allowed: expected a (steps, vocab_size) bool tensor from build_allowed_mask, "
                f"got {getattr(allowed, 'dtype', type(allowed).__name__)} "
                f"{tuple(getattr(allowed, 'shape', ()))}")
        if cache not in CACHE_KINDS:
            raise ValueError(f"cache: expected one of {CACHE_KINDS}, got {cache!r}")
        if not (isinstance(bucket, int) and bucket >= 1):
            raise ValueError(f"bucket: expected an integer >= 1 tokens, got {bucket!r}")
        self.model = model
        self.compile = bool(compile)
        self.cache_kind = "static" if self.compile else cache
        self.bucket = bucket
        self.steps = int(allowed.shape[0])
        head = model.get_output_embeddings()
        self._head = head
        base = getattr(model, "base_model", None)
        self._base = base if base is not None and base is not model else None
        # One-token steps through the text model's modules, minus the forwards' wrappers.
        text = _lean_text_model(self._base)
        self._lean = _LeanStep(text) if text is not None else None
        device = head.weight.device
        allowed = allowed.to(device)
        # Columns any step may emit, ascending: argmax over them breaks ties like the full mask.
        self._union = allowed.any(dim=0).nonzero().squeeze(1)
        self._bias = torch.zeros(allowed.shape[0], self._union.numel(), dtype=torch.float32,
                                 device=device).masked_fill(~allowed[:, self._union],
                                                            float("-inf"))
        for (step, token_id), offset in (logit_offsets or {}).items():
            if not (0 <= step < self.steps and 0 <= token_id < allowed.shape[1]
                    and bool(allowed[step, token_id])):
                raise ValueError(f"logit_offsets: expected (step, id) allowed by the mask, got "
                                 f"({step}, {token_id})")
            if not math.isfinite(offset):
                raise ValueError(f"logit_offsets[({step}, {token_id})]: expected a finite "
                                 f"number, got {offset!r}")
            column = int(torch.searchsorted(self._union, torch.tensor(token_id, device=device)))
            self._bias[step, column] += float(offset)
        self._head_version = -1
        self._weight: torch.Tensor | None = None
        self._head_bias: torch.Tensor | None = None
        self._static: dict[tuple[int, int], Any] = {}
        self._step_fn = self._step_eager
        if self.compile:
            self._step_fn = torch.compile(self._step_eager, mode=compile_mode, dynamic=False)

    # ------------------------------------------------------------------ pieces
    def _refresh_head(self) -> None:
        """Gather the allowed rows of the LM head (again, if its weights changed in place)."""
        weight = self._head.weight
        if self._weight is not None and weight._version == self._head_version:
            return
        with torch.no_grad():
            self._weight = weight[self._union].detach().clone()
            bias = getattr(self._head, "bias", None)
            self._head_bias = None if bias is None else bias[self._union].detach().clone()
        self._head_version = weight._version
        self._bias = self._bias.to(self._weight.dtype)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, H)`` last hidden state → ``(B, U)`` logits of the allowed columns."""
        logits = hidden @ self._weight.T
        return logits if self._head_bias is None else logits + self._head_bias

    def _forward(self, **kwargs) -> torch.Tensor:
        """One forward → ``(B, U)`` logits of the last position."""
        if self._base is not None:
            out = self._base(**kwargs)
            hidden = getattr(out, "last_hidden_state", None)
            if hidden is not None:
                return self._logits(hidden[:, -1, :])
        out = self.model(**kwargs, logits_to_keep=1)
        return out.logits[:, -1, :].index_select(-1, self._union)

    def _step_eager(self, ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    position_ids: torch.Tensor, past: Any,
                    rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """One token per row → ``(B, U)`` logits; ``rotary`` (cos, sin) of this step for the
        lean path (:class:`_LeanStep`), else the model's forward."""
        if self._lean is not None and rotary is not None and not self._lean.hooked():
            return self._logits(self._lean(ids, attention_mask, position_ids, past, rotary))
        return self._forward(input_ids=ids, attention_mask=attention_mask,
                             position_ids=position_ids, past_key_values=past, use_cache=True)

    def _text_config(self) -> Any:
        config = self.model.config
        return config.get_text_config() if hasattr(config, "get_text_config") else config

    def _cache(self, batch: int, length: int) -> tuple[Any, int]:
        """A fresh (dynamic) or reset, reused (static) KV cache for ``length`` tokens, and the
        attention-mask width its steps take (static: the bucketed cache length)."""
        from transformers import DynamicCache, StaticCache

        if self.cache_kind != "static":
            return DynamicCache(config=self._text_config()), length
        size = -(-length // self.bucket) * self.bucket
        key = (batch, size)
        cache = self._static.get(key)
        if cache is None:
            cache = StaticCache(config=self._text_config(), max_cache_len=size)
            self._static[key] = cache
        else:
            cache.reset()
        return cache, size

    def _run_step(self, ids, mask, positions, past, rotary) -> torch.Tensor:
        if self._step_fn is self._step_eager:
            return self._step_eager(ids, mask, positions, past, rotary)
        try:
            return self._step_fn(ids, mask, positions, past, rotary)
        except Exception as exc:  # noqa: BLE001 - compiler missing/broken: stay correct, go eager
            _LOG.warning("torch.compile of the decode step failed (%s); decoding eagerly", exc)
            self._step_fn = self._step_eager
            return self._step_eager(ids, mask, positions, past, rotary)

    def _pick(self, logits: torch.Tensor, step: int) -> torch.Tensor:
        best, col = (logits + self._bias[step]).max(dim=-1)
        if not bool(torch.isfinite(best).all()):
            raise RuntimeError(
                f"step {step}: expected finite logits for the allowed ids, got {best.tolist()}")
        return self._union[col]

    # ------------------------------------------------------------------ decode
    @torch.inference_mode()
    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> DecodeResult:
        """Decode ``steps`` tokens for a (left-padded) batch.

        Args:
            inputs: processor output on the model's device, as for
                :func:`decode_action_tokens`.

        Returns:
            :class:`DecodeResult` (``scores`` None).

        Raises:
            ValueError: on missing ``input_ids`` or right padding.
            RuntimeError: on non-finite logits of the allowed ids.
        """
        start = time.perf_counter()
        if "input_ids" not in inputs:
            raise ValueError(f"inputs: expected 'input_ids', got keys {sorted(inputs)}")
        input_ids = inputs["input_ids"]
        if input_ids.ndim != 2:
            raise ValueError(
                f"input_ids: expected shape (batch, seq), got {tuple(input_ids.shape)}")
        batch, length = input_ids.shape
        attention_mask = inputs.get("attention_mask")
        padded = attention_mask is not None and not bool((attention_mask != 0).all())
        if padded and batch > 1 and not bool((attention_mask[:, -1] != 0).all()):
            raise ValueError("attention_mask: expected left padding (last column all 1), got 0s")
        self._refresh_head()
        steps = self.steps
        total = length + steps
        past, width = self._cache(batch, total)
        extra = {k: v for k, v in inputs.items() if k in _PREFILL_ONLY_KEYS}
        if padded:
            # One buffer for every step: the prompt's mask, then ones; steps take views of it.
            # A static cache takes its full width (its empty tail is masked by causality).
            mask_buf = attention_mask.new_ones((batch, width))
            mask_buf[:, :length] = attention_mask
            positions = _position_ids(attention_mask)
        else:
            mask_buf = None
            positions = torch.arange(length, device=input_ids.device).expand(batch, length)
        next_pos = positions[:, -1:] + torch.arange(1, steps + 1, device=input_ids.device)
        cos = sin = None
        if self._lean is not None:
            cos, sin = self._lean.rotary(next_pos)  # (B, steps, head_dim), all steps at once
        generated = torch.empty((batch, steps), dtype=torch.long, device=input_ids.device)
        step_times: list[float] = []

        logits = self._forward(input_ids=input_ids,
                               attention_mask=None if mask_buf is None else attention_mask,
                               position_ids=positions, past_key_values=past, use_cache=True,
                               **extra)
        t_prev = start
        for step in range(steps):
            ids = self._pick(logits, step)
            generated[:, step] = ids
            if step + 1 < steps:
                step_mask = None
                if mask_buf is not None:
                    step_mask = mask_buf if self.cache_kind == "static" \
                        else mask_buf[:, : length + step + 1]
                at = slice(step, step + 1)
                rotary = None if cos is None else (cos[:, at], sin[:, at])
                logits = self._run_step(ids[:, None], step_mask, next_pos[:, at], past, rotary)
            now = time.perf_counter()
            step_times.append(now - t_prev)
            t_prev = now
        return DecodeResult(token_ids=generated.cpu(), step_times=tuple(step_times),
                            total_time=time.perf_counter() - start)


@torch.inference_mode()
def decode_with_generate(model: Any, inputs: Mapping[str, torch.Tensor], allowed: torch.Tensor,
                         pad_token_id: int = 0) -> DecodeResult:
    """The same constrained greedy decode through ``model.generate`` and a logits processor.

    The baseline of the decode benchmark (the usual way to constrain a Hugging Face model, e.g.
    OpenVLA's ``generate`` plus a mask); emits the same ids as :func:`decode_action_tokens`.

    Args:
        model: a ``GenerationMixin`` VLM in eval mode.
        inputs: processor output (left-padded when batched).
        allowed: :func:`build_allowed_mask` output, ``(steps, vocab_size)`` bool.
        pad_token_id: the tokenizer's pad id (only used for finished rows; none finish early).

    Returns:
        :class:`DecodeResult` (``step_times`` spread evenly: ``generate`` does not expose them).
    """
    from transformers import LogitsProcessor, LogitsProcessorList

    prompt_len = int(inputs["input_ids"].shape[1])
    bias = torch.zeros(allowed.shape, dtype=torch.float32, device=allowed.device)
    bias = bias.masked_fill(~allowed, float("-inf"))

    class _StepMask(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            return scores + bias[input_ids.shape[1] - prompt_len].to(scores.dtype)

    start = time.perf_counter()
    steps = int(allowed.shape[0])
    out = model.generate(**inputs, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                         logits_processor=LogitsProcessorList([_StepMask()]),
                         pad_token_id=pad_token_id)
    total = time.perf_counter() - start
    return DecodeResult(token_ids=out[:, prompt_len:].cpu(),
                        step_times=tuple([total / steps] * steps), total_time=total)
