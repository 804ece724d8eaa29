"""``evaluate``: success rates of a policy on rt2's task families and evaluation splits, over ROS 2.

The same closed loop as ``make demo``: the graph of :func:`rt2_bringup.graph.embedded_graph`
(the MuJoCo simulator node and the policy node, as separate processes) is started once (once per
worker with ``--jobs``); then for every split and episode the harness

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

``--jobs J`` runs J ROS graphs in parallel, each in a worker process of this module on its own
ROS domain (the run's ``ROS_DOMAIN_ID`` + 1, + 2, ...; the run's own stays unused), with the
episodes dealt round-robin (``--only``) and the same seeds and families, so results equal a
sequential run's up to timing. The workers write into ``--output``/``workers/w<k>`` (their
``logs/`` included) and their per-episode lines reach standard error prefixed
``[rt2-eval w<k>]``; the parent merges their episodes, in sequential order, into the same
``report.json``, ``results.md``, ``results.png`` and summary line as ``--jobs 1`` (``config``
adds ``jobs`` and ``workers``). When a worker fails the others run on; the parent names it,
writes the merged report of the episodes that completed and exits 1.

``--direct`` runs the same episodes without ROS, policy and simulator in one process
(:mod:`rt2_bringup.direct_rollout`: observe, infer, then the action for one control period, on
the simulator's clock): deterministic and about three times faster, for choosing checkpoints;
the report says ``"loop": "direct"``. ``--observation-lag S`` takes each frame S seconds before
the previous motion has ended, as the ROS loop does. It is not what ``make eval`` measures.

``--compare a/report.json b/report.json ...`` instead writes an ablation table
(``comparison.md``, ``comparison.png``) across models on the same splits (RT-2 Table 6 style).

DDS stays on loopback; without ``ROS_DOMAIN_ID`` the harness picks a domain of its own per run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import threading
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
from rt2_bringup.direct_rollout import check_observation_lag  # noqa: E402
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
    merge_records,
    parse_json_object,
    partition_plans,
    plan_episodes,
    plan_key,
    plot_comparison,
    report_records,
    results_markdown,
    select_plans,
    summary_line,
    write_outputs,
    write_report_json,
)
from rt2_bringup.graph import EmbeddedGraphConfig, embedded_graph  # noqa: E402

#: Harness errors in a row after which the run is aborted (the graph is broken, not the policy).
MAX_CONSECUTIVE_ERRORS = 3
#: ROS domains the harness picks from: ``DOMAIN_MIN`` to ``DOMAIN_MIN + DOMAIN_COUNT - 1``
#: (Linux allows 0-101; the Makefile picks from the same window).
DOMAIN_MIN, DOMAIN_COUNT = 10, 90
#: Most ``--jobs``: every worker needs a domain of its own besides the run's.
MAX_JOBS = DOMAIN_COUNT - 1
#: How often the merged ``report.json`` of a ``--jobs`` run is rewritten, seconds.
PARTIAL_REPORT_PERIOD = 5.0
#: How long a worker gets to stop its graph and write its report after SIGINT, seconds.
WORKER_STOP_TIMEOUT = 60.0


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
        value = str(os.getpid() % DOMAIN_COUNT + DOMAIN_MIN)
        os.environ["ROS_DOMAIN_ID"] = value
    return int(value)


def worker_domain_ids(domain: int, count: int) -> list[int]:
    """ROS domains of ``count`` workers of a run on ``domain`` (:func:`ensure_domain_id`): the
    next ones in the harness's window, wrapping around (``domain + 1``, ``domain + 2``, ...).

    They differ from each other and from ``domain``, so no two graphs of the run meet.

    Raises:
        ValueError: unless ``1 <= count <= MAX_JOBS``.
    """
    if not 1 <= count <= MAX_JOBS:
        raise ValueError(f"count: expected 1 to {MAX_JOBS} workers, got {count}")
    return [DOMAIN_MIN + (domain - DOMAIN_MIN + k) % DOMAIN_COUNT for k in range(1, count + 1)]


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

    With ``--jobs 1`` the episodes run here, on one ROS graph (:func:`run_sequential`); with
    more, in worker processes of this module (:func:`run_workers`), merged into one report.

    Raises:
        ValueError: on unknown splits, families or ``--only`` episodes, a training seed, a bad
            ``--jobs`` or bad graph settings (before anything is started).
    """
    started = time.monotonic()
    known_splits, known_families = known_splits_and_families()
    splits = _names(args.splits, known_splits, "splits")
    families = _names(args.families, known_families, "families")
    plans = plan_episodes(splits, families, args.episodes, args.seed)
    if args.only:
        plans = select_plans(plans, args.only)
    if args.max_steps < 1 or args.time_limit <= 0 or args.settle < 0:
        raise ValueError(f"--max-steps, --time-limit, --settle: expected >= 1, > 0 s, >= 0 s, "
                         f"got {args.max_steps}, {args.time_limit}, {args.settle}")
    if args.observation_lag and not args.direct:
        raise ValueError(f"--observation-lag: expected with --direct only (the ROS loop has its "
                         f"own timing), got {args.observation_lag!r} without it")
    if not 1 <= args.jobs <= MAX_JOBS:
        raise ValueError(f"--jobs: expected 1 to {MAX_JOBS} worker processes, got {args.jobs}")
    model = args.model
    if args.backend == "local" and model is None:
        model = str(default_model())  # resolved once: every worker evaluates the same model
    graph_config = EmbeddedGraphConfig(
        backend=args.backend, model_path=model or "", device=args.device,
        num_threads=args.num_threads, control_rate=args.control_rate, max_steps=args.max_steps,
        time_limit=args.time_limit, image_size=args.image_size, seed=args.seed,
        release_at_waypoint=args.release_at_waypoint,
        terminate_threshold=args.terminate_threshold,
        observe_after_motion=args.observe_after_motion,
        **({"scripted_actions": tuple(args.scripted_actions)} if args.scripted_actions else {}))
    if args.direct:  # the config has checked the rate: > 0
        check_observation_lag(args.observation_lag, 1.0 / graph_config.control_rate,
                              "--observation-lag")
    domain = ensure_domain_id()
    parts = partition_plans(plans, args.jobs)
    label = args.label or (Path(model).name if model else "scripted")
    out = Path(args.output) if args.output else default_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "label": label, "model": model or "scripted", "backend": args.backend,
        "splits": splits, "families": families, "episodes_per_split": args.episodes,
        "seed": args.seed, "control_rate": args.control_rate, "max_steps": args.max_steps,
        "time_limit": args.time_limit, "image_size": args.image_size,
        "num_threads": args.num_threads, "device": args.device, "ros_domain_id": domain,
        "release_at_waypoint": args.release_at_waypoint,
        "terminate_threshold": args.terminate_threshold,
        "observe_after_motion": args.observe_after_motion,
        "loop": "direct" if args.direct else "ros",
        **({"observation_lag": args.observation_lag} if args.direct else {}),
        "jobs": len(parts), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": git_commit(repo_root()),
    }
    if args.backend == "scripted":
        config["scripted_actions"] = list(graph_config.scripted_actions)
    if args.only:
        config["only"] = [plan_key(p) for p in plans]
    planned = len(splits) * args.episodes
    print(f"[rt2-eval] {len(plans)}" + (f" of {planned}" if len(plans) < planned else "")
          + f" episodes ({args.episodes} per split x {len(splits)} splits), "
          f"model {config['model']}, "
          + (f"{len(parts)} workers" if len(parts) > 1 else f"ROS_DOMAIN_ID {domain}")
          + f", output {out}", file=sys.stderr)

    if len(parts) > 1:
        records, complete, code, error = run_workers(args, config, plans, parts, out)
    elif args.direct:
        records, complete, code, error = run_direct(args, graph_config, config, plans, out)
    else:
        records, complete, code, error = run_sequential(args, graph_config, config, plans, out)
    config["wall_time_s"] = round(time.monotonic() - started, 1)
    if error:
        config["error"] = error
    report = build_report(config, records, complete=complete)
    paths = write_outputs(report, out)
    if args.worker is None:  # a worker's table would only repeat lines of the merged one
        print(results_markdown(report), file=sys.stderr)
    print(f"[rt2-eval] wrote {paths['report']}, {paths['markdown']}, {paths['plot']}",
          file=sys.stderr)
    sys.stderr.flush()
    print(summary_line(report, paths["report"]), flush=True)
    return code


