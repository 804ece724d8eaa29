"""Constrained greedy decoding of action tokens on the tiny VLA."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rt2_policy.constrained_decoding import (
    build_allowed_mask,
    decode_action_tokens,
    generate_text,
)
from rt2_policy.prompts import action_prompt, with_image
from rt2_policy.token_mapping import ActionTokenMapping


def _image(seed: int, shape=(96, 96, 3)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))


def _inputs(processor, instructions, seeds):
    prompts = [with_image(action_prompt(i)) for i in instructions]
    images = [[_image(s)] for s in seeds]
    return processor(text=prompts, images=images, return_tensors="pt", padding=True)


@pytest.fixture(scope="module")
def parts(tiny_vla_parts, tiny_vla_dir):
    model, processor = tiny_vla_parts
    mapping = ActionTokenMapping.from_pretrained(tiny_vla_dir)
    return model, processor, mapping


def _with_bias(model, token_id: int, value: float):
    """A copy of ``model`` whose lm_head adds ``value`` to the logit of ``token_id``."""
    boosted = copy.deepcopy(model)
    old = boosted.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.zero_()
        head.bias[token_id] = value
    boosted.lm_head = head
    return boosted.eval()


def test_emits_exactly_eight_action_tokens(parts):
    model, processor, mapping = parts
    inputs = _inputs(processor, ["pick up the red cube"], [0])
    result = decode_action_tokens(model, inputs, mapping.allowed_ids_per_step())
    assert result.token_ids.shape == (1, 8)
    assert result.token_ids.dtype == torch.int64
    assert len(result.step_times) == 8
    assert all(t >= 0 for t in result.step_times)
    bins = mapping.token_id_to_bin(result.token_ids.numpy())  # raises on a non-action id
    assert bins[0, 0] in (0, 1)


def test_mask_wins_over_a_boosted_word(parts):
    model, processor, mapping = parts
    tok = processor.tokenizer
    word = tok.convert_tokens_to_ids("cube")
    boosted = _with_bias(model, word, 100.0)
    inputs = _inputs(processor, ["pick up the red cube"], [1])
    with torch.inference_mode():
        logits = boosted(**inputs).logits[:, -1, :]
    assert int(logits.argmax(-1)) == word  # unconstrained greedy would say "cube"
    assert not mapping.is_action_token(word)

    result = decode_action_tokens(boosted, inputs, mapping.allowed_ids_per_step())
    ids = result.token_ids.numpy()
    assert mapping.is_action_token(ids).all(), ids
    bins = mapping.token_id_to_bin(ids)
    assert bins[0, 0] in (0, 1)
    # and free-running generation on the same model does produce the word
    text = generate_text(boosted, processor, inputs, max_new_tokens=3)
    assert text.texts[0].split() == ["cube"] * 3
    assert text.token_ids.tolist() == [[word] * 3]


def test_terminate_step_only_allows_bins_zero_and_one(parts):
    model, processor, mapping = parts
    target = int(mapping.bin_to_token_id(17))
    boosted = _with_bias(model, target, 100.0)
    inputs = _inputs(processor, ["open the drawer"], [2])
    result = decode_action_tokens(boosted, inputs, mapping.allowed_ids_per_step())
    bins = mapping.token_id_to_bin(result.token_ids.numpy())[0]
    assert bins[0] in (0, 1)  # bin 17 is boosted but not a terminate value
    assert bins[1:].tolist() == [17] * 7


def test_kv_cache_matches_full_recompute(parts):
    model, processor, mapping = parts
    mask = build_allowed_mask(mapping.allowed_ids_per_step(), model.lm_head.out_features)
    for seed, instruction in [(3, "pick up the red cube"), (4, "move the blue can to the left")]:
        inputs = _inputs(processor, [instruction], [seed])
        cached = decode_action_tokens(model, inputs, mask, use_cache=True, output_scores=True)
        full = decode_action_tokens(model, inputs, mask, use_cache=False, output_scores=True)
        assert torch.equal(cached.token_ids, full.token_ids)
        assert cached.scores.shape == (1, 8, model.lm_head.out_features)
        torch.testing.assert_close(cached.scores, full.scores, atol=1e-4, rtol=1e-4)


def test_batch_equals_single_with_left_padding(parts):
    model, processor, mapping = parts
    instructions = ["pick up the red cube", "put the small green ball into the big brown bowl"]
    seeds = [5, 6]
    batch = _inputs(processor, instructions, seeds)
    assert (batch["attention_mask"][0] == 0).any()  # the short prompt really is padded
    assert (batch["attention_mask"][:, -1] == 1).all()  # on the left
    allowed = mapping.allowed_ids_per_step()
    together = decode_action_tokens(model, batch, allowed, output_scores=True)
    alone = [
        decode_action_tokens(model, _inputs(processor, [i], [s]), allowed, output_scores=True)
        for i, s in zip(instructions, seeds, strict=True)
    ]
    alone_ids = torch.cat([r.token_ids for r in alone])
    assert not torch.equal(alone_ids[0], alone_ids[1])  # the two inputs give different actions
    assert torch.equal(together.token_ids, alone_ids)
    torch.testing.assert_close(
        together.scores, torch.cat([r.scores for r in alone]), atol=1e-4, rtol=1e-4
    )


def test_right_padding_is_refused(parts):
    model, processor, mapping = parts
    inputs = dict(_inputs(processor, ["pick up the cube", "pick up the red cube now"], [0, 1]))
    inputs["attention_mask"] = inputs["attention_mask"].flip(-1)
    with pytest.raises(ValueError, match="left padding"):
        decode_action_tokens(model, inputs, mapping.allowed_ids_per_step())


def test_nan_logits_raise_runtime_error(parts):
    model, processor, mapping = parts
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.lm_head.weight.fill_(float("nan"))
    inputs = _inputs(processor, ["pick up the red cube"], [0])
    with pytest.raises(RuntimeError, match="finite"):
        decode_action_tokens(broken, inputs, mapping.allowed_ids_per_step())


def test_build_allowed_mask():
    mask = build_allowed_mask([[1, 2], np.array([0, 4]), torch.tensor([3])], 5)
    assert mask.dtype == torch.bool and mask.shape == (3, 5)
    assert mask.tolist() == [
        [False, True, True, False, False],
        [True, False, False, False, True],
        [False, False, False, True, False],
    ]
    with pytest.raises(ValueError, match="expected ids in"):
        build_allowed_mask([[5]], 5)
    with pytest.raises(ValueError, match="at least one id"):
        build_allowed_mask([[]], 5)
    with pytest.raises(ValueError, match="at least one step"):
        build_allowed_mask([], 5)


def test_custom_steps_and_generate_text(parts):
    model, processor, mapping = parts
    inputs = _inputs(processor, ["pick up the red cube"], [0])
    only = [int(mapping.bin_to_token_id(b)) for b in (3, 4)]
    result = decode_action_tokens(model, inputs, [only, only, only])
    assert result.token_ids.shape == (1, 3)
    assert set(result.token_ids.flatten().tolist()) <= set(only)
    text = generate_text(model, processor, inputs, max_new_tokens=4)
    assert isinstance(text.texts[0], str)
    assert 1 <= text.token_ids.shape[1] <= 4
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_text(model, processor, inputs, max_new_tokens=0)


# ---------------------------------------------------------------------------- fast decoder
_CASES = [
    (["pick up the red cube"], [0]),
    (["pick up the red cube", "put the small green ball into the big brown bowl"], [5, 6]),
    (["open", "open the drawer", "move the blue can to the left"], [1, 2, 3]),
]


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_action_decoder_equals_the_reference_decoder(parts, cache):
    from rt2_policy.constrained_decoding import ActionDecoder

    model, processor, mapping = parts
    mask = build_allowed_mask(mapping.allowed_ids_per_step(), model.lm_head.out_features)
    decoder = ActionDecoder(model, mask, cache=cache, bucket=16)
    for _ in range(2):  # the second round reuses the static caches
        for instructions, seeds in _CASES:
            inputs = _inputs(processor, instructions, seeds)
            want = decode_action_tokens(model, inputs, mask, use_cache=False)
            got = decoder(inputs)
            assert torch.equal(got.token_ids, want.token_ids), (instructions, cache)
            assert len(got.step_times) == 8 and got.scores is None


def test_generate_baseline_equals_the_reference_decoder(parts):
    """The decode benchmark's baseline computes the same thing."""
    from rt2_policy.constrained_decoding import decode_with_generate

    model, processor, mapping = parts
    mask = build_allowed_mask(mapping.allowed_ids_per_step(), model.lm_head.out_features)
    for instructions, seeds in _CASES:
        inputs = _inputs(processor, instructions, seeds)
        got = decode_with_generate(model, inputs, mask, processor.tokenizer.pad_token_id)
        assert torch.equal(got.token_ids, decode_action_tokens(model, inputs, mask).token_ids)


