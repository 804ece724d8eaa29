"""The pure action/frame/instruction pairing of the recorder (rt2_policy.data.recorder)."""

from __future__ import annotations

import numpy as np
import pytest

from rt2_policy.data.lerobot_dataset import LeRobotDataset, LeRobotDatasetWriter
from rt2_policy.data.recorder import (
    PANDA_STATE_JOINTS,
    ActionSample,
    EpisodePairer,
    RecorderConfig,
    StatusSample,
    write_episode,
)


def _img(value, shape=(8, 10, 3)):
    return np.full(shape, value, dtype=np.uint8)


def _act(stamp, ep="e1", step=0, terminate=False, dx=0.01, latency=0.0):
    action = np.array([1.0 if terminate else 0.0, dx, 0, 0, 0, 0, 0, 0.5])
    return ActionSample(stamp, ep, step, action, latency)


def test_action_pairs_with_the_newest_frame_not_after_its_stamp():
    p = EpisodePairer()
    p.add_instruction(0.0, "pick up the red cube")
    for k in range(5):
        p.add_image(1.0 + 0.1 * k, _img(k))
    p.add_action(_act(1.25, step=0))   # frames at 1.2 (2) and 1.3 (3): takes 1.2
    p.add_action(_act(1.3, step=1))    # exact stamp match: 1.3
    closed = p.add_action(_act(1.45, step=2, terminate=True))
    assert len(closed) == 1
    ep = closed[0]
    assert ep.task == "pick up the red cube" and ep.terminated and ep.succeeded
    assert [int(s.image[0, 0, 0]) for s in ep.steps] == [2, 3, 4]
    assert [s.image_stamp for s in ep.steps] == pytest.approx([1.2, 1.3, 1.4])
    np.testing.assert_allclose(ep.timestamps(), [0.0, 0.05, 0.2])
    assert ep.steps[-1].action[0] == 1.0
    assert p.open_episode_id is None


def test_out_of_order_frames_and_inference_latency():
    p = EpisodePairer(RecorderConfig(subtract_inference_latency=True))
    p.add_instruction(0.0, "t")
    p.add_image(2.0, _img(20))
    p.add_image(1.5, _img(10))      # arrives late but is older: kept in stamp order
    p.add_action(_act(2.05, latency=0.5))  # reference 1.55: frame 1.5
    ep = p.flush()[0]
    assert int(ep.steps[0].image[0, 0, 0]) == 10


@pytest.mark.parametrize(("stamp", "latency", "compensate", "expected"), [
    (1.0, 0.04, True, 10),    # a frame has the action's exact stamp: taken as it is
    (1.08, 0.04, True, 10),   # publication stamp: frame before 1.08 - 0.04 = 1.04
    (1.08, 0.04, False, 11),  # no compensation: frame before 1.08
    (1.05, 0.0, True, 11),
])
def test_exact_stamp_first_then_latency_compensation(stamp, latency, compensate, expected):
    p = EpisodePairer(RecorderConfig(subtract_inference_latency=compensate))
    p.add_instruction(0.0, "t")
    p.add_image(1.0, _img(10))
    p.add_image(1.05, _img(11))
    p.add_action(_act(stamp, latency=latency))
    (ep,) = p.flush()
    assert int(ep.steps[0].image[0, 0, 0]) == expected


def test_stale_missing_and_bad_inputs_are_dropped_and_counted():
    p = EpisodePairer(RecorderConfig(max_frame_age=0.2))
    p.add_instruction(0.0, "t")
    p.add_action(_act(0.5, step=0))                 # no frame yet
    p.add_image(1.0, _img(1))
    p.add_action(_act(1.5, step=1))                 # frame 0.5 s old
    p.add_action(ActionSample(1.1, "e1", 2, np.array([0, np.nan, 0, 0, 0, 0, 0, 0])))
    p.add_image(1.6, lambda: (_ for _ in ()).throw(ValueError("bad encoding")))
    p.add_action(_act(1.65, step=3))                # frame decode fails
    p.add_action(_act(1.7, step=4))                 # ok (frame 1.6 still fails) -> bad frame
    p.add_image(1.8, _img(5))
    p.add_action(_act(1.85, step=5))
    c = p.counters
    assert (c.dropped_no_frame, c.dropped_stale_frame, c.dropped_bad_action,
            c.dropped_bad_frame, c.paired) == (1, 1, 1, 2, 1)
    (ep,) = p.flush()
    assert [s.step for s in ep.steps] == [5]


