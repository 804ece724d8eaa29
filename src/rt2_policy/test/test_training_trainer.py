"""The co-fine-tuning loop on a tiny model: learning, checkpoints, resume, LoRA, config, CLI."""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rt2_policy.contract import Observation
from rt2_policy.training.config import (
    LoraSettings,
    TrainConfig,
    add_arguments,
    config_from_args,
)
from rt2_policy.training.trainer import (
    Trainer,
    latest_checkpoint,
    lr_factor,
    ordinal_smoothed_losses,
    rank_from_end,
    read_metrics,
    robot_token_weighted_losses,
    token_losses,
)

COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
DX = {"red": 0.03, "green": -0.03, "blue": 0.0}


def _frame(colour: str, rng: np.random.Generator) -> np.ndarray:
    image = np.full((40, 40, 3), 40, np.uint8)
    x, y = rng.integers(0, 24, 2)
    image[y:y + 16, x:x + 16] = COLOURS[colour]
    return image


@pytest.fixture(scope="module")
def data():
    """Robot frames whose Δx depends on the cube's colour, and colour questions."""
    rng = np.random.default_rng(0)
    robot, vqa = [], []
    for i in range(24):
        colour = list(COLOURS)[i % 3]
        action = np.zeros(8, np.float32)
        action[1], action[7] = DX[colour], 1.0
        robot.append({"image": _frame(colour, rng), "action": action,
                      "task": f"lift the {colour} zebra"})  # "zebra": not a built-in word
        vqa.append({"image": _frame(colour, rng), "question": "what colour is the zebra?",
                    "answer": f"crimson {colour}" if colour == "red" else colour})
    return robot, vqa


def _config(tmp_path, **overrides) -> TrainConfig:
    values = dict(robot_datasets=("in-memory",), output_dir=str(tmp_path / "run"),
                  max_steps=6, batch_size=8, learning_rate=3e-3, warmup_steps=0,
                  lr_schedule="constant", log_interval=2, eval_interval=0, eval_examples=6,
                  save_interval=0, num_threads=2, num_workers=0, progress=False)
    values.update(overrides)
    return TrainConfig(**values)


def _fixed_batch_loss(model_dir, data):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rt2_policy.token_mapping import load_action_config
    from rt2_policy.training.collate import ExampleEncoder, collate

    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    encoder = ExampleEncoder(AutoProcessor.from_pretrained(model_dir),
                             *load_action_config(model_dir))
    robot, vqa = data
    rows = [encoder.encode_robot(robot[i]) for i in range(3)]
    rows += [encoder.encode_vqa(vqa[i]) for i in range(3)]
    batch = collate([(r, encoder.target_ids(r)) for r in rows], encoder.pad_id)
    with torch.inference_mode():
        losses, *_ = token_losses(model, batch)
    return float(losses.mean())


