"""ActionTokenMapping: the three bin ↔ vocabulary-id schemes and their persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rt2_policy.action_tokenizer import ACTION_CONFIG_NAME, ActionBounds, ActionTokenizer
from rt2_policy.prompts import action_prompt
from rt2_policy.token_mapping import (
    ActionTokenMapping,
    load_action_config,
    save_action_config,
    token_counts,
)


@pytest.fixture(scope="module")
def tokenizer():
    from rt2_policy.tiny_model import build_tokenizer

    return build_tokenizer()


def _special_ids(tokenizer) -> set[int]:
    return set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)


def _check_bijection(mapping: ActionTokenMapping, vocab_size: int) -> None:
    ids = mapping.action_token_ids
    assert ids.shape == (256,) and ids.dtype == np.int64
    assert len(set(ids.tolist())) == 256
    assert ids.min() >= 0 and ids.max() < vocab_size
    bins = np.arange(256)
    np.testing.assert_array_equal(mapping.bin_to_token_id(bins), ids)
    np.testing.assert_array_equal(mapping.token_id_to_bin(mapping.bin_to_token_id(bins)), bins)
    shuffled = np.random.default_rng(0).permutation(ids).reshape(16, 16)
    np.testing.assert_array_equal(
        mapping.bin_to_token_id(mapping.token_id_to_bin(shuffled)), shuffled
    )
    assert mapping.is_action_token(ids).all()


def test_integer_tokens_map_bins_to_their_spelling(tokenizer):
    mapping = ActionTokenMapping.integer_tokens(tokenizer)
    assert mapping.scheme == "integer_tokens"
    _check_bijection(mapping, len(tokenizer))
    for b in (0, 1, 7, 128, 255):
        tid = int(mapping.bin_to_token_id(b))
        assert tokenizer.convert_ids_to_tokens(tid) == str(b)
        assert tokenizer.encode(str(b), add_special_tokens=False) == [tid]
    text = tokenizer.decode(mapping.bin_to_token_id([1, 128, 91, 241, 5, 101, 127, 217]).tolist())
    assert text == "1 128 91 241 5 101 127 217"


def test_non_action_ids_are_rejected(tokenizer):
    mapping = ActionTokenMapping.integer_tokens(tokenizer)
    word = tokenizer.convert_tokens_to_ids("cube")
    with pytest.raises(ValueError, match="non-action ids"):
        mapping.token_id_to_bin([int(mapping.bin_to_token_id(3)), word])
    with pytest.raises(ValueError, match="non-action"):
        mapping.token_id_to_bin(10**6)
    with pytest.raises(ValueError, match="non-action"):
        mapping.token_id_to_bin(-1)
    assert not mapping.is_action_token(word)
    with pytest.raises(ValueError, match="expected values in"):
        mapping.bin_to_token_id(256)


def test_integer_tokens_missing_raises():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{str(i): i + 1 for i in range(100)}, "cube": 101}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    small = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>")
    with pytest.raises(ValueError, match="156 missing"):
        ActionTokenMapping.integer_tokens(small)


def test_least_used_from_corpus_avoids_used_and_special_tokens(tokenizer):
    corpus = [
        action_prompt(f"{verb} the {colour} {obj}")
        for verb in ("pick up", "push", "move")
        for colour in ("red", "green", "blue", "yellow")
        for obj in ("cube", "ball", "can", "sponge")
    ] + ["1 128 91 241 5 101 127 217"]
    counts = token_counts(tokenizer, corpus, len(tokenizer))
    used = set(np.flatnonzero(counts).tolist())
    assert tokenizer.convert_tokens_to_ids("cube") in used
    mapping = ActionTokenMapping.least_used(tokenizer, corpus=corpus)
    assert mapping.scheme == "least_used"
    _check_bijection(mapping, len(tokenizer))
    chosen = set(mapping.token_ids)
    assert not chosen & used
    assert not chosen & _special_ids(tokenizer)
    # a callable corpus gives the same result
    assert ActionTokenMapping.least_used(tokenizer, corpus=lambda: iter(corpus)) == mapping


def test_least_used_from_counts_picks_the_rarest(tokenizer):
    size = len(tokenizer)
    specials = _special_ids(tokenizer)
    rng = np.random.default_rng(7)
    counts = rng.permutation(size) + 1  # all distinct, no ties
    counts[sorted(specials)] = 0  # specials are rarest but must never be chosen
    mapping = ActionTokenMapping.least_used(tokenizer, counts=counts)
    candidates = [i for i in range(size) if i not in specials]
    expected = sorted(sorted(candidates, key=lambda i: counts[i])[:256])
    assert list(mapping.token_ids) == expected
    _check_bijection(mapping, size)


def test_least_used_ties_prefer_high_ids(tokenizer):
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    mapping = ActionTokenMapping.least_used(tokenizer, counts=counts)
    assert mapping.token_ids[-1] == len(tokenizer) - 1
    assert min(mapping.token_ids) == len(tokenizer) - 256


def test_least_used_argument_errors(tokenizer):
    with pytest.raises(ValueError, match="exactly one of counts and corpus"):
        ActionTokenMapping.least_used(tokenizer)
    with pytest.raises(ValueError, match="exactly one"):
        ActionTokenMapping.least_used(tokenizer, counts=[1], corpus=["a"])
    with pytest.raises(ValueError, match="non-special ids"):
        ActionTokenMapping.least_used(tokenizer, counts=[0] * 100, vocab_size=100)


def test_last_n_follows_openvla(tokenizer):
    size = len(tokenizer)
    mapping = ActionTokenMapping.from_tokenizer(tokenizer, "last_n")
    assert mapping.scheme == "last_n"
    _check_bijection(mapping, size)
    assert int(mapping.bin_to_token_id(0)) == size - 1
    assert int(mapping.bin_to_token_id(255)) == size - 256
    expected = ActionTokenMapping("last_n", tuple(range(999, 743, -1)), 1000)
    assert ActionTokenMapping.last_n(1000) == expected


def test_last_n_refuses_special_tokens():
    class FakeTokenizer:
        all_special_ids = [299]
        added_tokens_decoder = {}

        def __len__(self):
            return 300

    with pytest.raises(ValueError, match="special/added ids"):
        ActionTokenMapping.last_n(300, tokenizer=FakeTokenizer())
    ActionTokenMapping.last_n(299, tokenizer=FakeTokenizer())


def test_mapping_validation():
    with pytest.raises(ValueError, match="distinct"):
        ActionTokenMapping("last_n", (5, 5, 6))
    with pytest.raises(ValueError, match="scheme"):
        ActionTokenMapping("symbols", (1, 2, 3))
    with pytest.raises(ValueError, match="vocab_size"):
        ActionTokenMapping("last_n", (1, 2, 300), vocab_size=300)
    with pytest.raises(ValueError, match="non-negative"):
        ActionTokenMapping("last_n", (-1, 2, 3))


def test_allowed_ids_per_step(tokenizer):
    mapping = ActionTokenMapping.integer_tokens(tokenizer)
    steps = mapping.allowed_ids_per_step()
    assert len(steps) == 8
    np.testing.assert_array_equal(steps[0], mapping.bin_to_token_id([0, 1]))
    for step in steps[1:]:
        np.testing.assert_array_equal(step, mapping.action_token_ids)


@pytest.mark.parametrize("scheme", ["integer_tokens", "least_used", "last_n"])
def test_save_and_load(tmp_path, tokenizer, scheme):
    kwargs = {"counts": np.arange(len(tokenizer))} if scheme == "least_used" else {}
    mapping = ActionTokenMapping.from_tokenizer(tokenizer, scheme, **kwargs)
    assert ActionTokenMapping.from_dict(mapping.to_dict()) == mapping
    bounds = ActionBounds(position_low=-0.01, position_high=0.01)
    action_tokenizer = ActionTokenizer(bounds)
    path = save_action_config(tmp_path, action_tokenizer, mapping)
    assert path.name == ACTION_CONFIG_NAME
    data = json.loads(path.read_text())
    assert data["token_mapping"]["scheme"] == scheme
    assert data["action_tokenizer"]["bounds"]["position_high"] == [0.01] * 3
    loaded_tok, loaded_map = load_action_config(tmp_path)
    assert loaded_tok == action_tokenizer
    assert loaded_map == mapping
    assert ActionTokenMapping.from_pretrained(tmp_path) == mapping
    # re-saving the mapping alone keeps the stored bounds
    mapping.save_pretrained(tmp_path)
    assert ActionTokenizer.from_pretrained(tmp_path) == action_tokenizer


def test_from_dict_errors_and_mismatch(tmp_path):
    with pytest.raises(ValueError, match="token_ids"):
        ActionTokenMapping.from_dict({"scheme": "last_n"})
    with pytest.raises(ValueError, match="num_bins"):
        ActionTokenMapping.from_dict({"scheme": "last_n", "token_ids": [3, 2, 1], "num_bins": 4})
    with pytest.raises(ValueError, match="num_bins"):
        save_action_config(tmp_path, ActionTokenizer(), ActionTokenMapping.last_n(1000, 128))
    with pytest.raises(FileNotFoundError):
        load_action_config(tmp_path)


def test_terminate_threshold_checks_and_defaults():
    from rt2_policy.token_mapping import (
        DEFAULT_TERMINATE_THRESHOLD,
        check_terminate_threshold,
        stored_terminate_threshold,
    )

    assert DEFAULT_TERMINATE_THRESHOLD == 0.5  # RT-2's greedy decode
    assert stored_terminate_threshold({}) == 0.5
    assert stored_terminate_threshold({"decoding": {}}) == 0.5
    assert stored_terminate_threshold({"decoding": {"terminate_threshold": 0.9}}) == 0.9
    assert check_terminate_threshold(1e-3) == 1e-3
    for bad in (0, 1, 0.0, 1.0, 2.0, -0.1, float("nan"), float("inf"), False, "0.9", None):
        with pytest.raises(ValueError, match=r"terminate_threshold: expected a probability in "
                                             r"\(0, 1\), got"):
            check_terminate_threshold(bad)
    with pytest.raises(ValueError, match="terminate_threshold"):
        stored_terminate_threshold({"decoding": {"terminate_threshold": 1.5}})
