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

import numpy as np

from rt2_policy.grasp_memory import GRASP_MEMORY_FRAMES, GraspTracker, grasp_memory
from rt2_policy.proprioception import gripper_state

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


class GraspMemoryFrames(Sequence):
    """Robot frames with the episode's grasp memory added: ``ds[i]`` is the wrapped dataset's
    frame plus ``"grasped"`` (bool), whether the gripper has held something for ``min_frames``
    consecutive frames up to this one in its episode (:func:`rt2_policy.grasp_memory.
    grasp_memory`), as :class:`rt2_policy.grasp_memory.GraspMemory` computes it online.

    The flags are computed once, at construction: from each episode's states alone for a
    :class:`~rt2_policy.data.lerobot_dataset.LeRobotDataset` (no image decoding; parts of a
    :class:`ConcatSequence` likewise), otherwise by reading every frame, whose
    ``"episode_index"`` groups them (frames of an episode contiguous and in order).

    Args:
        dataset: robot frames with ``"state"`` (or ``"observation.state"``).
        gripper_state_indices: positions of the finger joints in the state, metres.
        gripper_open_position: one finger's position when fully open, metres.
        min_frames: as :class:`rt2_policy.grasp_memory.GraspTracker`.

    Raises:
        ValueError: on a frame without state or with too short a state.
    """

    def __init__(self, dataset: Sequence, gripper_state_indices: Sequence[int],
                 gripper_open_position: float, min_frames: int = GRASP_MEMORY_FRAMES) -> None:
        self.dataset = dataset
        self.gripper_state_indices = tuple(int(i) for i in gripper_state_indices)
        self.gripper_open_position = float(gripper_open_position)
        self.min_frames = min_frames
        self.flags = self._flags(dataset)

    def _states(self, states: Any, where: str) -> list[float]:
        rows = np.asarray(states, dtype=float)
        if rows.ndim != 2 or rows.shape[1] <= max(self.gripper_state_indices, default=-1):
            raise ValueError(f"{where}: expected states with the finger joints at "
                             f"{list(self.gripper_state_indices)}, got shape {rows.shape}")
        return [gripper_state(row[list(self.gripper_state_indices)],
                              self.gripper_open_position) for row in rows]

    def _flags(self, dataset: Sequence) -> np.ndarray:
        if isinstance(dataset, ConcatSequence):
            parts = [self._flags(part) for part in dataset.parts]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
        if hasattr(dataset, "episode_states") and hasattr(dataset, "num_episodes"):
            return np.concatenate(
                [grasp_memory(self._states(dataset.episode_states(ep), f"episode {ep}"),
                              self.min_frames) for ep in range(dataset.num_episodes)]
                or [np.zeros(0, dtype=bool)])
        tracker, episode, flags = GraspTracker(self.min_frames), object(), []
        for i in range(len(dataset)):
            frame = dataset[i]
            state = frame.get("state", frame.get("observation.state"))
            if state is None:
                raise ValueError(f"frame {i}: expected a 'state' for the grasp memory, got "
                                 f"{sorted(frame)}")
            if frame.get("episode_index", episode) != episode:
                tracker.reset()
            episode = frame.get("episode_index")
            flags.append(tracker.update(self._states([state], f"frame {i}")[0]))
        return np.array(flags, dtype=bool)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        frame = dict(self.dataset[index])
        frame["grasped"] = bool(self.flags[index])
        return frame

    def __getattr__(self, name: str) -> Any:  # tasks, root … for robot_texts
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


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
    if isinstance(dataset, GraspMemoryFrames):
        dataset = dataset.dataset  # same tasks
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