def test_few_steps_reduce_the_loss_and_save_a_loadable_policy(tmp_path, data):
    robot, vqa = data
    config = _config(tmp_path)
    result = Trainer(config, robot=robot, vqa=vqa).train()
    out = tmp_path / "run"
    assert result.step == 6 and result.start_step == 0 and result.stopped == "max_steps"
    assert result.steps_per_s > 0
    assert result.checkpoint == str(out / "checkpoint-0000006")
    assert (out / "latest").resolve() == (out / "checkpoint-0000006").resolve()
    assert latest_checkpoint(out) == out / "checkpoint-0000006"

    before = _fixed_batch_loss(out / "tiny_init", data)
    after = _fixed_batch_loss(out / "latest", data)
    assert after < 0.8 * before, (before, after)

    records = read_metrics(out / "metrics.jsonl")
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == [2, 4, 6]
    assert all("robot_loss" in r and "vqa_loss" in r and r["steps_per_s"] > 0 for r in train)
    evals = [r for r in records if "eval_robot_loss" in r]
    assert evals and 0.0 <= evals[-1]["eval_action_acc"] <= 1.0
    assert (out / "training_curve.png").stat().st_size > 1000
    assert TrainConfig.from_file(out / "config.json") == config

    # The checkpoint is a policy: VLAPolicy loads it, infers an action and answers questions.
    from rt2_policy.vla_policy import VLAPolicy

    policy = VLAPolicy.from_pretrained(out / "latest")
    action = policy.infer(Observation(robot[0]["image"], "lift the red zebra"))
    assert action.bins.shape == (8,) and action.is_finite()
    assert isinstance(policy.answer(vqa[0]["image"], "what colour is the zebra?", 4), str)
    # the fresh tiny vocabulary covers the data's words (no <unk>)
    tok = policy.processor.tokenizer
    for text in ("lift the red zebra", "crimson red"):
        assert tok.unk_token_id not in tok(text, add_special_tokens=False)["input_ids"]


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(tmp_path, data,
                                                                          caplog):
    robot, vqa = data
    full = _config(tmp_path, max_steps=4, save_interval=2, save_total_limit=0,
                   lr_schedule="cosine", warmup_steps=1)
    Trainer(full, robot=robot, vqa=vqa).train()
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("checkpoint-*")) == [
        "checkpoint-0000002", "checkpoint-0000004"]

    # A second run that only has the step-2 checkpoint resumes there and ends where the
    # uninterrupted run ended (same batches, same optimizer and RNG state).
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(run / "checkpoint-0000002", resumed_dir / "checkpoint-0000002")
    resumed = full.replace(output_dir=str(resumed_dir))
    result = Trainer(resumed, robot=robot, vqa=vqa).train()
    assert (result.start_step, result.step) == (2, 4)
    expected = load_file(run / "checkpoint-0000004" / "model.safetensors")
    got = load_file(resumed_dir / "checkpoint-0000004" / "model.safetensors")
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)

    # Raising max_steps continues from the latest checkpoint; metrics stay one line per step.
    more = Trainer(full.replace(max_steps=6), robot=robot, vqa=vqa).train()
    assert (more.start_step, more.step) == (4, 6)
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert steps == [2, 4, 6]
    # nothing left to do: no step, no new checkpoint, and no data preprocessed into the cache
    # first (a rerun recipe passes its finished stages in seconds, not minutes)
    with caplog.at_level(logging.INFO, logger="rt2_policy.training"):
        again = Trainer(full.replace(max_steps=6, cache_mb=64, preload=True), robot=robot,
                        vqa=vqa).train()
    assert (again.start_step, again.step) == (6, 6)
    assert "nothing to do: step 6 >= max_steps 6" in caplog.text
    assert "into the cache" not in caplog.text
    # the time budget covers the whole run: one already spent stops a resumed run at once
    spent = Trainer(full.replace(max_steps=8, time_budget_min=1e-6), robot=robot,
                    vqa=vqa).train()
    assert (spent.start_step, spent.step, spent.stopped) == (6, 6, "time_budget")


def test_time_budget_stops_and_saves(tmp_path, data):
    robot, vqa = data
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"lift the red zebra": "grasp the scarlet zebra"}), "utf-8")
    trainer = Trainer(_config(tmp_path, time_budget_min=1e-6, cot=1.0, plans_file=str(plans)),
                      robot=robot, vqa=vqa)
    result = trainer.train()
    assert result.stopped == "time_budget" and result.step == 1
    assert (tmp_path / "run" / "checkpoint-0000001" / "training_state.pt").is_file()
    # the plans file's words join the fresh vocabulary
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "run" / "latest")
    assert tok.convert_tokens_to_ids("scarlet") != tok.unk_token_id


def test_robot_only_data_forces_the_fraction(tmp_path, data):
    robot, _ = data
    trainer = Trainer(_config(tmp_path, max_steps=1), robot=robot, vqa=[])
    assert trainer.robot_fraction == 1.0
    result = trainer.train()
    assert "robot_loss" in result.metrics and "vqa_loss" not in result.metrics


def test_lora_run_saves_adapter_and_merged_policy(tmp_path, data):
    robot, vqa = data
    config = _config(tmp_path, max_steps=2, lora=LoraSettings(enabled=True, r=2))
    result = Trainer(config, robot=robot, vqa=vqa).train()
    assert result.metrics["trainable_parameters"] < result.metrics["parameters"] / 4
    ckpt = tmp_path / "run" / "checkpoint-0000002"
    assert (ckpt / "adapter" / "adapter_config.json").is_file()
    from rt2_policy.vla_policy import VLAPolicy

    policy = VLAPolicy.from_pretrained(ckpt)
    assert policy.infer(Observation(robot[0]["image"], "lift the red zebra")).bins.shape == (8,)
    merged = load_file(ckpt / "model.safetensors")
    base = load_file(tmp_path / "run" / "tiny_init" / "model.safetensors")
    assert merged.keys() == base.keys()  # plain model, no LoRA parameter names
    ids = list(policy.token_mapping.token_ids)
    assert not torch.equal(merged["lm_head.weight"][ids], base["lm_head.weight"][ids])
    other = [i for i in range(base["lm_head.weight"].shape[0]) if i not in set(ids)]
    assert torch.equal(merged["lm_head.weight"][other], base["lm_head.weight"][other])
    # a LoRA run resumes from its adapter on the rebuilt base
    more = Trainer(config.replace(max_steps=3), robot=robot, vqa=vqa).train()
    assert (more.start_step, more.step) == (2, 3)
    assert (tmp_path / "run" / "checkpoint-0000003" / "adapter").is_dir()