def test_episodes_split_by_id_and_status_gives_the_task_and_outcome():
    p = EpisodePairer()
    p.add_instruction(0.0, "from topic")
    p.add_status(StatusSample(0.0, "e1", "pick up the red cube", state=1))
    p.add_image(1.0, _img(1))
    assert p.add_action(_act(1.0, "e1")) == []
    closed = p.add_status(StatusSample(1.1, "e2", "push the blue ball", state=1))
    assert [(e.episode_id, e.task, e.outcome) for e in closed] == [
        ("e1", "pick up the red cube", "NONE")]
    p.add_action(_act(1.2, "e2"))
    p.add_action(_act(1.3, "e1"))  # late action of a closed episode: dropped
    assert p.counters.dropped_late_action == 1
    closed = p.add_status(StatusSample(1.4, "e2", "push the blue ball", state=3, outcome=2))
    assert [(e.episode_id, e.outcome, e.succeeded) for e in closed] == [
        ("e2", "TIMED_OUT", False)]
    p.add_action(_act(1.5, "e3"))
    closed = p.add_action(_act(1.6, "e4"))  # a new id closes e3; task from /rt2/instruction
    assert [(e.episode_id, e.task) for e in closed] == [("e3", "from topic")]


def test_filters_drop_untasked_short_and_unsuccessful_episodes():
    p = EpisodePairer(RecorderConfig(success_only=True, min_episode_length=2))
    p.add_image(1.0, _img(1))
    p.add_action(_act(1.0, "a"))
    assert p.flush() == [] and p.counters.episodes_dropped_no_task == 1
    p.add_instruction(1.0, "t")
    p.add_action(_act(1.1, "b", terminate=True))
    assert p.counters.episodes_dropped_short == 1
    p.add_action(_act(1.2, "c"))
    p.add_action(_act(1.3, "c", step=1))
    assert p.flush() == [] and p.counters.episodes_dropped_unsuccessful == 1
    p.add_action(_act(1.4, "d"))
    assert len(p.add_action(_act(1.5, "d", step=1, terminate=True))) == 1


def test_frames_are_resized_to_one_size_and_written_to_a_dataset(tmp_path):
    p = EpisodePairer(RecorderConfig(image_size=(6, 6)))
    p.add_instruction(0.0, "t")
    p.add_image(1.0, _img(7, (12, 12, 3)))
    p.add_action(_act(1.0))
    p.add_image(1.2, _img(9, (6, 8, 3)))
    (ep,) = p.add_action(_act(1.2, step=1, terminate=True))
    assert [s.image.shape for s in ep.steps] == [(6, 6, 3), (6, 6, 3)]
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=5, image_shape=(6, 6, 3))
    assert write_episode(writer, ep) == 0
    writer.finalize()
    ds = LeRobotDataset(tmp_path / "ds")
    assert len(ds) == 2 and ds[1]["timestamp"] == pytest.approx(0.2)
    assert int(ds[1]["image"][0, 0, 0]) == 9 and ds[1]["action"][0] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_frame_age": 0}, "max_frame_age"), ({"frame_buffer": 0.1}, "frame_buffer"),
     ({"min_episode_length": 0}, "min_episode_length"), ({"image_size": (0, 4)}, "image_size"),
     ({"max_state_age": -0.1}, r"max_state_age: expected a finite number >= 0 .*, got -0.1"),
     ({"max_state_age": float("inf")}, "max_state_age: expected"),
     ({"max_state_age": float("nan")}, "max_state_age: expected"),
     ({"max_state_age": "0.5"}, "max_state_age: expected")],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RecorderConfig(**kwargs)


# -- observation.state from joint states -----------------------------------------------------
ARM = [f"panda_joint{i}" for i in range(1, 8)]
FINGERS = ["panda_finger_joint1", "panda_finger_joint2"]


def _state_pairer(**kwargs):
    p = EpisodePairer(RecorderConfig(state_joints=PANDA_STATE_JOINTS, **kwargs))
    p.add_instruction(0.0, "t")
    return p