def run_sequential(args: argparse.Namespace, graph_config: EmbeddedGraphConfig, config: dict,
                   plans: list[EpisodePlan], out: Path
                   ) -> tuple[list[EpisodeRecord], bool, int, str]:
    """Start one graph and run ``plans`` in order, rewriting ``out/report.json`` after each
    episode; node logs go to ``out/logs``.

    Returns:
        ``(records, complete, exit code, error)``: code 1 and the error when the graph broke
        (a node exited, startup timed out, :data:`MAX_CONSECUTIVE_ERRORS` errors in a row),
        130 when interrupted; ``records`` holds the episodes run until then.
    """
    from tqdm import tqdm

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
                    keep_episode(bar, config, records, out, plan, record)
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
    return records, complete, code, error


def episode_line(plan: EpisodePlan, record: EpisodeRecord) -> str:
    """The log line of one finished episode."""
    return (f"[rt2-eval] {plan.split}/{plan.family} #{plan.index} seed {plan.seed}: "
            f"success={record.success} outcome={record.outcome} steps={record.steps} "
            f"{record.instruction!r}" + (f" ({record.message})" if record.outcome == "ERROR"
                                         else ""))


def keep_episode(bar, config: dict, records: list[EpisodeRecord], out: Path, plan: EpisodePlan,
                 record: EpisodeRecord) -> None:
    """Keep a finished episode (one graph or ``--direct``): append it to ``records``, rewrite
    ``out/report.json``, show the successes so far on the progress ``bar`` (tqdm) and log its
    line."""
    records.append(record)
    write_report_json(build_report(config, records, complete=False), out / "report.json")
    bar.set_postfix(success=f"{sum(r.success for r in records)}/{len(records)}", refresh=False)
    bar.write(episode_line(plan, record), file=sys.stderr)


