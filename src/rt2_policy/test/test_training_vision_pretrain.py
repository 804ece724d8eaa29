"""Dense vision pre-training: it learns per-patch labels, saves a loadable policy, checks grids."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rt2_policy.contract import Observation
from rt2_policy.training.vision_pretrain import main, pretrain_vision

CLASSES = np.array(["background", "arm", "red", "blue"])


def _labels(path, n=48, grid=6, seed=0, classes=CLASSES):
    """96 px images with red/blue squares in random cells of a grid x grid layout."""
    rng = np.random.default_rng(seed)
    cell = 96 // grid
    images = np.full((n, 96, 96, 3), 200, np.uint8)
    labels = np.zeros((n, grid, grid), np.int64)
    for i in range(n):
        for _ in range(3):
            r, c = rng.integers(0, grid, 2)
            k = int(rng.integers(2, 4))
            images[i, r * cell + 4:r * cell + 12, c * cell + 4:c * cell + 12] = \
                (220, 30, 30) if k == 2 else (30, 30, 220)
            labels[i, r, c] = k
    np.savez(path, images=images, labels=labels, classes=classes)
    return path


def test_pretraining_learns_the_cells_and_saves_a_policy(tmp_path, tiny_vla_dir):
    from rt2_policy.vla_policy import VLAPolicy

    torch.set_num_threads(2)
    data = _labels(tmp_path / "labels.npz")
    out = tmp_path / "pretrained"
    summary = pretrain_vision(tiny_vla_dir, data, out, steps=60, batch_size=16,
                              learning_rate=2e-3, held_out=0.25, log_interval=1000)
    before, after = summary["object_cell_recall"]
    assert after > before + 0.3, summary
    assert summary["cell_accuracy"][1] > 0.9
    policy = VLAPolicy.from_pretrained(out)  # the whole checkpoint, vision weights changed
    from safetensors.torch import load_file

    old, new = load_file(tiny_vla_dir / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed and all("vision_model" in k for k in changed)
    action = policy.infer(Observation(np.zeros((96, 96, 3), np.uint8), "pick up the red cube"))
    assert action.bins.shape == (8,)


def test_grid_mismatch_and_cli(tmp_path, tiny_vla_dir, capsys):
    data = _labels(tmp_path / "labels8.npz", n=8, grid=8)  # the tiny VLA has 6 x 6 patches
    with pytest.raises(ValueError, match="36 cells"):
        pretrain_vision(tiny_vla_dir, data, tmp_path / "x", steps=1)
    reordered = _labels(tmp_path / "reordered.npz", n=8, classes=CLASSES[[1, 0, 2, 3]])
    with pytest.raises(ValueError, match="expected classes 'background', 'arm'"):
        pretrain_vision(tiny_vla_dir, reordered, tmp_path / "z", steps=1)
    data = _labels(tmp_path / "labels.npz", n=8)
    assert main(["--model", str(tiny_vla_dir), "--data", str(data), "--output",
                 str(tmp_path / "cli"), "--steps", "2", "--batch-size", "4"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and (tmp_path / "cli" / "model.safetensors").is_file()
    assert main(["--model", str(tiny_vla_dir), "--data", str(tmp_path / "missing.npz"),
                 "--output", str(tmp_path / "y")]) == 1


def test_trainer_runs_the_pretraining_first(tmp_path):
    from rt2_policy.training.config import TrainConfig
    from rt2_policy.training.trainer import Trainer

    robot = [{"image": np.full((40, 40, 3), 90, np.uint8), "task": "pick up the red cube",
              "action": np.zeros(8, np.float32)}] * 4
    config = TrainConfig(robot_datasets=("in-memory",), output_dir=str(tmp_path / "run"),
                         max_steps=1, batch_size=2, eval_interval=0, save_interval=0,
                         progress=False, num_threads=2, eval_examples=2,
                         vision_pretrain_data=str(_labels(tmp_path / "labels.npz", n=8)),
                         vision_pretrain_steps=2)
    result = Trainer(config, robot=robot).train()
    assert result.step == 1
    assert (tmp_path / "run" / "vision_pretrained" / "model.safetensors").is_file()
