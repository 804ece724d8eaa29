"""Shared parameter descriptors (rt2_policy.ros_parameters)."""

from __future__ import annotations

import pytest

from rt2_policy.ros_parameters import float_range, int_range


def test_float_range_carries_bounds_description_and_read_only():
    d = float_range(0.5, 60.0, "camera image rate, Hz", read_only=True)
    assert d.description == "camera image rate, Hz"
    assert d.read_only
    (r,) = d.floating_point_range
    assert (r.from_value, r.to_value, r.step) == (0.5, 60.0, 0.0)
    assert not d.integer_range


def test_int_range_is_writable_by_default_and_steps_by_one():
    d = int_range(-1, 10, "seed")
    assert not d.read_only
    (r,) = d.integer_range
    assert (r.from_value, r.to_value, r.step) == (-1, 10, 1)


@pytest.mark.parametrize("make", [float_range, int_range])
def test_an_inverted_range_is_refused(make):
    with pytest.raises(ValueError, match="low <= high"):
        make(2, 1, "x")
