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


def test_a_driver_moves_the_arm_while_the_expert_labels_every_state(sim):
    """DAgger: the driver's action is executed, the expert's is recorded; a driver that never
    reaches the object keeps the label on the approach (gripper open), never the grasp."""
    spec = sample_episode(11, "seen", "pick")
    up_and_closed = np.array([1.0, 0.0, 0.0, 0.02, 0.0, 0.0, 0.0, 1.0])  # also says terminate
    sim.reset_episode(spec)
    start_z = sim.ee_pose()[0][2]
    run = rollout(sim, spec, max_steps=40, driver=lambda image, text: up_and_closed)
    actions = np.array(run.actions)
    assert run.steps == 40 and not run.terminated and not run.success
    assert len(run.images) == 40 and run.images[0].shape[2] == 3
    assert np.all(actions[:, 0] == 0.0)  # the driver's terminate is neither executed nor kept
    assert np.all(actions[:, 7] == actions[0, 7]) and actions[0, 7] < 0.5  # never "close"
    assert np.mean(actions[5:, 3]) < 0.0  # labels point back down, towards the object
    # the driver's action ran: the hand rose and the fingers closed
    assert sim.ee_pose()[0][2] > start_z + 0.1 and sim.gripper_command > 0.99


def test_an_expert_share_of_one_is_the_expert_rollout(sim):
    spec = sample_episode(4, "seen", "push")
    ref = rollout(sim, spec, render=True)
    mixed = rollout(sim, spec, driver=lambda image, text: np.zeros(8), expert_share=1.0)
    assert mixed.success and mixed.steps == ref.steps
    np.testing.assert_allclose(np.array(mixed.actions), np.array(ref.actions))


def test_rollout_rejects_a_bad_driver_or_share(sim):
    spec = sample_episode(2, "seen", "pick")
    with pytest.raises(ValueError, match="expert_share"):
        rollout(sim, spec, driver=lambda image, text: np.zeros(8), expert_share=1.5)
    with pytest.raises(ValueError, match="shape"):
        rollout(sim, spec, max_steps=2, driver=lambda image, text: np.zeros(3))
