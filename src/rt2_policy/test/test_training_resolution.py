"""Fine-tuning at another input image size (rt2_policy.training.resolution)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt2_policy.contract import Observation
from rt2_policy.tiny_model import build_tiny_vla
from rt2_policy.training.resolution import resize_image_input


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    # patch 16, scale factor 2: sizes step by 32 px; 96 px = a 6 × 6 patch grid, 9 image tokens
    return build_tiny_vla(tmp_path_factory.mktemp("tiny") / "m", image_size=96)


def _load(path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return (AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32),
            AutoProcessor.from_pretrained(path))


def _table(model) -> torch.nn.Embedding:
    return model.model.vision_model.embeddings.position_embedding


def test_resize_resamples_the_position_grid_and_updates_the_processor(tiny_dir, tmp_path):
    model, processor = _load(tiny_dir)
    assert _table(model).weight.shape[0] == 36 and processor.image_seq_len == 9
    # a table that encodes its own grid position: channel 0 = row, channel 1 = column
    rows, cols = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    with torch.no_grad():
        _table(model).weight.zero_()
        _table(model).weight[:, 0] = rows.reshape(-1)
        _table(model).weight[:, 1] = cols.reshape(-1)
    assert resize_image_input(model, processor, 128) is True
    new = _table(model).weight.detach().reshape(8, 8, -1)
    assert new.shape[:2] == (8, 8) and _table(model).weight.requires_grad
    # each new cell holds about the old grid position it covers: (i + 0.5) * 6 / 8 - 0.5
    where = (torch.arange(8.0) + 0.5) * 6 / 8 - 0.5
    assert torch.allclose(new[:, :, 0], where[:, None].expand(8, 8), atol=0.15)
    assert torch.allclose(new[:, :, 1], where[None, :].expand(8, 8), atol=0.15)
    assert torch.allclose(new[:, :, 0], new[:, :1, 0].expand(8, 8))  # rows: no column mixing
    assert bool((new[1:, 0, 0] > new[:-1, 0, 0]).all()) and not new[:, :, 2:].any()
    assert model.config.vision_config.image_size == 128
    assert processor.image_processor.size["longest_edge"] == 128
    assert processor.image_processor.max_image_size["longest_edge"] == 128
    assert processor.image_seq_len == 16  # (128 / 16 / 2)²

    # a constant table stays constant
    with torch.no_grad():
        _table(model).weight.fill_(0.25)
    resize_image_input(model, processor, 160)
    assert torch.allclose(_table(model).weight, torch.full_like(_table(model).weight, 0.25))
    assert processor.image_seq_len == 25

    # the resized model runs, saves and loads at its new size, and a policy uses it
    model.save_pretrained(tmp_path / "m160")
    processor.save_pretrained(tmp_path / "m160")
    for name in ("action_tokenizer_config.json",):
        (tmp_path / "m160" / name).write_text((tiny_dir / name).read_text())
    reloaded, reprocessor = _load(tmp_path / "m160")
    assert _table(reloaded).weight.shape[0] == 100 and reprocessor.image_seq_len == 25
    from rt2_policy.vla_policy import VLAPolicy

    policy = VLAPolicy.from_pretrained(tmp_path / "m160")
    image = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    action = policy.infer(Observation(image, "pick up the red cube"))
    assert action.bins.shape == (8,) and action.is_finite()
    inputs = reprocessor(text=["<image>hi"], images=[[image]], return_tensors="pt")
    assert int((inputs["input_ids"] == reloaded.config.image_token_id).sum()) == 25
    assert inputs["pixel_values"].shape[-1] == 160


def test_same_size_is_a_no_op_and_bad_sizes_are_refused(tiny_dir):
    model, processor = _load(tiny_dir)
    table = _table(model)
    assert resize_image_input(model, processor, 96) is False and _table(model) is table
    for bad in (100, 16, 0, True, 128.0):
        with pytest.raises(ValueError, match="image_size: expected a multiple of 32"):
            resize_image_input(model, processor, bad)
    with pytest.raises(ValueError, match="model: expected an Idefics3 vision tower, got Linear"):
        resize_image_input(torch.nn.Linear(2, 2), processor, 128)
    assert processor.image_seq_len == 9 and _table(model) is table  # nothing changed
