"""Demonstration datasets in the LeRobot on-disk format, codebase version ``v2.1``.

Written and read with pyarrow; the ``lerobot`` package itself is not used (0.5 and later need
Python >= 3.12, 0.4.x requires torchvision, which breaks transformers on these machines). The
layout follows LeRobot's ``lerobot/common/datasets/lerobot_dataset.py`` and
``lerobot/common/datasets/utils.py`` / ``compute_stats.py`` (huggingface/lerobot, v2.1), so a
dataset written here loads with ``lerobot.common.datasets.lerobot_dataset.LeRobotDataset`` and
``datasets.load_dataset("parquet", ...)``::

    root/
      meta/info.json            codebase_version "v2.1", fps, robot_type, features (dtype, shape,
                                names), totals, splits {"train": "0:N"}, chunks_size, data_path
      meta/episodes.jsonl       {"episode_index", "tasks": [str, ...], "length"} per episode
      meta/tasks.jsonl          {"task_index", "task"} per distinct instruction
      meta/episodes_stats.jsonl {"episode_index", "stats": {feature: {min, max, mean, std, count}}}
      meta/stats.json           the same over all episodes (+ q01/q99 for action and state)
      data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet

One parquet row per control step, columns: ``observation.image`` (struct ``{bytes: PNG,
path}``, the Hugging Face ``datasets.Image`` storage), ``observation.state`` (float32
``(state_dim,)``, only when ``state_dim > 0``; its ``info.json`` names are the writer's
``state_names``, e.g. joint names, default ``state_0 … state_{state_dim-1}``), ``action``
(float32 ``(8,)``), ``timestamp`` (float32, s), ``frame_index``, ``episode_index``, ``index``
(global), ``task_index`` (int64) and ``next.done`` (bool, true on an episode's last frame).

Actions are RT-2's 8 continuous dimensions in :data:`rt2_policy.contract.ACTION_DIM_NAMES`
order (Brohan et al., 2023, §3.2): terminate (0/1), Δx Δy Δz in metres and Δroll Δpitch Δyaw in
radians per control step, in the command frame ``panda_link0`` (REP 103/105), gripper
0 = open … 1 = closed. Image statistics are per channel, shape ``(3, 1, 1)``, in ``[0, 1]``, as
LeRobot's ``compute_episode_stats`` writes them.

Nothing in this module imports torch, transformers or rclpy.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from rt2_policy.contract import ACTION_DIM_NAMES

#: LeRobot dataset format version written and read here.
CODEBASE_VERSION = "v2.1"
#: Episodes per ``data/chunk-XXX`` directory (LeRobot's ``DEFAULT_CHUNK_SIZE``).
DEFAULT_CHUNK_SIZE = 1000
INFO_PATH = "meta/info.json"
EPISODES_PATH = "meta/episodes.jsonl"
TASKS_PATH = "meta/tasks.jsonl"
EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
STATS_PATH = "meta/stats.json"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"

IMAGE_KEY = "observation.image"
STATE_KEY = "observation.state"
ACTION_KEY = "action"
DONE_KEY = "next.done"
_INDEX_KEYS = ("frame_index", "episode_index", "index", "task_index")
#: Image position of the instructed target object in the camera frame, ``(x, y)`` in 0..255
#: (x right, y down; PaLI-X point units), ``(-1, -1)`` when not in view: an optional extra
#: feature of simulated demonstrations, used by the grounding loss.
TARGET_POINT_KEY = "observation.target_point"
#: Image position of the reference object of a two-object task ("move the red cube near the
#: *blue cylinder*", "place ... into the *white bowl*"), same units, ``(-1, -1)`` when the task
#: has none or it is not in view: an optional extra feature for the reference grounding loss.
REFERENCE_POINT_KEY = "observation.reference_point"
#: Where the demonstrator's action heads the tool centre point (the scripted expert's current
#: waypoint), ``(x, y, z)`` metres in ``panda_link0`` (REP 103/105): an optional extra feature
#: of simulated demonstrations, the label of waypoint plans (``TrainConfig.cot_plan``).
GOAL_POSITION_KEY = "observation.goal_position"
_CORE_KEYS = (IMAGE_KEY, STATE_KEY, ACTION_KEY, "timestamp", *_INDEX_KEYS, DONE_KEY)
#: Features whose stats.json entry also carries the 1st and 99th percentiles (OpenVLA-style
#: q01/q99 normalisation).
QUANTILE_KEYS = (ACTION_KEY, STATE_KEY)
#: At most this many frames per episode enter the image statistics (LeRobot samples ~100).
_MAX_IMAGE_STAT_FRAMES = 100
#: PNG compression level (0-9): 1 is ~3x faster to write than PIL's default 6 on sim frames.
_PNG_COMPRESS_LEVEL = 1


class DatasetError(ValueError):
    """A dataset directory is missing files or is internally inconsistent."""


def _features(image_shape: tuple[int, int, int], state_names: Sequence[str],
              action_names: Sequence[str],
              extra_features: dict[str, int] | None = None) -> dict[str, dict]:
    feats: dict[str, dict] = {
        IMAGE_KEY: {"dtype": "image", "shape": list(image_shape),
                    "names": ["height", "width", "channels"]},
    }
    if state_names:
        feats[STATE_KEY] = {"dtype": "float32", "shape": [len(state_names)],
                            "names": list(state_names)}
    feats[ACTION_KEY] = {"dtype": "float32", "shape": [len(action_names)],
                         "names": list(action_names)}
    for key, dim in (extra_features or {}).items():
        feats[key] = {"dtype": "float32", "shape": [int(dim)],
                      "names": [f"{key.rsplit('.', 1)[-1]}_{i}" for i in range(int(dim))]}
    feats["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for key in _INDEX_KEYS:
        feats[key] = {"dtype": "int64", "shape": [1], "names": None}
    feats[DONE_KEY] = {"dtype": "bool", "shape": [1], "names": None}
    return feats


def _hf_features_metadata(features: dict[str, dict]) -> bytes:
    """The ``huggingface`` parquet schema metadata that lets ``datasets`` decode the columns."""
    hf: dict[str, Any] = {}
    for key, ft in features.items():
        if ft["dtype"] == "image":
            hf[key] = {"_type": "Image"}
        elif ft["shape"] == [1]:
            hf[key] = {"dtype": ft["dtype"], "_type": "Value"}
        else:
            hf[key] = {"feature": {"dtype": ft["dtype"], "_type": "Value"},
                       "length": ft["shape"][0], "_type": "Sequence"}
    return json.dumps({"info": {"features": hf}}).encode()


def _arrow_schema(features: dict[str, dict]) -> pa.Schema:
    fields = []
    for key, ft in features.items():
        if ft["dtype"] == "image":
            typ = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        elif ft["shape"] == [1]:
            typ = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}[ft["dtype"]]
        else:
            typ = pa.list_(pa.float32(), ft["shape"][0])
        fields.append(pa.field(key, typ))
    return pa.schema(fields, metadata={b"huggingface": _hf_features_metadata(features)})


def _feature_stats(values: np.ndarray, axis: int | tuple[int, ...],
                   keepdims: bool, quantiles: bool = False) -> dict[str, np.ndarray]:
    stats = {
        "min": np.min(values, axis=axis, keepdims=keepdims),
        "max": np.max(values, axis=axis, keepdims=keepdims),
        "mean": np.mean(values, axis=axis, keepdims=keepdims),
        "std": np.std(values, axis=axis, keepdims=keepdims),
        "count": np.array([len(values)]),
    }
    if quantiles:
        stats["q01"] = np.quantile(values, 0.01, axis=axis, keepdims=keepdims)
        stats["q99"] = np.quantile(values, 0.99, axis=axis, keepdims=keepdims)
    return stats


def _image_stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of ``(T, H, W, 3)`` uint8 frames, scaled to [0, 1], shape (3, 1, 1).

    Exact over the (at most :data:`_MAX_IMAGE_STAT_FRAMES` evenly spaced) frames, computed from
    per-channel 256-bin histograms (10x faster than float reductions on 224 px frames).
    """
    if len(images) > _MAX_IMAGE_STAT_FRAMES:
        idx = np.round(np.linspace(0, len(images) - 1, _MAX_IMAGE_STAT_FRAMES)).astype(int)
        images = images[idx]
    levels = np.arange(256, dtype=np.float64) / 255.0
    stats: dict[str, list] = {"min": [], "max": [], "mean": [], "std": []}
    for c in range(3):
        hist = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        total = hist.sum()
        mean = float(hist @ levels) / total
        nonzero = np.flatnonzero(hist)
        stats["min"].append(levels[nonzero[0]])
        stats["max"].append(levels[nonzero[-1]])
        stats["mean"].append(mean)
        stats["std"].append(math.sqrt(float(hist @ (levels - mean) ** 2) / total))
    out = {k: np.array(v, dtype=np.float64).reshape(3, 1, 1) for k, v in stats.items()}
    out["count"] = np.array([len(images)])
    return out


