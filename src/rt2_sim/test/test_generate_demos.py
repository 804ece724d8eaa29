"""Expert demonstrations written in the LeRobot format and read back (rt2_sim.generate_demos)."""

from __future__ import annotations

import numpy as np
import pytest

from rt2_policy.data.lerobot_dataset import LeRobotDataset
from rt2_sim.generate_demos import generate
from rt2_sim.tasks import sample_episode


def test_generate_writes_successful_episodes(tmp_path):
    summary = generate(str(tmp_path / "demos"), episodes=2, seed=5, families=("pick", "push"),
                       workers=1, noise=0.0, progress=False)
    assert summary["written"] == 2 and summary["success_rate"] == {"pick": 1.0, "push": 1.0}
    ds = LeRobotDataset(tmp_path / "demos")
    assert ds.num_episodes == 2 and len(ds) == summary["frames"]
    first = ds[0]
    assert first["image"].shape == (224, 224, 3) and first["image"].dtype == np.uint8
    assert first["task"] == sample_episode(5, "seen", "pick").task.instruction
    actions = ds.episode_actions(0)
    assert actions.shape[1] == 8 and actions[-1, 0] == 1.0 and np.all(actions[:-1, 0] == 0.0)
    assert set(ds.stats) >= {"action"}
    # the instructed target's image position, on the target's colour in the frame
    from rt2_policy.data.lerobot_dataset import TARGET_POINT_KEY
    from rt2_sim.scene import PALETTE

    spec = sample_episode(5, "seen", "pick")
    x, y = first[TARGET_POINT_KEY]
    assert 0 <= x <= 255 and 0 <= y <= 255
    pixel = first["image"][int((y + 0.5) / 256 * 224), int((x + 0.5) / 256 * 224)] / 255.0
    nearest = min(PALETTE, key=lambda entry: np.abs(np.array(entry[1]) - pixel).sum())[0]
    assert nearest == spec.object(spec.task.target).colour, (pixel, nearest)


def test_generate_with_a_policy_writes_every_dagger_episode(tmp_path):
    """DAgger collection: a (random-weight) VLA drives, failed episodes are kept, every frame
    carries the expert's label."""
    from rt2_policy.tiny_model import build_tiny_vla

    model = build_tiny_vla(tmp_path / "vla", seed=0)
    summary = generate(str(tmp_path / "dagger"), episodes=2, seed=5, families=("pick", "push"),
                       workers=1, noise=0.0, progress=False, policy=str(model),
                       expert_share=0.0, max_steps=4)
    assert summary["written"] == 2 and summary["frames"] == 8
    assert summary["success_rate"] == {"pick": 0.0, "push": 0.0}
    assert summary["release_at_waypoint"] is True  # the node's default gate drove
    ds = LeRobotDataset(tmp_path / "dagger")
    assert ds.num_episodes == 2 and len(ds) == 8
    actions = ds.episode_actions(0)
    assert actions.shape == (4, 8) and np.all(actions[:, 0] == 0.0)
    assert np.all(actions[:, 7] < 0.5)  # the expert's label: open while approaching


@pytest.mark.parametrize("release", [True, False])
def test_dagger_driver_is_the_deployed_policy_reset_every_episode(monkeypatch, release):
    """The DAgger driver is built like the policy node's (make_policy with the release gate
    unless told otherwise) and reset before each episode, so per-episode state (the gate's
    grasp, the grasp memory) never leaks from one episode into the next."""
    import rt2_policy.policy_factory as factory
    import rt2_sim.generate_demos as generate_demos
    from rt2_policy.scripted_policy import ScriptedPolicy

    made, events = [], []

    class Recording(ScriptedPolicy):
        def reset(self):
            events.append("reset")
            super().reset()

        def infer(self, observation):
            assert observation.gripper_state is not None and observation.tcp_position is not None
            events.append("infer")
            return super().infer(observation)

    def fake_make_policy(backend, **kwargs):
        made.append((backend, kwargs))
        return Recording(["0 128 128 128 128 128 128 0"])

    monkeypatch.setattr(factory, "make_policy", fake_make_policy)
    monkeypatch.setattr(generate_demos, "_DRIVER", None)
    jobs = list(generate_demos._jobs(5, 2, ["pick"], 0.0, 0.0, 5.0, 2, policy="model-dir",
                                     expert_share=0.0, release_at_waypoint=release))
    for job in jobs:
        generate_demos._worker(job)
    assert made == [("local", {"model_path": "model-dir", "num_threads": 1,
                               "release_at_waypoint": release})]
    assert events == ["reset", "infer", "infer"] * 2