def test_image_size_fine_tunes_a_checkpoint_at_another_resolution(tmp_path, data):
    robot, vqa = data
    first = Trainer(_config(tmp_path, max_steps=2), robot=robot, vqa=vqa).train()
    config = _config(tmp_path, model=first.checkpoint, image_size=128, max_steps=2,
                     output_dir=str(tmp_path / "big"))
    result = Trainer(config, robot=robot, vqa=vqa).train()
    saved = json.loads((Path(result.checkpoint) / "config.json").read_text())
    assert saved["vision_config"]["image_size"] == 128
    processor = json.loads((Path(result.checkpoint) / "processor_config.json").read_text())
    assert processor["image_seq_len"] == 16
    weights = load_file(Path(result.checkpoint) / "model.safetensors")
    assert weights["model.vision_model.embeddings.position_embedding.weight"].shape[0] == 64
    from rt2_policy.vla_policy import VLAPolicy

    policy = VLAPolicy.from_pretrained(result.checkpoint)
    assert policy.infer(Observation(robot[0]["image"], "lift the red zebra")).bins.shape == (8,)


def test_lr_schedule():
    cfg = TrainConfig(robot_datasets=("x",), max_steps=110, warmup_steps=10,
                      min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.55)
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    assert lr_factor(60, cfg.replace(lr_schedule="linear")) == pytest.approx(0.55)
    assert lr_factor(100, cfg.replace(lr_schedule="constant")) == 1.0


def test_lr_schedule_fitted_to_the_time_budget():
    cfg = TrainConfig(robot_datasets=("x",), max_steps=110, warmup_steps=10, min_lr_ratio=0.1,
                      time_budget_min=10.0, schedule_to_budget=True)
    # the nearer limit sets the progress: steps ahead of the clock, or the clock ahead
    assert lr_factor(60, cfg, elapsed_s=60.0) == pytest.approx(0.55)
    assert lr_factor(20, cfg, elapsed_s=300.0) == pytest.approx(0.55)
    assert lr_factor(20, cfg, elapsed_s=600.0) == pytest.approx(0.1)
    assert lr_factor(20, cfg, elapsed_s=6000.0) == pytest.approx(0.1)
    assert lr_factor(20, cfg.replace(lr_schedule="linear"), elapsed_s=300.0) == pytest.approx(0.55)
    # warm-up stays in steps; constant stays constant; off, the clock is ignored
    assert lr_factor(4, cfg, elapsed_s=600.0) == pytest.approx(0.5)
    assert lr_factor(20, cfg.replace(lr_schedule="constant"), elapsed_s=600.0) == 1.0
    off = cfg.replace(schedule_to_budget=False)
    assert lr_factor(20, off, elapsed_s=600.0) == pytest.approx(lr_factor(20, off))
    assert lr_factor(20, off) > 0.97
    with pytest.raises(ValueError, match="time_budget_min: expected a number > 0 with "
                                         "schedule_to_budget, got 0"):
        cfg.replace(time_budget_min=0.0)
    with pytest.raises(ValueError, match="schedule_to_budget: expected a bool"):
        cfg.replace(schedule_to_budget="yes")


def test_a_run_decays_its_learning_rate_on_the_budget_clock(tmp_path, data):
    """The trainer feeds the schedule its training clock, resumes included: a run resumed with
    90 % of its budget spent learns at the end of the cosine, not at the start."""
    robot, vqa = data
    cfg = _config(tmp_path, max_steps=2, lr_schedule="cosine", min_lr_ratio=0.1,
                  log_interval=1, time_budget_min=10.0, schedule_to_budget=True)
    Trainer(cfg, robot=robot, vqa=vqa).train()
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "lr" in r]
    assert lrs[0] == pytest.approx(3e-3)  # seconds into a 10-min budget: the peak
    state_path = tmp_path / "run" / "checkpoint-0000002" / "training_state.pt"
    state = torch.load(state_path, weights_only=True)
    state["elapsed_s"] = 540.0
    torch.save(state, state_path)
    more = Trainer(cfg.replace(max_steps=6), robot=robot, vqa=vqa).train()
    assert (more.start_step, more.step) == (2, 6)
    resumed = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl")
               if "lr" in r and r["step"] >= 4]
    # the record of step s holds the rate of optimizer step s - 1: step 3's is the rate saved
    # with the checkpoint; from step 4 on the clock's, progress >= 540 / 600 = 0.9, so
    # lr <= 3e-3 * (0.1 + 0.9 * 0.5 * (1 + cos(0.9 pi))) = 3e-3 * 0.122
    assert [r["step"] for r in resumed] == [4, 5, 6]
    assert all(r["lr"] <= 3e-3 * 0.123 for r in resumed)
    # on the step clock alone the same records would hold 0.55, 0.33 and 0.16 of the peak
    steps_only = cfg.replace(max_steps=6, schedule_to_budget=False)
    assert all(lr_factor(r["step"] - 1, steps_only) > 0.15 for r in resumed)


