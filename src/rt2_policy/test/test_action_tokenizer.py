"""ActionBounds / ActionTokenizer: RT-2 §3.2 discretisation of the 8-dim action."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rt2_policy.action_tokenizer import (
    ACTION_CONFIG_NAME,
    ActionBounds,
    ActionTokenizer,
)
from rt2_policy.contract import ACTION_DIM_NAMES, RobotAction

PAPER_EXAMPLE = "1 128 91 241 5 101 127 217"  # RT-2 §3.2

BOUNDS = ActionBounds(
    position_low=(-0.05, -0.04, -0.03),
    position_high=(0.05, 0.06, 0.02),
    rotation_low=(-0.25, -0.5, -0.1),
    rotation_high=(0.25, 0.3, 0.4),
    gripper_low=0.0,
    gripper_high=1.0,
)


@pytest.fixture()
def tok() -> ActionTokenizer:
    return ActionTokenizer(BOUNDS)


def test_bin_edges_span_the_bounds_uniformly(tok):
    for dim in range(1, 8):
        edges = tok.bin_edges(dim)
        assert edges.shape == (257,)
        assert edges[0] == pytest.approx(BOUNDS.low[dim - 1])
        assert edges[-1] == pytest.approx(BOUNDS.high[dim - 1])
        widths = np.diff(edges)
        np.testing.assert_allclose(widths, tok.bin_width(dim), rtol=1e-9)
        assert tok.bin_width(ACTION_DIM_NAMES[dim]) == tok.bin_width(dim)
    assert tok.bin_width("delta_x") == pytest.approx(0.1 / 256)
    assert tok.bin_width("delta_yaw") == pytest.approx(0.5 / 256)


def test_terminate_has_no_bin_edges(tok):
    with pytest.raises(ValueError, match="terminate"):
        tok.bin_edges(0)
    with pytest.raises(ValueError):
        tok.bin_edges(8)
    with pytest.raises(ValueError):
        tok.bin_edges("delta_w")


def test_round_trip_error_is_at_most_half_a_bin(tok):
    rng = np.random.default_rng(1234)
    low, high = BOUNDS.low, BOUNDS.high
    for _ in range(500):
        values = rng.uniform(low, high)
        terminate = bool(rng.integers(0, 2))
        bins = tok.encode(terminate, values[0:3], values[3:6], values[6])
        assert bins.shape == (8,) and bins.dtype == np.int64
        action = tok.decode(bins)
        decoded = np.concatenate([action.delta_position, action.delta_rotation, [action.gripper]])
        err = np.abs(decoded - values)
        assert np.all(err <= tok.bin_widths / 2 + 1e-12), (values, decoded)
        assert action.terminate is terminate


def test_every_bin_centre_encodes_to_its_own_bin(tok):
    for dim in range(1, 8):
        centres = tok.bin_centers(dim)
        values = np.tile((BOUNDS.low + BOUNDS.high) / 2, (256, 1))
        values[:, dim - 1] = centres
        bins = tok.quantize(values)
        np.testing.assert_array_equal(bins[:, dim - 1], np.arange(256))


def test_encoding_is_monotonic(tok):
    values = np.linspace(-0.06, 0.06, 1001)
    arr = np.zeros((values.size, 7))
    arr[:, 0] = values
    bins = tok.quantize(arr)[:, 0]
    assert np.all(np.diff(bins) >= 0)
    assert bins[0] == 0 and bins[-1] == 255


def test_paper_example_parses_and_reserialises(tok):
    bins = tok.from_text(PAPER_EXAMPLE)
    np.testing.assert_array_equal(bins, [1, 128, 91, 241, 5, 101, 127, 217])
    assert tok.to_text(bins) == PAPER_EXAMPLE
    action = tok.decode(bins)
    assert action.text == PAPER_EXAMPLE
    assert action.terminate is True
    assert tok.from_text("  " + PAPER_EXAMPLE.replace(" ", "   ") + "\n").tolist() == bins.tolist()


@pytest.mark.parametrize(
    "text",
    [
        "1 128 91 241 5 101 127",  # 7 ints
        "1 128 91 241 5 101 127 217 3",  # 9 ints
        "1 128 91 241 5 101 127 256",  # out of range
        "1 128 91 241 5 -1 127 217",  # negative
        "2 128 91 241 5 101 127 217",  # terminate not 0/1
        "1 128 91 241 5 101 127 21.5",  # not an int
        "1 128 91 cube 5 101 127 217",  # a word
        "",
    ],
)
def test_from_text_is_strict(tok, text):
    with pytest.raises(ValueError, match="expected"):
        tok.from_text(text)


def test_out_of_range_values_clamp(tok):
    high = BOUNDS.high
    low = BOUNDS.low
    bins = tok.encode(False, high[:3] + 1.0, high[3:6] * 10, 5.0)
    np.testing.assert_array_equal(bins, [0] + [255] * 7)
    bins = tok.encode(True, low[:3] - 1.0, low[3:6] - 3, -2.0)
    np.testing.assert_array_equal(bins, [1] + [0] * 7)
    bins = tok.encode(False, [np.inf, -np.inf, 0.0], [0, 0, 0], 0.5)
    assert bins[1] == 255 and bins[2] == 0
    # exactly the upper bound belongs to the last bin, exactly the lower bound to bin 0
    bins = tok.encode(False, high[:3], low[3:6], high[6])
    np.testing.assert_array_equal(bins[1:], [255, 255, 255, 0, 0, 0, 255])


def test_nan_raises(tok):
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(False, [0.0, np.nan, 0.0], [0, 0, 0], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(False, [0.0, 0.0, 0.0], [0, 0, 0], float("nan"))
    with pytest.raises(ValueError):
        tok.encode(False, [0.0, 0.0], [0, 0, 0], 0.5)


def test_decode_validates_bins(tok):
    for bad in ([0] * 7, [2] + [0] * 7, [0] * 7 + [256], [0.5] * 8):
        with pytest.raises(ValueError, match="expected"):
            tok.decode(np.array(bad))
    action = tok.decode(np.array([0, 0, 255, 128, 0, 0, 0, 255]))
    assert isinstance(action, RobotAction)
    assert action.is_finite()
    assert action.delta_position[0] == pytest.approx(BOUNDS.position_low[0] + tok.bin_width(1) / 2)
    assert action.delta_position[1] == pytest.approx(BOUNDS.position_high[1] - tok.bin_width(2) / 2)
    assert action.gripper == pytest.approx(1 - 1 / 512)


def test_encode_action_inverts_decode(tok):
    bins = tok.from_text(PAPER_EXAMPLE)
    np.testing.assert_array_equal(tok.encode_action(tok.decode(bins)), bins)


def test_bounds_validation():
    with pytest.raises(ValueError, match=r"delta_y: expected low < high"):
        ActionBounds(position_low=(-0.1, 0.2, -0.1), position_high=(0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="gripper"):
        ActionBounds(gripper_low=1.0, gripper_high=1.0)
    with pytest.raises(ValueError, match="finite"):
        ActionBounds(rotation_high=(np.nan, 0.2, 0.2))
    with pytest.raises(ValueError, match="3 numbers"):
        ActionBounds(position_low=(-0.1, -0.1))
    with pytest.raises(ValueError, match="num_bins"):
        ActionTokenizer(BOUNDS, num_bins=1)
    scalar = ActionBounds(position_low=-0.02, position_high=0.02)
    assert scalar.position_low == (-0.02, -0.02, -0.02)


def test_bounds_and_tokenizer_dict_round_trip(tmp_path):
    assert ActionBounds.from_dict(BOUNDS.to_dict()) == BOUNDS
    json.dumps(BOUNDS.to_dict())
    with pytest.raises(ValueError, match="expected keys"):
        ActionBounds.from_dict({"position_lo": [0, 0, 0]})
    tok = ActionTokenizer(BOUNDS, num_bins=128)
    assert ActionTokenizer.from_dict(tok.to_dict()) == tok
    (tmp_path / ACTION_CONFIG_NAME).write_text(json.dumps({"action_tokenizer": tok.to_dict()}))
    assert ActionTokenizer.from_pretrained(tmp_path) == tok


def test_other_bin_counts():
    tok = ActionTokenizer(ActionBounds(), num_bins=4)
    bins = tok.quantize(np.array([[-0.05, -0.026, -0.024, 0.0, 0.124, 0.126, 0.99]]))
    np.testing.assert_array_equal(bins, [[0, 0, 1, 2, 2, 3, 3]])


def test_action_values_round_trip_through_the_tokenizer(tok):
    """RobotAction.values() is RT-2's 8-value layout: encoding it again gives the same bins."""
    bins = np.array([1, 3, 128, 250, 7, 128, 200, 255])
    values = tok.decode(bins).values()
    assert values.shape == (8,) and values.dtype == np.float64 and values[0] == 1.0
    again = tok.encode(bool(values[0]), values[1:4], values[4:7], float(values[7]))
    np.testing.assert_array_equal(again, bins)
