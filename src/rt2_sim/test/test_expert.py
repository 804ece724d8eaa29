"""The scripted expert solves every task family on every split (rt2_sim.expert)."""

from __future__ import annotations

import numpy as np
import pytest

from rt2_policy.action_tokenizer import ActionBounds
from rt2_sim.expert import CARRY_BAND, CARRY_HEIGHT, MAX_STEP, ScriptedExpert, rollout
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


@pytest.mark.parametrize("family", ["move_near", "place"])
def test_the_expert_never_lowers_a_held_object(sim, family):
    # A descent while holding makes "lower" and "lift" labels share states (the frames of the
    # lift at the pick-up spot and of a descent to release look alike): the object is let go
    # at the carrying height instead. Closed-gripper actions may only correct the DART noise
    # (6 mm per step), never step down (the old descent: 2.5 cm per step).
    for seed in range(6):
        run = rollout(sim, sample_episode(seed, "seen", family), render=False, noise=0.006,
                      seed=seed)
        assert run.success, (family, seed)
        held = [a for a in run.actions if a[7] >= 0.5 and a[0] == 0.0]
        assert len(held) >= 3, (family, seed, len(held))  # lift and carry happened
        lowest = min(a[3] for a in held)
        assert lowest > -0.015, (family, seed, lowest)


@pytest.mark.parametrize("family", ["move_near", "place"])
def test_relabelling_a_held_object_above_the_carrying_height_carries_it_level(sim, family):
    # DAgger: a policy that lifted the object higher than the expert would (measured: 13-18 cm)
    # must be told to carry it level towards the destination, not to lower it to the carrying
    # height first; "down while holding" labels taught a model to alternate +4.8 / -4.8 cm.
    spec = sample_episode(5, "seen", family)
    inner, states, reached = [], [], []  # (tcp height, holding) per driven step

    def driver(image, text, joints):  # the expert's own moves, but lifting on to 18 cm
        if not inner:
            inner.append(ScriptedExpert(sim, spec, give_up=False))
        action = inner[0].act().copy()
        tcp_z = sim.ee_pose()[0][2]
        held = sim.gripper_command > 0.5 and sim.finger_contacts(spec.task.target) == 2
        states.append((tcp_z, held))
        reached.append(held and tcp_z >= 0.18)
        if held and not any(reached):
            action[1:4] = [0.0, 0.0, MAX_STEP]
        return action

    run = rollout(sim, spec, max_steps=60, driver=driver)
    high = [run.actions[i] for i, (z, held) in enumerate(states)
            if held and z > CARRY_HEIGHT + CARRY_BAND + 0.01 and run.actions[i][7] >= 0.5]
    assert len(high) >= 2, len(high)  # the driver did carry the object up there
    assert min(a[3] for a in high) > -0.005, [round(a[3], 3) for a in high]
    assert max(np.linalg.norm(a[1:3]) for a in high) > 0.02  # and the label moves it sideways
    assert run.success, (family, run.steps)


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
    run = rollout(sim, spec, max_steps=40, driver=lambda image, text, joints: up_and_closed)
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
    mixed = rollout(sim, spec, driver=lambda image, text, joints: np.zeros(8), expert_share=1.0)
    assert mixed.success and mixed.steps == ref.steps
    np.testing.assert_allclose(np.array(mixed.actions), np.array(ref.actions))


def test_rollout_rejects_a_bad_driver_or_share(sim):
    spec = sample_episode(2, "seen", "pick")
    with pytest.raises(ValueError, match="expert_share"):
        rollout(sim, spec, driver=lambda image, text, joints: np.zeros(8), expert_share=1.5)
    with pytest.raises(ValueError, match="shape"):
        rollout(sim, spec, max_steps=2, driver=lambda image, text, joints: np.zeros(3))


def _close_on_target(sim, spec, height):
    """Put the tcp ``height`` metres above the target's centre and close the gripper there."""
    sim.reset_episode(spec)
    sim.step(0.2)
    target = sim.object_positions()[spec.task.target] - sim.base_pose()[0]
    assert sim.pose_tcp(target + np.array([0.0, 0.0, height]))
    sim.servo.reset(sim.joint_positions()[:7])  # hold the new pose
    sim.command_gripper(1.0)
    sim.step(0.6)