def run_direct(args: argparse.Namespace, graph_config: EmbeddedGraphConfig, config: dict,
               plans: list[EpisodePlan], out: Path
               ) -> tuple[list[EpisodeRecord], bool, int, str]:
    """``--direct``: run ``plans`` in this process without ROS
    (:func:`rt2_bringup.direct_rollout.run_direct_episode`), the policy built and wrapped as the
    policy node builds it; rewrites ``out/report.json`` after each episode.

    Returns:
        ``(records, complete, exit code, error)`` as :func:`run_sequential`: code 1 when the
        policy cannot be loaded or :data:`MAX_CONSECUTIVE_ERRORS` episodes in a row raised,
        130 when interrupted.
    """
    from tqdm import tqdm

    from rt2_bringup.direct_rollout import run_direct_episode
    from rt2_policy.policy_factory import make_policy

    records: list[EpisodeRecord] = []
    try:
        policy = make_policy(
            graph_config.backend, model_path=graph_config.model_path,
            device=graph_config.device, num_threads=graph_config.num_threads,
            scripted_actions=graph_config.scripted_actions,
            release_at_waypoint=graph_config.release_at_waypoint,
            terminate_threshold=graph_config.terminate_threshold or None)
        errors_in_a_row = 0
        with tqdm(plans, desc="eval", unit="ep", file=sys.stderr, dynamic_ncols=True,
                  mininterval=1.0, disable=None) as bar:
            for plan in bar:
                record = run_direct_episode(
                    policy, plan, max_steps=args.max_steps,
                    control_period=1.0 / graph_config.control_rate,
                    image_size=graph_config.image_size,
                    gripper_open_position=graph_config.gripper_open_position,
                    tcp_offset=graph_config.tcp_offset, observation_lag=args.observation_lag)
                keep_episode(bar, config, records, out, plan, record)
                errors_in_a_row = errors_in_a_row + 1 if record.outcome == "ERROR" else 0
                if errors_in_a_row >= MAX_CONSECUTIVE_ERRORS:
                    raise RuntimeError(f"{errors_in_a_row} episodes in a row could not be "
                                       f"run; last: {record.message}")
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"[rt2-eval] aborted: {exc}", file=sys.stderr)
        return records, False, 1, str(exc)
    except KeyboardInterrupt:
        return records, False, 130, "interrupted"
    return records, True, 0, ""


