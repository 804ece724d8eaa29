from types import SimpleNamespace

import numpy as np
import pytest

from rt2_policy.image_conversion import image_msg_to_rgb, rgb_to_image_fields


def _msg(array, encoding, pad=0):
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    rows = array.reshape(h, w * channels)
    if pad:
        rows = np.hstack([rows, np.zeros((h, pad), np.uint8)])
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=0,
                           step=w * channels + pad, data=rows.tobytes())


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)


def test_rgb8_round_trip(rgb):
    fields = rgb_to_image_fields(rgb)
    out = image_msg_to_rgb(SimpleNamespace(**fields), use_cv_bridge=False)
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("encoding,convert", [
    ("bgr8", lambda x: x[:, :, ::-1]),
    ("rgba8", lambda x: np.dstack([x, np.full(x.shape[:2], 255, np.uint8)])),
    ("bgra8", lambda x: np.dstack([x[:, :, ::-1], np.full(x.shape[:2], 255, np.uint8)])),
])
def test_colour_encodings(rgb, encoding, convert):
    out = image_msg_to_rgb(_msg(convert(rgb), encoding, pad=3), use_cv_bridge=False)
    np.testing.assert_array_equal(out, rgb)


def test_mono8(rgb):
    gray = rgb[:, :, 0]
    out = image_msg_to_rgb(_msg(gray, "mono8"), use_cv_bridge=False)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[:, :, 1], gray)


def test_bad_frames_raise(rgb):
    with pytest.raises(ValueError, match="encoding"):
        image_msg_to_rgb(_msg(rgb, "32FC1"), use_cv_bridge=False)
    short = _msg(rgb, "rgb8")
    short.data = short.data[:-1]
    with pytest.raises(ValueError, match="bytes"):
        image_msg_to_rgb(short, use_cv_bridge=False)
    narrow = _msg(rgb, "rgb8")
    narrow.step = 2
    with pytest.raises(ValueError, match="step"):
        image_msg_to_rgb(narrow, use_cv_bridge=False)