@pytest.mark.parametrize("family", ["pick", "place"])
def test_relabelling_a_grasp_short_of_the_descent_says_lift(sim, family):
    # A policy closed the gripper 1.5 cm above the descent waypoint (outside its 7 mm
    # tolerance) but around the target: the label must be to carry on upwards, closed, not
    # to open and descend again (which taught the models to close and then freeze).
    spec = sample_episode(11, "seen", family)
    _close_on_target(sim, spec, 0.02)
    assert sim.finger_contacts(spec.task.target) == 2
    label = ScriptedExpert(sim, spec, give_up=False).act()
    assert label[7] == pytest.approx(1.0, abs=0.01)
    assert label[3] > 0.005
    # The expert driving its own plan keeps its waypoint order (demonstrations unchanged).
    assert ScriptedExpert(sim, spec).act()[7] < 0.01


def test_relabelling_an_empty_grasp_says_open(sim):
    # Closed far from the target: nothing is held, so the label opens the gripper.
    spec = sample_episode(11, "seen", "pick")
    _close_on_target(sim, spec, 0.12)
    assert sim.finger_contacts(spec.task.target) == 0
    assert ScriptedExpert(sim, spec, give_up=False).act()[7] < 0.01


def test_finger_contacts_rejects_an_unknown_object(sim):
    with pytest.raises(KeyError, match="object"):
        sim.finger_contacts("no such object")


@pytest.mark.parametrize("family", ["pick", "move_near"])
def test_a_grasp_is_held_until_the_fingers_close_then_lifted(sim, family):
    # The close action is repeated only while the fingers are still closing: once they grip,
    # the next label lifts. A fixed 3-step hold gave two frames showing the same closed grasp
    # with "stay" labels and then one with "lift": a policy that cannot count the steps it
    # has held learns to stay (measured: it closed on the object, then froze).
    run = rollout(sim, sample_episode(5, "seen", family), render=False)
    assert run.success
    gripper = np.array([a[7] for a in run.actions])
    first_closed = int(np.argmax(gripper > 0.5))
    assert run.actions[first_closed + 1][3] > 0.02  # the step after closing already lifts
    closed_fingers = np.array([s[7:].sum() for s in run.states]) < 0.06
    for k in range(first_closed + 1, len(run.actions)):  # every gripping frame moves on
        if closed_fingers[k] and gripper[k] > 0.5 and not run.actions[k][0]:
            assert np.abs(run.actions[k][1:4]).max() > 0.005, k


@pytest.mark.parametrize("family", ["move_near", "place", "pick"])
def test_reference_point_lies_on_the_reference_object(sim, family):
    """The reference point (move near: the object named second; place: the container) falls
    on that object in the camera frame, per MuJoCo's segmentation; tasks without a reference
    give (-1, -1)."""
    from rt2_sim.expert import reference_point, target_point
    from rt2_sim.patch_labels import CLASSES, PixelClasses

    spec = sample_episode(3, "seen", family)
    sim.reset_episode(spec)
    sim.step(0.2)
    point = reference_point(sim, spec)
    if not spec.task.reference:
        assert point.tolist() == [-1.0, -1.0]
        return
    classes = PixelClasses(sim)
    try:
        labels = classes()
    finally:
        classes.close()
    height, width = labels.shape
    x, y = point
    label = labels[int((y + 0.5) / 256 * height), int((x + 0.5) / 256 * width)]
    assert CLASSES[label] == spec.object(spec.task.reference).colour
    assert np.abs(point - target_point(sim, spec)).max() > 10  # not the target's point


