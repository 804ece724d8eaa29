"""The pointer loss over image tokens: parsing, cells, the head, and the trainer option."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt2_policy.training.config import TinyModelConfig, TrainConfig
from rt2_policy.training.grounding import (
    GroundingHead,
    answer_point,
    grounding_loss,
    point_cells,
)
from rt2_policy.training.trainer import Trainer, read_metrics


def test_answer_point_parses_only_point_answers():
    assert answer_point("181 170") == (181, 170)
    assert answer_point(" 0 255 ") == (0, 255)
    for text in ("red", "181", "181 170 3", "256 10", "-1 5", "", None):
        assert answer_point(text) is None


def test_point_cells_are_row_major():
    points = torch.tensor([[0, 0], [255, 255], [64, 0], [0, 64], [63, 63], [200, 70], [-1, -1]])
    assert point_cells(points, 4).tolist() == [0, 15, 1, 4, 0, 4 * 1 + 3, -1]
    with pytest.raises(ValueError, match="grid"):
        point_cells(points, 0)


def test_idefics3_connector_orders_image_tokens_row_major():
    # The cell convention above rests on transformers' pixel shuffle: token r*g+c holds the
    # patches of block row r, block column c.
    from transformers.models.idefics3.modeling_idefics3 import Idefics3Connector

    side, scale = 8, 2
    rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    # one feature per patch: its block index, so every channel of a token must agree
    block = torch.tensor((rows // scale) * (side // scale) + cols // scale, dtype=torch.float32)
    x = block.reshape(1, side * side, 1)
    shuffled = Idefics3Connector.pixel_shuffle(None, x, scale_factor=scale)
    assert shuffled.shape == (1, (side // scale) ** 2, scale ** 2)
    for token in range(shuffled.shape[1]):
        assert torch.all(shuffled[0, token] == token)


def test_head_scores_image_tokens_and_checks_the_grid():
    head = GroundingHead(8)
    hidden = torch.randn(2, 7, 8)
    ids = torch.tensor([[1, 9, 9, 9, 9, 2, 3], [1, 2, 9, 9, 9, 9, 3]])
    assert head(hidden, ids, 9).shape == (2, 4)
    with pytest.raises(ValueError, match="same number"):
        head(hidden, torch.tensor([[9, 9, 9, 9, 0, 0, 0], [9, 9, 9, 0, 0, 0, 0]]), 9)
    with pytest.raises(ValueError, match="square"):
        head(hidden, torch.tensor([[9, 9, 9, 0, 0, 0, 0], [9, 9, 9, 0, 0, 0, 0]]), 9)
    loss, right, rows = grounding_loss(head, hidden, ids, torch.full((2, 2), -1), 9)
    assert loss is None and (right, rows) == (0, 0)
    loss, right, rows = grounding_loss(head, hidden, ids, torch.tensor([[-1, -1], [200, 10]]),
                                       9)
    assert loss is not None and rows == 1 and right in (0, 1)


COLOURS = {"red": (220, 30, 30), "green": (30, 220, 30)}


def _two_squares(rng: np.random.Generator):
    """A 48 px image with a 12 px square of each colour in two random cells of a 4 × 4 grid,
    and each square's centre ``(x, y)`` in 0..255 (pointing units), by colour."""
    image = np.full((48, 48, 3), 40, np.uint8)
    centres = {}
    for colour, cell in zip(COLOURS, rng.choice(16, 2, replace=False), strict=True):
        r, c = divmod(int(cell), 4)
        image[r * 12:(r + 1) * 12, c * 12:(c + 1) * 12] = COLOURS[colour]
        centres[colour] = (c * 64 + 32, r * 64 + 32)
    return image, centres


