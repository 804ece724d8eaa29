"""Task families, splits and success checks (rt2_sim.tasks)."""

from __future__ import annotations

import numpy as np
import pytest

from rt2_sim.simulation import ArmSimulation
from rt2_sim.tasks import (
    EVAL_SEED_START,
    SEEN_BACKGROUNDS,
    SEEN_COLOURS,
    SEEN_SHAPES,
    SEEN_TEMPLATES,
    SPLITS,
    TASK_FAMILIES,
    UNSEEN_BACKGROUNDS,
    UNSEEN_COLOURS,
    UNSEEN_SHAPES,
    Task,
    check_success,
    instruction_vocabulary,
    sample_episode,
    task_scene_config,
)


@pytest.fixture(scope="module")
def sim():
    with ArmSimulation(task_scene_config()) as s:
        yield s


def test_task_json_round_trip():
    task = sample_episode(3, "seen", "place").task
    assert Task.from_json(task.to_json()) == task
    with pytest.raises(ValueError, match="task JSON"):
        Task.from_json('{"family": "pick"}')


@pytest.mark.parametrize("family", TASK_FAMILIES)
def test_sample_episode_is_deterministic_and_well_formed(family):
    a = sample_episode(11, "seen", family)
    b = sample_episode(11, "seen", family)
    assert a.task == b.task and np.array_equal(a.positions, b.positions)
    assert a.task.family == family and a.objects[0].name == a.task.target
    names = [o.name for o in a.objects]
    assert len(names) == len(set(names))
    assert a.task.target in a.task.instruction
    if family in ("move_near", "place"):
        assert a.task.reference in names and a.task.reference in a.task.instruction
    if family == "place":
        assert a.object(a.task.reference).kind == "container"
    if family == "push":
        assert a.task.direction in ("left", "right", "forward")


def test_splits_hold_out_what_they_say():
    seen_words = set()
    for seed in range(200):
        spec = sample_episode(seed, "seen")
        assert spec.background in SEEN_BACKGROUNDS
        for obj in spec.objects:
            if obj.kind == "object":
                assert obj.colour in SEEN_COLOURS and obj.shape in SEEN_SHAPES
        seen_words.update(spec.task.instruction.split())
        unseen_obj = sample_episode(seed, "unseen_objects")
        target = unseen_obj.objects[0]
        assert target.colour in UNSEEN_COLOURS or target.shape in UNSEEN_SHAPES
        assert sample_episode(seed, "unseen_backgrounds").background in UNSEEN_BACKGROUNDS
    unseen_verbs = {sample_episode(s, "unseen_instructions").task.instruction.split()[0]
                    for s in range(200)}
    seen_verbs = {t.split()[0] for ts in SEEN_TEMPLATES.values() for t in ts}
    assert not unseen_verbs & seen_verbs
    assert not set(UNSEEN_COLOURS) & seen_words and not set(UNSEEN_SHAPES) & seen_words
    vocabulary = set(instruction_vocabulary())
    assert seen_words <= vocabulary and unseen_verbs <= vocabulary
    assert not {"t", "r", "p", "d"} & vocabulary


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="split"):
        sample_episode(0, "nope")
    with pytest.raises(ValueError, match="family"):
        sample_episode(0, "seen", "fly")
    with pytest.raises(ValueError, match="seed"):
        sample_episode(-1)
    assert EVAL_SEED_START == 1_000_000 and set(SPLITS) >= {"seen", "unseen_objects"}


@pytest.mark.parametrize("split", SPLITS)
def test_reset_episode_lays_out_the_spec_and_success_is_false_at_start(sim, split):
    for family in TASK_FAMILIES:
        spec = sample_episode(5, split, family)
        info = sim.reset_episode(spec)
        assert set(info.object_names) == {o.name for o in spec.objects}
        sim.step(0.3)
        base = sim.base_pose()[0]
        for obj in spec.objects:
            moved = sim.object_positions()[obj.name] - base - spec.initial_position(obj.name)
            assert np.linalg.norm(moved[:2]) < 0.01, obj.name  # objects rest where placed
        assert not check_success(sim, spec)
        assert sim.episode is spec


def test_plain_reset_restores_the_default_scene(sim):
    sim.reset_episode(sample_episode(1, "unseen_objects", "pick"))
    info = sim.reset(4)
    assert info.object_names == ("red cube", "green cube", "blue cube", "yellow cube",
                                 "orange cube")
    assert sim.episode is None


def test_task_scene_renders_the_background(sim):
    sim.reset_episode(sample_episode(2, "seen", "pick"))
    a = sim.render()
    sim.reset_episode(sample_episode(2, "unseen_backgrounds", "pick"))
    b = sim.render()
    assert a.shape == b.shape == (224, 224, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5  # table colour changed
