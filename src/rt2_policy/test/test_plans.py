"""Chain-of-thought "Plan:" format and parser (RT-2 §4.4) and plan-then-act inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt2_policy.contract import Observation
from rt2_policy.plans import (
    ACTION_MARKER,
    action_marker_ids,
    normalize_plan,
    parse_plan_and_action,
    plan_prefix_ids,
    plan_target_text,
)
from rt2_policy.tiny_model import build_tokenizer


@pytest.mark.parametrize("text, expected", [
    ("plan: pick up the red cube. action: 0 132 128 90 128 128 128 255",
     ("pick up the red cube", "0 132 128 90 128 128 128 255")),
    # what the WordLevel tokenizer decodes the target to
    ("plan : pick up the red cube . action : 1 2 3 4 5 6 7 8",
     ("pick up the red cube", "1 2 3 4 5 6 7 8")),
    ("Plan: Move the apple near the bowl.  Action:", ("Move the apple near the bowl", "")),
    ("no prefix here action: 5", ("no prefix here", "5")),
    ("plan: a. action: x action: y", ("a", "x action: y")),  # the first marker ends the plan
])
def test_parse_plan_and_action(text, expected):
    assert parse_plan_and_action(text) == expected


def test_format_round_trips_through_the_parser():
    text = plan_target_text("  pick up   the red cube. ", "0 1 2 3 4 5 6 7")
    assert text == "plan: pick up the red cube. action: 0 1 2 3 4 5 6 7"
    assert parse_plan_and_action(text) == ("pick up the red cube", "0 1 2 3 4 5 6 7")


def test_errors():
    with pytest.raises(ValueError, match="expected an 'action:' marker"):
        parse_plan_and_action("plan: pick up the cube")
    with pytest.raises(ValueError, match="plan: expected a non-empty string"):
        normalize_plan(" . ")
    with pytest.raises(ValueError, match="expected no 'action:' marker"):
        normalize_plan("do this action: now")
    with pytest.raises(ValueError, match="action_text: expected a non-empty string"):
        plan_target_text("pick", " ")
    with pytest.raises(ValueError, match="text: expected a string"):
        parse_plan_and_action(None)  # type: ignore[arg-type]


def test_every_plan_token_is_in_the_tiny_vocabulary():
    tok = build_tokenizer()
    ids = plan_prefix_ids(tok, "pick up the red cube") + action_marker_ids(tok)
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids) == [
        "plan", ":", "pick", "up", "the", "red", "cube", ".", "action", ":"]


@pytest.fixture
def cot_policy(tiny_vla_dir):
    from rt2_policy.vla_policy import VLAPolicy

    return VLAPolicy.from_pretrained(tiny_vla_dir, chain_of_thought=True)


def _observation():
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return Observation(image=image, instruction="pick up the red cube")


def test_plan_then_constrained_action(cot_policy, monkeypatch):
    tok = cot_policy.processor.tokenizer
    plan_ids = plan_prefix_ids(tok, "pick up the red cube")
    marker = action_marker_ids(tok)
    calls = {}

    def fake_generate(**kwargs):
        calls["max_new_tokens"] = kwargs["max_new_tokens"]
        junk = [tok.convert_tokens_to_ids("red")] * 3  # never reached: stops at the marker
        new = torch.tensor([plan_ids + marker + junk])
        return torch.cat([kwargs["input_ids"], new], dim=1)

    monkeypatch.setattr(cot_policy.model, "generate", fake_generate)
    decode = cot_policy._decode

    def spy(inputs):
        calls["input_ids"] = inputs["input_ids"].clone()
        return decode(inputs)

    monkeypatch.setattr(cot_policy, "_decode", spy)
    action = cot_policy.infer(_observation())
    assert action.plan == "pick up the red cube"
    assert calls["max_new_tokens"] == cot_policy.max_plan_tokens
    # the action decode ran on prompt + plan + marker (the junk after the marker is dropped)
    assert calls["input_ids"][0, -len(plan_ids) - len(marker):].tolist() == plan_ids + marker
    assert action.bins.shape == (8,) and action.bins[0] in (0, 1)
    assert cot_policy.token_mapping.is_action_token(action.extra["token_ids"]).all()
    assert cot_policy.metadata["chain_of_thought"] is True


def test_plan_budget_runs_out_and_the_marker_is_forced(cot_policy, monkeypatch):
    """A model that never writes the marker (here: random weights) still yields an action."""
    cot_policy.max_plan_tokens = 3
    decode = cot_policy._decode
    seen = {}

    def spy(inputs):
        seen["ids"] = inputs["input_ids"][0].tolist()
        return decode(inputs)

    monkeypatch.setattr(cot_policy, "_decode", spy)
    action = cot_policy.infer(_observation())
    marker = action_marker_ids(cot_policy.processor.tokenizer)
    assert seen["ids"][-len(marker):] == marker
    assert ACTION_MARKER not in action.plan
    assert action.bins.shape == (8,)
    batch = cot_policy.infer_batch([_observation(), _observation()])
    assert [a.text for a in batch] == [action.text, action.text]
