"""LeRobot v2.1 writer/reader: round trip, statistics, append, validation and broken datasets."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from rt2_policy.contract import ACTION_DIM_NAMES
from rt2_policy.data.lerobot_dataset import (
    CODEBASE_VERSION,
    TARGET_POINT_KEY,
    DatasetError,
    LeRobotDataset,
    LeRobotDatasetWriter,
)

SHAPE = (24, 32, 3)


def _frames(rng, n, state_dim=0):
    for _ in range(n):
        image = rng.integers(0, 256, SHAPE, dtype=np.uint8)
        action = np.concatenate([[0.0], rng.uniform(-0.05, 0.05, 6), [rng.uniform()]])
        state = rng.normal(size=state_dim) if state_dim else None
        yield image, action, state


def _write(root, episodes=((5, "pick up the red cube"), (3, "push the blue ball")),
           state_dim=0, seed=0):
    rng = np.random.default_rng(seed)
    writer = LeRobotDatasetWriter(root, fps=5.0, image_shape=SHAPE, state_dim=state_dim)
    written = []
    for length, task in episodes:
        for image, action, state in _frames(rng, length, state_dim):
            writer.add_frame(image, action, task, state=state)
            written.append((image, action, task, state))
        writer.save_episode()
    writer.finalize()
    return written


def test_round_trip_returns_every_frame_as_written(tmp_path):
    written = _write(tmp_path / "ds", state_dim=4)
    ds = LeRobotDataset(tmp_path / "ds")
    assert len(ds) == 8 and ds.num_episodes == 2 and ds.fps == 5.0
    assert ds.tasks == ["pick up the red cube", "push the blue ball"]
    assert ds.episode_frames(0) == range(0, 5) and ds.episode_frames(1) == range(5, 8)
    for i, (image, action, task, state) in enumerate(written):
        item = ds[i]
        np.testing.assert_array_equal(item["image"], image)
        assert item["image"].dtype == np.uint8 and item["image"].shape == SHAPE
        assert item["action"].dtype == np.float32 and item["action"].shape == (8,)
        np.testing.assert_allclose(item["action"], action.astype(np.float32))
        np.testing.assert_allclose(item["state"], state.astype(np.float32))
        assert item["task"] == task
        assert item["index"] == i
    last = ds[-1]
    assert (last["episode_index"], last["frame_index"], last["done"]) == (1, 2, True)
    assert ds[3]["done"] is False
    assert ds[6]["timestamp"] == pytest.approx(1 / 5.0)


def test_on_disk_layout_matches_lerobot_v21(tmp_path):
    _write(tmp_path / "ds")
    root = tmp_path / "ds"
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == CODEBASE_VERSION == "v2.1"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 8, 2)
    assert info["splits"] == {"train": "0:2"}
    assert info["fps"] == 5 and info["robot_type"] == "panda"
    assert info["features"]["action"] == {"dtype": "float32", "shape": [8],
                                          "names": list(ACTION_DIM_NAMES)}
    assert info["features"]["observation.image"]["dtype"] == "image"
    assert "observation.state" not in info["features"]
    episodes = [json.loads(x) for x in (root / "meta/episodes.jsonl").read_text().splitlines()]
    assert episodes == [{"episode_index": 0, "tasks": ["pick up the red cube"], "length": 5},
                        {"episode_index": 1, "tasks": ["push the blue ball"], "length": 3}]
    tasks = [json.loads(x) for x in (root / "meta/tasks.jsonl").read_text().splitlines()]
    assert tasks == [{"task_index": 0, "task": "pick up the red cube"},
                     {"task_index": 1, "task": "push the blue ball"}]
    ep_stats = (root / "meta/episodes_stats.jsonl").read_text().splitlines()
    assert len(ep_stats) == 2
    table = pq.read_table(root / "data/chunk-000/episode_000001.parquet")
    assert table.column_names == ["observation.image", "action", "timestamp", "frame_index",
                                  "episode_index", "index", "task_index", "next.done"]
    assert table.column("index").to_pylist() == [5, 6, 7]
    assert table.column("next.done").to_pylist() == [False, False, True]
    image_cell = table.column("observation.image")[0].as_py()
    assert image_cell["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    assert b"huggingface" in table.schema.metadata


def test_stats_match_numpy(tmp_path):
    written = _write(tmp_path / "ds", state_dim=3)
    ds = LeRobotDataset(tmp_path / "ds")
    actions = np.stack([w[1] for w in written]).astype(np.float32).astype(np.float64)
    stats = ds.stats["action"]
    np.testing.assert_allclose(stats["min"], actions.min(0), rtol=1e-6)
    np.testing.assert_allclose(stats["max"], actions.max(0), rtol=1e-6)
    np.testing.assert_allclose(stats["mean"], actions.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats["std"], actions.std(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats["q01"], np.quantile(actions, 0.01, axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["q99"], np.quantile(actions, 0.99, axis=0), rtol=1e-6)
    assert stats["count"].tolist() == [8]
    states = np.stack([w[3] for w in written]).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(ds.stats["observation.state"]["std"], states.std(0), rtol=1e-6)
    images = np.stack([w[0] for w in written]).astype(np.float64) / 255.0
    img = ds.stats["observation.image"]
    assert img["mean"].shape == (3, 1, 1)
    np.testing.assert_allclose(img["mean"].ravel(), images.mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(img["std"].ravel(), images.std(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(img["max"].ravel(), images.max(axis=(0, 1, 2)))
    assert ds.stats["frame_index"]["max"].tolist() == [4]


def test_appending_to_an_existing_dataset_continues_indices_and_stats(tmp_path):
    root = tmp_path / "ds"
    first = _write(root, episodes=((4, "a"),), seed=1)
    rng = np.random.default_rng(2)
    writer = LeRobotDatasetWriter(root, fps=5.0, image_shape=SHAPE)
    assert writer.num_episodes == 1
    second = []
    for image, action, _ in _frames(rng, 3):
        writer.add_frame(image, action, "b")
        second.append(action)
    assert writer.save_episode() == 1
    writer.finalize()
    ds = LeRobotDataset(root)
    assert len(ds) == 7 and ds.tasks == ["a", "b"] and ds[4]["index"] == 4
    actions = np.stack([w[1] for w in first] + second).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(ds.stats["action"]["std"], actions.std(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ds.stats["action"]["q99"], np.quantile(actions, 0.99, axis=0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="features"):
        LeRobotDatasetWriter(root, fps=5.0, image_shape=(8, 8, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image": np.zeros((24, 32, 3), np.float32)}, "image: expected dtype uint8"),
        ({"image": np.zeros((24, 24, 3), np.uint8)}, "image: expected shape"),
        ({"action": np.zeros(7)}, r"action: expected shape \(8,\)"),
        ({"action": np.array([0, 0, 0, np.nan, 0, 0, 0, 0])}, "action: expected finite"),
        ({"task": "  "}, "task: expected a non-empty string"),
        ({"state": np.zeros(2)}, "state: expected None"),
        ({"timestamp": -1.0}, "timestamp"),
    ],
)
def test_add_frame_rejects_bad_input(tmp_path, kwargs, match):
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=5.0, image_shape=SHAPE)
    args = {"image": np.zeros(SHAPE, np.uint8), "action": np.zeros(8), "task": "t", **kwargs}
    with pytest.raises(ValueError, match=match):
        writer.add_frame(**args)
    assert writer.num_buffered_frames == 0


def test_empty_episode_and_bad_arguments_raise(tmp_path):
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=5.0, image_shape=SHAPE, state_dim=2)
    with pytest.raises(ValueError, match="empty episode"):
        writer.save_episode()
    with pytest.raises(ValueError, match=r"state: expected shape \(2,\)"):
        writer.add_frame(np.zeros(SHAPE, np.uint8), np.zeros(8), "t")
    with pytest.raises(ValueError, match="fps"):
        LeRobotDatasetWriter(tmp_path / "x", fps=0)
    with pytest.raises(ValueError, match="image_shape"):
        LeRobotDatasetWriter(tmp_path / "x", fps=5, image_shape=(8, 8))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(FileExistsError):
        LeRobotDatasetWriter(tmp_path / "junk", fps=5)


def test_discard_and_context_manager_drop_the_partial_episode(tmp_path):
    with LeRobotDatasetWriter(tmp_path / "ds", fps=5.0, image_shape=SHAPE) as writer:
        writer.add_frame(np.zeros(SHAPE, np.uint8), np.zeros(8), "kept")
        writer.save_episode()
        writer.add_frame(np.zeros(SHAPE, np.uint8), np.zeros(8), "dropped")
        assert writer.discard_episode() == 1
        writer.add_frame(np.zeros(SHAPE, np.uint8), np.zeros(8), "dropped too")
    ds = LeRobotDataset(tmp_path / "ds")
    assert len(ds) == 1 and ds.tasks == ["kept"]


def _break(root, what):
    if what == "no info":
        (root / "meta/info.json").unlink()
    elif what == "bad json":
        (root / "meta/info.json").write_text("{not json")
    elif what == "version":
        info = json.loads((root / "meta/info.json").read_text())
        info["codebase_version"] = "v3.0"
        (root / "meta/info.json").write_text(json.dumps(info))
    elif what == "missing episode file":
        (root / "data/chunk-000/episode_000001.parquet").unlink()
    elif what == "truncated parquet":
        path = root / "data/chunk-000/episode_000000.parquet"
        path.write_bytes(path.read_bytes()[:100])
    elif what == "wrong total":
        info = json.loads((root / "meta/info.json").read_text())
        info["total_frames"] = 99
        (root / "meta/info.json").write_text(json.dumps(info))
    elif what == "missing episode line":
        path = root / "meta/episodes.jsonl"
        path.write_text(path.read_text().splitlines()[0] + "\n")
    elif what == "no tasks":
        (root / "meta/tasks.jsonl").unlink()
    elif what == "video":
        info = json.loads((root / "meta/info.json").read_text())
        info["features"]["observation.image"]["dtype"] = "video"
        (root / "meta/info.json").write_text(json.dumps(info))


@pytest.mark.parametrize(
    ("what", "match"),
    [
        ("no info", "info.json: missing"),
        ("bad json", "invalid JSON"),
        ("version", "codebase_version"),
        ("missing episode file", "missing episode file"),
        ("truncated parquet", "unreadable parquet"),
        ("wrong total", "total_frames"),
        ("missing episode line", "expected episodes 0..1"),
        ("no tasks", "tasks.jsonl: missing"),
        ("video", "videos are not supported"),
    ],
)
def test_broken_dataset_raises_a_clear_error(tmp_path, what, match):
    root = tmp_path / "ds"
    _write(root)
    _break(root, what)
    with pytest.raises(DatasetError, match=match):
        LeRobotDataset(root)


def test_index_errors(tmp_path):
    _write(tmp_path / "ds")
    ds = LeRobotDataset(tmp_path / "ds")
    with pytest.raises(IndexError):
        ds[8]
    with pytest.raises(IndexError):
        ds[-9]
    with pytest.raises(IndexError):
        ds.episode_frames(2)
    with pytest.raises(TypeError):
        ds["0"]
    np.testing.assert_array_equal(ds.episode_actions(1), np.stack([ds[i]["action"]
                                                                   for i in range(5, 8)]))


def test_hugging_face_datasets_reads_the_episode_files(tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets not installed")
    written = _write(tmp_path / "ds", state_dim=2)
    hf = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "ds/data/chunk-000/*.parquet"), split="train",
        cache_dir=str(tmp_path / "cache"))
    assert isinstance(hf.features["observation.image"], datasets.Image)
    assert len(hf) == 8
    row = hf[6]
    assert row["episode_index"] == 1 and row["frame_index"] == 1
    np.testing.assert_array_equal(np.asarray(row["observation.image"]), written[6][0])
    np.testing.assert_allclose(row["action"], written[6][1].astype(np.float32))


def test_other_image_feature_names_are_read(tmp_path):
    """LeRobot datasets name cameras ``observation.images.<camera>``: the first one is read."""
    root = tmp_path / "ds"
    written = _write(root)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"] = {("observation.images.top" if k == "observation.image" else k): v
                        for k, v in info["features"].items()}
    (root / "meta/info.json").write_text(json.dumps(info))
    for path in (root / "data/chunk-000").glob("*.parquet"):
        table = pq.read_table(path)
        names = ["observation.images.top" if n == "observation.image" else n
                 for n in table.column_names]
        pq.write_table(table.rename_columns(names), path)
    ds = LeRobotDataset(root)
    assert ds.image_key == "observation.images.top"
    np.testing.assert_array_equal(ds[7]["image"], written[7][0])


def test_extra_features_round_trip_with_stats(tmp_path):
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=5.0, image_shape=SHAPE,
                                  extra_features={TARGET_POINT_KEY: 2})
    rng = np.random.default_rng(0)
    points = [np.array([10.0, 200.0]), np.array([-1.0, -1.0]), np.array([255.0, 0.0])]
    for (image, action, _state), point in zip(_frames(rng, 3), points, strict=True):
        writer.add_frame(image, action, "pick up the red cube", extras={TARGET_POINT_KEY: point})
    with pytest.raises(ValueError, match="extras"):
        writer.add_frame(image, action, "pick up the red cube")
    with pytest.raises(ValueError, match="target_point"):
        writer.add_frame(image, action, "x", extras={TARGET_POINT_KEY: [1.0, np.nan]})
    writer.save_episode()
    writer.finalize()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.extra_keys == (TARGET_POINT_KEY,)
    assert ds.features[TARGET_POINT_KEY]["shape"] == [2]
    for i, point in enumerate(points):
        assert ds[i][TARGET_POINT_KEY].dtype == np.float32
        np.testing.assert_array_equal(ds[i][TARGET_POINT_KEY], point)
    np.testing.assert_allclose(ds.stats[TARGET_POINT_KEY]["max"], [255.0, 200.0])
    # appending needs the same extra features
    with pytest.raises(ValueError, match="features"):
        LeRobotDatasetWriter(tmp_path / "ds", fps=5.0, image_shape=SHAPE)
    with pytest.raises(ValueError, match="extra_features"):
        LeRobotDatasetWriter(tmp_path / "other", fps=5.0, image_shape=SHAPE,
                             extra_features={"action": 2})


# -- observation.state names -----------------------------------------------------------------
JOINTS = ("panda_joint1", "panda_joint2", "panda_finger_joint1")


def _state_writer(root, state_names=JOINTS, state_dim=3):
    return LeRobotDatasetWriter(root, fps=5.0, image_shape=SHAPE, state_dim=state_dim,
                                state_names=state_names)


def test_state_names_are_written_to_info_json_and_read_back(tmp_path):
    root = tmp_path / "ds"
    writer = _state_writer(root)
    assert writer.state_names == JOINTS
    rng = np.random.default_rng(0)
    for image, action, state in _frames(rng, 2, state_dim=3):
        writer.add_frame(image, action, "t", state=state)
    writer.save_episode()
    writer.finalize()
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"]["observation.state"] == {"dtype": "float32", "shape": [3],
                                                     "names": list(JOINTS)}
    ds = LeRobotDataset(root)
    assert ds.features["observation.state"]["names"] == list(JOINTS)
    assert ds[1]["state"].shape == (3,)
    # the same names append
    with _state_writer(root, state_names=list(JOINTS)) as again:
        assert again.num_episodes == 1


def test_state_names_default_to_state_i(tmp_path):
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=5.0, image_shape=SHAPE, state_dim=3)
    assert writer.state_names == ("state_0", "state_1", "state_2")
    writer.finalize()
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["features"]["observation.state"]["names"] == ["state_0", "state_1", "state_2"]
    assert LeRobotDatasetWriter(tmp_path / "none", fps=5.0, image_shape=SHAPE).state_names == ()


@pytest.mark.parametrize("names", [
    ("a", "b"),                  # too few
    ("a", "b", "c", "d"),        # too many
    ("a", "", "c"),              # empty
    ("a", "b", "a"),             # repeated
    ("a", 1, "c"),               # not a string
    "abc",                       # a string, not a sequence of names
])
def test_bad_state_names_raise(tmp_path, names):
    with pytest.raises(ValueError, match=r"state_names: expected 3 .*, got"):
        _state_writer(tmp_path / "ds", state_names=names)
    with pytest.raises(ValueError, match=r"state_names: expected 0 "):
        _state_writer(tmp_path / "ds", state_names=("a",), state_dim=0)
    assert not (tmp_path / "ds").exists()


def test_appending_with_other_state_names_raises(tmp_path):
    root = tmp_path / "ds"
    _write(root, episodes=((2, "a"),), state_dim=3)  # default names state_0..2
    with pytest.raises(ValueError, match="features"):
        _state_writer(root)
    with _state_writer(tmp_path / "named") as writer:
        writer.add_frame(np.zeros(SHAPE, np.uint8), np.zeros(8), "t", state=np.zeros(3))
        writer.save_episode()
    with pytest.raises(ValueError, match="features"):
        _state_writer(tmp_path / "named", state_names=("panda_joint1", "panda_joint2", "x"))
    with pytest.raises(ValueError, match="features"):
        _state_writer(tmp_path / "named", state_names=None)
    assert LeRobotDataset(root).num_episodes == LeRobotDataset(tmp_path / "named").num_episodes


def test_episode_states_read_without_images(tmp_path):
    written = _write(tmp_path / "ds", state_dim=4)
    ds = LeRobotDataset(tmp_path / "ds")
    for ep, frames in ((0, range(0, 5)), (1, range(5, 8))):
        states = ds.episode_states(ep)
        assert states.dtype == np.float32 and states.shape == (len(frames), 4)
        np.testing.assert_allclose(states, np.stack([written[i][3] for i in frames]),
                                   rtol=1e-6)
    ds[0]  # episode 0 now cached: same rows from the cache
    np.testing.assert_array_equal(ds.episode_states(0), np.stack([ds[i]["state"]
                                                                  for i in range(5)]))
    with pytest.raises(IndexError):
        ds.episode_states(2)
    _write(tmp_path / "nostate")
    with pytest.raises(DatasetError, match="no observation.state feature"):
        LeRobotDataset(tmp_path / "nostate").episode_states(0)