def test_two_object_tasks_record_the_reference_point(tmp_path):
    """Place (and move near) frames carry where the reference object is (the container here;
    :func:`rt2_sim.expert.reference_point`, checked against the segmentation in test_expert);
    single-object tasks carry (-1, -1)."""
    from rt2_policy.data.lerobot_dataset import GOAL_POSITION_KEY, REFERENCE_POINT_KEY
    from rt2_sim.expert import reference_point
    from rt2_sim.simulation import ArmSimulation
    from rt2_sim.tasks import task_scene_config

    summary = generate(str(tmp_path / "demos"), episodes=2, seed=7, families=("place", "push"),
                       workers=1, noise=0.0, progress=False)
    assert summary["written"] == 2
    ds = LeRobotDataset(tmp_path / "demos")
    assert REFERENCE_POINT_KEY in ds.extra_keys
    place = sample_episode(7, "seen", "place")
    first = ds[0]
    assert first["task"] == place.task.instruction
    with ArmSimulation(task_scene_config()) as sim:
        sim.reset_episode(place)
        sim.step(0.2)  # as rollout() does before the first frame
        expected = reference_point(sim, place)
    assert np.all(expected >= 0)
    np.testing.assert_allclose(first[REFERENCE_POINT_KEY], expected, atol=1.0)
    push = ds[ds.episode_frames(1)[0]]
    assert push["task"] == sample_episode(8, "seen", "push").task.instruction
    assert push[REFERENCE_POINT_KEY].tolist() == [-1.0, -1.0]
    # every frame records where the expert heads the tcp (metres, panda_link0)
    assert GOAL_POSITION_KEY in ds.extra_keys
    goals = np.array([ds[i][GOAL_POSITION_KEY] for i in range(len(ds))])
    assert goals.shape == (len(ds), 3) and np.all(np.isfinite(goals))
    assert np.all((goals[:, 0] > 0.1) & (goals[:, 0] < 0.9) & (goals[:, 2] > -0.05))


def test_state_is_named_by_the_simulation_joints_in_info_json(tmp_path):
    """observation.state's info.json names are the sim's joints in ``joint_positions()`` order
    (7 arm joints in rad, then 2 finger joints in m): the recorder's PANDA_STATE_JOINTS."""
    import json

    from rt2_policy.data.recorder import PANDA_STATE_JOINTS
    from rt2_sim.scene import FINGER_OPEN_POSITION
    from rt2_sim.simulation import ArmSimulation
    from rt2_sim.tasks import task_scene_config

    summary = generate(str(tmp_path / "demos"), episodes=1, seed=5, families=("pick",),
                       workers=1, noise=0.0, progress=False)
    assert summary["written"] == 1
    info = json.loads((tmp_path / "demos/meta/info.json").read_text())
    names = info["features"]["observation.state"]["names"]
    assert names == list(PANDA_STATE_JOINTS)
    assert info["features"]["observation.state"]["shape"] == [9]
    ds = LeRobotDataset(tmp_path / "demos")
    assert ds.features["observation.state"]["names"] == names
    spec = sample_episode(5, "seen", "pick")
    with ArmSimulation(task_scene_config()) as sim:
        assert list(sim.joint_names) == names
        sim.reset_episode(spec)
        sim.step(0.2)  # as rollout() does before the first frame
        expected = sim.joint_positions()
    state = ds[0]["state"]
    np.testing.assert_allclose(state, expected, atol=1e-5)
    fingers = [names.index("panda_finger_joint1"), names.index("panda_finger_joint2")]
    np.testing.assert_allclose(state[fingers], FINGER_OPEN_POSITION, atol=2e-3)  # open, m