def test_action_decoder_guards_and_head_refresh(parts):
    from rt2_policy.constrained_decoding import ActionDecoder

    model, processor, mapping = parts
    mask = build_allowed_mask(mapping.allowed_ids_per_step(), model.lm_head.out_features)
    with pytest.raises(ValueError, match="cache"):
        ActionDecoder(model, mask, cache="paged")
    with pytest.raises(ValueError, match="allowed"):
        ActionDecoder(model, mapping.allowed_ids_per_step())
    inputs = dict(_inputs(processor, ["pick up the cube", "pick up the red cube now"], [0, 1]))
    inputs["attention_mask"] = inputs["attention_mask"].flip(-1)
    with pytest.raises(ValueError, match="left padding"):
        ActionDecoder(model, mask)(inputs)
    broken = copy.deepcopy(model)
    decoder = ActionDecoder(broken, mask)
    single = _inputs(processor, ["pick up the red cube"], [0])
    assert torch.equal(decoder(single).token_ids, decode_action_tokens(model, single,
                                                                       mask).token_ids)
    with torch.no_grad():  # weights changed in place after the decoder was built
        broken.lm_head.weight.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="finite"):
        decoder(single)


def test_compiled_decoder_equals_the_reference_decoder(parts):
    from rt2_policy.constrained_decoding import ActionDecoder

    model, processor, mapping = parts
    mask = build_allowed_mask(mapping.allowed_ids_per_step(), model.lm_head.out_features)
    decoder = ActionDecoder(model, mask, compile=True)
    assert decoder.cache_kind == "static"
    for seed in (3, 4):
        inputs = _inputs(processor, ["pick up the red cube"], [seed])
        assert torch.equal(decoder(inputs).token_ids,
                           decode_action_tokens(model, inputs, mask).token_ids)