@pytest.mark.parametrize("family", TASK_FAMILIES)
def test_each_action_steps_towards_the_recorded_goal_position(sim, family):
    """``Rollout.goal_positions`` (the waypoint plans' label) is where each action heads the
    tcp: the action's translation is ``goal - tcp``, shortened to the waypoint's step limit
    (4.8 cm, 2.5 cm on descents and pushes), and the goal lies on the task's objects' path."""
    from rt2_policy.proprioception import panda_tcp_position

    run = rollout(sim, sample_episode(3, "seen", family), render=False)
    assert run.success and len(run.goal_positions) == run.steps
    for action, goal, joints in zip(run.actions, run.goal_positions, run.states, strict=True):
        assert goal.shape == (3,) and goal.dtype == np.float32
        delta = goal - panda_tcp_position(joints[:7])
        step = np.asarray(action[1:4])
        if action[7] >= 0.5 and np.linalg.norm(step) < 0.005 and delta[2] > 0.03:
            continue  # the grasp settling: stays put, its goal is the lift point (next test)
        if np.linalg.norm(delta) <= 0.02:  # within every limit: the whole step
            np.testing.assert_allclose(step, delta, atol=0.002)
        else:  # the step goes the goal's way
            assert np.dot(step, delta) > 0.9 * np.linalg.norm(step) * np.linalg.norm(delta)
    # terminate: no goal beyond where the tcp is
    np.testing.assert_allclose(run.goal_positions[-1], panda_tcp_position(run.states[-1][:7]),
                               atol=0.002)
    assert len({tuple(np.round(g, 3)) for g in run.goal_positions}) >= 3  # several waypoints


def test_no_waypoint_label_holds_a_grasped_object_at_the_table(sim):
    """While the fingers hold the target, the recorded goal (waypoint plans' label) is never
    where the tcp already is at grasp height: the grasp's settling steps name the lift point
    (README, "Train -> Status", item 19). Some settling steps are so labelled, with an action
    that stays put (in about one grasp of five the fingers settle at once and there is none)."""
    from rt2_policy.proprioception import gripper_state, holds_object, panda_tcp_position
    from rt2_sim.scene import FINGER_OPEN_POSITION

    relabelled = 0
    for family in ("pick", "move_near", "place"):
        for seed in range(4):
            run = rollout(sim, sample_episode(seed, "seen", family), render=False)
            assert run.success
            for action, goal, joints in zip(run.actions, run.goal_positions, run.states,
                                            strict=True):
                tcp = panda_tcp_position(joints[:7])
                holding = holds_object(gripper_state(joints[7:], FINGER_OPEN_POSITION))
                if action[0] < 0.5 and action[7] >= 0.5 and holding and tcp[2] < 0.06:
                    assert goal[2] > tcp[2] + 0.03, (family, seed, goal, tcp)
                    relabelled += np.linalg.norm(action[1:4]) < 0.005
    assert relabelled >= 1


def test_an_action_run_in_two_parts_moves_as_far_as_in_one():
    """``execute_action``'s ``start``/``stop`` split one control period (the observation lag of
    ``rt2_bringup.direct_rollout``): the parts keep the period's velocity, so they add up."""
    from rt2_policy.action_tokenizer import ActionTokenizer
    from rt2_policy.proprioception import panda_tcp_position
    from rt2_sim.expert import execute_action

    tokenizer = ActionTokenizer()
    action = tokenizer.decode(tokenizer.from_text("0 200 128 128 128 128 128 0"))  # +x, open
    moved = []
    for parts in ([(0.0, None)], [(0.0, 0.12), (0.12, None)]):
        with ArmSimulation(task_scene_config(image_width=32, image_height=32)) as s:
            s.reset_episode(sample_episode(EVAL_SEED_START, "seen", "push"))
            before = panda_tcp_position(s.joint_positions()[:7])
            for start, stop in parts:
                execute_action(s, action, 0.2, start=start, stop=stop)
            s.step(0.3)  # let the servo come to rest
            moved.append(panda_tcp_position(s.joint_positions()[:7]) - before)
    assert moved[0][0] > 0.01  # it moved along +x
    np.testing.assert_allclose(moved[1], moved[0], atol=1.5e-3)
    with ArmSimulation(task_scene_config(image_width=32, image_height=32)) as s:
        with pytest.raises(ValueError, match="expected 0 <= start <= stop <= period"):
            execute_action(s, action, 0.2, start=0.15, stop=0.1)
        with pytest.raises(ValueError, match="expected 0 <= start <= stop <= period"):
            execute_action(s, action, 0.2, stop=0.3)
