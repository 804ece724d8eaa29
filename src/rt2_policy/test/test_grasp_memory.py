"""Episode memory of grasps (rt2_policy.grasp_memory)."""

import numpy as np
import pytest

from rt2_policy.action_tokenizer import ActionBounds, ActionTokenizer
from rt2_policy.contract import Observation
from rt2_policy.grasp_memory import GRASP_MEMORY_FRAMES, GraspMemory, GraspTracker, grasp_memory

OPEN, HOLD, EMPTY = 0.0, 0.4, 1.0  # open, closed on an object, closed on nothing
IMAGE = np.zeros((8, 8, 3), np.uint8)


@pytest.mark.parametrize("states, expected", [
    ([], []),
    ([OPEN, OPEN], [False, False]),
    ([OPEN, HOLD, HOLD, HOLD, OPEN], [False, False, False, True, True]),
    ([HOLD, HOLD, OPEN, HOLD, HOLD, OPEN], [False] * 6),  # interrupted runs do not add up
    ([EMPTY, EMPTY, EMPTY, EMPTY], [False] * 4),  # closed on nothing is not a grasp
    ([None, HOLD, HOLD, HOLD, None, OPEN], [False, False, False, True, True, True]),
    ([OPEN, 0.2, 0.9, 0.5, 0.95], [False, False, False, True, True]),  # HOLDING_STATE bounds
])
def test_grasp_memory_turns_on_after_three_holding_frames_and_stays_on(states, expected):
    assert GRASP_MEMORY_FRAMES == 3
    flags = grasp_memory(states)
    assert flags.dtype == bool and flags.tolist() == expected
    tracker = GraspTracker()
    assert [tracker.update(s) for s in states] == expected


def test_min_frames_and_reset():
    assert grasp_memory([OPEN, HOLD, OPEN], min_frames=1).tolist() == [False, True, True]
    assert not grasp_memory([HOLD] * 4, min_frames=5).any()
    tracker = GraspTracker(min_frames=2)
    assert [tracker.update(s) for s in (HOLD, HOLD, OPEN)] == [False, True, True]
    tracker.reset()
    assert tracker.grasped is False and tracker.update(HOLD) is False  # the run starts again
    assert tracker.update(HOLD) is True


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3", None])
def test_min_frames_is_checked(bad):
    with pytest.raises(ValueError, match=r"min_frames: expected an int >= 1 \(observations\), got"):
        GraspTracker(bad)
    with pytest.raises(ValueError, match="min_frames"):
        GraspMemory(_Recorder(), min_frames=bad)


class _Recorder:
    """A policy double recording what it was given."""

    def __init__(self):
        self.seen, self.resets, self.metadata = [], 0, {"model_id": "recorder"}

    def infer(self, observation):
        self.seen.append(observation)
        return ActionTokenizer(ActionBounds()).decode(np.array([0, 128, 128, 128, 128, 128, 128,
                                                                0]))

    def reset(self):
        self.resets += 1


def test_wrapper_fills_grasped_from_the_episode_and_forgets_it_on_reset():
    inner = _Recorder()
    policy = GraspMemory(inner)
    for state in (OPEN, HOLD, HOLD, HOLD, OPEN):
        policy.infer(Observation(IMAGE, "move the cube near the bowl", gripper_state=state))
    assert [o.grasped for o in inner.seen] == [False, False, False, True, True]
    assert [o.gripper_state for o in inner.seen] == [OPEN, HOLD, HOLD, HOLD, OPEN]
    policy.reset()
    assert inner.resets == 1
    policy.infer(Observation(IMAGE, "move the cube near the bowl", gripper_state=OPEN))
    assert inner.seen[-1].grasped is False
    assert policy.metadata == {"model_id": "recorder"}  # other attributes are the inner's


def test_wrapper_keeps_a_given_flag_and_passes_observations_without_gripper_state():
    inner = _Recorder()
    policy = GraspMemory(inner)
    given = Observation(IMAGE, "pick up the cube", gripper_state=HOLD, grasped=True)
    policy.infer(given)
    assert inner.seen[-1] is given
    bare = Observation(IMAGE, "pick up the cube")
    policy.infer(bare)
    assert inner.seen[-1] is bare and bare.grasped is None
    # the given observation's state still counted: two more holding frames make a grasp
    policy.infer(Observation(IMAGE, "pick up the cube", gripper_state=HOLD))
    assert inner.seen[-1].grasped is False  # the stateless frame did not break the run …
    policy.infer(Observation(IMAGE, "pick up the cube", gripper_state=HOLD))
    assert inner.seen[-1].grasped is True  # … it is not counted either


def test_observation_grasped_is_checked():
    assert Observation(IMAGE, "x").grasped is None
    assert Observation(IMAGE, "x", grasped=np.bool_(True)).grasped is True
    assert type(Observation(IMAGE, "x", grasped=np.bool_(False)).grasped) is bool
    for bad in (1, 0, "yes", 1.0):
        with pytest.raises(ValueError, match="grasped: expected None or a bool, got"):
            Observation(IMAGE, "x", grasped=bad)