def _aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict:
    """Pool per-episode stats (count-weighted mean, parallel variance), as LeRobot's
    ``aggregate_stats`` does."""
    out: dict[str, dict[str, np.ndarray]] = {}
    keys = {k for s in per_episode for k in s}
    for key in sorted(keys):
        items = [s[key] for s in per_episode if key in s]
        means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in items])
        variances = np.stack([np.asarray(s["std"], dtype=np.float64) ** 2 for s in items])
        counts = np.stack([np.asarray(s["count"], dtype=np.float64) for s in items])
        total = counts.sum(axis=0)
        while counts.ndim < means.ndim:
            counts = counts[..., None]
        mean = (means * counts).sum(axis=0) / total
        var = ((variances + (means - mean) ** 2) * counts).sum(axis=0) / total
        out[key] = {
            "min": np.min(np.stack([np.asarray(s["min"]) for s in items]), axis=0),
            "max": np.max(np.stack([np.asarray(s["max"]) for s in items]), axis=0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": total.astype(np.int64),
        }
    return out


def _to_jsonable(stats: dict) -> dict:
    return {k: _to_jsonable(v) if isinstance(v, dict) else np.asarray(v).tolist()
            for k, v in stats.items()}


def _to_numpy(stats: dict) -> dict:
    return {k: _to_numpy(v) if isinstance(v, dict) else np.asarray(v) for k, v in stats.items()}


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=4, ensure_ascii=False))
    os.replace(tmp, path)