def test_vision_lr_scale_slows_the_vision_tower_and_connector_only(tmp_path, data):
    from transformers import AutoModelForImageTextToText

    from rt2_policy.tiny_model import build_tiny_vla
    from rt2_policy.training.trainer import VISION_PARAM_MARKERS

    robot, vqa = data
    model = AutoModelForImageTextToText.from_pretrained(build_tiny_vla(tmp_path / "m", seed=0))
    trainer = Trainer(_config(tmp_path, vision_lr_scale=0.1, learning_rate=1e-3),
                      robot=robot, vqa=vqa)
    optimizer, _scheduler, params = trainer._optimizer(model)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert len(params) == len(names) == len(lr_of)
    vision = {n for n in names if any(m in n for m in VISION_PARAM_MARKERS)}
    assert vision and len(vision) < len(names)
    for name, param in names.items():
        assert lr_of[id(param)] == pytest.approx(1e-4 if name in vision else 1e-3), name


def test_ordinal_smoothing_spreads_bin_targets_but_keeps_terminate_and_words_hard():
    from rt2_policy.training.collate import KIND_ROBOT, KIND_VQA

    num_bins, vocab = 16, 40
    action_ids = torch.arange(20, 20 + num_bins)  # bin b is token 20 + b
    action = [20, 25, 35, 21, 22, 23, 24, 26]  # terminate (bin 0), then 7 bins
    # robot row 0: action, EOS (a word, 3); robot row 1: a goal plan ("reach", bins 9 4, ".")
    # then marker words, the action, EOS; VQA row 2: "x y" bins 7, 8
    targets = torch.tensor([*action, 3, 5, 29, 24, 6, 7, 8, *action, 3, 27, 28])
    kinds = torch.tensor([KIND_ROBOT] * 24 + [KIND_VQA] * 2)
    rows = torch.tensor([0] * 9 + [1] * 15 + [2] * 2)
    logits = torch.randn(len(targets), vocab)
    plain = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    assert torch.equal(ordinal_smoothed_losses(plain, logits, targets, kinds, rows, action_ids,
                                               0.0), plain)
    smoothed = ordinal_smoothed_losses(plain, logits, targets, kinds, rows, action_ids, 1.5)
    hard = [0, 8, 9, 12, 13, 14, 15, 23]  # terminates, EOS, plan words
    assert torch.equal(smoothed[hard], plain[hard])
    soft = [i for i in range(len(targets)) if i not in hard]  # Δ bins, plan and VQA points
    assert soft == [1, 2, 3, 4, 5, 6, 7, 10, 11, 16, 17, 18, 19, 20, 21, 22, 24, 25]
    assert not torch.isclose(smoothed[soft], plain[soft]).any()
    # the loss is lowest when the model puts its mass on the neighbours of the target bin
    def loss_for(peak_bin):
        lg = torch.full((1, vocab), -10.0)
        lg[0, 20 + peak_bin] = 10.0
        base = torch.nn.functional.cross_entropy(lg, targets[1:2], reduction="none")
        return float(ordinal_smoothed_losses(base, lg, targets[1:2], kinds[24:25], rows[24:25],
                                             action_ids, 1.5)[0])
    assert loss_for(5) < loss_for(6) < loss_for(8) < loss_for(12)


