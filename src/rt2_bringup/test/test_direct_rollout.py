"""Direct rollouts (``rt2_bringup.direct_rollout``, ``python -m rt2_bringup.evaluate --direct``):
an episode without ROS, its outcomes, and the harness's report in that mode."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from rt2_bringup.direct_rollout import run_direct_episode
from rt2_bringup.evaluation import EVAL_SEED_MIN, EpisodePlan, EpisodeRecord, load_report
from rt2_policy.policy_factory import make_policy

HOLD = "0 128 128 128 128 128 128 0"
STOP = "1 128 128 128 128 128 128 0"
UP = "0 128 128 255 128 128 128 0"  # Δz = the tokenizer's upper bound, gripper open
PLAN = EpisodePlan("seen", "push", 3, EVAL_SEED_MIN + 3)


def test_terminate_ends_the_episode_and_the_simulator_judges_it():
    policy = make_policy("scripted", scripted_actions=[HOLD, HOLD, STOP])
    record = run_direct_episode(policy, PLAN, max_steps=10, control_period=0.2, image_size=64)
    assert (record.outcome, record.terminated, record.steps) == ("SUCCEEDED", True, 3)
    assert record.success is False, "holding still cannot solve a push"
    assert record.duration_s == pytest.approx(0.6)  # simulated seconds: 3 steps of 0.2 s
    assert (record.split, record.family, record.index, record.seed) == (
        "seen", "push", 3, EVAL_SEED_MIN + 3)
    assert record.task["family"] == "push" and record.task["seed"] == PLAN.seed
    assert record.instruction == record.task["instruction"] and "push" in record.instruction
    assert record.details["success"] is False and record.details["family"] == "push"
    assert record.mean_inference_latency_ms is not None


class Recording:
    """A scripted policy that keeps the tcp position of each observation."""

    def __init__(self, actions):
        self.inner = make_policy("scripted", scripted_actions=actions)
        self.tcp: list[np.ndarray] = []

    def reset(self):
        self.inner.reset()

    def infer(self, observation):
        self.tcp.append(np.asarray(observation.tcp_position, float))
        return self.inner.infer(observation)


def test_the_step_limit_times_out_and_actions_move_the_arm():
    policy = Recording([UP])
    record = run_direct_episode(policy, PLAN, max_steps=4, control_period=0.2, image_size=64)
    assert (record.outcome, record.terminated, record.steps) == ("TIMED_OUT", False, 4)
    assert record.message == "step limit 4 reached"
    # each step is executed before the next observation: the tcp rises between any two
    rise = np.diff(np.array(policy.tcp)[:, 2])
    assert len(rise) == 3 and all(r > 0.005 for r in rise), rise


def test_an_observation_lag_takes_each_frame_before_the_motion_has_ended():
    rises = {}
    for lag in (0.0, 0.1):
        policy = Recording([UP, UP, UP, STOP])
        record = run_direct_episode(policy, PLAN, max_steps=10, control_period=0.2,
                                    image_size=64, observation_lag=lag)
        assert (record.outcome, record.steps) == ("SUCCEEDED", 4)
        rises[lag] = np.diff(np.array(policy.tcp)[:, 2])
    # the first frame after the first "up" is taken with only half of its motion done
    assert rises[0.1][0] < 0.75 * rises[0.0][0], rises
    # but no motion is lost: the rest runs while the model infers, before the next one
    assert abs(rises[0.1].sum() - rises[0.0][:2].sum() - rises[0.0][2] / 2) < 0.01, rises


@pytest.mark.parametrize("lag", [-0.01, 0.2, float("nan")])
def test_an_observation_lag_outside_the_control_period_is_refused(lag):
    with pytest.raises(ValueError, match=r"observation_lag: expected a number in \[0, 0.2\) s"):
        run_direct_episode(make_policy("scripted", scripted_actions=[HOLD]), PLAN, max_steps=2,
                           control_period=0.2, observation_lag=lag)


def test_a_policy_error_fails_the_episode_without_raising():
    class Broken:
        def reset(self):
            pass

        def infer(self, observation):
            raise RuntimeError("model exploded")

    record = run_direct_episode(Broken(), PLAN, max_steps=5, control_period=0.2, image_size=64)
    assert record.outcome == "ERROR" and record.success is False
    assert "policy error at step 0: model exploded" in record.message
    assert record.instruction and record.task["family"] == "push"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_steps": 0, "control_period": 0.2}, "max_steps: expected an int >= 1, got 0"),
    ({"max_steps": True, "control_period": 0.2}, "max_steps: expected an int >= 1"),
    ({"max_steps": 5, "control_period": 0.0}, "control_period: expected > 0 s, got 0.0"),
])
def test_bad_limits_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_direct_episode(make_policy("scripted", scripted_actions=[HOLD]), PLAN, **kwargs)


def test_evaluate_direct_writes_the_report_without_ros(tmp_path):
    out = tmp_path / "direct"
    # no ROS_DOMAIN_ID games needed: nothing joins DDS; keep discovery local all the same
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    cmd = [sys.executable, "-m", "rt2_bringup.evaluate", "--direct", "--backend", "scripted",
           "--scripted-actions", HOLD, STOP, "--splits", "seen", "--episodes", "2",
           "--image-size", "64", "--output", str(out), "--label", "direct-hold"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["success_rate"] == {"seen": 0.0}
    report = load_report(summary["report"])
    assert report["complete"] is True and report["config"]["loop"] == "direct"
    records = [EpisodeRecord.from_dict(e) for e in report["episodes"]]
    assert [(r.family, r.seed, r.outcome, r.steps) for r in records] == [
        ("pick", EVAL_SEED_MIN, "SUCCEEDED", 2), ("move_near", EVAL_SEED_MIN + 1, "SUCCEEDED", 2)]
    assert "direct rollouts" in (out / "results.md").read_text()
    assert not (out / "logs").exists()  # no node processes were started


def test_direct_workers_run_direct_too(tmp_path):
    from rt2_bringup import evaluate
    from rt2_bringup.evaluation import partition_plans, plan_episodes

    parser = evaluate.build_parser()
    args = parser.parse_args(["--direct", "--backend", "scripted", "--jobs", "2",
                              "--splits", "seen", "--episodes", "2"])
    plans = plan_episodes(["seen"], ["pick"], 2, EVAL_SEED_MIN)
    config = {"splits": ["seen"], "families": ["pick"], "label": "x", "model": "scripted"}
    cmd = evaluate.worker_command(args, config, partition_plans(plans, 2)[0], 0, tmp_path)
    child = parser.parse_args(cmd[3:])
    assert child.direct and child.jobs == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--observation-lag", "0.1"], "--observation-lag: expected with --direct only"),
    (["--direct", "--observation-lag", "0.25"],
     r"--observation-lag: expected a number in \[0, 0.2\) s"),
])
def test_the_cli_checks_the_observation_lag(capsys, argv, message):
    from rt2_bringup import evaluate

    with pytest.raises(SystemExit):
        evaluate.main([*argv, "--backend", "scripted"])
    assert re.search(message, capsys.readouterr().err)