def _append_jsonl(path: Path, item: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(item, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (not a LeRobot {CODEBASE_VERSION} dataset?)")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{n}: invalid JSON line ({exc})") from exc
        if not isinstance(item, dict):
            raise DatasetError(f"{path}:{n}: expected a JSON object, got {type(item).__name__}")
        items.append(item)
    return items


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 RGB frame."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB array of encoded image bytes (PNG, JPEG, …)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


class LeRobotDatasetWriter:
    """Writes demonstration episodes as a LeRobot ``v2.1`` dataset under ``root``.

    Frames are buffered with :meth:`add_frame` (the PNG is encoded at once), written as one
    parquet file per episode by :meth:`save_episode`, which also appends the episode's meta
    lines and rewrites ``info.json`` and ``stats.json``, so the directory is a readable dataset
    after every saved episode. :meth:`finalize` rewrites the totals and stats once more (call it
    at the end; it is idempotent). Use as a context manager to finalize on exit (an unsaved
    partial episode is dropped).

    When ``root`` already holds a dataset with the same features (names included: a dataset
    whose state is named otherwise is refused) and fps, new episodes are appended after the
    existing ones.

    Args:
        root: dataset directory (created).
        fps: control rate of the recorded steps, Hz (> 0); timestamps default to
            ``frame_index / fps`` seconds.
        robot_type: free-form robot name stored in ``info.json``.
        image_shape: ``(H, W, 3)`` of every camera frame.
        state_dim: length of the optional proprioceptive state (0: no state column).
        state_names: one name per state dimension, stored as the ``observation.state``
            feature's ``names`` in ``info.json`` (LeRobot's per-dimension names), e.g. the
            joint names of a joint-position state: exactly ``state_dim`` distinct non-empty
            strings; default (None): ``state_0 … state_{state_dim-1}``.
        action_names: names of the action dimensions (default: RT-2's 8).
        extra_features: more per-frame float32 vectors, feature key → length (e.g.
            ``{TARGET_POINT_KEY: 2}``); each frame then passes them in ``extras``.

    Raises:
        ValueError: on a bad argument, or an existing dataset at ``root`` with other features.
        FileExistsError: when ``root`` is a non-empty directory that holds no dataset.
    """

    def __init__(self, root, fps: float, robot_type: str = "panda",
                 image_shape=(224, 224, 3), state_dim: int = 0,
                 action_names=ACTION_DIM_NAMES,
                 extra_features: dict[str, int] | None = None,
                 state_names: Sequence[str] | None = None) -> None:
        if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps: expected a finite number > 0 (Hz), got {fps!r}")
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3 or shape[2] != 3 or shape[0] <= 0 or shape[1] <= 0:
            raise ValueError(f"image_shape: expected (H, W, 3) with H, W > 0, got {image_shape!r}")
        if isinstance(state_dim, bool) or not isinstance(state_dim, int) or state_dim < 0:
            raise ValueError(f"state_dim: expected an int >= 0, got {state_dim!r}")
        state_names = _state_names(state_names, state_dim)
        names = list(action_names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"action_names: expected non-empty strings, got {action_names!r}")
        if not isinstance(robot_type, str) or not robot_type:
            raise ValueError(f"robot_type: expected a non-empty string, got {robot_type!r}")
        self.root = Path(root)
        self.fps = float(fps)
        self.robot_type = robot_type
        self.image_shape = shape
        self.state_dim = state_dim
        #: Names of the ``observation.state`` dimensions (``()`` without a state).
        self.state_names = state_names
        self.action_names = tuple(names)
        extras = dict(extra_features or {})
        for key, dim in extras.items():
            if (not isinstance(key, str) or not key or key in _CORE_KEYS
                    or isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
                raise ValueError(f"extra_features: expected new feature keys → lengths >= 1, "
                                 f"got {key!r}: {dim!r}")
        self.extra_features = extras
        self.features = _features(shape, state_names, names, extras)
        self._schema = _arrow_schema(self.features)
        self._tasks: dict[str, int] = {}
        self._episode_lengths: list[int] = []
        self._episode_stats: list[dict] = []
        self._all_values: dict[str, list[np.ndarray]] = {ACTION_KEY: [], STATE_KEY: []}
        self._total_frames = 0
        self._buffer: list[dict] = []
        if (self.root / INFO_PATH).is_file():
            self._load_existing()
        elif self.root.exists() and any(self.root.iterdir()):
            raise FileExistsError(f"root: {self.root} is not empty and holds no LeRobot dataset")
        self.root.mkdir(parents=True, exist_ok=True)

    # -- appending to an existing dataset -------------------------------------------------
    def _load_existing(self) -> None:
        existing = LeRobotDataset(self.root)
        if existing.features != self.features:
            raise ValueError(
                f"root: existing dataset at {self.root} has features {existing.features}, "
                f"expected {self.features}")
        if not math.isclose(existing.fps, self.fps):
            raise ValueError(f"fps: existing dataset has {existing.fps} Hz, got {self.fps}")
        self._tasks = {t: i for i, t in enumerate(existing.tasks)}
        self._episode_lengths = [len(existing.episode_frames(e))
                                 for e in range(existing.num_episodes)]
        self._total_frames = len(existing)
        by_ep = {int(it["episode_index"]): it["stats"]
                 for it in _read_jsonl(self.root / EPISODES_STATS_PATH)}
        self._episode_stats = [_to_numpy(by_ep[e]) for e in range(existing.num_episodes)]
        for ep in range(existing.num_episodes):
            cols = [k for k in QUANTILE_KEYS if k in self.features]
            table = pq.read_table(existing.episode_path(ep), columns=cols)
            for k in cols:
                self._all_values[k].append(_fixed_list_to_numpy(table.column(k), k))

    # -- public API -----------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        """Episodes saved so far (including those found at ``root`` on open)."""
        return len(self._episode_lengths)

    @property
    def num_buffered_frames(self) -> int:
        """Frames added to the current, unsaved episode."""
        return len(self._buffer)

    def add_frame(self, image: np.ndarray, action: np.ndarray, task: str,
                  state: np.ndarray | None = None, timestamp: float | None = None,
                  extras: dict[str, np.ndarray] | None = None) -> None:
        """Buffer one control step of the current episode.

        Args:
            image: camera frame, ``image_shape`` (H, W, 3), uint8 RGB.
            action: the executed action, shape ``(len(action_names),)``, finite; stored float32.
            task: the instruction, non-empty.
            state: proprioception, shape ``(state_dim,)``, finite; required iff ``state_dim > 0``.
            timestamp: seconds since the episode start (default ``frame_index / fps``); must
                not decrease within an episode.
            extras: one finite vector per ``extra_features`` key (exactly those keys).

        Raises:
            ValueError: on a wrong shape, dtype, non-finite value or empty task.
        """
        if not isinstance(image, np.ndarray):
            raise ValueError(f"image: expected a numpy array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise ValueError(f"image: expected dtype uint8, got {image.dtype}")
        if tuple(image.shape) != self.image_shape:
            raise ValueError(f"image: expected shape {self.image_shape}, got {tuple(image.shape)}")
        act = _finite_vector("action", action, len(self.action_names))
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"task: expected a non-empty string, got {task!r}")
        if self.state_dim > 0:
            if state is None:
                raise ValueError(f"state: expected shape ({self.state_dim},), got None")
            st = _finite_vector("state", state, self.state_dim)
        elif state is not None:
            raise ValueError("state: expected None (the dataset was created with state_dim=0)")
        else:
            st = None
        given = dict(extras or {})
        if set(given) != set(self.extra_features):
            raise ValueError(f"extras: expected keys {sorted(self.extra_features)}, "
                             f"got {sorted(given)}")
        extra_values = {k: _finite_vector(k, v, self.extra_features[k]) for k, v in given.items()}
        frame_index = len(self._buffer)
        if timestamp is None:
            ts = frame_index / self.fps
        else:
            ts = float(timestamp)
            if not math.isfinite(ts) or ts < 0:
                raise ValueError(f"timestamp: expected a finite number >= 0 (s), got {timestamp!r}")
            if self._buffer and ts < self._buffer[-1]["timestamp"]:
                raise ValueError(f"timestamp: expected >= {self._buffer[-1]['timestamp']} "
                                 f"(previous frame), got {ts}")
        self._buffer.append({"png": encode_png(np.ascontiguousarray(image)),
                             "image": image.copy(), "action": act, "state": st,
                             "task": task, "timestamp": ts, "extras": extra_values})

    def discard_episode(self) -> int:
        """Drop the buffered frames of the current episode; returns how many were dropped."""
        n = len(self._buffer)
        self._buffer = []
        return n

    def save_episode(self) -> int:
        """Write the buffered frames as the next episode and return its index.

        Raises:
            ValueError: when no frame was added since the last save.
        """
        if not self._buffer:
            raise ValueError("save_episode: expected at least one frame, got an empty episode")
        ep = self.num_episodes
        n = len(self._buffer)
        new_tasks = []
        for fr in self._buffer:
            if fr["task"] not in self._tasks:
                self._tasks[fr["task"]] = len(self._tasks)
                new_tasks.append(fr["task"])
        actions = np.stack([fr["action"] for fr in self._buffer])
        frame_index = np.arange(n, dtype=np.int64)
        columns: dict[str, Any] = {
            IMAGE_KEY: pa.array([{"bytes": fr["png"], "path": None} for fr in self._buffer],
                                type=self._schema.field(IMAGE_KEY).type),
        }
        states = None
        if self.state_dim > 0:
            states = np.stack([fr["state"] for fr in self._buffer])
            columns[STATE_KEY] = _fixed_list(states)
        columns[ACTION_KEY] = _fixed_list(actions)
        extra_arrays = {k: np.stack([fr["extras"][k] for fr in self._buffer])
                        for k in self.extra_features}
        for key, arr in extra_arrays.items():
            columns[key] = _fixed_list(arr)
        values = {
            "timestamp": np.array([fr["timestamp"] for fr in self._buffer], dtype=np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(n, ep, dtype=np.int64),
            "index": self._total_frames + frame_index,
            "task_index": np.array([self._tasks[fr["task"]] for fr in self._buffer],
                                   dtype=np.int64),
            DONE_KEY: frame_index == n - 1,
        }
        for key, arr in values.items():
            columns[key] = pa.array(arr)
        table = pa.Table.from_pydict(columns, schema=self._schema)
        path = self.root / DATA_PATH.format(episode_chunk=ep // DEFAULT_CHUNK_SIZE,
                                            episode_index=ep)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)

        stats = {IMAGE_KEY: _image_stats(np.stack([fr["image"] for fr in self._buffer]))}
        if states is not None:
            stats[STATE_KEY] = _feature_stats(states.astype(np.float64), 0, False)
        stats[ACTION_KEY] = _feature_stats(actions.astype(np.float64), 0, False)
        for key, arr in extra_arrays.items():
            stats[key] = _feature_stats(arr.astype(np.float64), 0, False)
        for key, arr in values.items():
            stats[key] = _feature_stats(arr.astype(np.float64), 0, True)
        for task in new_tasks:
            _append_jsonl(self.root / TASKS_PATH, {"task_index": self._tasks[task], "task": task})
        ep_tasks = list(dict.fromkeys(fr["task"] for fr in self._buffer))
        _append_jsonl(self.root / EPISODES_PATH,
                      {"episode_index": ep, "tasks": ep_tasks, "length": n})
        _append_jsonl(self.root / EPISODES_STATS_PATH,
                      {"episode_index": ep, "stats": _to_jsonable(stats)})
        self._episode_stats.append(stats)
        self._episode_lengths.append(n)
        self._all_values[ACTION_KEY].append(actions)
        if states is not None:
            self._all_values[STATE_KEY].append(states)
        self._total_frames += n
        self._buffer = []
        self._write_meta()
        return ep

    def finalize(self) -> None:
        """Rewrite ``meta/info.json`` (totals, splits) and ``meta/stats.json``; idempotent.

        Frames buffered but not saved are left in the buffer (not written).
        """
        self._write_meta()

    def __enter__(self) -> LeRobotDatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.discard_episode()
        self.finalize()

    # -- meta -----------------------------------------------------------------------------
    def _info(self) -> dict:
        n_ep = self.num_episodes
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": n_ep,
            "total_frames": self._total_frames,
            "total_tasks": len(self._tasks),
            "total_videos": 0,
            "total_chunks": (n_ep + DEFAULT_CHUNK_SIZE - 1) // DEFAULT_CHUNK_SIZE,
            "chunks_size": DEFAULT_CHUNK_SIZE,
            "fps": int(self.fps) if self.fps.is_integer() else self.fps,
            "splits": {"train": f"0:{n_ep}"} if n_ep else {},
            "data_path": DATA_PATH,
            "video_path": None,
            "features": self.features,
        }

    def _write_meta(self) -> None:
        _write_json_atomic(self.root / INFO_PATH, self._info())
        if not self._episode_stats:
            return
        stats = _aggregate_stats(self._episode_stats)
        for key in QUANTILE_KEYS:
            if self._all_values[key]:
                allv = np.concatenate(self._all_values[key]).astype(np.float64)
                stats[key]["q01"] = np.quantile(allv, 0.01, axis=0)
                stats[key]["q99"] = np.quantile(allv, 0.99, axis=0)
        _write_json_atomic(self.root / STATS_PATH, _to_jsonable(stats))


def _state_names(names: Sequence[str] | None, state_dim: int) -> tuple[str, ...]:
    """The checked ``state_names`` of a writer with ``state_dim`` state dimensions; None gives
    ``state_0 … state_{state_dim-1}``.

    Raises:
        ValueError: unless ``names`` is None or exactly ``state_dim`` distinct non-empty strings.
    """
    if names is None:
        return tuple(f"state_{i}" for i in range(state_dim))
    if (isinstance(names, (str, bytes)) or not isinstance(names, Sequence)
            or len(names) != state_dim or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)):
        raise ValueError(f"state_names: expected {state_dim} distinct non-empty strings "
                         f"(state_dim), got {names!r}")
    return tuple(names)


