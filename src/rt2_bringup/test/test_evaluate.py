"""The evaluation harness (``python -m rt2_bringup.evaluate``): its command line, ``--compare``,
``--jobs`` workers (domains, command lines, a failing worker), and two short episodes end to end
over ROS 2, sequentially and with ``--jobs 2`` (harness, simulator and policy node as separate
processes on fresh ROS_DOMAIN_IDs, scripted policy so no model is needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rt2_bringup import evaluate
from rt2_bringup.evaluation import (
    EVAL_SEED_MIN,
    OUTCOMES,
    EpisodeRecord,
    build_report,
    load_report,
    partition_plans,
    plan_episodes,
    plan_key,
    write_outputs,
)

HOLD = "0 128 128 128 128 128 128 0"
STOP = "1 128 128 128 128 128 128 0"


def test_cli_rejects_unknown_splits_families_and_training_seeds(capsys):
    for argv, needle in [(["--splits", "seen,nowhere"], "nowhere"),
                         (["--families", "juggle"], "juggle"),
                         (["--seed", "5"], "seed"),
                         (["--episodes", "0"], "episodes"),
                         (["--jobs", "0"], "jobs"),
                         (["--only", "seen:50"], "only")]:
        with pytest.raises(SystemExit) as exc:
            evaluate.main(["--backend", "scripted", *argv])
        assert exc.value.code == 2
        assert needle in capsys.readouterr().err


def test_embedded_graph_runs_the_sim_task_scene():
    # make demo, make eval and sim.launch.py simulator:=mujoco share this graph.
    from rt2_bringup.graph import EmbeddedGraphConfig, embedded_graph

    config = EmbeddedGraphConfig(backend="scripted", seed=EVAL_SEED_MIN)
    sim = next(s for s in embedded_graph(config) if s.package == "rt2_sim")
    assert sim.parameters["task_scene"] is True and sim.parameters["seed"] == EVAL_SEED_MIN


def test_names_accept_lists_commas_and_all():
    known = ("seen", "unseen_objects", "unseen_backgrounds")
    assert evaluate._names(None, known, "splits") == list(known)
    assert evaluate._names(["all"], known, "splits") == list(known)
    assert evaluate._names(["seen,unseen_objects", "seen"], known, "splits") == [
        "seen", "unseen_objects"]


def test_ensure_domain_id_keeps_or_picks_one(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "42")
    assert evaluate.ensure_domain_id() == 42
    monkeypatch.delenv("ROS_DOMAIN_ID")
    picked = evaluate.ensure_domain_id()
    assert 10 <= picked < 100 and os.environ["ROS_DOMAIN_ID"] == str(picked)


def test_worker_domains_differ_from_each_other_and_from_the_run():
    assert evaluate.worker_domain_ids(42, 3) == [43, 44, 45]
    assert evaluate.worker_domain_ids(98, 3) == [99, 10, 11]  # wraps inside 10-99
    assert evaluate.worker_domain_ids(0, 2) == [91, 92]  # from outside the window: inside it
    for base in (10, 57, 99):
        ids = evaluate.worker_domain_ids(base, evaluate.MAX_JOBS)
        assert len(set(ids)) == len(ids) and base not in ids
        assert all(10 <= i <= 99 for i in ids)
    for count in (0, evaluate.MAX_JOBS + 1):
        with pytest.raises(ValueError, match="count"):
            evaluate.worker_domain_ids(42, count)


def test_worker_command_runs_its_share_with_the_same_settings(tmp_path):
    parser = evaluate.build_parser()
    args = parser.parse_args(["--backend", "scripted", "--scripted-actions", HOLD, STOP,
                              "--splits", "seen,unseen_objects", "--families", "pick", "push",
                              "--episodes", "3", "--jobs", "2", "--max-steps", "7",
                              "--time-limit", "12.5", "--seed", str(EVAL_SEED_MIN + 10)])
    splits, families = ["seen", "unseen_objects"], ["pick", "push"]
    plans = plan_episodes(splits, families, 3, EVAL_SEED_MIN + 10)
    part = partition_plans(plans, 2)[1]
    config = {"splits": splits, "families": families, "label": "-odd label",
              "model": "scripted"}
    cmd = evaluate.worker_command(args, config, part, 1, tmp_path / "w1")
    assert cmd[:3] == [sys.executable, "-m", "rt2_bringup.evaluate"]
    child = parser.parse_args(cmd[3:])
    assert (child.jobs, child.worker, child.output, child.label) == (
        1, 1, str(tmp_path / "w1"), "-odd label")
    assert (child.backend, child.scripted_actions, child.model) == ("scripted", [HOLD, STOP], None)
    assert (child.max_steps, child.time_limit, child.seed) == (7, 12.5, EVAL_SEED_MIN + 10)
    # The child plans the whole run, then keeps its share: same seeds and families.
    child_plans = plan_episodes(child.splits, child.families, child.episodes, child.seed)
    assert evaluate.select_plans(child_plans, child.only) == part
    assert [plan_key(p) for p in part] == ["seen:1", "unseen_objects:0", "unseen_objects:2"]
    assert child.release_at_waypoint  # the default: on
    gate_off = parser.parse_args([*cmd[3:], "--no-release-at-waypoint"])
    off_cmd = evaluate.worker_command(gate_off, config, part, 1, tmp_path / "w1")
    assert not parser.parse_args(off_cmd[3:]).release_at_waypoint
    assert child.terminate_threshold == 0.0  # the default: the checkpoint's own
    strict = parser.parse_args([*cmd[3:], "--terminate-threshold", "0.9"])
    strict_cmd = evaluate.worker_command(strict, config, part, 1, tmp_path / "w1")
    assert parser.parse_args(strict_cmd[3:]).terminate_threshold == 0.9
    assert not child.observe_after_motion  # the default: a step every control period
    settled = parser.parse_args([*cmd[3:], "--observe-after-motion"])
    settled_cmd = evaluate.worker_command(settled, config, part, 1, tmp_path / "w1")
    assert parser.parse_args(settled_cmd[3:]).observe_after_motion


def test_a_failed_worker_is_named_and_the_rest_is_merged(tmp_path, monkeypatch, capsys):
    # Stand-in workers (no ROS): each writes its episodes' records as a worker would; worker 1
    # aborts after its first episode.
    script = """
