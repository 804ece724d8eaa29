"""``evaluate``: success rates of a policy on rt2's task families and evaluation splits, over ROS 2.

The same closed loop as ``make demo``: the graph of :func:`rt2_bringup.graph.embedded_graph`
(the MuJoCo simulator node and the policy node, as separate processes) is started once; then for
every split and episode the harness

1. calls ``/rt2_sim/reset`` (``rt2_msgs/srv/ResetScene``) with the episode's seed, split and task
   family; the simulator samples the scene and the task and returns its instruction;
2. waits for two camera frames of the new scene, sends the instruction as an
   ``ExecuteInstruction`` goal to ``/rt2/execute_instruction`` and waits for the result;
3. calls ``/rt2_sim/task_status`` (``std_srvs/srv/Trigger``): the episode succeeds when the
   simulator's task check holds at the end, whether or not the policy emitted terminate (both
   are recorded).

Splits follow RT-2 §4 (seen; unseen objects, backgrounds, instructions). Episode ``i`` of every
split uses seed ``--seed + i`` (>= 1,000,000: never a training scene) and family
``families[i % len(families)]``, so runs of different models are paired. Writes into
``--output`` (default ``<repo>/.cache/eval/<timestamp>``): ``report.json`` (config, every
episode, aggregates; rewritten after each episode), ``results.md`` (split x family table with
Wilson 95 % intervals), ``results.png`` (bar plot) and ``logs/`` (node output). The last line on
standard output is a one-line JSON summary::

    {"success_rate": {"seen": 0.9, ...}, "episodes": 200, "seed": 1000000, "model": "...",
     "report": ".../report.json", ...}

``--compare a/report.json b/report.json ...`` instead writes an ablation table
(``comparison.md``, ``comparison.png``) across models on the same splits (RT-2 Table 6 style).

DDS stays on loopback; without ``ROS_DOMAIN_ID`` the harness picks a domain of its own per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from rt2_bringup.demo import (  # noqa: E402
    TASK_STATUS_SERVICE,
    GraphClient,
    GraphProcesses,
    default_model,
)
from rt2_bringup.evaluation import (  # noqa: E402
    DEFAULT_SEED,
    OUTCOMES,
    SPLITS,
    TASK_FAMILIES,
    EpisodePlan,
    EpisodeRecord,
    build_report,
    comparison_markdown,
    load_report,
    parse_json_object,
    plan_episodes,
    plot_comparison,
    results_markdown,
    summary_line,
    write_outputs,
    write_report_json,
)
from rt2_bringup.graph import EmbeddedGraphConfig, embedded_graph  # noqa: E402

#: Harness errors in a row after which the run is aborted (the graph is broken, not the policy).
MAX_CONSECUTIVE_ERRORS = 3


def known_splits_and_families() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(SPLITS, TASK_FAMILIES)`` of ``rt2_sim.tasks`` (the simulator's truth), or this
    package's mirror of them where rt2_sim is not importable."""
    try:
        from rt2_sim.tasks import SPLITS as sim_splits
        from rt2_sim.tasks import TASK_FAMILIES as sim_families
    except ImportError:
        return SPLITS, TASK_FAMILIES
    return tuple(sim_splits), tuple(sim_families)


def repo_root() -> Path:
    """``$RT2_ROOT`` (set by ``scripts/env.sh``) or the working directory."""
    return Path(os.environ.get("RT2_ROOT") or Path.cwd())


def default_output_dir() -> Path:
    """``<repo>/.cache/eval/<YYYYmmdd-HHMMSS>`` (suffixed with the pid if it exists)."""
    out = repo_root() / ".cache" / "eval" / time.strftime("%Y%m%d-%H%M%S")
    return out if not out.exists() else out.with_name(f"{out.name}-{os.getpid()}")


def ensure_domain_id() -> int:
    """Keep ``ROS_DOMAIN_ID`` if set; else pick one for this run, as the Makefile does
    (``pid % 90 + 10``), and export it so the node processes inherit it."""
    value = os.environ.get("ROS_DOMAIN_ID", "")
    if not value.strip():
        value = str(os.getpid() % 90 + 10)
        os.environ["ROS_DOMAIN_ID"] = value
    return int(value)