@pytest.mark.parametrize("gripper_weight, plan_word_weight", [(4.0, 1.0), (1.0, 3.0), (4.0, 3.0)])
def test_robot_token_weights_scale_only_the_gripper_token_and_the_plan_words(gripper_weight,
                                                                            plan_word_weight):
    from rt2_policy.training.collate import KIND_ROBOT, KIND_VQA

    action_ids = torch.arange(20, 36)  # bin b is token 20 + b
    action = [20, 25, 35, 21, 22, 23, 24, 26]  # terminate, 6 deltas, gripper (bin 6)
    # robot row 0: action, EOS (no plan); row 1: "plan:" (5), the phase (9), a point's bin
    # (24), "." (6), the marker's words (7, 8), the action, EOS; VQA row 2: a bin, a word
    targets = torch.tensor([*action, 3, 5, 9, 24, 6, 7, 8, *action, 3, 27, 11])
    kinds = torch.tensor([KIND_ROBOT] * 24 + [KIND_VQA] * 2)
    rows = torch.tensor([0] * 9 + [1] * 15 + [2] * 2)
    losses = torch.rand(len(targets)) + 0.5
    assert torch.equal(robot_token_weighted_losses(losses, targets, kinds, rows, action_ids),
                       losses)
    weighted = robot_token_weighted_losses(losses, targets, kinds, rows, action_ids,
                                           gripper_weight, plan_word_weight)
    gripper = [7, 22]  # each robot row's last bin token, not EOS, not a VQA bin
    words = [9, 10, 12, 13, 14]  # the plan's words and the marker: not bins, not EOS
    assert torch.allclose(weighted[gripper], gripper_weight * losses[gripper])
    assert torch.allclose(weighted[words], plan_word_weight * losses[words])
    others = [i for i in range(len(targets)) if i not in gripper + words]
    assert torch.equal(weighted[others], losses[others])
    assert robot_token_weighted_losses(losses[:0], targets[:0], kinds[:0], rows[:0],
                                       action_ids, 4.0, 3.0).numel() == 0


def test_rank_from_end_counts_back_within_each_row():
    rows = torch.tensor([0, 0, 0, 2, 5, 5])
    assert rank_from_end(rows).tolist() == [2, 1, 0, 0, 1, 0]
    assert rank_from_end(torch.zeros(0, dtype=torch.int64)).tolist() == []


@pytest.mark.parametrize("overrides, message", [
    ({"robot_fraction": 1.5}, "robot_fraction: expected a number in [0, 1], got 1.5"),
    ({"batch_size": 0}, "batch_size: expected an int >= 1, got 0"),
    ({"num_workers": 2}, "num_workers: expected 0 or 1, got 2"),
    ({"lr_schedule": "step"}, "lr_schedule: expected one of"),
    ({"robot_datasets": ()}, "robot_datasets: expected at least one robot or VQA dataset"),
    ({"lora": {"r": 0}}, "r: expected an int >= 1, got 0"),
    ({"tiny": {"image_size": 100}}, "image_size: expected a multiple of scale_factor * patch_size"),
    ({"cot": -0.1}, "cot: expected a number in [0, 1]"),
    ({"action_label_sigma": -1}, "action_label_sigma: expected a number >= 0"),
    ({"gripper_loss_weight": -1}, "gripper_loss_weight: expected a number >= 0"),
    ({"plan_word_loss_weight": -1}, "plan_word_loss_weight: expected a number >= 0"),
    ({"vision_lr_scale": 0}, "vision_lr_scale: expected a number > 0"),
    ({"tiny": {"image_position": "middle"}}, "image_position: expected 'prefix' or 'suffix'"),
    ({"gripper_state_indices": (7, -1)}, "gripper_state_indices: expected a sequence of ints >= 0"),
    ({"grasp_memory": True}, "grasp_memory: expected false without gripper_state_indices (the "
                             "memory reads the finger joints), got True"),
    ({"grasp_memory": 1, "gripper_state_indices": (7, 8)}, "grasp_memory: expected a bool, got 1"),
    ({"gripper_open_position": 0.0}, "gripper_open_position: expected metres > 0"),
    ({"grounding_point": "reference"}, "grounding_point: expected one of ('target', 'goal')"),
    ({"tcp_position_indices": (0, 1, 2, 3, 4, 5)},
     "tcp_position_indices: expected no or 7 ints >= 0 (the arm joints), got (0, 1, 2, 3, 4, 5)"),
    ({"tcp_position_indices": (0, 1, 2, 3, 4, 5, 6, 7)},
     "tcp_position_indices: expected no or 7 ints >= 0"),
    ({"tcp_position_indices": (0, 1, 2, -3, 4, 5, 6)},
     "tcp_position_indices: expected no or 7 ints >= 0 (the arm joints), got (0, 1, 2, -3,"),
    ({"tcp_position_indices": (0, 1, 2, 3, 4, 5, 6.0)}, "tcp_position_indices: expected no or 7"),
    ({"tcp_position_indices": "0123456"}, "tcp_position_indices: expected no or 7 ints >= 0"),
    ({"cot_plan": "where"}, "cot_plan: expected one of ('task', 'goal', 'waypoint'), got 'where'"),
    ({"tcp_offset": -0.1}, "tcp_offset: expected metres in [0, 1], got -0.1"),
    ({"tcp_offset": 2.0}, "tcp_offset: expected metres in [0, 1], got 2.0"),
    ({"tcp_offset": float("nan")}, "tcp_offset: expected metres in [0, 1], got nan"),
    ({"tcp_offset": "0.13"}, "tcp_offset: expected metres in [0, 1], got '0.13'"),
    ({"image_size": -32, "model": "ckpt"}, "image_size: expected an int >= 0, got -32"),
    ({"image_size": 128}, "image_size: expected 0 with model 'tiny' (a fresh tiny model takes "
                          "--tiny.image-size), got 128"),
])
def test_config_validation(overrides, message):
    values = {"robot_datasets": ("x",), **overrides}
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict(values)