def _finite_vector(name: str, value, dim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected {dim} numbers, got {value!r}") from exc
    if arr.shape != (dim,):
        raise ValueError(f"{name}: expected shape ({dim},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got {arr.tolist()}")
    return arr.astype(np.float32)


def _fixed_list(values: np.ndarray) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).ravel())
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _fixed_list_to_numpy(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """``(N, D)`` float32 array of a fixed-size-list (or variable list) float column."""
    arr = column.combine_chunks()
    if arr.null_count:
        raise DatasetError(f"{name}: expected no null rows, got {arr.null_count}")
    if pa.types.is_fixed_size_list(arr.type):
        dim = arr.type.list_size
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = set(pc.list_value_length(arr).to_pylist())
        if len(lengths) > 1:
            raise DatasetError(f"{name}: expected equal-length rows, got lengths {sorted(lengths)}")
        dim = lengths.pop() if lengths else 0
    else:
        raise DatasetError(f"{name}: expected a list column, got {arr.type}")
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    return flat.astype(np.float32).reshape(len(arr), dim)


class LeRobotDataset:
    """Reads a LeRobot ``v2.1`` dataset written by :class:`LeRobotDatasetWriter` (or LeRobot).

    Meta files are read and checked on construction; episode parquet files are read on demand
    (a few recent episodes are cached). ``dataset[i]`` returns frame ``i`` (global index,
    negative indices count from the end) as::

        {"image": uint8 (H, W, 3) RGB, "action": float32 (A,), "task": str,
         "episode_index": int, "frame_index": int, "index": int, "timestamp": float (s),
         "done": bool, "state": float32 (S,) (only when the dataset has a state)}

    Attributes:
        info: the parsed ``meta/info.json``.
        stats: ``{feature: {"min", "max", "mean", "std", "count"[, "q01", "q99"]}}`` of numpy
            arrays (``meta/stats.json``; pooled from ``episodes_stats.jsonl`` when absent).
        tasks: task strings by task index.
        features: the ``features`` entry of ``info.json``.
        image_key: the image feature read as ``"image"``: ``observation.image``, else the first
            feature of dtype ``image`` (e.g. ``observation.images.top`` of LeRobot datasets).
        fps: recording rate, Hz.

    Raises:
        DatasetError (a ValueError): on a missing or inconsistent meta file, a missing episode
            file or one with the wrong number of rows, or a different format version.
    """

    _CACHE_EPISODES = 4

    def __init__(self, root) -> None:
        self.root = Path(root)
        info_path = self.root / INFO_PATH
        if not info_path.is_file():
            raise DatasetError(f"{info_path}: missing (not a LeRobot {CODEBASE_VERSION} dataset?)")
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{info_path}: invalid JSON ({exc})") from exc
        if not isinstance(info, dict):
            raise DatasetError(f"{info_path}: expected a JSON object")
        for key in ("codebase_version", "fps", "features", "total_episodes", "total_frames",
                    "data_path"):
            if key not in info:
                raise DatasetError(f"{info_path}: missing key {key!r}")
        version = str(info["codebase_version"])
        if not version.startswith("v2."):
            raise DatasetError(f"{info_path}: codebase_version: expected v2.x "
                               f"({CODEBASE_VERSION}), got {version!r}")
        feats = info["features"]
        if not isinstance(feats, dict):
            raise DatasetError(f"{info_path}: features: expected an object")
        if not all(isinstance(ft, dict) for ft in feats.values()):
            raise DatasetError(f"{info_path}: features: expected an object per feature")
        image_keys = [k for k, ft in feats.items() if ft.get("dtype") in ("image", "video")]
        stills = [k for k in image_keys if feats[k].get("dtype") == "image"]
        if not stills:
            raise DatasetError(f"{info_path}: features: expected an image feature such as "
                               f"{IMAGE_KEY!r} with dtype 'image' (videos are not supported), "
                               f"got {image_keys}")
        self.image_key = IMAGE_KEY if IMAGE_KEY in stills else stills[0]
        if ACTION_KEY not in feats:
            raise DatasetError(f"{info_path}: features: missing {ACTION_KEY!r}")
        self.info = info
        self.features = feats
        self.fps = float(info["fps"])
        if not math.isfinite(self.fps) or self.fps <= 0:
            raise DatasetError(f"{info_path}: fps: expected > 0, got {info['fps']!r}")
        self.has_state = STATE_KEY in feats
        #: Extra float32 vector features (e.g. :data:`TARGET_POINT_KEY`), returned per frame
        #: under their feature key.
        self.extra_keys = tuple(k for k, ft in feats.items()
                                if k not in _CORE_KEYS and ft.get("dtype") == "float32")

        tasks = _read_jsonl(self.root / TASKS_PATH)
        task_by_index = {}
        for item in tasks:
            if not isinstance(item.get("task_index"), int) or not isinstance(item.get("task"), str):
                raise DatasetError(f"{self.root / TASKS_PATH}: bad line {item}")
            task_by_index[item["task_index"]] = item["task"]
        if sorted(task_by_index) != list(range(len(task_by_index))):
            raise DatasetError(f"{self.root / TASKS_PATH}: expected task indices "
                               f"0..{len(task_by_index) - 1}, got {sorted(task_by_index)}")
        self.tasks = [task_by_index[i] for i in range(len(task_by_index))]

        episodes = _read_jsonl(self.root / EPISODES_PATH)
        by_index = {}
        for item in episodes:
            ep, length = item.get("episode_index"), item.get("length")
            if not isinstance(ep, int) or not isinstance(length, int) or length <= 0:
                raise DatasetError(f"{self.root / EPISODES_PATH}: bad line {item}")
            by_index[ep] = length
        n_ep = int(info["total_episodes"])
        if sorted(by_index) != list(range(n_ep)):
            raise DatasetError(
                f"{self.root / EPISODES_PATH}: expected episodes 0..{n_ep - 1} "
                f"(info.json total_episodes={n_ep}), got {len(by_index)} episode lines")
        self._lengths = [by_index[e] for e in range(n_ep)]
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)]).astype(np.int64)
        if int(self._starts[-1]) != int(info["total_frames"]):
            raise DatasetError(f"{info_path}: total_frames={info['total_frames']} but episodes "
                               f"add up to {int(self._starts[-1])} frames")
        self._chunk_size = int(info.get("chunks_size", DEFAULT_CHUNK_SIZE))
        for ep in range(n_ep):
            path = self.episode_path(ep)
            if not path.is_file():
                raise DatasetError(f"{path}: missing episode file of episode {ep}")
            try:
                rows = pq.read_metadata(path).num_rows
            except (pa.ArrowException, OSError) as exc:
                raise DatasetError(f"{path}: unreadable parquet file ({exc})") from exc
            if rows != self._lengths[ep]:
                raise DatasetError(f"{path}: expected {self._lengths[ep]} rows "
                                   f"(episodes.jsonl), got {rows}")
        self.stats = self._load_stats()
        self._cache: OrderedDict[int, dict] = OrderedDict()

    def _load_stats(self) -> dict:
        path = self.root / STATS_PATH
        if path.is_file():
            try:
                return _to_numpy(json.loads(path.read_text(encoding="utf-8")))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}: invalid JSON ({exc})") from exc
        ep_path = self.root / EPISODES_STATS_PATH
        if not ep_path.is_file() or self.num_episodes == 0:
            return {}
        return _aggregate_stats([_to_numpy(it["stats"]) for it in _read_jsonl(ep_path)])

    @property
    def num_episodes(self) -> int:
        """Number of episodes."""
        return len(self._lengths)

    def __len__(self) -> int:
        """Number of frames over all episodes."""
        return int(self._starts[-1])

    def episode_frames(self, ep: int) -> range:
        """Global frame indices of episode ``ep``.

        Raises:
            IndexError: when ``ep`` is not in ``[0, num_episodes)``.
        """
        if not 0 <= ep < self.num_episodes:
            raise IndexError(f"ep: expected 0 <= ep < {self.num_episodes}, got {ep}")
        return range(int(self._starts[ep]), int(self._starts[ep + 1]))

    def episode_path(self, ep: int) -> Path:
        """Path of episode ``ep``'s parquet file."""
        return self.root / self.info["data_path"].format(
            episode_chunk=ep // self._chunk_size, episode_index=ep)

    def _episode(self, ep: int) -> dict:
        if ep in self._cache:
            self._cache.move_to_end(ep)
            return self._cache[ep]
        path = self.episode_path(ep)
        table = pq.read_table(path)
        needed = [self.image_key, ACTION_KEY, "frame_index", "task_index"]
        if self.has_state:
            needed.append(STATE_KEY)
        missing = [k for k in needed if k not in table.column_names]
        if missing:
            raise DatasetError(f"{path}: missing columns {missing}")
        data = {
            "images": table.column(self.image_key).to_pylist(),
            "action": _fixed_list_to_numpy(table.column(ACTION_KEY), f"{path}: {ACTION_KEY}"),
            "frame_index": table.column("frame_index").to_numpy(),
            "task_index": table.column("task_index").to_numpy(),
            "timestamp": (table.column("timestamp").to_numpy() if "timestamp" in
                          table.column_names else np.arange(len(table)) / self.fps),
            "done": (table.column(DONE_KEY).to_numpy(zero_copy_only=False)
                     if DONE_KEY in table.column_names
                     else np.arange(len(table)) == len(table) - 1),
        }
        if self.has_state:
            data["state"] = _fixed_list_to_numpy(table.column(STATE_KEY), f"{path}: {STATE_KEY}")
        for key in self.extra_keys:
            if key not in table.column_names:
                raise DatasetError(f"{path}: missing column {key!r}")
            data[key] = _fixed_list_to_numpy(table.column(key), f"{path}: {key}")
        self._cache[ep] = data
        if len(self._cache) > self._CACHE_EPISODES:
            self._cache.popitem(last=False)
        return data

    def episode_states(self, ep: int) -> np.ndarray:
        """All ``observation.state`` rows of episode ``ep``, ``(T, S)`` float32, read without the
        images.

        Raises:
            IndexError: on an unknown episode.
            DatasetError: when the dataset has no state or the episode's file lacks it.
        """
        self.episode_frames(ep)
        if not self.has_state:
            raise DatasetError(f"{self.root}: no {STATE_KEY} feature")
        if ep in self._cache:
            return self._cache[ep]["state"].copy()
        path = self.episode_path(ep)
        try:
            table = pq.read_table(path, columns=[STATE_KEY])
        except (KeyError, ValueError, pa.ArrowInvalid) as exc:
            raise DatasetError(f"{path}: missing columns [{STATE_KEY!r}]") from exc
        return _fixed_list_to_numpy(table.column(STATE_KEY), f"{path}: {STATE_KEY}")

    def episode_actions(self, ep: int) -> np.ndarray:
        """All actions of episode ``ep``, ``(T, A)`` float32 (no image decoding)."""
        self.episode_frames(ep)
        return self._episode(ep)["action"].copy()

    def __getitem__(self, i: int) -> dict:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"index: expected an int, got {type(i).__name__}")
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index: expected -{n} <= i < {n}, got {i}")
        ep = int(np.searchsorted(self._starts, i, side="right") - 1)
        row = int(i - self._starts[ep])
        data = self._episode(ep)
        cell = data["images"][row]
        if cell is None:
            raise DatasetError(f"{self.episode_path(ep)}: row {row}: no image")
        if cell.get("bytes") is not None:
            image = decode_png(cell["bytes"])
        elif cell.get("path"):
            image = decode_png((self.root / cell["path"]).read_bytes())
        else:
            raise DatasetError(f"{self.episode_path(ep)}: row {row}: image has no bytes or path")
        task_index = int(data["task_index"][row])
        if not 0 <= task_index < len(self.tasks):
            raise DatasetError(f"{self.episode_path(ep)}: row {row}: unknown task_index "
                               f"{task_index}")
        item = {
            "image": image,
            "action": data["action"][row].copy(),
            "task": self.tasks[task_index],
            "episode_index": ep,
            "frame_index": int(data["frame_index"][row]),
            "index": i,
            "timestamp": float(data["timestamp"][row]),
            "done": bool(data["done"][row]),
        }
        if self.has_state:
            item["state"] = data["state"][row].copy()
        for key in self.extra_keys:
            item[key] = data[key][row].copy()
        return item

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return (f"LeRobotDataset(root={str(self.root)!r}, episodes={self.num_episodes}, "
                f"frames={len(self)}, fps={self.fps}, tasks={len(self.tasks)})")