def git_commit(root: Path) -> str:
    """Short commit of ``root`` (``+dirty`` when the tree has changes), "" if unknown."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _names(values: list[str] | None, known: tuple[str, ...], what: str) -> list[str]:
    """Names from ``--splits a b`` or ``--splits a,b``; ``all``/absent = every known one."""
    if not values:
        return list(known)
    names = [n for v in values for n in v.split(",") if n]
    if names == ["all"]:
        return list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{what}: expected names from {list(known)}, got {unknown}")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------------- one episode
def run_planned_episode(client: GraphClient, plan: EpisodePlan, max_steps: int,
                        time_limit: float, settle: float) -> EpisodeRecord:
    """Reset to ``plan``'s task, run the policy on its instruction, ask the sim for success.

    Harness failures (reset refused, no result, no task status) give an ``ERROR`` record,
    counted as a task failure; they do not raise.
    """
    try:
        scene = client.reset(plan.seed, plan.split, plan.family)
    except (RuntimeError, TimeoutError) as exc:
        return EpisodeRecord.error(plan, str(exc))
    task = parse_json_object(scene.task)
    if not scene.instruction:
        return EpisodeRecord.error(plan, "the simulator sampled no task (empty instruction): "
                                         "does rt2_sim support splits?", task=task)
    client.wait_fresh_frames(count=2, minimum=settle)
    try:
        result = client.execute(scene.instruction, max_steps, time_limit, drain=0.0)
        success, message = client.task_status()
    except (RuntimeError, TimeoutError) as exc:
        return EpisodeRecord.error(plan, str(exc), scene.instruction, task)
    outcome = result["outcome"] if result["outcome"] in OUTCOMES else "ERROR"
    return EpisodeRecord(
        split=plan.split, family=plan.family, index=plan.index, seed=plan.seed,
        instruction=scene.instruction, task=task,
        success=bool(success) and outcome != "ERROR",
        terminated=outcome == "SUCCEEDED",
        outcome=outcome, steps=result["steps"], duration_s=max(0.0, result["duration_s"]),
        mean_inference_latency_ms=result["mean_inference_latency_ms"],
        message=result["message"] if outcome != "ERROR" else f"{result['outcome']}: "
                                                               f"{result['message']}",
        details=parse_json_object(message), episode_id=result["episode_id"])


# ---------------------------------------------------------------------------------- modes
def evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation described by ``args``; returns the exit code.

    Raises:
        ValueError: on unknown splits or families, a training seed, or bad graph settings
            (before anything is started).
    """
    from tqdm import tqdm

    started = time.monotonic()
    known_splits, known_families = known_splits_and_families()
    splits = _names(args.splits, known_splits, "splits")
    families = _names(args.families, known_families, "families")
    plans = plan_episodes(splits, families, args.episodes, args.seed)
    if args.max_steps < 1 or args.time_limit <= 0 or args.settle < 0:
        raise ValueError(f"--max-steps, --time-limit, --settle: expected >= 1, > 0 s, >= 0 s, "
                         f"got {args.max_steps}, {args.time_limit}, {args.settle}")
    model = args.model
    if args.backend == "local" and model is None:
        model = str(default_model())
    graph_config = EmbeddedGraphConfig(
        backend=args.backend, model_path=model or "", device=args.device,
        num_threads=args.num_threads, control_rate=args.control_rate, max_steps=args.max_steps,
        time_limit=args.time_limit, image_size=args.image_size, seed=args.seed,
        **({"scripted_actions": tuple(args.scripted_actions)} if args.scripted_actions else {}))
    domain = ensure_domain_id()
    label = args.label or (Path(model).name if model else "scripted")
    out = Path(args.output) if args.output else default_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "label": label, "model": model or "scripted", "backend": args.backend,
        "splits": splits, "families": families, "episodes_per_split": args.episodes,
        "seed": args.seed, "control_rate": args.control_rate, "max_steps": args.max_steps,
        "time_limit": args.time_limit, "image_size": args.image_size,
        "num_threads": args.num_threads, "device": args.device, "ros_domain_id": domain,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": git_commit(repo_root()),
    }
    if args.backend == "scripted":
        config["scripted_actions"] = list(graph_config.scripted_actions)
    print(f"[rt2-eval] {len(plans)} episodes ({args.episodes} per split x {len(splits)} splits), "
          f"model {config['model']}, ROS_DOMAIN_ID {domain}, output {out}", file=sys.stderr)

    graph = GraphProcesses(embedded_graph(graph_config), out / "logs", echo=args.verbose)
    records: list[EpisodeRecord] = []
    complete, code, error = False, 0, ""
    try:
        graph.start()
        client = GraphClient("rt2_eval")
        try:
            client.wait_ready(args.startup_timeout)
            if not client.wait_task_status(15.0):
                raise RuntimeError(f"{TASK_STATUS_SERVICE} is not available: the simulator has "
                                   "no task support")
            errors_in_a_row = 0
            # disable=None: a bar on a terminal only; the per-episode lines go to logs anyway.
            with tqdm(plans, desc="eval", unit="ep", file=sys.stderr, dynamic_ncols=True,
                      mininterval=1.0, disable=None) as bar:
                for plan in bar:
                    record = run_planned_episode(client, plan, args.max_steps, args.time_limit,
                                                 args.settle)
                    records.append(record)
                    write_report_json(build_report(config, records, complete=False),
                                      out / "report.json")
                    done = sum(r.success for r in records)
                    bar.set_postfix(success=f"{done}/{len(records)}", refresh=False)
                    bar.write(f"[rt2-eval] {plan.split}/{plan.family} #{plan.index} seed "
                              f"{plan.seed}: success={record.success} outcome={record.outcome} "
                              f"steps={record.steps} {record.instruction!r}"
                              + (f" ({record.message})" if record.outcome == "ERROR" else ""),
                              file=sys.stderr)
                    failed = graph.failed()
                    if failed:
                        raise RuntimeError(f"node process exited: {', '.join(failed)} "
                                           f"(see {out / 'logs'})")
                    errors_in_a_row = errors_in_a_row + 1 if record.outcome == "ERROR" else 0
                    if errors_in_a_row >= MAX_CONSECUTIVE_ERRORS:
                        raise RuntimeError(f"{errors_in_a_row} episodes in a row could not be "
                                           f"run; last: {record.message}")
            complete = True
        finally:
            client.close()
    except (TimeoutError, RuntimeError, FileNotFoundError) as exc:
        failed = graph.failed()
        error = str(exc) + (f"; exited early: {', '.join(failed)}" if failed else "")
        print(f"[rt2-eval] aborted: {error}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        error, code = "interrupted", 130
    finally:
        graph.stop()
    config["wall_time_s"] = round(time.monotonic() - started, 1)
    if error:
        config["error"] = error
    report = build_report(config, records, complete=complete)
    paths = write_outputs(report, out)
    print(results_markdown(report), file=sys.stderr)
    print(f"[rt2-eval] wrote {paths['report']}, {paths['markdown']}, {paths['plot']}",
          file=sys.stderr)
    sys.stderr.flush()
    print(summary_line(report, paths["report"]), flush=True)
    return code


def compare(args: argparse.Namespace) -> int:
    """``--compare``: ablation table and plot across reports; returns the exit code."""
    reports = [load_report(p) for p in args.compare]
    labels = [r["config"]["label"] for r in reports]
    for r, path in zip(reports, args.compare, strict=True):  # tell same-named models apart
        if labels.count(r["config"]["label"]) > 1:
            r["config"]["label"] = f"{r['config']['label']} ({Path(path).parent.name})"
    out = Path(args.output) if args.output else (
        repo_root() / ".cache" / "eval" / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    table = comparison_markdown(reports)
    (out / "comparison.md").write_text(table)
    plot_comparison(reports, out / "comparison.png")
    print(table, file=sys.stderr)
    sys.stderr.flush()
    print(json.dumps({
        "compare": [r["config"]["label"] for r in reports],
        "success_rate": {r["config"]["label"]: {s: v["overall"]["rate"] for s, v in
                                                r["aggregates"]["splits"].items()}
                         for r in reports},
        "unseen_average": {r["config"]["label"]: r["aggregates"]["unseen_average"]
                           for r in reports},
        "table": str(out / "comparison.md"), "plot": str(out / "comparison.png"),
    }), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="checkpoint directory or hub id (default: $RT2_MODEL, else the "
                             "trained src/rt2_policy/models/rt2_tiny_sim when present, else the "
                             "small offline random-weight VLA)")
    parser.add_argument("--backend", choices=("local", "scripted"), default="local",
                        help="policy backend; scripted replays --scripted-actions (dry runs)")
    parser.add_argument("--scripted-actions", nargs="+", default=None, metavar="BINS",
                        help="action strings of 8 bins for --backend scripted "
                             "(default: hold still)")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per split")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="splits to run (names or comma-separated; default: all)")
    parser.add_argument("--families", nargs="+", default=None,
                        help="task families to rotate through (default: all)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="base seed (>= 1000000); episode i of every split uses seed + i")
    parser.add_argument("--control-rate", type=float, default=5.0, help="policy steps/s, Hz")
    parser.add_argument("--max-steps", type=int, default=60, help="step limit per episode")
    parser.add_argument("--time-limit", type=float, default=30.0,
                        help="time limit per episode, seconds")
    parser.add_argument("--image-size", type=int, default=224, help="camera width = height, px")
    parser.add_argument("--device", default="cpu", help="torch device of the policy")
    parser.add_argument("--num-threads", type=int, default=1,
                        help="torch CPU threads of the policy (the simulator needs a core too)")
    parser.add_argument("--settle", type=float, default=0.3,
                        help="minimum wait after a reset before the goal, seconds (the harness "
                             "also waits for 2 camera frames of the new scene)")
    parser.add_argument("--startup-timeout", type=float, default=180.0,
                        help="seconds for the nodes to come up (model loading)")
    parser.add_argument("--output", default=None,
                        help="output directory (default: <repo>/.cache/eval/<timestamp>)")
    parser.add_argument("--label", default=None,
                        help="model name in the report (default: the model directory's name)")
    parser.add_argument("--verbose", action="store_true", help="relay node output to stderr")
    parser.add_argument("--compare", nargs="+", default=None, metavar="REPORT",
                        help="instead of running: write an ablation table across these "
                             "report.json files")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return compare(args) if args.compare else evaluate(args)
    except ValueError as exc:  # bad names, seeds, settings, reports: a usage error
        parser.error(str(exc))
    return 2


if __name__ == "__main__":
    sys.exit(main())
