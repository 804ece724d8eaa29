"""The offline tiny Idefics3 VLA: build, save, reload with the Auto classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rt2_policy.action_tokenizer import ACTION_CONFIG_NAME, ActionTokenizer
from rt2_policy.prompts import action_prompt, with_image
from rt2_policy.tiny_model import build_tokenizer, build_vocabulary, main, words_from_texts
from rt2_policy.token_mapping import ActionTokenMapping, load_action_config


def _inputs(processor, text="pick up the red cube", seed=0):
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (80, 120, 3), np.uint8))
    return processor(text=[with_image(action_prompt(text))], images=[[image]], return_tensors="pt")


def test_directory_holds_model_processor_and_action_config(tiny_vla_dir):
    names = {p.name for p in tiny_vla_dir.iterdir()}
    for name in ("config.json", "model.safetensors", "processor_config.json",
                 "tokenizer.json", "tokenizer_config.json", ACTION_CONFIG_NAME):
        assert name in names, names
    action_tokenizer, mapping = load_action_config(tiny_vla_dir)
    assert action_tokenizer == ActionTokenizer()
    assert mapping.scheme == "integer_tokens"


def test_auto_classes_load_it(tiny_vla_parts):
    from transformers import Idefics3ForConditionalGeneration, Idefics3Processor

    model, processor = tiny_vla_parts
    assert isinstance(model, Idefics3ForConditionalGeneration)
    assert isinstance(processor, Idefics3Processor)
    n_params = sum(p.numel() for p in model.parameters())
    assert 4_000_000 <= n_params <= 10_000_000, n_params
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<image>")
    assert model.lm_head.out_features == len(processor.tokenizer)
    assert processor.tokenizer.padding_side == "left"


def test_processor_expands_the_image_placeholder(tiny_vla_parts):
    model, processor = tiny_vla_parts
    inputs = _inputs(processor)
    ids = inputs["input_ids"][0].tolist()
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    seq_len = (96 // 16) ** 2 // 4
    assert ids.count(image_id) == seq_len == processor.image_seq_len
    assert ids[0] == tok.bos_token_id
    assert tok.unk_token_id not in ids  # every prompt word is in the vocabulary
    assert tuple(inputs["pixel_values"].shape) == (1, 1, 3, 96, 96)


def test_tokenizer_splits_punctuation_and_maps_unknown_words_to_unk():
    tok = build_tokenizer()
    assert tok.tokenize("Pick up the cube?") == ["pick", "up", "the", "cube", "?"]
    ids = tok("Q: zebra 128", add_special_tokens=False)["input_ids"]
    assert ids == [tok.convert_tokens_to_ids(t) for t in ("q", ":")] + [
        tok.unk_token_id, tok.convert_tokens_to_ids("128")]
    vocab = build_vocabulary()
    assert len(vocab) == len(set(vocab))
    assert all(str(i) in vocab for i in range(256))
    assert "plan" in vocab and "left" in vocab and "red" in vocab


def test_save_and_reload_round_trip(tiny_vla_parts, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, processor = tiny_vla_parts
    inputs = _inputs(processor, seed=3)
    with torch.inference_mode():
        before = model(**inputs).logits
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    model2 = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    processor2 = AutoProcessor.from_pretrained(tmp_path)
    inputs2 = _inputs(processor2, seed=3)
    assert torch.equal(inputs2["input_ids"], inputs["input_ids"])
    assert torch.equal(inputs2["pixel_values"], inputs["pixel_values"])
    with torch.inference_mode():
        after = model2(**inputs2).logits
    assert torch.equal(before, after)


def test_cli_is_deterministic_per_seed(tiny_vla_dir, tmp_path, capsys):
    assert main(["--output", str(tmp_path / "again"), "--seed", "0"]) == 0
    assert str(tmp_path / "again") in capsys.readouterr().out
    reference = load_file(tiny_vla_dir / "model.safetensors")
    again = load_file(tmp_path / "again" / "model.safetensors")
    assert reference.keys() == again.keys()
    assert all(torch.equal(reference[k], again[k]) for k in reference)

    assert main(["--output", str(tmp_path / "other"), "--seed", "1",
                 "--token-scheme", "last_n"]) == 0
    other = load_file(tmp_path / "other" / "model.safetensors")
    key = "lm_head.weight"
    assert not torch.equal(reference[key], other[key])
    mapping = ActionTokenMapping.from_pretrained(tmp_path / "other")
    assert mapping.scheme == "last_n"
    assert mapping.token_ids[0] == reference[key].shape[0] - 1


def test_cli_requires_an_output():
    with pytest.raises(SystemExit):
        main([])


def test_words_from_texts_split_like_the_tokenizer():
    words = words_from_texts(["<image>Q: Lift the CRIMSON block? A:", "crimson  block, please"])
    assert words == ["q", ":", "lift", "the", "crimson", "block", "?", "a", ",", "please"]
    with pytest.raises(ValueError, match="texts: expected strings"):
        words_from_texts([3])


def test_extra_words_extend_the_vocabulary_and_keep_builtin_ids():
    base = build_vocabulary()
    extended = build_vocabulary(["zebra", "Crimson", "red", "zebra"])
    assert extended[: len(base)] == base  # built-in ids do not move
    assert extended[len(base):] == ["zebra", "crimson"]  # lower-cased, deduplicated
    tok = build_tokenizer(["zebra"])
    assert tok.unk_token_id not in tok("the zebra", add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="extra_words: expected single words"):
        build_vocabulary(["two words"])


def test_corpus_and_architecture_options(tmp_path):
    from transformers import AutoConfig, AutoProcessor

    from rt2_policy.tiny_model import build_tiny_vla

    path = build_tiny_vla(tmp_path / "m", seed=1, image_size=64, patch_size=8,
                          corpus=["shove the magenta capsule"], text_hidden_size=128,
                          text_layers=2, text_heads=2, vision_hidden_size=96, vision_layers=2,
                          vision_heads=2)
    config = AutoConfig.from_pretrained(path)
    assert config.text_config.hidden_size == 128 and config.text_config.num_hidden_layers == 2
    assert config.vision_config.patch_size == 8 and config.vision_config.image_size == 64
    processor = AutoProcessor.from_pretrained(path)
    assert processor.image_seq_len == (64 // 8) ** 2 // 4
    tok = processor.tokenizer
    assert tok.unk_token_id not in tok("shove the magenta capsule",
                                       add_special_tokens=False)["input_ids"]
    _tokenizer, mapping = load_action_config(path)
    assert mapping.scheme == "integer_tokens"


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": 100}, "image_size: expected a multiple of 32"),
    ({"text_heads": 3}, "text_heads: expected an even divisor"),
    ({"vision_heads": 5}, "vision_heads: expected a divisor"),
    ({"text_layers": 0}, "text_layers: expected >= 1"),
])
def test_invalid_architectures(kwargs, message):
    from rt2_policy.tiny_model import build_config

    with pytest.raises(ValueError, match=message):
        build_config(build_tokenizer(), **kwargs)


def test_cli_words_file(tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("lift the turquoise pyramid\n", encoding="utf-8")
    assert main(["--output", str(tmp_path / "w"), "--words-file", str(words)]) == 0
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "w")
    assert tok.convert_tokens_to_ids("turquoise") != tok.unk_token_id
