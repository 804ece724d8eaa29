"""Header stamps as seconds (rt2_policy.stamps)."""

from __future__ import annotations

import pytest
from builtin_interfaces.msg import Time

from rt2_policy.stamps import stamp_seconds


def test_stamp_seconds_adds_nanoseconds():
    assert stamp_seconds(Time(sec=12, nanosec=500_000_000)) == pytest.approx(12.5)
    assert stamp_seconds(Time()) == 0.0
