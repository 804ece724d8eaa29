"""VLAPolicy on the tiny VLA, and the RT-2 prompts it uses."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rt2_policy.action_tokenizer import ACTION_CONFIG_NAME, ActionBounds, ActionTokenizer
from rt2_policy.contract import Observation, Policy, RobotAction
from rt2_policy.prompts import (
    action_prompt,
    check_image_position,
    normalize_instruction,
    vqa_prompt,
    with_image,
)
from rt2_policy.vla_policy import VLAPolicy


def _obs(seed: int = 0, instruction: str = "pick up the red cube", shape=(120, 160, 3)):
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return Observation(image=image, instruction=instruction, stamp=1.5)


# ---------------------------------------------------------------------------- prompts
def test_action_prompt_matches_rt2():
    assert action_prompt("pick up the red cube") == (
        "Q: what action should the robot take to pick up the red cube? A:"
    )
    assert action_prompt("  Pick up\tthe  red cube. \n") == (
        "Q: what action should the robot take to Pick up the red cube? A:"
    )
    assert normalize_instruction("move left...") == "move left"
    for bad in ("", "   ", " . ", None):
        with pytest.raises(ValueError, match="instruction"):
            action_prompt(bad)


def test_vqa_prompt_and_image_placeholder():
    assert vqa_prompt(" what is  on the table? ") == "Q: what is on the table? A:"
    with pytest.raises(ValueError, match="question"):
        vqa_prompt(" ")
    assert with_image("Q: x A:") == "<image>Q: x A:"
    assert with_image("Q: x A:", position="suffix") == "Q: x A:<image>"
    with pytest.raises(ValueError, match="placeholder"):
        with_image("<image>Q: x A:")
    with pytest.raises(ValueError, match="position"):
        with_image("Q: x A:", position="middle")
    assert check_image_position("suffix") == "suffix"
    with pytest.raises(ValueError, match="expected one of .*got 'middle'"):
        check_image_position("middle")


def test_image_position_is_stored_with_the_model_and_used(tmp_path):
    from rt2_policy.tiny_model import build_tiny_vla
    from rt2_policy.token_mapping import load_image_position

    path = build_tiny_vla(tmp_path / "suffix", seed=0, image_position="suffix")
    assert load_image_position(path) == "suffix"
    assert load_image_position(tmp_path) == "prefix"  # no config: the old layout
    policy = VLAPolicy.from_pretrained(path)
    assert policy.image_position == "suffix"
    prompt = with_image(action_prompt("pick up the red cube"), policy.image_token,
                        policy.image_position)
    inputs = policy._prepare([np.zeros((32, 32, 3), np.uint8)], [prompt])
    tokens = policy.processor.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())
    # text first, then the image block, and the answer follows the image
    assert tokens.index("q") < tokens.index("<image>")
    assert tokens[-1] == "<fake_token_around_image>"
    assert policy.infer(_obs(0)).bins.shape == (8,)


# ---------------------------------------------------------------------------- policy
def test_infer_returns_a_valid_action(tiny_vla_policy):
    policy = tiny_vla_policy
    assert isinstance(policy, Policy)
    action = policy.infer(_obs())
    assert isinstance(action, RobotAction)
    assert action.bins.shape == (8,) and action.bins.dtype == np.int64
    assert action.bins[0] in (0, 1) and action.terminate == bool(action.bins[0])
    assert ((action.bins[1:] >= 0) & (action.bins[1:] <= 255)).all()
    assert action.is_finite()
    parts = action.text.split()
    assert len(parts) == 8 and all(p.isdigit() for p in parts)
    np.testing.assert_array_equal(policy.action_tokenizer.from_text(action.text), action.bins)
    bounds = policy.action_tokenizer.bounds
    assert np.all(np.abs(action.delta_position) <= np.asarray(bounds.position_high))
    assert np.all(np.abs(action.delta_rotation) <= np.asarray(bounds.rotation_high))
    assert 0.0 <= action.gripper <= 1.0
    assert action.latency > 0
    assert len(action.extra["step_times"]) == 8
    assert action.extra["prompt"].startswith("<image>Q: what action should the robot take to")
    # integer tokens: the model's raw output is the RT-2 string itself
    assert action.extra["raw_text"] == action.text


def test_infer_is_deterministic_and_depends_on_inputs(tiny_vla_policy):
    policy = tiny_vla_policy
    first = policy.infer(_obs(0))
    policy.reset()
    again = policy.infer(_obs(0))
    np.testing.assert_array_equal(first.bins, again.bins)
    others = [policy.infer(_obs(s, "push the blue ball to the left")).bins for s in (1, 2, 3)]
    assert any(not np.array_equal(first.bins, b) for b in others)


def test_infer_batch_equals_single_calls(tiny_vla_policy):
    policy = tiny_vla_policy
    observations = [
        _obs(0),
        _obs(1, "put the small green ball into the big brown bowl", shape=(64, 64, 3)),
        _obs(2, "open the drawer"),
    ]
    batch = policy.infer_batch(observations)
    single = [policy.infer(o) for o in observations]
    assert [a.text for a in batch] == [a.text for a in single]
    assert policy.infer_batch([]) == []


def test_invalid_observation_raises_value_error(tiny_vla_policy):
    with pytest.raises(ValueError, match="Observation"):
        tiny_vla_policy.infer({"image": np.zeros((4, 4, 3), np.uint8), "instruction": "go"})
    with pytest.raises(ValueError):
        tiny_vla_policy.infer_batch([_obs(), "not an observation"])


def test_nan_model_raises_runtime_error(tiny_vla_dir):
    policy = VLAPolicy.from_pretrained(tiny_vla_dir)
    with torch.no_grad():
        policy.model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(RuntimeError):
        policy.infer(_obs())


def test_answer_returns_text(tiny_vla_policy):
    reply = tiny_vla_policy.answer(_obs().image, "what is on the table?", max_new_tokens=5)
    assert isinstance(reply, str)
    assert len(reply.split()) <= 5
    from PIL import Image

    assert isinstance(tiny_vla_policy.answer(Image.new("RGB", (50, 40)), "what colour?", 2), str)
    with pytest.raises(ValueError):
        tiny_vla_policy.answer(np.zeros((8, 8), np.uint8), "what?")
    with pytest.raises(ValueError, match="question"):
        tiny_vla_policy.answer(_obs().image, "  ")


def test_metadata(tiny_vla_policy, tiny_vla_dir):
    meta = tiny_vla_policy.metadata
    assert meta["model_id"] == str(tiny_vla_dir)
    assert meta["image_size"] == 96
    assert meta["token_scheme"] == "integer_tokens"
    assert meta["action_space"]["dims"][0] == "terminate"
    assert meta["action_space"]["num_bins"] == 256
    assert ActionBounds.from_dict(meta["bounds"]) == tiny_vla_policy.action_tokenizer.bounds
    assert 4_000_000 <= meta["num_parameters"] <= 10_000_000
    import json

    json.dumps(meta)


def test_token_scheme_and_bounds_overrides(tiny_vla_dir):
    bounds = ActionBounds(position_low=-0.01, position_high=0.01)
    policy = VLAPolicy.from_pretrained(tiny_vla_dir, token_scheme="last_n", bounds=bounds)
    assert policy.token_mapping.scheme == "last_n"
    assert policy.action_tokenizer == ActionTokenizer(bounds)
    action = policy.infer(_obs())
    assert action.is_finite() and len(action.text.split()) == 8
    assert np.all(np.abs(action.delta_position) <= 0.01)
    # last_n ids are English words, so the raw text is not the bin string
    assert action.extra["raw_text"] != action.text
    with pytest.raises(ValueError, match="least_used"):
        VLAPolicy.from_pretrained(tiny_vla_dir, token_scheme="least_used")
    with pytest.raises(ValueError, match="token_scheme"):
        VLAPolicy.from_pretrained(tiny_vla_dir, token_scheme="digits")
    with pytest.raises(ValueError, match="dtype"):
        VLAPolicy.from_pretrained(tiny_vla_dir, dtype="float8")


def test_missing_action_config(tiny_vla_dir, tmp_path):
    copy_dir = tmp_path / "no_action_config"
    shutil.copytree(tiny_vla_dir, copy_dir)
    (copy_dir / ACTION_CONFIG_NAME).unlink()
    with pytest.raises(ValueError, match=ACTION_CONFIG_NAME):
        VLAPolicy.from_pretrained(copy_dir)
    policy = VLAPolicy.from_pretrained(copy_dir, token_scheme="integer_tokens")
    assert policy.action_tokenizer == ActionTokenizer()
    assert len(policy.infer(_obs()).text.split()) == 8


def test_bfloat16_load(tiny_vla_dir):
    policy = VLAPolicy.from_pretrained(tiny_vla_dir, dtype="bfloat16")
    assert policy.dtype == torch.bfloat16
    action = policy.infer(_obs())
    assert action.is_finite() and action.bins.shape == (8,)


def test_gripper_state_models_read_it_in_the_prompt(tmp_path):
    """A checkpoint stored with ``"gripper_state": true`` puts the observation's gripper state
    into the action prompt and refuses observations without it; other models ignore it."""
    from rt2_policy.tiny_model import build_tiny_vla
    from rt2_policy.token_mapping import (
        load_action_config,
        load_gripper_state,
        load_image_position,
        save_action_config,
    )

    path = build_tiny_vla(tmp_path / "m", seed=0, image_position="suffix")
    plain = VLAPolicy.from_pretrained(path)
    assert not plain.gripper_state and not plain.metadata["gripper_state"]
    prompt = plain.infer(_obs(0)).extra["prompt"]
    with_state = Observation(_obs(0).image, "pick up the red cube", gripper_state=0.375)
    assert plain.infer(with_state).extra["prompt"] == prompt  # ignored

    save_action_config(path, *load_action_config(path), gripper_state=True)
    assert load_gripper_state(path) and load_image_position(path) == "suffix"  # both kept
    policy = VLAPolicy.from_pretrained(path)
    assert policy.gripper_state
    assert policy.metadata["prompt_template"] == (
        "Q: what action should the robot take to {instruction}, gripper {gripper_state_bin}? A:")
    action = policy.infer(with_state)
    assert action.extra["prompt"].startswith(
        "Q: what action should the robot take to pick up the red cube, gripper 96? A:")
    assert policy.infer_batch([with_state])[0].extra["prompt"] == action.extra["prompt"]
    with pytest.raises(ValueError, match="gripper_state: expected a number in"):
        policy.infer(_obs(0))


def test_tcp_position_models_read_it_in_the_prompt(tiny_vla_dir, tmp_path):
    """A checkpoint stored with ``"tcp_position": true`` puts the observation's tcp position
    (binned over TCP_POSITION_BOUNDS) into the action prompt, after the gripper state when the
    model reads both, and refuses observations without it; other models ignore it."""
    from rt2_policy.token_mapping import (
        load_action_config,
        load_gripper_state,
        load_tcp_position,
        save_action_config,
    )

    path = tmp_path / "m"
    shutil.copytree(tiny_vla_dir, path)
    assert not load_tcp_position(path) and not load_tcp_position(tmp_path)  # none stored
    image = _obs(0).image
    with_tcp = Observation(image, "pick up the red cube", tcp_position=[0.4, -0.25, 0.7])
    plain = VLAPolicy.from_pretrained(path)
    assert not plain.tcp_position and plain.metadata["tcp_position"] is False
    assert plain.infer(with_tcp).extra["prompt"] == plain.infer(_obs(0)).extra["prompt"]

    save_action_config(path, *load_action_config(path), tcp_position=True)
    assert load_tcp_position(path) and not load_gripper_state(path)
    policy = VLAPolicy.from_pretrained(path)
    assert policy.tcp_position is True and policy.gripper_state is False
    assert policy.metadata["tcp_position"] is True
    assert policy.metadata["prompt_template"] == (
        "Q: what action should the robot take to {instruction}, tcp {x_bin} {y_bin} {z_bin}? A:")
    action = policy.infer(with_tcp)
    assert action.extra["prompt"] == (
        "<image>Q: what action should the robot take to pick up the red cube, "
        "tcp 102 64 204? A:")
    assert policy.infer_batch([with_tcp])[0].extra["prompt"] == action.extra["prompt"]
    moved = Observation(image, "pick up the red cube", tcp_position=[0.5, 0.0, 0.4])
    assert policy.infer(moved).extra["prompt"].endswith(", tcp 128 128 128? A:")
    with pytest.raises(ValueError, match="tcp_position: expected 3 finite metres"):
        policy.infer(_obs(0))
    with pytest.raises(ValueError, match="tcp_position"):
        policy.infer_batch([with_tcp, _obs(1)])

    # both: the gripper state first, each refused when missing
    save_action_config(path, *load_action_config(path), gripper_state=True)
    both = VLAPolicy.from_pretrained(path)
    assert both.gripper_state and both.tcp_position
    assert both.metadata["prompt_template"] == (
        "Q: what action should the robot take to {instruction}, gripper {gripper_state_bin}, "
        "tcp {x_bin} {y_bin} {z_bin}? A:")
    full = Observation(image, "pick up the red cube", gripper_state=0.375,
                       tcp_position=[0.4, -0.25, 0.7])
    assert both.infer(full).extra["prompt"] == (
        "<image>Q: what action should the robot take to pick up the red cube, gripper 96, "
        "tcp 102 64 204? A:")
    with pytest.raises(ValueError, match="tcp_position"):
        both.infer(Observation(image, "pick up the red cube", gripper_state=0.375))
    with pytest.raises(ValueError, match="gripper_state"):
        both.infer(with_tcp)

    # switched off again: the tcp is ignored
    save_action_config(path, *load_action_config(path), gripper_state=False, tcp_position=False)
    off = VLAPolicy.from_pretrained(path)
    assert not off.tcp_position and off.infer(with_tcp).extra["prompt"] == (
        "<image>Q: what action should the robot take to pick up the red cube? A:")


def test_grasp_memory_models_read_it_in_the_prompt_and_make_policy_tracks_it(tiny_vla_dir,
                                                                             tmp_path):
    """A checkpoint stored with ``"grasp_memory": true`` ends its action prompt with the
    observation's ``grasped`` and refuses observations without it; ``make_policy`` wraps such a
    model in GraspMemory, which fills the flag from the gripper states since ``reset()``; other
    models ignore the flag and come unwrapped."""
    from rt2_policy.grasp_memory import GraspMemory
    from rt2_policy.policy_factory import make_policy
    from rt2_policy.token_mapping import (
        load_action_config,
        load_grasp_memory,
        save_action_config,
    )

    path = tmp_path / "m"
    shutil.copytree(tiny_vla_dir, path)
    image = _obs(0).image
    grasped = Observation(image, "pick up the red cube", gripper_state=0.0, grasped=True)
    plain = VLAPolicy.from_pretrained(path)
    assert not load_grasp_memory(path) and plain.metadata["grasp_memory"] is False
    assert plain.infer(grasped).extra["prompt"] == plain.infer(_obs(0)).extra["prompt"]
    assert not isinstance(make_policy("local", model_path=str(path)), GraspMemory)

    save_action_config(path, *load_action_config(path), gripper_state=True, grasp_memory=True)
    assert load_grasp_memory(path)
    policy = VLAPolicy.from_pretrained(path)
    assert policy.grasp_memory and policy.metadata["grasp_memory"] is True
    assert policy.metadata["prompt_template"] == (
        "Q: what action should the robot take to {instruction}, gripper {gripper_state_bin}, "
        "grasp {grasped}? A:")
    assert policy.infer(grasped).extra["prompt"] == (
        "<image>Q: what action should the robot take to pick up the red cube, gripper 0, "
        "grasp 1? A:")
    with pytest.raises(ValueError, match="observation.grasped: expected a bool"):
        policy.infer(Observation(image, "pick up the red cube", gripper_state=0.0))

    tracked = make_policy("local", model_path=str(path))
    assert isinstance(tracked, GraspMemory) and tracked.metadata["grasp_memory"] is True
    prompts = [tracked.infer(Observation(image, "pick up the red cube", gripper_state=s))
               .extra["prompt"] for s in (0.0, 0.4, 0.4, 0.4, 0.0)]
    assert [p.endswith(f"grasp {g}? A:") for p, g in zip(prompts, "00011", strict=True)] == \
        [True] * 5
    tracked.reset()
    assert tracked.infer(Observation(image, "pick up the red cube", gripper_state=0.0)) \
        .extra["prompt"].endswith("gripper 0, grasp 0? A:")


def _terminate_probability(policy, obs):
    """p(terminate) of the reference decode for ``obs`` (its first step)."""
    from rt2_policy.constrained_decoding import build_allowed_mask, decode_action_tokens

    inputs = policy._prepare([obs.image], [policy._action_prompt(obs)])
    mask = build_allowed_mask(policy.token_mapping.allowed_ids_per_step(), policy.vocab_size)
    result = decode_action_tokens(policy.model, inputs, mask, output_scores=True)
    return float(torch.softmax(result.scores[0, 0][mask[0]], -1)[1])  # ids: bin 0, bin 1


def test_terminate_threshold_is_stored_with_the_model_and_decides_terminate(tiny_vla_dir,
                                                                             tmp_path):
    """A checkpoint's ``decoding.terminate_threshold`` is its decode's default; ``infer`` then
    terminates only when p(terminate) exceeds it, and an explicit value wins."""
    from rt2_policy.token_mapping import (
        load_action_config,
        save_action_config,
        stored_terminate_threshold,
    )

    path = tmp_path / "m"
    shutil.copytree(tiny_vla_dir, path)
    plain = VLAPolicy.from_pretrained(path)
    assert plain.terminate_threshold == 0.5 and plain.metadata["terminate_threshold"] == 0.5
    obs = next(o for o in (_obs(s) for s in range(12))
               if 0.03 < _terminate_probability(plain, o) < 0.97)
    p = _terminate_probability(plain, obs)
    assert plain.infer(obs).terminate == (p > 0.5)

    save_action_config(path, *load_action_config(path), terminate_threshold=p + 0.02)
    data = json.loads((path / ACTION_CONFIG_NAME).read_text())
    assert stored_terminate_threshold(data) == pytest.approx(p + 0.02)
    assert data["prompt"] == {"image_position": "prefix"}  # the other sections are kept
    above = VLAPolicy.from_pretrained(path)
    assert above.terminate_threshold == pytest.approx(p + 0.02)
    assert not above.infer(obs).terminate
    below = VLAPolicy.from_pretrained(path, terminate_threshold=p - 0.02)
    assert below.infer(obs).terminate and below.metadata["terminate_threshold"] == p - 0.02
    # The next tokens follow the chosen terminate token: the continuing action of a threshold
    # above p equals plain greedy's whenever greedy continues too.
    if p < 0.5:
        assert above.infer(obs).text == plain.infer(obs).text
    with pytest.raises(ValueError, match=r"terminate_threshold: expected a probability in "
                                         r"\(0, 1\), got 1.0"):
        VLAPolicy.from_pretrained(path, terminate_threshold=1.0)
    data["decoding"]["terminate_threshold"] = 0.0
    (path / ACTION_CONFIG_NAME).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="terminate_threshold: expected a probability"):
        VLAPolicy.from_pretrained(path)


def test_terminate_threshold_applies_to_a_goal_plan_s_done_phase_and_terminate(tiny_vla_dir):
    """Goal-plan checkpoints decide to stop at their phase word (``done``) and then at the
    terminate token after the plan: the threshold's logit offset goes on both, so ``done``
    wins only when ``l_done - logit(t)`` beats every other phase's logit, and terminate only
    when ``p(terminate) > t`` given the plan decoded."""
    from rt2_policy.constrained_decoding import (
        build_allowed_mask,
        decode_action_tokens,
        terminate_logit_offset,
    )
    from rt2_policy.plans import GOAL_PLAN_PHASES, parse_goal_plan
    from rt2_policy.token_mapping import load_action_config

    plain = VLAPolicy.from_pretrained(tiny_vla_dir)
    parts = (plain.model, plain.processor, *load_action_config(tiny_vla_dir))
    greedy = VLAPolicy(*parts, chain_of_thought=True, cot_plan="waypoint")
    grammar = greedy._goal_grammar
    done = GOAL_PLAN_PHASES.index("done")

    def scores(obs, forced):
        """Reference logits at the step after the ``forced`` ids (each step forced)."""
        inputs = greedy._prepare([obs.image], [greedy._action_prompt(obs)])
        steps = [[i] for i in forced] + [list(range(greedy.vocab_size))]
        mask = build_allowed_mask(steps, greedy.vocab_size)
        return decode_action_tokens(greedy.model, inputs, mask, output_scores=True).scores[0, -1]

    flips = {"phase": 0, "terminate": 0}
    policies = {t: VLAPolicy(*parts, chain_of_thought=True, cot_plan="waypoint",
                             terminate_threshold=t) for t in (0.3, 0.5, 0.7)}
    for seed in range(8):
        obs = Observation(_obs(seed).image, "pick up the red cube")
        phase_logits = scores(obs, grammar.head_ids)[list(grammar.phase_ids)]
        for t, policy in policies.items():
            action = policy.infer(obs)
            shifted = phase_logits.clone()
            shifted[done] += terminate_logit_offset(t)
            phase, _ = parse_goal_plan(action.plan)
            assert phase == GOAL_PLAN_PHASES[int(shifted.argmax())], (seed, t)
            flips["phase"] += phase != GOAL_PLAN_PHASES[int(phase_logits.argmax())]
            forced = [*grammar.head_ids, *action.extra["plan_token_ids"], *grammar.tail_ids]
            bins = policy.token_mapping.bin_to_token_id([0, 1])
            p = float(torch.softmax(scores(obs, forced)[list(bins)], -1)[1])
            assert action.terminate == (p > t), (seed, t, p)
            flips["terminate"] += action.terminate != (p > 0.5)
    assert flips["phase"] and flips["terminate"], flips  # the thresholds changed decisions
