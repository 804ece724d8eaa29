"""Builds the policy a node asked for, importing heavy backends only when they are used.

Backends:
    ``local``: :class:`rt2_policy.vla_policy.VLAPolicy` loaded with ``from_pretrained`` from a
        local directory or a Hugging Face hub id (imports torch and transformers).
    ``scripted``: :class:`rt2_policy.scripted_policy.ScriptedPolicy`, a replay double.
"""

from __future__ import annotations

from collections.abc import Sequence

from rt2_policy.contract import Policy

BACKENDS = ("local", "scripted")


def make_policy(backend: str, *, model_path: str = "", device: str = "cpu",
                scripted_actions: Sequence[str] = (), scripted_delay: float = 0.0,
                num_threads: int = 0) -> Policy:
    """Create a policy.

    Args:
        backend: one of :data:`BACKENDS`.
        model_path: checkpoint directory or hub id (``local``).
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"`` (``local``).
        scripted_actions: RT-2 action strings to replay (``scripted``).
        scripted_delay: seconds each scripted ``infer`` takes (``scripted``).
        num_threads: torch intra-op threads for ``local`` on the CPU; 0 keeps torch's default.
            On small CPUs sharing cores with a simulator, 1 is often fastest.

    Raises:
        ValueError: unknown backend or missing model path.
        OSError: the checkpoint cannot be read.
    """
    if backend == "local":
        if not model_path:
            raise ValueError("model_path: expected a checkpoint directory or hub id, got ''")
        import torch

        from rt2_policy.vla_policy import VLAPolicy  # heavy: torch + transformers

        if num_threads < 0:
            raise ValueError(f"num_threads: expected >= 0, got {num_threads}")
        if num_threads:
            torch.set_num_threads(num_threads)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no tqdm bars in node logs

        return VLAPolicy.from_pretrained(model_path, device=device)
    if backend == "scripted":
        from rt2_policy.scripted_policy import ScriptedPolicy

        return ScriptedPolicy(list(scripted_actions), delay=scripted_delay)
    raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