def test_state_merges_split_joint_states_at_the_frame_stamp_and_is_written(tmp_path):
    assert PANDA_STATE_JOINTS == (*ARM, *FINGERS)  # rt2_sim's layout: fingers at 7 8
    p = _state_pairer()
    q1 = [0.1 * (i + 1) for i in range(7)]
    q2 = [-0.2 * (i + 1) for i in range(7)]
    # the arm's publisher, names in another order plus a joint that is not recorded
    p.add_joint_state(0.9, ["other_joint", *reversed(ARM)], [9.0, *reversed(q1)])
    p.add_joint_state(0.95, FINGERS, [0.04, 0.039])      # the hand's publisher
    p.add_image(1.0, _img(1))
    p.add_joint_state(1.15, ARM, q2)
    p.add_joint_state(1.3, FINGERS, [0.01, 0.011])       # after frame 1.2: not for it
    p.add_image(1.2, _img(2))
    p.add_joint_state(1.25, ARM, [5.0] * 7)              # arrives late, still after frame 1.2
    p.add_action(_act(1.0, step=0))
    (ep,) = p.add_action(_act(1.2, step=1, terminate=True))
    expected = [[*q1, 0.04, 0.039], [*q2, 0.04, 0.039]]
    np.testing.assert_allclose([s.state for s in ep.steps], expected, rtol=1e-6)
    assert all(s.state.dtype == np.float32 for s in ep.steps)
    assert p.counters.joint_states == 5 and p.counters.dropped_no_state == 0

    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=5, image_shape=(8, 10, 3), state_dim=9)
    write_episode(writer, ep)
    writer.finalize()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.has_state and len(ds) == 2
    np.testing.assert_allclose([ds[0]["state"], ds[1]["state"]], expected, rtol=1e-6)


def test_state_follows_the_configured_joint_order():
    p = EpisodePairer(RecorderConfig(state_joints=("panda_finger_joint2", "panda_joint3")))
    p.add_instruction(0.0, "t")
    p.add_joint_state(0.5, ["panda_joint3", "panda_finger_joint2", "panda_joint1"],
                      [0.3, 0.02, 0.1])
    p.add_image(1.0, _img(1))
    (ep,) = p.add_action(_act(1.0, terminate=True))
    np.testing.assert_allclose(ep.steps[0].state, [0.02, 0.3], rtol=1e-6)


def test_step_without_every_joint_is_not_recorded():
    p = _state_pairer()
    p.add_joint_state(0.9, ARM, [0.0] * 7)                # fresh (< max_state_age) for 1.1
    p.add_joint_state(0.6, FINGERS, [0.04, np.nan])       # NaN: not a position
    p.add_joint_state(0.6, FINGERS, [0.04])               # lengths differ: ignored
    p.add_image(1.0, _img(1))
    p.add_action(_act(1.0, step=0))                       # panda_finger_joint2 never seen
    assert p.counters.dropped_no_state == 1 and p.counters.joint_states_ignored == 1
    assert p.last_missing_joints == ("panda_finger_joint2",)
    p.add_joint_state(1.05, FINGERS, [0.03, 0.03])        # only after frame 1.0
    p.add_action(_act(1.02, step=1))
    assert p.counters.dropped_no_state == 2 and p.counters.paired == 0
    p.add_image(1.1, _img(2))
    p.add_action(_act(1.1, step=2))
    (ep,) = p.flush()
    assert [s.step for s in ep.steps] == [2]
    np.testing.assert_allclose(ep.steps[0].state, [0.0] * 7 + [0.03, 0.03])


def test_old_joint_history_is_trimmed_without_returning_a_later_state():
    p = _state_pairer(frame_buffer=2.0)
    for k in range(101):  # 10 s at 10 Hz, every joint = the time
        p.add_joint_state(k / 10, PANDA_STATE_JOINTS, [k / 10] * 9)
    assert len(p._joint_stamps["panda_joint1"]) <= 22
    state, missing = p.state_at(9.05)
    np.testing.assert_allclose(state, [9.0] * 9, rtol=1e-6)
    assert p.state_at(8.0)[0] is not None                 # the horizon sample is kept
    assert p.state_at(1.0) == (None, tuple(PANDA_STATE_JOINTS))


def test_without_state_joints_no_state_is_recorded():
    p = EpisodePairer()
    p.add_instruction(0.0, "t")
    p.add_joint_state(0.5, PANDA_STATE_JOINTS, [0.0] * 9)
    p.add_image(1.0, _img(1))
    (ep,) = p.add_action(_act(1.0, terminate=True))
    assert ep.steps[0].state is None and p.state_at(1.0) == (None, ())


