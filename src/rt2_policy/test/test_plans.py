"""Chain-of-thought "Plan:" format and parser (RT-2 §4.4) and plan-then-act inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt2_policy.contract import Observation
from rt2_policy.plans import (
    ACTION_MARKER,
    GOAL_PLAN_PHASES,
    action_marker_ids,
    goal_plan,
    goal_plan_grammar,
    goal_plan_phase,
    normalize_plan,
    parse_goal_plan,
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


@pytest.mark.parametrize("phase, point, text", [
    ("reach", (112, 80), "reach 112 80"),
    ("bring", (0, 255), "bring 0 255"),
    ("bring", None, "bring"),
    ("reach", None, "reach"),
    ("bring", (131, 140, 25), "bring 131 140 25"),
    ("reach", (0, 255, 7), "reach 0 255 7"),
    ("done", (107, 100, 32), "done 107 100 32"),
])
def test_goal_plan_round_trips(phase, point, text):
    assert goal_plan(phase, point) == text
    assert parse_goal_plan(text) == (text.split()[0], point)
    # what the WordLevel tokenizer decodes a generated plan to, with its period
    assert parse_goal_plan(f"{text.upper()} .") == (text.split()[0], point)
    answer = plan_target_text(text, "0 1 2 3 4 5 6 7")
    assert parse_goal_plan(parse_plan_and_action(answer)[0]) == (text.split()[0], point)


@pytest.mark.parametrize("plan", [
    "pick up the red cube", "reach 12", "reach 12 300", "bring 1 2 3 4", "move 1 2",
    "reach 1 2 256", "reach x y",
    "", None])
def test_other_plans_are_not_goal_plans(plan):
    assert parse_goal_plan(plan) is None


@pytest.mark.parametrize("point", [(256, 0), (-1, 4), (1.5, 2), (True, 3), (1, 2, 3, 4), (5,),
                                   (1, 2, 300)])
def test_goal_plan_rejects_bad_points(point):
    with pytest.raises(ValueError, match="point: expected two or three ints in 0..255"):
        goal_plan("reach", point)


@pytest.mark.parametrize("phase", ["carry", "", True, None])
def test_goal_plan_rejects_unknown_phases(phase):
    with pytest.raises(ValueError, match="phase: expected one of"):
        goal_plan(phase, (1, 2))


@pytest.mark.parametrize("carrying, terminate, releasing, phase", [
    (False, False, False, "reach"), (True, False, False, "bring"), (False, True, False, "done"),
    (True, True, False, "done"), (False, False, True, "drop"), (False, True, True, "done"),
])
def test_goal_plan_phase_says_done_on_terminating_frames(carrying, terminate, releasing, phase):
    assert goal_plan_phase(carrying, terminate, releasing=releasing) == phase


def test_goal_plans_spell_in_the_tiny_vocabulary():
    tok = build_tokenizer()  # the phases are built-in words
    assert set(GOAL_PLAN_PHASES) <= set(tok.get_vocab())
    ids = plan_prefix_ids(tok, goal_plan("bring", (7, 255)))
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids) == ["plan", ":", "bring", "7", "255", "."]


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


def test_goal_plan_grammar_of_the_tiny_tokenizer():
    tok = build_tokenizer()
    grammar = goal_plan_grammar(tok)
    assert grammar is not None
    assert tok.convert_ids_to_tokens(list(grammar.head_ids)) == ["plan", ":"]
    assert tok.convert_ids_to_tokens(list(grammar.phase_ids)) == list(GOAL_PLAN_PHASES)
    assert tok.convert_ids_to_tokens(list(grammar.point_ids)) == [str(v) for v in range(256)]
    assert tok.convert_ids_to_tokens(list(grammar.tail_ids)) == [".", "action", ":"]
    steps = grammar.allowed_ids_per_step()
    assert [len(s) for s in steps] == [len(GOAL_PLAN_PHASES), 256, 256, 1, 1, 1]
    # the pieces spell exactly what training puts before the action ids
    plan = goal_plan("bring", (3, 200))
    assert [*grammar.head_ids, grammar.phase_ids[1], grammar.point_ids[3],
            grammar.point_ids[200], *grammar.tail_ids] == \
        plan_prefix_ids(tok, plan) + action_marker_ids(tok)
    # and read back: the 3 decoded ids give the same text
    assert grammar.plan_of([grammar.phase_ids[1], grammar.point_ids[3],
                            grammar.point_ids[200]]) == plan
    with pytest.raises(ValueError):
        grammar.plan_of([grammar.point_ids[3], grammar.point_ids[3], grammar.point_ids[3]])


class _CharTokenizer:
    """Spells every character as its own token (numbers take several)."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text if not c.isspace()]}