import json, sys
from rt2_bringup.evaluation import EpisodeRecord, build_report, write_report_json
from pathlib import Path
worker, out, plans = int(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
out.mkdir(parents=True)
done = plans[:1] if worker == 1 else plans
records = [EpisodeRecord(s, f, i, seed, "go", {}, success=i == 0, terminated=False,
                         outcome="TIMED_OUT", steps=3, duration_s=1.0) for s, f, i, seed in done]
config = {"label": "x", "splits": ["seen"], "families": ["pick"], "seed": 0,
          "episodes_per_split": 5}
write_report_json(build_report(config, records, worker != 1), out / "report.json")
for s, f, i, seed in done:
    print(f"[rt2-eval] {s}/{f} #{i} seed {seed}: success={i == 0}", file=sys.stderr)
if worker == 1:
    print("[rt2-eval] aborted: the simulator node exited", file=sys.stderr)
    sys.exit(1)
"""

    def fake_command(args, config, plans, worker, output):
        return [sys.executable, "-c", script, str(worker), str(output),
                json.dumps([[p.split, p.family, p.index, p.seed] for p in plans])]

    monkeypatch.setattr(evaluate, "worker_command", fake_command)
    monkeypatch.setenv("ROS_DOMAIN_ID", "30")
    out = tmp_path / "eval"
    code = evaluate.main(["--backend", "scripted", "--splits", "seen", "--episodes", "5",
                          "--jobs", "2", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert "[rt2-eval w1] seen/move_near #1 seed 1000001" in captured.err  # relayed, prefixed
    assert "failed: worker 1 (ROS_DOMAIN_ID 32, 2 episodes" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["episodes"] == 4 and summary["complete"] is False
    report = load_report(out / "report.json")
    assert [(e["index"], e["seed"]) for e in report["episodes"]] == [
        (i, EVAL_SEED_MIN + i) for i in (0, 1, 2, 4)]  # worker 1 never ran episode 3
    assert report["config"]["jobs"] == 2 and "simulator node exited" in report["config"]["error"]
    assert [(w["ros_domain_id"], w["returncode"]) for w in report["config"]["workers"]] == [
        (31, 0), (32, 1)]
    assert (out / "results.md").exists() and (out / "results.png").exists()


def test_compare_mode_writes_an_ablation_table(tmp_path, capsys):
    paths = []
    for label, ok in (("robot data only", False), ("co-fine-tuned", True)):
        config = {"label": label, "splits": ["seen", "unseen_objects"], "families": ["pick"],
                  "seed": EVAL_SEED_MIN, "episodes_per_split": 1}
        records = [EpisodeRecord(s, "pick", 0, EVAL_SEED_MIN, "pick up the red cube", {},
                                 success=ok or s == "seen", terminated=True, outcome="SUCCEEDED",
                                 steps=10, duration_s=2.0) for s in config["splits"]]
        paths.append(write_outputs(build_report(config, records), tmp_path / label)["report"])
    out = tmp_path / "ablation"
    assert evaluate.main(["--compare", *map(str, paths), "--output", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["unseen_average"] == {"robot data only": 0.0, "co-fine-tuned": 1.0}
    assert summary["success_rate"]["robot data only"] == {"seen": 1.0, "unseen_objects": 0.0}
    assert "| co-fine-tuned | 100% (1/1)" in (out / "comparison.md").read_text()
    assert (out / "comparison.png").stat().st_size > 0


def test_two_episodes_end_to_end_over_ros(tmp_path):
    pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
    pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built: run make setup")
    from rt2_policy.ros_testing import next_domain_id

    out = tmp_path / "eval"
    env = dict(os.environ, ROS_DOMAIN_ID=str(next_domain_id()),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    # Two steps of holding still, then terminate: the policy ends the episode itself (terminated)
    # but nothing was done, so the simulator's check must say the task is not solved.
    cmd = [sys.executable, "-m", "rt2_bringup.evaluate", "--backend", "scripted",
           "--scripted-actions", HOLD, HOLD, STOP, "--splits", "unseen_objects",
           "--episodes", "2", "--max-steps", "10", "--time-limit", "10", "--image-size", "96",
           "--output", str(out), "--label", "scripted-hold"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["seed"] == EVAL_SEED_MIN
    assert summary["model"] == "scripted-hold"
    assert summary["success_rate"] == {"unseen_objects": 0.0}

    report = load_report(summary["report"])
    assert report["complete"] is True and report["config"]["ros_domain_id"] == int(
        env["ROS_DOMAIN_ID"])
    records = [EpisodeRecord.from_dict(e) for e in report["episodes"]]
    assert [(r.split, r.family, r.seed) for r in records] == [
        ("unseen_objects", "pick", EVAL_SEED_MIN), ("unseen_objects", "move_near",
                                                    EVAL_SEED_MIN + 1)]
    for r in records:
        assert r.outcome in OUTCOMES and r.outcome != "ERROR", r.message
        # 3 policy steps; a step held on a late camera frame (loaded machine) also counts.
        assert r.outcome == "SUCCEEDED" and r.terminated and r.steps >= 3
        assert r.success is False, f"the sim says an untouched scene solves {r.instruction!r}"
        assert r.instruction and r.task.get("split") == "unseen_objects"
        assert r.task.get("family") == r.family and r.task.get("seed") == r.seed
        assert r.details and "raw" not in r.details, "task status should be a JSON object"
        assert r.mean_inference_latency_ms is not None and r.duration_s > 0
    assert (out / "results.md").read_text().count("| unseen objects |") == 1
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "logs" / "rt2_sim.log").exists()


def test_two_workers_end_to_end_over_ros(tmp_path):
    # --jobs 2: one episode per worker, each worker its own graph and domain; the merged report
    # has both episodes in sequential order with the seeds and families of a sequential run.
    pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
    pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built: run make setup")
    from rt2_policy.ros_testing import next_domain_id

    out = tmp_path / "eval"
    domain = next_domain_id()
    next_domain_id(), next_domain_id()  # the workers' (domain + 1, + 2): not for other tests
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    cmd = [sys.executable, "-m", "rt2_bringup.evaluate", "--backend", "scripted",
           "--scripted-actions", HOLD, STOP, "--splits", "unseen_objects", "--episodes", "2",
           "--jobs", "2", "--max-steps", "10", "--time-limit", "10", "--image-size", "96",
           "--output", str(out), "--label", "scripted-hold"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for worker in (0, 1):
        assert f"[rt2-eval w{worker}] unseen_objects/" in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["complete"] is True
    assert summary["success_rate"] == {"unseen_objects": 0.0}

    report = load_report(out / "report.json")
    assert report["config"]["jobs"] == 2 and report["config"]["ros_domain_id"] == domain
    domains = [w["ros_domain_id"] for w in report["config"]["workers"]]
    assert len(set(domains)) == 2 and domain not in domains
    records = [EpisodeRecord.from_dict(e) for e in report["episodes"]]
    assert [(r.split, r.family, r.index, r.seed) for r in records] == [
        ("unseen_objects", "pick", 0, EVAL_SEED_MIN),
        ("unseen_objects", "move_near", 1, EVAL_SEED_MIN + 1)]
    for r in records:
        assert r.outcome == "SUCCEEDED" and r.terminated and not r.success, r.message
        assert r.task.get("family") == r.family and r.task.get("seed") == r.seed
    assert (out / "results.md").read_text().count("| unseen objects |") == 1
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for worker in (0, 1):
        assert (out / "workers" / f"w{worker}" / "logs" / "rt2_sim.log").exists()