# ---------------------------------------------------------------------------------- workers
def worker_command(args: argparse.Namespace, config: dict, plans: list[EpisodePlan],
                   worker: int, output: Path) -> list[str]:
    """The command line of worker ``worker``: this module with ``--jobs 1``, the run's splits,
    families, seed, model, backend and limits, and ``--only`` its ``plans``."""
    cmd = [sys.executable, "-m", "rt2_bringup.evaluate", "--jobs", "1", "--worker", str(worker),
           "--backend", args.backend, "--episodes", str(args.episodes), "--seed", str(args.seed),
           "--splits", *config["splits"], "--families", *config["families"],
           "--control-rate", repr(args.control_rate), "--max-steps", str(args.max_steps),
           "--time-limit", repr(args.time_limit), "--image-size", str(args.image_size),
           f"--device={args.device}", "--num-threads", str(args.num_threads),
           "--settle", repr(args.settle), "--startup-timeout", repr(args.startup_timeout),
           f"--output={output}", f"--label={config['label']}",
           "--only", ",".join(plan_key(p) for p in plans)]
    if args.backend == "local" or args.model:
        cmd.append(f"--model={config['model']}")
    if args.scripted_actions:
        cmd += ["--scripted-actions", *args.scripted_actions]
    if not args.release_at_waypoint:
        cmd.append("--no-release-at-waypoint")
    if args.terminate_threshold:
        cmd.append(f"--terminate-threshold={args.terminate_threshold!r}")
    if args.observe_after_motion:
        cmd.append("--observe-after-motion")
    if args.direct:
        cmd += ["--direct", f"--observation-lag={args.observation_lag!r}"]
    if args.verbose:
        cmd.append("--verbose")
    return cmd


