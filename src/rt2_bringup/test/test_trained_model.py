"""The trained embedded model that `make demo` and `make eval` use (src/rt2_policy/models).

It is part of the product, so it must be there: these tests fail, not skip, without it. They
check what the model card promises: size, files, the prompt layout it was trained with, and that
it solves seen tasks in closed loop (direct rollouts in the task simulator, greedy decoding, so
the outcome of a seed is fixed by the weights).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from rt2_bringup.demo import TRAINED_MODEL, default_model, trained_model_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / TRAINED_MODEL
#: Model files the card lists; training-only state (optimizer, grounding head) is not shipped.
FILES = {"config.json", "generation_config.json", "model.safetensors", "processor_config.json",
         "tokenizer.json", "tokenizer_config.json", "action_tokenizer_config.json", "README.md",
         "eval_summary.json"}
#: Seen-split evaluation episodes (seed, family) the shipped model solves in `make eval`'s
#: report; checked here by direct rollouts with the same scene and instruction.
SOLVED = ((1_000_004, "pick"), (1_000_012, "pick"), (1_000_015, "push"))


@pytest.fixture(scope="module")
def policy():
    import torch

    from rt2_policy.vla_policy import VLAPolicy

    torch.set_num_threads(1)
    return VLAPolicy.from_pretrained(MODEL)


def test_the_trained_model_is_shipped_small_and_is_the_default(monkeypatch):
    assert MODEL.is_dir(), f"{MODEL} is missing: the demo would fall back to random weights"
    assert {p.name for p in MODEL.iterdir()} == FILES
    size = sum(p.stat().st_size for p in MODEL.iterdir())
    assert size <= 60 * 2**20, f"{size / 2**20:.1f} MiB > 60 MiB"
    monkeypatch.delenv("RT2_MODEL", raising=False)
    monkeypatch.setenv("RT2_ROOT", str(ROOT))
    assert trained_model_dir() == MODEL and default_model() == MODEL


def test_the_model_reads_its_prompt_layout_gripper_state_and_tcp_position(policy):
    """Trained with the image after the text, the gripper state and the tcp position in every
    action prompt (``make train``): all are stored with it, and it refuses an observation
    without either rather than act on a prompt it never saw."""
    import numpy as np

    from rt2_policy.contract import Observation

    assert policy.image_position == "suffix" and policy.gripper_state and policy.tcp_position
    image = np.zeros((96, 96, 3), np.uint8)
    tcp = (0.307, 0.0, 0.487)  # the ready pose's tcp, m in panda_link0
    with pytest.raises(ValueError, match="gripper_state"):
        policy.infer(Observation(image, "pick up the red cube", tcp_position=tcp))
    with pytest.raises(ValueError, match="tcp_position"):
        policy.infer(Observation(image, "pick up the red cube", gripper_state=0.0))
    action = policy.infer(Observation(image, "pick up the red cube", gripper_state=0.0,
                                      tcp_position=tcp))
    assert "pick up the red cube, gripper 0, tcp 78 128 150? A:" in action.extra["prompt"]


def test_the_model_card_states_data_steps_mixture_and_results():
    card = (MODEL / "README.md").read_text()
    assert card.startswith("---\n") and "license: apache-2.0" in card
    for words in ("robot-fraction", "scripts/train_embedded.sh", "DAgger", "make eval"):
        assert words in card, words
    summary = json.loads((MODEL / "eval_summary.json").read_text())
    assert summary["episodes"] >= 200 and summary["complete"]
    for split, rate in summary["success_rate"].items():
        assert f"{100 * rate:.0f} %" in card, (split, rate)  # the card quotes the measured rates


@pytest.mark.parametrize(("seed", "family"), SOLVED)
def test_the_model_solves_seen_tasks_in_closed_loop(policy, seed, family):
    from rt2_policy.contract import Observation
    from rt2_policy.proprioception import gripper_state, panda_tcp_position
    from rt2_sim.expert import execute
    from rt2_sim.simulation import ArmSimulation
    from rt2_sim.tasks import check_success, sample_episode, task_scene_config

    with ArmSimulation(task_scene_config()) as sim:
        spec = sample_episode(seed, "seen", family)
        sim.reset_episode(spec)
        sim.step(0.2)  # let objects settle, as the expert rollouts do
        for _ in range(60):
            # the finger joints' closure and the arm's forward kinematics, as the policy node
            # reads them from /joint_states
            joints = sim.joint_positions()
            action = policy.infer(Observation(sim.render(), spec.task.instruction,
                                              gripper_state=gripper_state(joints[7:]),
                                              tcp_position=panda_tcp_position(joints[:7])))
            if action.terminate:
                break
            execute(sim, policy.action_tokenizer, action.values(), 0.2)
        assert check_success(sim, spec), spec.task.instruction