def test_tcp_position_config_defaults_and_accepted_values():
    cfg = TrainConfig.from_dict({"robot_datasets": ("x",)})
    assert cfg.tcp_position_indices == () and cfg.tcp_offset == 0.13
    cfg = TrainConfig.from_dict({"robot_datasets": ("x",), "tcp_position_indices": list(range(7)),
                                 "tcp_offset": 0.1034})
    assert cfg.tcp_position_indices == (0, 1, 2, 3, 4, 5, 6) and cfg.tcp_offset == 0.1034
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    for offset in (0, 0.0, 1.0):  # the ends are in
        assert TrainConfig.from_dict({"robot_datasets": ("x",), "tcp_offset": offset}
                                     ).tcp_offset == offset


def test_cli_flags_and_config_files(tmp_path):
    (tmp_path / "run.yaml").write_text(
        "robot_datasets: [a]\nmax_steps: 50\nlora: {enabled: true, r: 4}\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--config", str(tmp_path / "run.yaml"), "--max-steps", "70",
                              "--vqa-datasets", "v1", "v2", "--lora.alpha", "8",
                              "--tiny.image-size", "64", "--bf16", "true",
                              "--adam-betas", "0.9", "0.99",
                              "--gripper-state-indices", "7", "8"])
    cfg = config_from_args(args)
    assert cfg.robot_datasets == ("a",) and cfg.vqa_datasets == ("v1", "v2")
    assert cfg.max_steps == 70 and cfg.bf16 is True and cfg.adam_betas == (0.9, 0.99)
    assert cfg.gripper_state_indices == (7, 8)
    assert cfg.lora == LoraSettings(enabled=True, r=4, alpha=8.0)
    assert cfg.tiny.image_size == 64
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="expected keys from"):
        TrainConfig.from_dict({"robot_datasets": ["a"], "max_step": 3})


