"""Chain-of-thought augmentation of robot targets: plan source and probability."""

from __future__ import annotations

import numpy as np
import pytest

from rt2_policy.training.cot import choose_plan, example_plan, parse_plan_and_action


def test_plan_comes_from_the_plan_field_else_the_task():
    assert example_plan({"task": "I am hungry", "plan": "Pick up the banana."}) == \
        "pick up the banana"
    assert example_plan({"task": "  Push the red cube left. "}) == "push the red cube left"
    assert example_plan({"task": "push it", "plan": "  "}) == "push it"
    with pytest.raises(ValueError, match="instruction: expected"):
        example_plan({"task": ""})


@pytest.mark.parametrize("probability", [0.0, 0.25, 1.0])
def test_plan_probability(probability):
    rng = np.random.default_rng(0)
    picks = [choose_plan({"task": "pick up the cube"}, rng, probability) for _ in range(4000)]
    share = sum(p is not None for p in picks) / len(picks)
    assert share == pytest.approx(probability, abs=0.03)
    assert {p for p in picks if p is not None} <= {"pick up the cube"}


def test_one_draw_per_call_whatever_the_probability():
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    choose_plan({"task": "x"}, a, 0.0)
    choose_plan({"task": "x"}, b, 1.0)
    assert a.random() == b.random()


def test_invalid_probability():
    with pytest.raises(ValueError, match="probability: expected a number in"):
        choose_plan({"task": "x"}, np.random.default_rng(0), 1.5)


def test_parser_is_reexported():
    assert parse_plan_and_action("plan: a b. action: 1") == ("a b", "1")
