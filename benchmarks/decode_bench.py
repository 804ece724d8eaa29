"""Decode benchmark: rt2's constrained decoder vs ``model.generate`` + a logits processor.

Same model, same prepared inputs, same emitted ids (checked here and in the tests); only the
decode is timed (no image preprocessing). Variants run interleaved in rounds so that machine
load drifts hit all of them alike.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.common import INSTRUCTIONS, image


def run(model_path: str, *, seconds: float, batch_sizes=(1, 8), compile: bool = True,
        threads: int = 1) -> dict:
    from rt2_policy.constrained_decoding import (
        ActionDecoder,
        decode_action_tokens,
        decode_with_generate,
    )
    from rt2_policy.prompts import action_prompt, with_image
    from rt2_policy.vla_policy import VLAPolicy, to_pil_rgb

    torch.set_num_threads(threads)
    policy = VLAPolicy.from_pretrained(model_path)
    model, allowed = policy.model, policy._allowed
    pad = policy.processor.tokenizer.pad_token_id
    size = policy.image_size or 224
    variants = {
        "generate": lambda x: decode_with_generate(model, x, allowed, pad),
        "reference": lambda x: decode_action_tokens(model, x, allowed),
        "rt2": ActionDecoder(model, allowed),
    }
    if compile:
        variants["rt2_compiled"] = ActionDecoder(model, allowed, compile=True)
    out: dict = {"model_parameters": policy.metadata["num_parameters"], "threads": threads,
                 "image_size": size}
    for batch in batch_sizes:
        prompts = [with_image(action_prompt(INSTRUCTIONS[i % len(INSTRUCTIONS)]),
                              policy.image_token) for i in range(batch)]
        inputs = policy._prepare([to_pil_rgb(image(i, size)) for i in range(batch)], prompts)
        want = decode_action_tokens(model, inputs, allowed).token_ids
        times: dict[str, list[float]] = {name: [] for name in variants}
        for name, fn in variants.items():  # warm-up (compiles) and equality check
            got = fn(inputs).token_ids
            if not torch.equal(got, want):
                raise RuntimeError(f"decode variant {name} emitted {got.tolist()}, "
                                   f"expected {want.tolist()}")
        deadline = time.perf_counter() + seconds * len(variants)
        while time.perf_counter() < deadline or min(len(t) for t in times.values()) < 5:
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn(inputs)
                times[name].append(time.perf_counter() - t0)
        rates = {name: batch / float(np.median(t)) for name, t in times.items()}
        out[f"batch{batch}"] = {
            "actions_per_s": {k: round(v, 1) for k, v in rates.items()},
            "speedup_vs_generate": {k: round(v / rates["generate"], 2) for k, v in rates.items()
                                    if k != "generate"},
            "calls": {k: len(v) for k, v in times.items()},
        }
    return out


def table(result: dict) -> list[str]:
    lines = [f"decode ({result['model_parameters'] / 1e6:.1f} M params, "
             f"{result['image_size']} px, {result['threads']} thread(s)): actions/s"]
    for key, value in result.items():
        if not key.startswith("batch"):
            continue
        rates = value["actions_per_s"]
        cells = "  ".join(f"{k} {v:7.1f}" for k, v in rates.items())
        speed = "  ".join(f"{k} x{v:.2f}" for k, v in value["speedup_vs_generate"].items())
        lines.append(f"  {key:<7} {cells}   | vs generate: {speed}")
    return lines