@pytest.mark.parametrize("case", range(len(_CASES)))
def test_lean_step_equals_the_text_model_forward_bitwise(parts, case):
    """One decode step through the decoder layers directly == ``LlamaModel.forward``, exactly."""
    from transformers import DynamicCache

    from rt2_policy.constrained_decoding import _lean_text_model, _LeanStep

    model, processor, _ = parts
    base = model.base_model
    text = _lean_text_model(base)
    assert text is base.text_model  # the tiny Idefics3 VLA's Llama text model takes the lean path
    lean = _LeanStep(text)
    instructions, seeds = _CASES[case]
    inputs = _inputs(processor, instructions, seeds)
    mask = inputs["attention_mask"]
    positions = mask.long().cumsum(-1) - 1
    positions = positions.masked_fill(mask == 0, 1)
    ids = torch.tensor([[17]] * mask.shape[0])
    step_mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
    step_pos = positions[:, -1:] + 1
    outputs = []
    with torch.inference_mode():
        for run in ("model", "lean"):
            cache = DynamicCache(config=text.config)
            base(**inputs, position_ids=positions, past_key_values=cache, use_cache=True)
            if run == "model":
                out = text(input_ids=ids, attention_mask=step_mask, position_ids=step_pos,
                           past_key_values=cache, use_cache=True).last_hidden_state[:, -1]
            else:
                # rotary of 8 steps at once, as the decoder does, sliced to this step
                cos, sin = lean.rotary(step_pos + torch.arange(8))
                out = lean(ids, step_mask, step_pos, cache, (cos[:, :1], sin[:, :1]))
            outputs.append(out)
    assert torch.equal(outputs[0], outputs[1])


def test_lean_step_is_not_taken_where_the_forward_does_more(parts):
    from rt2_policy.constrained_decoding import ActionDecoder, _lean_text_model

    model, processor, mapping = parts
    mask = build_allowed_mask(mapping.allowed_ids_per_step(), model.lm_head.out_features)
    assert ActionDecoder(model, mask)._lean is not None
    hooked = copy.deepcopy(model)
    hooked.base_model.text_model.register_forward_hook(lambda *args: None)
    assert _lean_text_model(hooked.base_model) is None  # hooks only run through forward
    assert ActionDecoder(hooked, mask)._lean is None
    assert _lean_text_model(model.base_model.vision_model) is None  # not a Llama text model
    assert _lean_text_model(None) is None
    late = copy.deepcopy(model)
    decoder = ActionDecoder(late, mask)  # lean when built; a hook registered afterwards ...
    calls = []
    late.base_model.text_model.register_forward_hook(lambda *args: calls.append(1))
    inputs = _inputs(processor, ["pick up the red cube"], [0])
    assert torch.equal(decoder(inputs).token_ids,
                       decode_action_tokens(model, inputs, mask).token_ids)
    assert len(calls) == 8  # ... still runs: prefill + 7 steps through the model's forward


