"""Seeded, deterministic sampling of co-fine-tuning batches from robot and VQA data.

RT-2 (Brohan et al., 2023, §3.2 and Appendix) co-fine-tunes on a mixture of robot trajectories
and web vision-language data; for RT-2-PaLI-X robot data is about 50 % of the mixture (about
66 % for RT-2-PaLM-E). :class:`MixtureSampler` realises that share per batch:

* batch ``b`` holds ``floor(f·B)`` robot examples plus one more with probability
  ``f·B − floor(f·B)`` (stratified, so every batch is close to the ratio and the long-run share
  is exactly ``f``); the rest are VQA examples; slot order is shuffled;
* example indices are drawn uniformly with replacement within each source;
* everything about batch ``b`` comes from ``numpy.random.default_rng([seed, b])``, so the
  sampler has no state: batch ``b`` is the same on every run, a resumed run continues with batch
  ``step`` exactly as an uninterrupted one, and a DataLoader may prefetch ahead freely.

Nothing in this module imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Source names, in the order used by :attr:`BatchPlan.sources`.
ROBOT = "robot"
VQA = "vqa"
SOURCES = (ROBOT, VQA)


@dataclass(frozen=True)
class BatchPlan:
    """What batch ``index`` is made of.

    Attributes:
        index: batch number (= optimizer step), >= 0.
        samples: ``(source, example_index)`` per slot, ``source`` in :data:`SOURCES`.
        seed: seed material for per-batch augmentation: use
            ``numpy.random.default_rng([seed, index, 1])``.
    """

    index: int
    samples: tuple[tuple[str, int], ...]
    seed: int

    @property
    def num_robot(self) -> int:
        """Robot examples in the batch."""
        return sum(1 for source, _ in self.samples if source == ROBOT)

    def augmentation_rng(self) -> np.random.Generator:
        """A generator for this batch's augmentation, independent of the sampling draws."""
        return np.random.default_rng([self.seed, self.index, 1])


class MixtureSampler:
    """Batches of robot and VQA example indices at a fixed robot share.

    Args:
        num_robot: robot examples available (frames), >= 0.
        num_vqa: VQA examples available, >= 0.
        batch_size: examples per batch, >= 1.
        robot_fraction: share of robot examples in [0, 1]. With no VQA examples it must be 1
            (or the caller forces it); with no robot examples 0.
        seed: any non-negative int.

    Raises:
        ValueError: on negative sizes, a fraction outside [0, 1], or a fraction that asks for a
            source without examples.
    """

    def __init__(self, num_robot: int, num_vqa: int, batch_size: int, robot_fraction: float,
                 seed: int = 0) -> None:
        if num_robot < 0 or num_vqa < 0:
            raise ValueError(
                f"num_robot/num_vqa: expected >= 0 examples, got {num_robot}/{num_vqa}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        if not (0.0 <= robot_fraction <= 1.0) or math.isnan(robot_fraction):
            raise ValueError(f"robot_fraction: expected a number in [0, 1], got {robot_fraction}")
        if robot_fraction > 0 and num_robot == 0:
            raise ValueError(
                f"robot_fraction: expected 0 without robot examples, got {robot_fraction}"
            )
        if robot_fraction < 1 and num_vqa == 0:
            raise ValueError(f"robot_fraction: expected 1 without VQA examples, got "
                             f"{robot_fraction}")
        if seed < 0:
            raise ValueError(f"seed: expected >= 0, got {seed}")
        self.num_robot = int(num_robot)
        self.num_vqa = int(num_vqa)
        self.batch_size = int(batch_size)
        self.robot_fraction = float(robot_fraction)
        self.seed = int(seed)

    def plan(self, index: int) -> BatchPlan:
        """The composition of batch ``index`` (>= 0); pure function of (seed, index)."""
        if index < 0:
            raise ValueError(f"index: expected >= 0, got {index}")
        rng = np.random.default_rng([self.seed, int(index), 0])
        expected = self.robot_fraction * self.batch_size
        n_robot = int(math.floor(expected))
        if rng.random() < expected - n_robot:
            n_robot += 1
        n_vqa = self.batch_size - n_robot
        robot = rng.integers(0, self.num_robot, n_robot) if n_robot else np.empty(0, np.int64)
        vqa = rng.integers(0, self.num_vqa, n_vqa) if n_vqa else np.empty(0, np.int64)
        samples = [(ROBOT, int(i)) for i in robot] + [(VQA, int(i)) for i in vqa]
        order = rng.permutation(len(samples))
        return BatchPlan(int(index), tuple(samples[i] for i in order), self.seed)

    def __getitem__(self, index: int) -> BatchPlan:
        return self.plan(index)

    def iter_from(self, start: int, stop: int):
        """Yield the plans of batches ``start .. stop - 1``."""
        for index in range(int(start), int(stop)):
            yield self.plan(index)
