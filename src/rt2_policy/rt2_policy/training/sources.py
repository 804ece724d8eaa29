"""Open the trainer's data sources and list their texts (for the tiny model's vocabulary).

Robot data: LeRobot-format datasets read with
:class:`rt2_policy.data.lerobot_dataset.LeRobotDataset` (``len``, ``ds[i]`` →
``{"image", "action", "task", …}``). Vision-language data: :func:`rt2_policy.data.vqa.load_vqa`
(a sequence of ``{"image", "question", "answer"}``). Several datasets of a kind are
concatenated. Nothing here imports torch.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ConcatSequence(Sequence):
    """Read-only concatenation of sequences (indices run through them in order)."""

    def __init__(self, parts: Sequence[Sequence]) -> None:
        self.parts = list(parts)
        self._ends: list[int] = []
        total = 0
        for part in self.parts:
            total += len(part)
            self._ends.append(total)

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("ConcatSequence: slicing is not supported")
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index: expected 0..{n - 1}, got {index}")
        part = bisect.bisect_right(self._ends, index)
        start = self._ends[part - 1] if part else 0
        return self.parts[part][index - start]


def open_robot_datasets(roots: Iterable[str]) -> Sequence:
    """LeRobot datasets at ``roots``, concatenated (empty sequence for no roots).

    Raises:
        FileNotFoundError / ValueError: as ``LeRobotDataset`` on a missing or broken dataset.
    """
    roots = list(roots)
    if not roots:
        return []
    from rt2_policy.data.lerobot_dataset import LeRobotDataset

    parts = [LeRobotDataset(root) for root in roots]
    return parts[0] if len(parts) == 1 else ConcatSequence(parts)


def open_vqa_datasets(paths: Iterable[str]) -> Sequence:
    """VQA datasets at ``paths`` (``load_vqa``), concatenated.

    Raises:
        FileNotFoundError / ValueError: as ``load_vqa``.
    """
    paths = list(paths)
    if not paths:
        return []
    from rt2_policy.data.vqa import load_vqa

    parts = [load_vqa(path) for path in paths]
    return parts[0] if len(parts) == 1 else ConcatSequence(parts)


def _tasks_from_metadata(dataset: Any) -> list[str] | None:
    """Task strings without decoding frames: ``dataset.tasks`` or ``meta/tasks.jsonl``."""
    tasks = getattr(dataset, "tasks", None)
    if isinstance(tasks, dict):
        return [str(t) for t in tasks.values()]
    if isinstance(tasks, (list, tuple)):
        return [str(t) for t in tasks]
    root = getattr(dataset, "root", None)
    if root is not None:
        path = Path(root) / "meta" / "tasks.jsonl"
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            return [json.loads(line)["task"] for line in lines if line.strip()]
    return None


def robot_texts(dataset: Sequence) -> list[str]:
    """Distinct instruction strings (and plans) of a robot dataset.

    Uses task metadata when the dataset exposes it (``tasks`` attribute or LeRobot's
    ``meta/tasks.jsonl`` under ``root``); otherwise reads every example (slow: decodes images).
    """
    parts = dataset.parts if isinstance(dataset, ConcatSequence) else [dataset]
    texts: dict[str, None] = {}
    for part in parts:
        tasks = _tasks_from_metadata(part)
        if tasks is None:
            log.info("reading all %d robot examples for their task strings", len(part))
            tasks = []
            for i in range(len(part)):
                example = part[i]
                tasks.append(str(example["task"]))
                if isinstance(example.get("plan"), str):
                    tasks.append(example["plan"])
        texts.update(dict.fromkeys(tasks))
    return list(texts)


def vqa_texts(dataset: Sequence) -> Iterator[str]:
    """Questions and answers of a VQA dataset, in order.

    Uses the dataset's ``texts()`` (``rt2_policy.data.vqa``: no image decoding) when it has
    one, else reads every example.
    """
    parts = dataset.parts if isinstance(dataset, ConcatSequence) else [dataset]
    for part in parts:
        texts = getattr(part, "texts", None)
        if callable(texts):
            yield from (str(t) for t in texts())
            continue
        for i in range(len(part)):
            example = part[i]
            yield str(example["question"])
            yield str(example["answer"])