class Worker:
    """A worker process of :func:`run_workers`; relays its standard error to ours, each line
    prefixed with its index (``[rt2-eval w1] ...``), and keeps the last lines.

    Args:
        index: worker index, from 0.
        cmd: its command line (:func:`worker_command`).
        domain: its ``ROS_DOMAIN_ID``.
        output: its ``--output`` directory.
        plans: its episodes.
        lock: serialises the lines of all workers on our standard error.
    """

    def __init__(self, index: int, cmd: list[str], domain: int, output: Path,
                 plans: list[EpisodePlan], lock: threading.Lock) -> None:
        self.index, self.domain, self.output, self.plans = index, domain, output, plans
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self._lock = lock
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   PYTHONUNBUFFERED="1")
        # Own session: a terminal's Ctrl-C reaches only us, and we pass on exactly one SIGINT.
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     bufsize=1, start_new_session=True)
        self._relay = threading.Thread(target=self._relay_lines, daemon=True)
        self._relay.start()

    def _relay_lines(self) -> None:
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            self.tail.append(line)
            if line.startswith("[rt2-eval]"):
                line = f"[rt2-eval w{self.index}]{line[len('[rt2-eval]'):]}"
            else:
                line = f"[w{self.index}] {line}"
            with self._lock:
                print(line, file=sys.stderr, flush=True)

    def records(self) -> list[EpisodeRecord]:
        """The episodes the worker finished so far (from its ``report.json``; [] if none)."""
        try:
            return report_records(load_report(self.output / "report.json"))
        except (OSError, ValueError):  # not written yet (json errors are ValueErrors)
            return []

    def interrupt(self) -> None:
        """SIGINT, once: the worker stops its graph and writes its partial report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the exit (then kill); returns the exit code."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._relay.join(5.0)
        return self.proc.returncode

    def failure(self) -> str:
        """Why the worker failed: its ``aborted`` line, else its last line of output."""
        aborted = [line for line in self.tail if line.startswith("[rt2-eval] aborted:")]
        last = aborted[-1] if aborted else next(
            (line for line in reversed(self.tail) if line.strip()), "no output")
        return (f"worker {self.index} (ROS_DOMAIN_ID {self.domain}, {len(self.plans)} episodes, "
                f"{self.output}) exited with code {self.proc.returncode}: {last}")


def run_workers(args: argparse.Namespace, config: dict, plans: list[EpisodePlan],
                parts: list[list[EpisodePlan]], out: Path
                ) -> tuple[list[EpisodeRecord], bool, int, str]:
    """Run ``parts`` in worker processes, each on its own ROS graph and ROS domain
    (:func:`worker_domain_ids`), writing into ``out/workers/w<k>``; rewrite the merged
    ``out/report.json`` every few seconds; merge their episodes in the order of ``plans``.

    Adds ``workers`` (index, ROS domain, episodes, output, exit code) to ``config``.

    Returns:
        ``(records, complete, exit code, error)``: code 1 and the failed workers when one
        fails (the others run on), 130 when interrupted; ``records`` holds the episodes the
        workers finished.

    Raises:
        RuntimeError: if a worker's report does not match its plans (a bug, not a failure).
    """
    domains = worker_domain_ids(int(config["ros_domain_id"]), len(parts))
    lock = threading.Lock()
    workers: list[Worker] = []
    interrupted = False

    def merged() -> list[EpisodeRecord]:
        try:
            return merge_records(plans, [w.records() for w in workers])
        except ValueError as exc:
            raise RuntimeError(f"worker reports do not match the plan: {exc}") from exc

    try:
        for k, (part, domain) in enumerate(zip(parts, domains, strict=True)):
            output = out / "workers" / f"w{k}"
            print(f"[rt2-eval] worker {k}: {len(part)} episodes, ROS_DOMAIN_ID {domain}, "
                  f"output {output}", file=sys.stderr)
            workers.append(Worker(k, worker_command(args, config, part, k, output), domain,
                                  output, part, lock))
        last_write = time.monotonic()
        while any(w.proc.poll() is None for w in workers):
            time.sleep(0.5)
            if time.monotonic() - last_write >= PARTIAL_REPORT_PERIOD:
                write_report_json(build_report(config, merged(), complete=False),
                                  out / "report.json")
                last_write = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for w in workers:  # still running only after an interrupt or an error here
            w.interrupt()
        codes = [w.finish(WORKER_STOP_TIMEOUT) for w in workers]
    config["workers"] = [{"worker": w.index, "ros_domain_id": w.domain,
                          "episodes": len(w.plans), "output": str(w.output), "returncode": code}
                         for w, code in zip(workers, codes, strict=True)]
    records = merged()
    failures = [w.failure() for w, code in zip(workers, codes, strict=True) if code != 0]
    if interrupted:
        return records, False, 130, "interrupted"
    for line in failures:
        print(f"[rt2-eval] failed: {line}", file=sys.stderr)
    complete = not failures and len(records) == len(plans)
    return records, complete, 1 if failures else 0, "; ".join(failures)


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
    parser.add_argument("--no-release-at-waypoint", dest="release_at_waypoint",
                        action="store_false",
                        help="do not open the gripper where a waypoint plan's carry arrives "
                             "(rt2_policy.waypoint_release; on by default, a no-op for models "
                             "without waypoint plans)")
    parser.add_argument("--observe-after-motion", action="store_true",
                        help="the policy node observes only after each action's motion has "
                             "ended (its observe_after_motion parameter; off by default)")
    parser.add_argument("--direct", action="store_true",
                        help="run the episodes in this process without ROS "
                             "(rt2_bringup.direct_rollout): observe, infer, then the action for "
                             "one control period, on the simulator's clock; deterministic and "
                             "about 3x faster than the ROS loop, for choosing checkpoints; "
                             "not what make eval measures")
    parser.add_argument("--observation-lag", type=float, default=0.0,
                        help="--direct: seconds, in [0, control period), by which each frame "
                             "comes before the previous action's motion ends, the rest of it "
                             "run while the model infers, as in the ROS loop (0.1 reproduces "
                             "make eval with the shipped model); 0 (default): after the motion, "
                             "as the demonstrations are recorded")
    parser.add_argument("--terminate-threshold", type=float, default=0.0,
                        help="probability of terminate the policy's decode needs to end an "
                             "episode, in (0, 1); 0 (default) = the checkpoint's own "
                             "(rt2_policy.vla_policy.VLAPolicy)")
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
    parser.add_argument("--jobs", type=int, default=1,
                        help="ROS graphs to run in parallel, each in a worker process on its own "
                             "ROS domain; episodes keep their seeds and families, and the "
                             "report is merged as a sequential run writes it")
    parser.add_argument("--only", nargs="+", default=None, metavar="SPLIT:INDEX",
                        help="run only these episodes of the plan (e.g. seen:3 or seen:0,seen:1); "
                             "--jobs hands each worker its share this way")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
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