@pytest.mark.parametrize("joints", ["panda_joint1", ("a", "a"), ("a", "")])
def test_state_joints_validation(joints):
    with pytest.raises(ValueError, match="state_joints"):
        RecorderConfig(state_joints=joints)


def test_state_older_than_max_state_age_is_dropped_and_counted():
    """A dead joint-state publisher: its last position is not used forever."""
    p = _state_pairer(max_state_age=0.3)
    assert RecorderConfig().max_state_age == 0.5  # the default
    p.add_joint_state(0.9, ARM, [0.1] * 7)
    p.add_joint_state(0.95, FINGERS, [0.04, 0.04])
    p.add_image(1.0, _img(1))
    p.add_action(_act(1.0, step=0))                       # ages 0.1 and 0.05 s: kept
    p.add_image(1.2, _img(2))
    p.add_joint_state(1.15, ARM, [0.2] * 7)
    p.add_action(_act(1.2, step=1))                       # 0.25 s old fingers: still fresh
    p.add_image(1.4, _img(3))
    p.add_joint_state(1.35, ARM, [0.3] * 7)               # the hand's publisher died at 0.95
    p.add_action(_act(1.4, step=2))                       # fingers 0.45 s old: dropped
    c = p.counters
    assert (c.paired, c.dropped_stale_state, c.dropped_no_state) == (2, 1, 0)
    assert [name for name, _ in p.last_stale_joints] == FINGERS
    assert [age for _, age in p.last_stale_joints] == pytest.approx([0.45, 0.45])
    state, unusable = p.state_at(1.4)
    assert state is None and unusable == tuple(FINGERS)
    p.add_joint_state(1.5, ARM, [0.4] * 7)                # arm only, from now on
    p.add_image(1.6, _img(4))
    p.add_action(_act(1.6, step=3))
    assert p.counters.dropped_stale_state == 2
    assert [name for name, _ in p.last_stale_joints] == FINGERS
    assert [age for _, age in p.last_stale_joints] == pytest.approx([0.65, 0.65])
    p.add_joint_state(1.7, FINGERS, [0.02, 0.02])         # the hand's publisher is back
    p.add_image(1.75, _img(5))
    (ep,) = p.add_action(_act(1.75, step=4, terminate=True))
    assert [s.step for s in ep.steps] == [0, 1, 4]
    np.testing.assert_allclose([s.state for s in ep.steps],
                               [[0.1] * 7 + [0.04, 0.04], [0.2] * 7 + [0.04, 0.04],
                                [0.4] * 7 + [0.02, 0.02]], rtol=1e-6)
    assert p.counters.dropped_stale_state == 2 and p.counters.paired == 3


def test_missing_joints_take_precedence_over_stale_ones():
    p = _state_pairer(max_state_age=0.1)
    p.add_joint_state(0.5, ARM, [0.0] * 7)                # stale at 1.0, fingers never sent
    p.add_image(1.0, _img(1))
    p.add_action(_act(1.0))
    c = p.counters
    assert (c.dropped_no_state, c.dropped_stale_state, c.paired) == (1, 0, 0)
    assert p.last_missing_joints == tuple(FINGERS) and p.last_stale_joints == ()


def test_max_state_age_zero_disables_the_limit():
    p = _state_pairer(max_state_age=0)
    p.add_joint_state(0.0, PANDA_STATE_JOINTS, [0.5] * 9)  # a minute before the frame
    p.add_image(60.0, _img(1))
    (ep,) = p.add_action(_act(60.0, terminate=True))
    np.testing.assert_allclose(ep.steps[0].state, [0.5] * 9)
    assert p.counters.dropped_stale_state == 0 and p.counters.paired == 1
    # the same stream with the default limit is dropped
    p = _state_pairer()
    p.add_joint_state(0.0, PANDA_STATE_JOINTS, [0.5] * 9)
    p.add_image(60.0, _img(1))
    p.add_action(_act(60.0, terminate=True))
    assert p.counters.dropped_stale_state == 1 and p.counters.paired == 0
    assert {name for name, _ in p.last_stale_joints} == set(PANDA_STATE_JOINTS)
