"""The robot/VQA mixture sampler: ratio, determinism, index ranges, errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from rt2_policy.training.mixture import ROBOT, VQA, MixtureSampler


@pytest.mark.parametrize("fraction", [0.5, 0.3, 2 / 3, 0.05])
def test_robot_share_hits_the_configured_fraction(fraction):
    batch = 16
    sampler = MixtureSampler(1000, 500, batch, fraction, seed=3)
    counts = np.array([sampler.plan(b).num_robot for b in range(2000)])
    # stratified: every batch holds floor or ceil of fraction * batch robot examples
    low, high = math.floor(fraction * batch), math.ceil(fraction * batch)
    assert set(np.unique(counts)) <= {low, high}
    share = counts.sum() / (2000 * batch)
    assert share == pytest.approx(fraction, abs=0.005)


def test_pure_sources_and_batch_size():
    only_robot = MixtureSampler(10, 0, 8, 1.0)
    only_vqa = MixtureSampler(0, 10, 8, 0.0)
    for b in range(20):
        assert [s for s, _ in only_robot.plan(b).samples] == [ROBOT] * 8
        assert [s for s, _ in only_vqa.plan(b).samples] == [VQA] * 8


def test_plans_are_deterministic_and_order_independent():
    a = MixtureSampler(100, 50, 8, 0.5, seed=7)
    b = MixtureSampler(100, 50, 8, 0.5, seed=7)
    forward = [a.plan(i) for i in range(50)]
    backward = [b.plan(i) for i in reversed(range(50))][::-1]
    assert forward == backward  # a resumed run sees the same batches
    other = MixtureSampler(100, 50, 8, 0.5, seed=8)
    assert [other.plan(i) for i in range(50)] != forward
    assert list(a.iter_from(10, 13)) == forward[10:13]
    # augmentation draws are reproducible and differ between batches
    assert forward[4].augmentation_rng().random() == backward[4].augmentation_rng().random()
    assert forward[4].augmentation_rng().random() != forward[5].augmentation_rng().random()


def test_indices_cover_each_source_uniformly():
    sampler = MixtureSampler(10, 4, 16, 0.5, seed=0)
    robot, vqa = [], []
    for b in range(500):
        for source, i in sampler.plan(b).samples:
            (robot if source == ROBOT else vqa).append(i)
    assert min(robot) == 0 and max(robot) == 9 and min(vqa) == 0 and max(vqa) == 3
    hist = np.bincount(robot, minlength=10) / len(robot)
    assert np.all(np.abs(hist - 0.1) < 0.02)


@pytest.mark.parametrize("args, message", [
    ((0, 10, 8, 0.5), "robot_fraction: expected 0 without robot examples"),
    ((10, 0, 8, 0.5), "robot_fraction: expected 1 without VQA examples"),
    ((10, 10, 0, 0.5), "batch_size: expected >= 1"),
    ((10, 10, 8, 1.5), "robot_fraction: expected a number in [0, 1]"),
    ((-1, 10, 8, 0.5), "num_robot/num_vqa"),
])
def test_invalid_settings_are_refused(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MixtureSampler(*args)
