"""The trainer's data sources (rt2_policy.training.sources): the grasp-memory view of robot
frames."""

from __future__ import annotations

import numpy as np
import pytest

from rt2_policy.data.lerobot_dataset import LeRobotDataset, LeRobotDatasetWriter
from rt2_policy.grasp_memory import grasp_memory
from rt2_policy.proprioception import gripper_state
from rt2_policy.training.sources import ConcatSequence, GraspMemoryFrames, robot_texts

SHAPE = (8, 8, 3)
OPEN, HOLD, EMPTY = 0.04, 0.024, 0.0  # one finger's position, metres (HOLD reads 0.4)
EPISODES = (("move the red cube near the bowl", [OPEN, HOLD, HOLD, HOLD, OPEN, OPEN]),
            ("push the ball left", [OPEN, EMPTY, EMPTY, EMPTY]),
            ("place the cube on the plate", [HOLD, HOLD, HOLD, OPEN]))
EXPECTED = [False, False, False, True, True, True, False, False, False, False,
            False, False, True, True]


def _write(root, episodes=EPISODES):
    writer = LeRobotDatasetWriter(root, fps=5.0, image_shape=SHAPE, state_dim=9)
    for task, fingers in episodes:
        for finger in fingers:
            state = np.array([0.1] * 7 + [finger, finger], np.float32)
            writer.add_frame(np.zeros(SHAPE, np.uint8), np.zeros(8, np.float32), task,
                             state=state)
        writer.save_episode()
    writer.finalize()
    return LeRobotDataset(root)


def test_flags_per_episode_from_a_lerobot_dataset(tmp_path):
    ds = _write(tmp_path / "ds")
    frames = GraspMemoryFrames(ds, (7, 8), 0.04)
    assert len(frames) == len(ds) == len(EXPECTED)
    assert frames.flags.tolist() == EXPECTED  # each episode starts afresh
    for i in (0, 3, 13):
        item = frames[i]
        assert item["grasped"] is EXPECTED[i] and item["task"] == ds[i]["task"]
        np.testing.assert_array_equal(item["state"], ds[i]["state"])
    # equal to grasp_memory over each episode's gripper states
    states = [gripper_state(ds[i]["state"][7:9], 0.04) for i in range(len(ds))]
    assert grasp_memory(states[:6]).tolist() == EXPECTED[:6]
    assert frames.num_episodes == 3 and frames.tasks == ds.tasks  # the dataset's attributes
    assert GraspMemoryFrames(ds, (7, 8), 0.04, min_frames=1).flags.tolist()[10:] == [True] * 4


def test_concatenated_datasets_and_in_memory_frames_agree(tmp_path):
    first, second = _write(tmp_path / "a"), _write(tmp_path / "b", EPISODES[1:])
    both = GraspMemoryFrames(ConcatSequence([first, second]), (7, 8), 0.04)
    assert both.flags.tolist() == EXPECTED + EXPECTED[6:]
    # frames in memory (no episode_states): grouped by their episode_index
    rows = [{**first[i], "state": first[i]["state"]} for i in range(len(first))]
    assert GraspMemoryFrames(rows, (7, 8), 0.04).flags.tolist() == EXPECTED
    renamed = [{"observation.state": r["state"], "episode_index": r["episode_index"]}
               for r in rows]
    assert GraspMemoryFrames(renamed, (7, 8), 0.04).flags.tolist() == EXPECTED
    # the task strings still come from the metadata
    assert robot_texts(both) == list(dict.fromkeys(t for t, _ in EPISODES))


def test_bad_states_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"frame 0: expected a 'state' for the grasp memory"):
        GraspMemoryFrames([{"image": None, "episode_index": 0}], (7, 8), 0.04)
    with pytest.raises(ValueError, match=r"episode 0: expected states with the finger joints at "
                                         r"\[9, 10\], got shape \(6, 9\)"):
        GraspMemoryFrames(_write(tmp_path / "ds"), (9, 10), 0.04)