def test_cli_trains_on_lerobot_and_vqa_directories(tmp_path, capsys, data):
    from rt2_policy.data.lerobot_dataset import LeRobotDatasetWriter
    from rt2_policy.data.vqa import VQAWriter
    from rt2_policy.training.__main__ import main

    robot, vqa = data
    with VQAWriter(tmp_path / "vqa") as writer:
        for example in vqa[:6]:
            writer.add(writer.add_image(example["image"]), example["question"],
                       example["answer"])
    writer = LeRobotDatasetWriter(tmp_path / "demos", fps=5.0, image_shape=(40, 40, 3))
    for episode in range(2):
        for frame in robot[episode * 4:(episode + 1) * 4]:
            writer.add_frame(frame["image"], frame["action"], frame["task"])
        writer.save_episode()
    writer.finalize()
    code = main(["--robot-datasets", str(tmp_path / "demos"), "--vqa-datasets",
                 str(tmp_path / "vqa"), "--output-dir",
                 str(tmp_path / "cli"), "--max-steps", "2", "--batch-size", "4",
                 "--progress", "false", "--eval-examples", "4", "--num-threads", "2"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["stopped"] == "max_steps"
    assert "robot_loss" in summary and "vqa_loss" in summary and summary["steps_per_s"] > 0
    assert (tmp_path / "cli" / "checkpoint-0000002" / "model.safetensors").is_file()
    with pytest.raises(SystemExit):
        main(["--output-dir", str(tmp_path / "x")])  # no dataset: a usage error


def test_gripper_state_runs_put_it_in_the_prompt_and_record_it(tmp_path, data):
    """``gripper_state_indices``: each robot frame's prompt carries its gripper state (from the
    finger joints in ``observation.state``), the checkpoint says so, the policy then needs the
    state, and a later run from that checkpoint must keep reading it."""
    from rt2_policy.token_mapping import load_gripper_state
    from rt2_policy.vla_policy import VLAPolicy

    robot, vqa = data
    fingers = (0.04, 0.0, 0.025)  # open, closed, closed on an object (metres per finger)
    robot = [{**frame, "observation.state": np.array([0.0] * 7 + [fingers[i % 3]] * 2,
                                                     np.float32)}
             for i, frame in enumerate(robot)]
    config = _config(tmp_path, max_steps=2, gripper_state_indices=(7, 8))
    result = Trainer(config, robot=robot, vqa=vqa).train()
    assert load_gripper_state(result.checkpoint)
    assert not load_gripper_state(tmp_path / "run" / "tiny_init")

    policy = VLAPolicy.from_pretrained(result.checkpoint)
    assert policy.gripper_state and policy.metadata["gripper_state"]
    with pytest.raises(ValueError, match="gripper_state"):
        policy.infer(Observation(robot[0]["image"], "lift the red zebra"))
    action = policy.infer(Observation(robot[0]["image"], "lift the red zebra",
                                      gripper_state=0.375))
    assert "Q: what action should the robot take to lift the red zebra, gripper 96? A:" in \
        action.extra["prompt"]

    # Fine-tuning it without the finger joints would train a prompt it never sees at run time.
    later = _config(tmp_path, model=result.checkpoint, output_dir=str(tmp_path / "later"))
    with pytest.raises(ValueError, match="gripper_state_indices: expected the finger joints"):
        Trainer(later, robot=robot, vqa=vqa).train()
    # Frames without observation.state cannot give the state.
    with pytest.raises(ValueError, match="observation.state"):
        Trainer(_config(tmp_path, max_steps=1, output_dir=str(tmp_path / "nostate"),
                        gripper_state_indices=(7, 8)), robot=data[0], vqa=vqa).train()


def test_grasp_memory_runs_put_it_in_the_prompt_and_record_it(tmp_path, data):
    """``grasp_memory``: each robot frame's prompt ends with its episode's grasp memory (from
    the finger joints of the frames before it), the checkpoint says so, the policy from
    make_policy tracks it, and a later run from that checkpoint must keep it."""
    from rt2_policy.grasp_memory import GraspMemory
    from rt2_policy.policy_factory import make_policy
    from rt2_policy.token_mapping import load_grasp_memory

    robot, vqa = data
    fingers = [0.04, 0.025, 0.025, 0.025, 0.04, 0.04] * 4  # open, held 3 frames, let go
    robot = [{**frame, "episode_index": i // 6,
              "observation.state": np.array([0.0] * 7 + [fingers[i]] * 2, np.float32)}
             for i, frame in enumerate(robot)]
    config = _config(tmp_path, max_steps=2, gripper_state_indices=(7, 8), grasp_memory=True)
    trainer = Trainer(config, robot=robot, vqa=vqa)
    assert [trainer.robot[i]["grasped"] for i in range(12)] == \
        [False, False, False, True, True, True] * 2
    assert trainer.eval_robot is trainer.robot
    result = trainer.train()
    assert load_grasp_memory(result.checkpoint)
    policy = make_policy("local", model_path=result.checkpoint)
    assert isinstance(policy, GraspMemory) and policy.metadata["grasp_memory"]
    prompts = [policy.infer(Observation(robot[0]["image"], "lift the red zebra",
                                        gripper_state=s)).extra["prompt"]
               for s in (0.0, 0.375, 0.375, 0.375)]
    assert prompts[0].endswith("lift the red zebra, gripper 0, grasp 0? A:")
    assert prompts[3].endswith("lift the red zebra, gripper 96, grasp 1? A:")

    # Fine-tuning it without the memory would train a prompt it never sees at run time.
    later = _config(tmp_path, model=result.checkpoint, output_dir=str(tmp_path / "later"),
                    gripper_state_indices=(7, 8))
    with pytest.raises(ValueError, match="grasp_memory: expected true"):
        Trainer(later, robot=robot, vqa=vqa).train()


def test_goal_plan_runs_teach_and_record_planning_before_every_action(tmp_path, data):
    """``cot=1, cot_plan="goal"``: every robot target starts with ``"reach X Y"`` /
    ``"bring X Y"``; the checkpoint records that it always plans, so the policy loaded from it
    plans even when not asked to; ``cot`` < 1 leaves the choice to the caller."""
    from transformers import AutoTokenizer

    from rt2_policy.plans import parse_goal_plan
    from rt2_policy.token_mapping import ACTION_CONFIG_NAME
    from rt2_policy.vla_policy import VLAPolicy

    robot, vqa = data
    fingers = (0.04, 0.025)  # open, closed on an object (metres per finger)
    robot = [{**frame, "observation.state": np.array([0.0] * 7 + [fingers[i % 2]] * 2,
                                                     np.float32),
              "observation.target_point": np.array([10.0 * i, 20.0], np.float32),
              "observation.reference_point": np.array([100.0, 5.0 * i], np.float32)}
             for i, frame in enumerate(robot)]
    result = Trainer(_config(tmp_path, max_steps=2, cot=1.0, cot_plan="goal", eval_interval=2,
                             gripper_state_indices=(7, 8)), robot=robot, vqa=vqa).train()
    # teacher-forced evaluation reads the action after the plan
    evals = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "eval_robot_loss" in r]
    assert evals and 0.0 <= evals[-1]["eval_action_acc"] <= 1.0
    assert 0.0 <= evals[-1]["eval_action_bin_l1"] <= 255.0
    stored = json.loads((Path(result.checkpoint) / ACTION_CONFIG_NAME).read_text("utf-8"))
    assert stored["prompt"]["chain_of_thought"] is True and stored["prompt"]["cot_plan"] == "goal"
    tok = AutoTokenizer.from_pretrained(result.checkpoint)
    assert tok.unk_token_id not in tok.convert_tokens_to_ids(["reach", "bring"])
    policy = VLAPolicy.from_pretrained(result.checkpoint)
    assert policy.chain_of_thought and policy.metadata["chain_of_thought"]
    action = policy.infer(Observation(robot[0]["image"], "lift the red zebra",
                                      gripper_state=0.0))
    assert parse_goal_plan(action.plan) is not None  # the constrained goal-plan decode

    sometimes = Trainer(_config(tmp_path, max_steps=1, cot=0.5, cot_plan="goal",
                                output_dir=str(tmp_path / "half"),
                                gripper_state_indices=(7, 8)), robot=robot, vqa=vqa).train()
    assert not VLAPolicy.from_pretrained(sometimes.checkpoint).chain_of_thought
    assert VLAPolicy.from_pretrained(sometimes.checkpoint, chain_of_thought=True).chain_of_thought


def test_waypoint_plan_runs_record_and_decode_three_coordinate_plans(tmp_path, data):
    """``cot_plan="waypoint"``: the targets plan the frame's goal position in tcp bins, the
    checkpoint records it, and the loaded policy decodes ``"reach X Y Z"`` constrained."""
    from rt2_policy.plans import parse_goal_plan
    from rt2_policy.token_mapping import ACTION_CONFIG_NAME
    from rt2_policy.vla_policy import VLAPolicy

    robot, vqa = data
    robot = [{**frame, "observation.state": np.array([0.0] * 7 + [0.04, 0.04], np.float32),
              "observation.goal_position": np.array([0.4 + 0.01 * i, 0.0, 0.1], np.float32)}
             for i, frame in enumerate(robot)]
    result = Trainer(_config(tmp_path, max_steps=2, cot=1.0, cot_plan="waypoint",
                             eval_interval=2, gripper_state_indices=(7, 8),
                             tcp_position_indices=tuple(range(7))),
                     robot=robot, vqa=vqa).train()
    stored = json.loads((Path(result.checkpoint) / ACTION_CONFIG_NAME).read_text("utf-8"))
    assert stored["prompt"]["cot_plan"] == "waypoint"
    policy = VLAPolicy.from_pretrained(result.checkpoint)
    assert policy.chain_of_thought and policy._goal_grammar.coordinates == 3
    action = policy.infer(Observation(robot[0]["image"], "lift the red zebra",
                                      gripper_state=0.0, tcp_position=(0.4, 0.0, 0.3)))
    phase, point = parse_goal_plan(action.plan)
    assert len(point) == 3 and len(action.extra["plan_token_ids"]) == 4
    # frames without a goal position cannot train waypoint plans
    bare = [{k: v for k, v in frame.items() if k != "observation.goal_position"}
            for frame in robot]
    with pytest.raises(ValueError, match="observation.goal_position"):
        Trainer(_config(tmp_path, max_steps=1, cot=1.0, cot_plan="waypoint",
                        output_dir=str(tmp_path / "bare")), robot=bare, vqa=vqa).train()
