"""The scripted expert solves every task family on every split (rt2_sim.expert)."""

from __future__ import annotations

import numpy as np
import pytest

from rt2_policy.action_tokenizer import ActionBounds
from rt2_sim.expert import ScriptedExpert, rollout
from rt2_sim.simulation import ArmSimulation
from rt2_sim.tasks import (
    EVAL_SEED_START,
    SPLITS,
    TASK_FAMILIES,
    check_success,
    sample_episode,
    task_scene_config,
)


@pytest.fixture(scope="module")
def sim():
    with ArmSimulation(task_scene_config()) as s:
        yield s


@pytest.mark.parametrize("family", TASK_FAMILIES)
def test_expert_succeeds_across_seeds(sim, family):
    for seed in range(4):
        spec = sample_episode(seed, "seen", family)
        run = rollout(sim, spec, render=False)
        assert run.success and run.terminated, (family, seed, spec.task.instruction)
        assert run.actions[-1][0] == 1.0 and all(a[0] == 0.0 for a in run.actions[:-1])
        assert check_success(sim, spec)


@pytest.mark.parametrize("split", SPLITS[1:])
def test_expert_succeeds_on_unseen_splits(sim, split):
    seed = EVAL_SEED_START + 3
    for family in TASK_FAMILIES:
        run = rollout(sim, sample_episode(seed, split, family), render=False)
        assert run.success, (split, family, seed)


def test_expert_actions_are_in_bounds_and_quantised(sim):
    bounds = ActionBounds()
    run = rollout(sim, sample_episode(7, "seen", "place"), render=True, noise=0.005, seed=1)
    actions = np.array(run.actions)
    assert actions.shape == (run.steps, 8)
    assert np.all(np.abs(actions[:, 1:4]) <= bounds.high[1:4] + 1e-9)
    assert set(np.unique(actions[:, 7])) <= {actions[:, 7].min(), actions[:, 7].max()}
    assert len(run.images) == run.steps and run.images[0].dtype == np.uint8
    assert run.success


def test_expert_terminates_only_when_successful(sim):
    spec = sample_episode(9, "seen", "pick")
    sim.reset_episode(spec)
    expert = ScriptedExpert(sim, spec)
    assert expert.act()[0] == 0.0  # nothing done yet: never terminate at the start