def _pointing_data(n: int, seed: int = 0):
    """Two 12 px squares in a 48 px image; "point to the <colour> zebra" → its centre."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        image, centres = _two_squares(rng)
        colour = list(COLOURS)[i % 2]
        x, y = centres[colour]
        rows.append({"image": image, "question": f"point to the {colour} zebra",
                     "answer": f"{x} {y}"})
    return rows


def _config(tmp_path, **overrides) -> TrainConfig:
    values = dict(vqa_datasets=("in-memory",), output_dir=str(tmp_path / "run"), max_steps=40,
                  batch_size=8, learning_rate=3e-3, warmup_steps=0, lr_schedule="constant",
                  log_interval=10, eval_interval=0, eval_examples=8, save_interval=0,
                  num_threads=2, num_workers=0, progress=False, grounding_loss_weight=1.0,
                  tiny=TinyModelConfig(image_size=48, patch_size=6, image_position="suffix"))
    values.update(overrides)
    return TrainConfig(**values)


def test_trainer_learns_the_pointer_and_keeps_its_head_for_resume(tmp_path):
    vqa = _pointing_data(8)
    result = Trainer(_config(tmp_path), robot=[], vqa=vqa).train()
    metrics = [m for m in read_metrics(tmp_path / "run" / "metrics.jsonl")
               if "grounding_loss" in m]
    assert len(metrics) >= 3
    # 8 fixed examples: the pointer must fit them, from ~log(16) = 2.8 nats at the start
    assert metrics[-1]["grounding_loss"] < 0.5 * metrics[0]["grounding_loss"]
    assert "eval_grounding_acc" in result.metrics
    state = torch.load(tmp_path / "run" / "latest" / "training_state.pt", weights_only=True)
    assert set(state["grounding_head"]) == {"score.weight", "score.bias"}


def test_grounding_needs_the_suffix_layout(tmp_path):
    cfg = _config(tmp_path, tiny=TinyModelConfig(image_size=48, patch_size=6))
    with pytest.raises(ValueError, match="image_position 'suffix'"):
        Trainer(cfg, robot=[], vqa=_pointing_data(8)).train()
    with pytest.raises(ValueError, match="grounding_loss_weight"):
        TrainConfig(vqa_datasets=("x",), grounding_loss_weight=-1.0)


def test_robot_frames_with_a_target_point_are_grounded_too(tmp_path):
    from rt2_policy.data.lerobot_dataset import TARGET_POINT_KEY
    from rt2_policy.training.collate import _target_point

    assert _target_point([12.7, 200.2]) == (12, 200)
    assert _target_point([-1.0, -1.0]) is None and _target_point(None) is None
    assert _target_point([np.nan, 3.0]) is None
    robot = []
    for row in _pointing_data(8):
        x, y = map(float, row["answer"].split())
        action = np.zeros(8, np.float32)
        robot.append({"image": row["image"], "action": action,
                      "task": row["question"].replace("point to", "lift"),
                      TARGET_POINT_KEY: np.array([x, y], np.float32)})
    cfg = _config(tmp_path, vqa_datasets=(), robot_datasets=("in-memory",), max_steps=10)
    Trainer(cfg, robot=robot, vqa=[]).train()
    metrics = [m for m in read_metrics(tmp_path / "run" / "metrics.jsonl")
               if "grounding_loss" in m]
    assert metrics and "robot_loss" in metrics[0]


def test_fine_tuning_a_checkpoint_starts_from_its_grounding_head(tmp_path):
    """A new run with ``model=<checkpoint>`` (e.g. a DAgger round) keeps the trained pointer
    instead of a random one."""
    vqa = _pointing_data(8)
    Trainer(_config(tmp_path, max_steps=20), robot=[], vqa=vqa).train()
    checkpoint = (tmp_path / "run" / "latest").resolve()
    saved = torch.load(checkpoint / "training_state.pt", weights_only=True)["grounding_head"]
    cfg = _config(tmp_path, model=str(checkpoint), output_dir=str(tmp_path / "round2"),
                  max_steps=1, learning_rate=1e-12)
    trainer = Trainer(cfg, robot=[], vqa=vqa)
    trainer.train()
    head = trainer._grounding_heads["point"].state_dict()
    for name, value in saved.items():
        torch.testing.assert_close(head[name], value, atol=1e-6, rtol=0)
    # Turning the reference loss on in a later round: the target head is kept, the new
    # reference head starts fresh (the checkpoint has none), and both are saved from then on.
    cfg = _config(tmp_path, model=str(checkpoint), output_dir=str(tmp_path / "round3"),
                  max_steps=1, learning_rate=1e-12, reference_grounding_loss_weight=1.0)
    trainer = Trainer(cfg, robot=[], vqa=vqa)
    trainer.train()
    assert set(trainer._grounding_heads) == {"point", "reference_point"}
    torch.testing.assert_close(trainer._grounding_heads["point"].state_dict()["score.weight"],
                               saved["score.weight"], atol=1e-6, rtol=0)
    state = torch.load(tmp_path / "round3" / "latest" / "training_state.pt", weights_only=True)
    assert {"grounding_head", "reference_head"} <= set(state)


def _two_object_frames(n: int, seed: int = 0):
    """Robot frames "move the <a> zebra near the <b> zebra" on :func:`_pointing_data` images,
    with the target point of <a> and the reference point of <b> (LeRobot extra features)."""
    from rt2_policy.data.lerobot_dataset import REFERENCE_POINT_KEY, TARGET_POINT_KEY

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        image, centres = _two_squares(rng)
        target, reference = list(COLOURS) if i % 2 else list(COLOURS)[::-1]
        frames.append({"image": image, "action": np.zeros(8, np.float32),
                       "task": f"move the {target} zebra near the {reference} zebra",
                       TARGET_POINT_KEY: np.array(centres[target], np.float32),
                       REFERENCE_POINT_KEY: np.array(centres[reference], np.float32)})
    return frames


def test_reference_points_train_a_second_pointer_head(tmp_path):
    frames = _two_object_frames(8)
    cfg = _config(tmp_path, vqa_datasets=(), robot_datasets=("in-memory",), max_steps=60,
                  reference_grounding_loss_weight=1.0)
    result = Trainer(cfg, robot=frames, vqa=[]).train()
    metrics = [m for m in read_metrics(tmp_path / "run" / "metrics.jsonl")
               if "reference_grounding_loss" in m]
    assert len(metrics) >= 3 and "grounding_loss" in metrics[0]
    # the reference is the object the instruction names second: the head must learn to read it
    assert metrics[-1]["reference_grounding_loss"] < 0.5 * metrics[0]["reference_grounding_loss"]
    # scored against the reference points: a head fitted to the targets would score ~0 here
    assert result.metrics["eval_reference_grounding_acc"] >= 0.75
    state = torch.load(tmp_path / "run" / "latest" / "training_state.pt", weights_only=True)
    assert set(state["reference_head"]) == {"score.weight", "score.bias"}
    assert not torch.equal(state["reference_head"]["score.weight"],
                           state["grounding_head"]["score.weight"])


def test_the_reference_loss_is_off_by_default_and_validated(tmp_path):
    frames = _two_object_frames(4)
    cfg = _config(tmp_path, vqa_datasets=(), robot_datasets=("in-memory",), max_steps=2)
    trainer = Trainer(cfg, robot=frames, vqa=[])
    trainer.train()
    assert set(trainer._grounding_heads) == {"point"}
    state = torch.load(tmp_path / "run" / "latest" / "training_state.pt", weights_only=True)
    assert "reference_head" not in state
    with pytest.raises(ValueError, match="reference_grounding_loss_weight"):
        TrainConfig(vqa_datasets=("x",), reference_grounding_loss_weight=-0.5)
    with pytest.raises(ValueError, match="reference_grounding_loss_weight: expected a "
                                         "checkpoint with image_position 'suffix'"):
        Trainer(_config(tmp_path, vqa_datasets=(), robot_datasets=("in-memory",),
                        output_dir=str(tmp_path / "prefix"), grounding_loss_weight=0.0,
                        reference_grounding_loss_weight=1.0,
                        tiny=TinyModelConfig(image_size=48, patch_size=6)),
                robot=frames, vqa=[]).train()
