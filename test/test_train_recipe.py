"""`make train` (scripts/train_embedded.sh) runs every stage end to end, shrunk to a smoke size."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("setting", "message"), [
    ({"RT2_PLAN": "goal"}, "RT2_PLAN: expected unset, 'waypoint' or 'none', got 'goal'"),
    ({"RT2_GRASP_MEMORY": "yes"}, "RT2_GRASP_MEMORY: expected unset, 0 or 1, got 'yes'"),
    ({"RT2_IMAGE_SIZE": "100"},
     "image_size: expected a multiple of scale_factor * patch_size = 36, got 100"),
    ({"RT2_PATCH_SIZE": "x"}, "argument --tiny.patch-size: invalid int value: 'x'"),
    ({"RT2_ROBOT_FRACTION": "1.5"}, "robot_fraction: expected a number in [0, 1], got 1.5"),
    ({"RT2_TRAIN_MINUTES": "-1"}, "time_budget_min: expected a number >= 0, got -1.0"),
    ({"RT2_DAGGER_STEPS": "0"}, "max_steps: expected an int >= 1, got 0"),
    ({"RT2_SCHEDULE": "time"}, "RT2_SCHEDULE: expected unset, 'steps' or 'budget', got 'time'"),
    ({"RT2_SEQUENTIAL": "yes"}, "RT2_SEQUENTIAL: expected unset, 0 or 1, got 'yes'"),
    ({"RT2_SEED": "-1"}, "RT2_SEED: expected an integer in 0..999999999, got '-1'"),
    ({"RT2_SEED": "1e3"}, "RT2_SEED: expected an integer in 0..999999999, got '1e3'"),
    ({"RT2_SEED": "1" * 20},
     f"RT2_SEED: expected an integer in 0..999999999, got '{'1' * 20}'"),
    ({"RT2_SCHEDULE": "budget", "RT2_DAGGER_MINUTES": "0"},
     "time_budget_min: expected a number > 0 with schedule_to_budget, got 0.0"),
])
def test_an_unknown_setting_stops_before_any_stage(tmp_path, setting, message):
    env = dict(os.environ, **setting)
    done = subprocess.run(["bash", str(ROOT / "scripts" / "train_embedded.sh"),
                           str(tmp_path / "data"), str(tmp_path / "runs")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "data").exists()


# The recipe's defaults are the shipped model's (README, "Train -> Status", item 28): waypoint
# plans, grasp memory, 144 px in 18 px patches, the runs one after the other. The first case
# sets every one of them the other way (and a 12 x 12 label grid); the second leaves them unset.
DEFAULTS = {"RT2_PLAN": "waypoint", "RT2_GRASP_MEMORY": "1", "RT2_IMAGE_SIZE": "144",
            "RT2_PATCH_SIZE": "18", "RT2_SEQUENTIAL": "1"}


@pytest.mark.parametrize(("settings", "schedule", "seed"), [
    ({"RT2_PLAN": "none", "RT2_GRASP_MEMORY": "0", "RT2_IMAGE_SIZE": "96", "RT2_PATCH_SIZE": "8",
      "RT2_SEQUENTIAL": "0"}, "steps", None),
    ({}, "budget", "3")])
def test_recipe_chains_every_stage(tmp_path, settings, schedule, seed):
    env = dict(os.environ, RT2_DEMO_EPISODES="8", RT2_VQA_SCENES="40", RT2_PATCH_SCENES="40",
               RT2_POINT_SCENES="20",
               RT2_VISION_PRETRAIN_STEPS="10", RT2_TRAIN_STEPS="10", RT2_DAGGER_ROUNDS="1",
               RT2_DAGGER_EPISODES="2", RT2_DAGGER_STEPS="5", HF_HUB_OFFLINE="1",
               OMP_WAIT_POLICY="PASSIVE", RT2_SCHEDULE=schedule)
    for name in DEFAULTS:
        env.pop(name, None)
    env.update(settings)
    plan, memory, image, patch, sequential = (
        {**DEFAULTS, **settings}[name] for name in DEFAULTS)
    plan = plan == "waypoint"
    if seed is not None:
        env["RT2_SEED"] = seed
    else:
        env.pop("RT2_SEED", None)
    seed = int(seed or 0)  # the training seed: stage 3's, and 1000 x it + r for round r
    data, runs = tmp_path / "data", tmp_path / "runs"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "train_embedded.sh"), str(data),
                           str(runs)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads((data / "demos" / "meta" / "info.json").read_text())["total_episodes"] >= 1
    for name in ("vqa_seen", "vqa_unseen_objects", "vqa_unseen_backgrounds", "vqa_point"):
        assert (data / name / "vqa.jsonl").stat().st_size > 0
    # one label cell per patch: 8 x 8 at 144 px in 18 px patches, 12 x 12 at 96 px in 8 px
    grid = int(image) // int(patch)
    labels = data / ("patch_labels.npz" if grid == 8 else f"patch_labels_{grid}x{grid}.npz")
    assert np.load(labels)["labels"].shape[1:] == (grid, grid)
    for run in ("cofinetuned", "robot_only"):
        summary = json.loads((runs / f"{run}.log").read_text().strip().splitlines()[-1])
        assert summary["step"] == 10 and summary["stopped"] == "max_steps"
        assert (runs / run / "vision_pretrained").is_dir()  # the tower was pre-trained first
        # RT2_SCHEDULE=budget: the cosine decays over RT2_TRAIN_MINUTES too (item 26)
        config = json.loads((runs / run / "config.json").read_text())
        assert config["schedule_to_budget"] is (schedule == "budget")
        assert config["time_budget_min"] == 52.0
        assert config["seed"] == seed
        # side by side: one thread each; RT2_SEQUENTIAL=1: one run at a time on every core
        assert config["num_threads"] == (len(os.sched_getaffinity(0)) if sequential == "1" else 1)
        assert (Path(summary["checkpoint"]) / "action_tokenizer_config.json").exists()
    cofinetuned = json.loads((runs / "cofinetuned.log").read_text().strip().splitlines()[-1])
    robot_only = json.loads((runs / "robot_only.log").read_text().strip().splitlines()[-1])
    assert "vqa_loss" in cofinetuned  # the VQA mixture was sampled
    assert "eval_grounding_acc" in cofinetuned and "eval_grounding_acc" in robot_only
    assert "vqa_loss" not in robot_only
    # one DAgger round: the robot-only model drove (RT2_SEQUENTIAL=1: the co-fine-tuned one,
    # trained first), every episode was kept, both runs went on from their checkpoints on
    # demos + DAgger data (side by side: to the same total steps)
    dagger = json.loads((data / "dagger1" / "meta" / "info.json").read_text())
    assert dagger["total_episodes"] == 2
    generated = [json.loads(line) for line in done.stdout.splitlines()
                 if line.startswith("{") and '"policy"' in line]  # generate_demos' summaries
    assert [Path(g["policy"]).parent for g in generated if g["policy"]] == [
        runs / ("cofinetuned" if sequential == "1" else "robot_only")]
    if sequential == "1":  # the ablation trained after the co-fine-tuned run's last round
        assert (runs / "robot_only" / "config.json").stat().st_mtime > (
            runs / "cofinetuned_dagger1" / "latest").stat().st_mtime
    for run in ("cofinetuned_dagger1", "robot_only_dagger1"):
        summary = json.loads((runs / f"{run}.log").read_text().strip().splitlines()[-1])
        assert summary["step"] == 5 and summary["stopped"] == "max_steps"
        config = json.loads((runs / run / "config.json").read_text())
        assert config["robot_datasets"] == [str(data / "demos"), str(data / "dagger1")]
        assert config["seed"] == 1000 * seed + 1
        assert Path(config["model"]).parent == runs / run.replace("_dagger1", "")
        # every model reads the gripper state (finger joints 7, 8 of observation.state) and the
        # tcp position (forward kinematics of the arm joints 0-6)
        assert config["gripper_state_indices"] == [7, 8]
        assert config["tcp_position_indices"] == list(range(7))
        # the target pointer only: the reference pointer did not help (README, Status item 10)
        assert config["reference_grounding_loss_weight"] == 0.0
        state = torch.load(Path(summary["checkpoint"]) / "training_state.pt", weights_only=True)
        assert "grounding_head" in state and "reference_head" not in state
        action_config = Path(summary["checkpoint"]) / "action_tokenizer_config.json"
        prompt = json.loads(action_config.read_text())["prompt"]
        assert prompt["gripper_state"] is True and prompt["tcp_position"] is True
        # RT2_GRASP_MEMORY=1: the episode's grasp memory ends every action prompt (item 21)
        assert prompt.get("grasp_memory", False) is (memory == "1")
        assert config["grasp_memory"] is (memory == "1")
        assert config["schedule_to_budget"] is (schedule == "budget")
        # RT2_PLAN=waypoint: a waypoint plan before every action (README, Status items 15-19)
        assert (config["cot"], config["cot_plan"]) == ((1.0, "waypoint") if plan else (0.0, "task"))
        assert config["grounding_point"] == ("goal" if plan else "target")
        model_config = json.loads((Path(summary["checkpoint"]) / "config.json").read_text())
        assert model_config["vision_config"]["image_size"] == int(image)
        assert model_config["vision_config"]["patch_size"] == int(patch)
        fraction = config["robot_fraction"]
        assert fraction == (1.0 if "robot_only" in run else 0.66 if plan else 0.5)
    # the demonstrations still record both points (for --reference-grounding-loss-weight)
    features = json.loads((data / "demos" / "meta" / "info.json").read_text())["features"]
    assert {"observation.target_point", "observation.reference_point"} <= set(features)
    # the rounds count steps from each run's start: the recipe keeps the cumulative totals
    if sequential == "1":
        assert "round 1: 15 steps (co-fine-tuned)\n" in done.stdout
        assert "round 1: 15 steps (robot data only)\n" in done.stdout
    else:
        assert "round 1: 15 steps (co-fine-tuned), 15 steps (robot data only)" in done.stdout
    assert "final models:" in done.stdout
    if sequential == "1":
        # a rerun finds every stage done: no new data, no training step, and each trainer's log
        # keeps the first run's lines (appended to, not overwritten)
        again = subprocess.run(["bash", str(ROOT / "scripts" / "train_embedded.sh"), str(data),
                                str(runs)], env=env, cwd=ROOT, capture_output=True, text=True,
                               timeout=600)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert '"policy"' not in again.stdout  # no DAgger episodes generated again
        for run in ("cofinetuned", "robot_only", "cofinetuned_dagger1", "robot_only_dagger1"):
            lines = (runs / f"{run}.log").read_text().splitlines()
            ends = [i for i, line in enumerate(lines) if line.startswith("{")]  # summaries
            assert len(ends) == 2, lines
            first, second = (json.loads(lines[i]) for i in ends)
            assert first["start_step"] == 0 < first["step"]
            assert second["start_step"] == second["step"] == first["step"]
            rerun = "\n".join(lines[ends[0] + 1:])
            assert "nothing to do" in rerun and "into the cache" not in rerun
        assert again.stdout.splitlines()[-1] == done.stdout.splitlines()[-1]  # final models


def _ship(checkpoint: Path, dest: Path, threshold: str | None):
    env = dict(os.environ, RT2_SHIP_DIR=str(dest))
    env.pop("RT2_TERMINATE_THRESHOLD", None)
    if threshold is not None:
        env["RT2_TERMINATE_THRESHOLD"] = threshold
    return subprocess.run(["bash", str(ROOT / "scripts" / "ship_model.sh"), str(checkpoint)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ship_model_copies_the_model_and_stores_the_terminate_threshold(tmp_path):
    """scripts/ship_model.sh copies the model files (not the training state) and, with
    RT2_TERMINATE_THRESHOLD, stores the decode's threshold in the shipped action config; a bad
    value stops it before anything is copied."""
    from rt2_policy.tiny_model import build_tiny_vla
    from rt2_policy.token_mapping import stored_terminate_threshold

    checkpoint = build_tiny_vla(tmp_path / "checkpoint", seed=0)
    (checkpoint / "optimizer.pt").write_bytes(b"training state")
    shipped = tmp_path / "shipped"
    done = _ship(checkpoint, shipped, "0.85")
    assert done.returncode == 0, done.stderr
    assert not (shipped / "optimizer.pt").exists()
    assert (shipped / "model.safetensors").read_bytes() == (
        checkpoint / "model.safetensors").read_bytes()
    config = json.loads((shipped / "action_tokenizer_config.json").read_text())
    assert stored_terminate_threshold(config) == 0.85
    assert config["token_mapping"] == json.loads(
        (checkpoint / "action_tokenizer_config.json").read_text())["token_mapping"]
    kept = tmp_path / "kept"
    assert _ship(checkpoint, kept, None).returncode == 0
    assert "decoding" not in json.loads((kept / "action_tokenizer_config.json").read_text())
    refused = _ship(checkpoint, tmp_path / "refused", "1.5")
    assert refused.returncode != 0
    assert "RT2_TERMINATE_THRESHOLD: terminate_threshold: expected a probability" in (
        refused.stderr)
    assert not (tmp_path / "refused").exists()