def test_goal_plan_grammar_needs_one_token_per_word():
    assert goal_plan_grammar(_CharTokenizer()) is None
    assert goal_plan_grammar(_CharTokenizer(), coordinates=3) is None


def test_waypoint_plan_grammar_has_three_coordinates():
    tok = build_tokenizer()
    grammar = goal_plan_grammar(tok, coordinates=3)
    assert grammar is not None and grammar.plan_steps == 4
    assert [len(s) for s in grammar.allowed_ids_per_step()] == \
        [len(GOAL_PLAN_PHASES), 256, 256, 256, 1, 1, 1]
    for phase in GOAL_PLAN_PHASES:
        plan = goal_plan(phase, (131, 140, 25))
        ids = [grammar.phase_ids[GOAL_PLAN_PHASES.index(phase)],
               *(grammar.point_ids[v] for v in (131, 140, 25))]
        assert [*grammar.head_ids, *ids, *grammar.tail_ids] == \
            plan_prefix_ids(tok, plan) + action_marker_ids(tok)
        assert grammar.plan_of(ids) == plan
    with pytest.raises(ValueError, match="expected 4"):
        grammar.plan_of(ids[:3])
    with pytest.raises(ValueError, match="coordinates: expected one of"):
        goal_plan_grammar(tok, coordinates=4)


@pytest.mark.parametrize(("cot_plan", "coordinates"), [("goal", 2), ("waypoint", 3)])
def test_goal_plans_decode_with_the_action_in_one_constrained_pass(tiny_vla_dir, cot_plan,
                                                                   coordinates):
    """A goal-plan checkpoint plans and acts in one batched decode whose ids equal the slow
    reference decode over the same steps, and whose plan always parses (image points and
    waypoints alike)."""
    from rt2_policy.constrained_decoding import decode_action_tokens
    from rt2_policy.token_mapping import load_action_config
    from rt2_policy.vla_policy import VLAPolicy

    plain = VLAPolicy.from_pretrained(tiny_vla_dir)
    policy = VLAPolicy(plain.model, plain.processor, *load_action_config(tiny_vla_dir),
                       chain_of_thought=True, cot_plan=cot_plan)
    assert policy._goal_decoder is not None
    rng = np.random.default_rng(3)
    observations = [Observation(image=rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
                                instruction=text)
                    for text in ("pick up the red cube", "push the blue ball to the left")]
    actions = policy.infer_batch(observations)
    grammar = policy._goal_grammar
    steps = [*grammar.allowed_ids_per_step(), *policy.token_mapping.allowed_ids_per_step()]
    for obs, action in zip(observations, actions, strict=True):
        phase, point = parse_goal_plan(action.plan)
        assert phase in GOAL_PLAN_PHASES and point is not None and len(point) == coordinates
        inputs = policy._prepare([obs.image], [policy._action_prompt(obs)])
        head = torch.as_tensor([grammar.head_ids])
        inputs["input_ids"] = torch.cat([inputs["input_ids"], head], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        reference = decode_action_tokens(policy.model, inputs, steps).token_ids[0].tolist()
        n = 1 + coordinates
        assert reference[:n] == action.extra["plan_token_ids"]
        assert reference[-8:] == action.extra["token_ids"].tolist()
        assert reference[n:n + 3] == list(grammar.tail_ids)
        assert action.bins[0] in (0, 1) and len(action.extra["step_times"]) == n + 3 + 8
    # one observation alone decodes as in the batch (left padding handled)
    alone = policy.infer(observations[1])
    assert alone.plan == actions[1].plan
    assert alone.extra["token_ids"].tolist() == actions[1].extra["token_ids"].tolist()
    # without chain_of_thought the flag does nothing: the action alone, as before
    assert VLAPolicy(plain.model, plain.processor, *load_action_config(tiny_vla_dir),
                     cot_plan="goal")._goal_decoder is None