def test_terminate_logit_offset_is_the_threshold_in_logits():
    from rt2_policy.constrained_decoding import terminate_logit_offset

    assert terminate_logit_offset(0.5) == 0.0
    for t in (0.1, 0.7, 0.9, 0.999):
        offset = terminate_logit_offset(t)
        # p(1) = sigmoid(l1 - l0) equals t exactly where the offset logit gap l1 + offset - l0
        # is 0, i.e. l1 - l0 = -offset.
        assert 1.0 / (1.0 + np.exp(offset)) == pytest.approx(t)
    for bad in (0.0, 1.0, -0.2, 1.5, float("nan"), True, "0.9", None):
        with pytest.raises(ValueError, match="terminate_threshold: expected a probability"):
            terminate_logit_offset(bad)


def _terminate_probabilities(model, processor, mask, count):
    """(inputs, p(terminate)) of ``count`` single-row prompts, from the reference decode."""
    rows = []
    for seed in range(count):
        inputs = _inputs(processor, ["pick up the red cube"], [100 + seed])
        scores = decode_action_tokens(model, inputs, mask, output_scores=True).scores[0, 0]
        terminate = scores[mask[0]]  # ids ascending: bin 0's then bin 1's (the mapping's order)
        rows.append((inputs, float(torch.softmax(terminate, -1)[1])))
    return rows


def test_a_terminate_threshold_decides_terminate_at_that_probability(parts):
    from rt2_policy.constrained_decoding import ActionDecoder, terminate_logit_offset

    model, processor, mapping = parts
    vocab = model.lm_head.out_features
    mask = build_allowed_mask(mapping.allowed_ids_per_step(), vocab)
    zero, one = (int(i) for i in mapping.bin_to_token_id([0, 1]))
    assert zero < one  # the order _terminate_probabilities reads them in
    rows = _terminate_probabilities(model, processor, mask, 6)
    assert any(0.02 < p < 0.98 for _, p in rows), [p for _, p in rows]
    for inputs, p in rows:
        if not 0.02 < p < 0.98:
            continue
        for threshold, want in ((p - 0.01, one), (p + 0.01, zero)):
            decoder = ActionDecoder(model, mask, logit_offsets={
                (0, one): terminate_logit_offset(threshold)})
            got = decoder(inputs).token_ids[0]
            assert int(got[0]) == want, (p, threshold)
            # The other 7 tokens are decoded after the chosen terminate token, as always.
            forced = mask.clone()
            forced[0] = False
            forced[0, want] = True
            assert torch.equal(got, decode_action_tokens(model, inputs, forced).token_ids[0])
    # 0.5 is plain greedy decoding.
    plain = ActionDecoder(model, mask, logit_offsets={(0, one): terminate_logit_offset(0.5)})
    for inputs, _ in rows:
        assert torch.equal(plain(inputs).token_ids, decode_action_tokens(model, inputs,
                                                                          mask).token_ids)


@pytest.mark.parametrize("offsets,message", [
    ({(0, 5): 1.0}, r"expected \(step, id\) allowed by the mask, got \(0, 5\)"),
    ({(8, "one"): 1.0}, r"allowed by the mask, got \(8, "),
    ({(-1, "one"): 1.0}, r"allowed by the mask, got \(-1, "),
    ({(0, "one"): float("inf")}, r"expected a finite number, got inf"),
    ({(0, "one"): float("nan")}, r"expected a finite number, got nan"),
])
def test_logit_offsets_are_checked(parts, offsets, message):
    from rt2_policy.constrained_decoding import ActionDecoder

    model, _, mapping = parts
    mask = build_allowed_mask(mapping.allowed_ids_per_step(), model.lm_head.out_features)
    one = int(mapping.bin_to_token_id(1))
    assert not mask[0, 5]
    offsets = {(step, one if i == "one" else i): v for (step, i), v in offsets.items()}
    with pytest.raises(ValueError, match=message):
        ActionDecoder(model, mask, logit_offsets=offsets)
