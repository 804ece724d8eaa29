"""The pure core of rt2's evaluation harness: episode plans, records, success rates, reports.

No rclpy, no torch: :mod:`rt2_bringup.evaluate` drives the ROS graph and fills
:class:`EpisodeRecord` s; this module plans the episodes, aggregates them into success rates
with Wilson 95 % intervals per split and task family, and writes ``report.json``,
``results.md`` and ``results.png``, plus the ablation table of ``--compare``. For ``--jobs``
it deals the plans to workers (:func:`partition_plans`) and merges their records back into the
sequential order (:func:`merge_records`).

Splits follow RT-2 §4 / Table 4 (seen tasks; unseen objects, backgrounds and instructions) and
the families RT-1's skills (``rt2_sim.tasks``). Seeds: evaluation scenes use seeds
>= :data:`EVAL_SEED_MIN` (training data is generated from seeds below it), and episode ``i`` of
every split gets seed ``base + i``, so two models evaluated with the same base seed see the same
scenes (paired comparison).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Task families and evaluation splits, as defined by ``rt2_sim.tasks`` (mirrored here so the
#: core imports nothing from the simulator; ``test_evaluation`` checks that they agree).
TASK_FAMILIES = ("pick", "move_near", "place", "push")
SPLITS = ("seen", "unseen_objects", "unseen_backgrounds", "unseen_instructions")

#: Smallest evaluation seed; training scenes use seeds below it.
EVAL_SEED_MIN = 1_000_000
#: Default base seed of an evaluation run.
DEFAULT_SEED = 1_000_000

#: Outcomes of an episode as reported by the policy node (``ExecuteInstruction.Result``), plus
#: ``ERROR`` when the harness could not run the episode (reset failed, no result, ...).
OUTCOMES = ("SUCCEEDED", "TIMED_OUT", "ABORTED", "CANCELED", "ERROR")

#: Two-sided 95 % standard-normal quantile.
Z95 = 1.959963984540054

REPORT_FORMAT = "rt2-eval/1"


# ---------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class EpisodePlan:
    """One episode to run.

    Attributes:
        split: evaluation split, e.g. ``"unseen_objects"``.
        family: task family, e.g. ``"pick"``.
        index: episode index within the split (0-based).
        seed: scene and task seed passed to ``/rt2_sim/reset`` (>= :data:`EVAL_SEED_MIN`).
    """

    split: str
    family: str
    index: int
    seed: int


def plan_episodes(splits: Sequence[str], families: Sequence[str], episodes: int,
                  seed: int = DEFAULT_SEED) -> list[EpisodePlan]:
    """The episodes of a run, split by split.

    Episode ``i`` of every split has seed ``seed + i`` and family ``families[i % len(families)]``
    (families rotate, so each gets ``episodes / len(families)`` episodes, ±1).

    Args:
        splits: splits to evaluate, in order; non-empty, no duplicates.
        families: task families to rotate through; non-empty, no duplicates.
        episodes: episodes per split, >= 1.
        seed: base seed, >= :data:`EVAL_SEED_MIN`.

    Returns:
        ``len(splits) * episodes`` plans.

    Raises:
        ValueError: on an empty or duplicated split/family list, ``episodes < 1`` or a seed
            below :data:`EVAL_SEED_MIN`.
    """
    _check_names("splits", splits)
    _check_names("families", families)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes: expected an int >= 1 per split, got {episodes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < EVAL_SEED_MIN:
        raise ValueError(f"seed: expected an int >= {EVAL_SEED_MIN} (seeds below are training "
                         f"scenes), got {seed!r}")
    return [EpisodePlan(split, families[i % len(families)], i, seed + i)
            for split in splits for i in range(episodes)]


def _check_names(what: str, names: Sequence[str]) -> None:
    if isinstance(names, str) or not names:
        raise ValueError(f"{what}: expected a non-empty list of names, got {names!r}")
    if any(not isinstance(n, str) or not n for n in names):
        raise ValueError(f"{what}: expected non-empty strings, got {list(names)!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: expected no duplicates, got {list(names)!r}")


# ---------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class EpisodeRecord:
    """What happened in one evaluation episode.

    Attributes:
        split: evaluation split.
        family: task family asked of the simulator.
        index: episode index within the split.
        seed: scene and task seed.
        instruction: the instruction sent to the policy ("" if the reset failed).
        task: the sampled task as reported by ``/rt2_sim/reset`` (family, target, reference,
            direction, split, seed); ``{}`` if unknown.
        success: the simulator's success check (``/rt2_sim/task_status``) at the end of the
            episode; False when the episode could not be run (``outcome == "ERROR"``).
        terminated: the policy ended the episode itself (RT-2's terminate token, outcome
            ``SUCCEEDED``), whether or not the task was solved.
        outcome: one of :data:`OUTCOMES`.
        steps: control steps executed, >= 0.
        duration_s: episode duration reported by the policy node, seconds, >= 0.
        mean_inference_latency_ms: mean model latency over the episode's steps, milliseconds
            (None without steps).
        message: the policy node's result message, or the harness's error.
        details: the simulator's task-status details (JSON object), e.g. lift height in metres.
        episode_id: the policy node's episode id ("" if none).
    """

    split: str
    family: str
    index: int
    seed: int
    instruction: str
    task: dict
    success: bool
    terminated: bool
    outcome: str
    steps: int
    duration_s: float
    mean_inference_latency_ms: float | None = None
    message: str = ""
    details: dict = field(default_factory=dict)
    episode_id: str = ""

    def __post_init__(self) -> None:
        for name in ("split", "family"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}: expected a non-empty string, got {value!r}")
        for name in ("success", "terminated"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name}: expected a bool, got {value!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome: expected one of {OUTCOMES}, got {self.outcome!r}")
        if self.outcome == "ERROR" and self.success:
            raise ValueError("success: expected False for an episode with outcome ERROR, got True")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps: expected an int >= 0, got {self.steps!r}")
        if not (isinstance(self.duration_s, int | float) and self.duration_s >= 0):
            raise ValueError(f"duration_s: expected seconds >= 0, got {self.duration_s!r}")
        latency = self.mean_inference_latency_ms
        if latency is not None and not (isinstance(latency, int | float) and latency >= 0):
            raise ValueError(
                f"mean_inference_latency_ms: expected ms >= 0 or None, got {latency!r}")
        if not isinstance(self.task, dict) or not isinstance(self.details, dict):
            raise ValueError(f"task, details: expected dicts, got {type(self.task).__name__}, "
                             f"{type(self.details).__name__}")

    @classmethod
    def error(cls, plan: EpisodePlan, message: str, instruction: str = "",
              task: dict | None = None) -> EpisodeRecord:
        """A failed episode the harness could not run (counted as a task failure)."""
        return cls(plan.split, plan.family, plan.index, plan.seed, instruction, dict(task or {}),
                   success=False, terminated=False, outcome="ERROR", steps=0, duration_s=0.0,
                   message=message)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EpisodeRecord:
        """Inverse of :meth:`to_dict`; unknown keys are ignored (newer report formats)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def parse_json_object(text: str) -> dict:
    """``text`` as a JSON object; ``{"raw": text}`` if it is not one ({} for "")."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"raw": text}


# ---------------------------------------------------------------------------------- statistics
def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927; Agresti & Coull 1998).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0/n and n/n,
    which matter at 50 episodes per split.

    Args:
        successes: successes, 0 <= successes <= trials.
        trials: trials, >= 0.
        z: standard-normal quantile (1.96 for 95 %).

    Returns:
        ``(low, high)`` in [0, 1]; ``(0.0, 1.0)`` when ``trials == 0``.

    Raises:
        ValueError: on negative counts or ``successes > trials``.
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"successes, trials: expected 0 <= successes <= trials, got "
                         f"{successes}, {trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(successes: int, trials: int) -> dict:
    """``{"successes", "episodes", "rate", "ci95": [low, high]}``; rate None when no trials."""
    low, high = wilson_interval(successes, trials)
    return {"successes": successes, "episodes": trials,
            "rate": round(successes / trials, 4) if trials else None,
            "ci95": [round(low, 4), round(high, 4)]}


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return round(sum(kept) / len(kept), 3) if kept else None


def aggregate(records: Sequence[EpisodeRecord], splits: Sequence[str] | None = None,
              families: Sequence[str] | None = None) -> dict:
    """Success rates of ``records``, overall and per split, family and split × family.

    Args:
        records: the run's episodes.
        splits: splits in report order (default: as they first appear in ``records``); a split
            without records gets rates with 0 episodes.
        families: families in report order (default: as they first appear).

    Returns:
        A JSON-ready dict::

            {"splits": {split: {"overall": rate, "families": {family: rate},
                                "terminated": rate, "terminated_unsolved": rate,
                                "errors": int, "mean_steps": float,
                                "mean_inference_latency_ms": float}},
             "families": {family: rate}, "overall": rate,
             "unseen_average": float | None, "episodes": int}

        where each ``rate`` is :func:`rate`'s dict and ``unseen_average`` is the mean of the
        success rates of the splits named ``unseen_*`` (RT-2 Table 6's "unseen average").
        ``terminated`` counts episodes the policy ended itself; ``terminated_unsolved`` those of
        them whose task check fails (the policy said "done" too early: an early terminate).
    """
    splits = list(splits) if splits is not None else list(dict.fromkeys(r.split for r in records))
    families = (list(families) if families is not None
                else list(dict.fromkeys(r.family for r in records)))

    def count(selected: list[EpisodeRecord], attr: str = "success") -> dict:
        return rate(sum(bool(getattr(r, attr)) for r in selected), len(selected))

    per_split = {}
    for split in splits:
        mine = [r for r in records if r.split == split]
        per_split[split] = {
            "overall": count(mine),
            "families": {f: count([r for r in mine if r.family == f]) for f in families},
            "terminated": count(mine, "terminated"),
            "terminated_unsolved": rate(sum(r.terminated and not r.success for r in mine),
                                        len(mine)),
            "errors": sum(r.outcome == "ERROR" for r in mine),
            "mean_steps": _mean(r.steps for r in mine if r.outcome != "ERROR"),
            "mean_inference_latency_ms": _mean(r.mean_inference_latency_ms for r in mine),
        }
    unseen = [per_split[s]["overall"]["rate"] for s in splits
              if s.startswith("unseen") and per_split[s]["overall"]["rate"] is not None]
    return {
        "splits": per_split,
        "families": {f: count([r for r in records if r.family == f]) for f in families},
        "overall": count(list(records)),
        "unseen_average": round(sum(unseen) / len(unseen), 4) if unseen else None,
        "episodes": len(records),
    }


# ---------------------------------------------------------------------------------- reports
def build_report(config: dict, records: Sequence[EpisodeRecord], complete: bool = True) -> dict:
    """The content of ``report.json``.

    Args:
        config: the run's settings; must hold ``splits`` and ``families`` (report order),
            ``seed``, ``episodes_per_split`` and ``label`` (the model's name in tables).
        records: the episodes run so far.
        complete: False for a partial report (interrupted or aborted run).

    Raises:
        ValueError: if ``config`` lacks one of the keys above.
    """
    missing = [k for k in ("splits", "families", "seed", "episodes_per_split", "label")
               if k not in config]
    if missing:
        raise ValueError(f"config: expected keys {missing}, got {sorted(config)}")
    return {
        "format": REPORT_FORMAT,
        "complete": bool(complete),
        "config": dict(config),
        "aggregates": aggregate(records, config["splits"], config["families"]),
        "episodes": [r.to_dict() for r in records],
    }


def load_report(path: str | Path) -> dict:
    """Read a ``report.json``.

    Raises:
        ValueError: if the file is not an rt2 evaluation report.
    """
    report = json.loads(Path(path).read_text())
    found = report.get("format") if isinstance(report, dict) else None
    if found != REPORT_FORMAT:
        raise ValueError(f"{path}: expected an rt2 evaluation report (format {REPORT_FORMAT!r}), "
                         f"got format {found!r}")
    return report


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _unsolved(split: dict) -> str:
    """``"unsolved of terminated"`` episodes of a split ("–" in reports written before the count
    existed, or without episodes)."""
    unsolved, terminated = split.get("terminated_unsolved"), split["terminated"]
    if unsolved is None or not terminated["episodes"]:
        return "–"
    return f"{unsolved['successes']} of {terminated['successes']}"


def _cell(r: dict, with_ci: bool = False) -> str:
    if not r["episodes"]:
        return "–"
    text = f"{_pct(r['rate'])} ({r['successes']}/{r['episodes']})"
    if with_ci:
        text += f" [{_pct(r['ci95'][0])}–{_pct(r['ci95'][1])}]"
    return text


def split_title(split: str) -> str:
    """``"unseen_objects"`` -> ``"unseen objects"``."""
    return split.replace("_", " ")


def results_markdown(report: dict) -> str:
    """``results.md``: split × family success rates, overall with Wilson 95 % intervals."""
    config, agg = report["config"], report["aggregates"]
    families = list(config["families"])
    lines = [
        f"# Evaluation of {config['label']}",
        "",
        f"- model: `{config.get('model', '')}` (backend `{config.get('backend', '')}`)",
        f"- episodes per split: {config['episodes_per_split']}, base seed {config['seed']} "
        f"(episode i of every split uses seed {config['seed']} + i), families rotating: "
        f"{', '.join(families)}",
        f"- limits: {config.get('max_steps', '?')} steps, {config.get('time_limit', '?')} s, "
        f"control rate {config.get('control_rate', '?')} Hz",
    ]
    if config.get("loop") == "direct":
        lines.append("- loop: direct rollouts in one process, no ROS (`--direct`, "
                     "rt2_bringup.direct_rollout), not the ROS loop of `make eval`; "
                     f"observation lag {config.get('observation_lag', 0.0):g} s")
    if config.get("started_at"):
        lines.append(f"- run: {config['started_at']}" +
                     (f", commit `{config['git_commit']}`" if config.get("git_commit") else ""))
    if not report.get("complete", True):
        lines.append("- **partial run**: interrupted or aborted before all episodes ran")
    lines += [
        "",
        "Success = the simulator's task check holds at the end of the episode. Cells: rate "
        "(successes/episodes); overall with its Wilson 95 % interval. *terminated*: the policy "
        "emitted terminate itself; *of them unsolved*: it did and the task check fails (an early "
        "terminate).",
        "",
        "| split | " + " | ".join(families) + " | overall [95% CI] | terminated | "
        "of them unsolved | errors | mean steps | latency (ms) |",
        "|---|" + "---|" * len(families) + "---|---|---|---|---|---|",
    ]
    for split, s in agg["splits"].items():
        steps, latency = s["mean_steps"], s["mean_inference_latency_ms"]
        lines.append(
            f"| {split_title(split)} | "
            + " | ".join(_cell(s["families"][f]) for f in families)
            + f" | {_cell(s['overall'], True)} | {_pct(s['terminated']['rate'])} | "
            f"{_unsolved(s)} | {s['errors']} | {'–' if steps is None else steps} | "
            f"{'–' if latency is None else latency} |")
    lines.append(
        "| **all** | " + " | ".join(_cell(agg["families"][f]) for f in families)
        + f" | {_cell(agg['overall'], True)} | | | | | |")
    lines += ["", f"Unseen average (mean over the unseen splits, RT-2 Table 6): "
                  f"{_pct(agg['unseen_average'])}", ""]
    return "\n".join(lines)


def _errors(r: dict) -> tuple[float, float]:
    """Error-bar lengths (below, above) of a rate; none for a cell without episodes."""
    if not r["episodes"]:
        return 0.0, 0.0
    value = r["rate"]
    return max(0.0, value - r["ci95"][0]), max(0.0, r["ci95"][1] - value)


def plot_results(report: dict, path: str | Path) -> Path:
    """``results.png``: per split, a bar per family and the overall rate with its 95 % interval.

    Uses matplotlib's Agg canvas directly (no pyplot state, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    config, agg = report["config"], report["aggregates"]
    splits, families = list(agg["splits"]), list(config["families"])
    series = [(f, [agg["splits"][s]["families"][f] for s in splits]) for f in families]
    series.append(("overall", [agg["splits"][s]["overall"] for s in splits]))
    fig = Figure(figsize=(max(6.0, 2.2 * len(splits)), 4.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    colours = ["#8fb8de", "#9fd49f", "#f2c078", "#e39a9a", "#c3a6db", "#b0b0b0"]
    for k, (name, rates) in enumerate(series):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(splits))]
        heights = [100 * (r["rate"] or 0.0) for r in rates]
        errors = [[100 * _errors(r)[0] for r in rates], [100 * _errors(r)[1] for r in rates]]
        overall = name == "overall"
        ax.bar(xs, heights, width, label=name, color="#2f4b7c" if overall else
               colours[k % len(colours)], yerr=errors if overall else None, capsize=3,
               edgecolor="black" if overall else "none", linewidth=0.6)
    ax.set_xticks(range(len(splits)))
    ax.set_xticklabels([f"{split_title(s)}\n(n={agg['splits'][s]['overall']['episodes']})"
                        for s in splits])
    ax.set_ylim(0, 105)
    ax.set_ylabel("success rate (%)")
    ax.set_title(f"{config['label']}: task success per split (error bars: Wilson 95 %)")
    ax.legend(ncol=len(series), fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def write_outputs(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``results.md`` and ``results.png`` into ``out_dir``.

    Returns:
        ``{"report": ..., "markdown": ..., "plot": ...}`` paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"report": out / "report.json", "markdown": out / "results.md",
             "plot": out / "results.png"}
    write_report_json(report, paths["report"])
    paths["markdown"].write_text(results_markdown(report))
    plot_results(report, paths["plot"])
    return paths


def write_report_json(report: dict, path: str | Path) -> Path:
    """Write ``report`` as indented JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)
    return path


def summary_line(report: dict, report_path: str | Path) -> str:
    """The one-line JSON summary printed last:
    ``{"success_rate": {split: rate}, "episodes": n, "seed": s, "model": label, "report": path,
    ...}`` (rates are fractions in [0, 1], None for a split without episodes)."""
    agg, config = report["aggregates"], report["config"]
    return json.dumps({
        "success_rate": {s: v["overall"]["rate"] for s, v in agg["splits"].items()},
        "episodes": agg["episodes"],
        "seed": config["seed"],
        "model": config["label"],
        "report": str(report_path),
        "unseen_average": agg["unseen_average"],
        "overall": agg["overall"]["rate"],
        "complete": report.get("complete", True),
    }, separators=(", ", ": "))


# ---------------------------------------------------------------------------------- ablation
def comparison_markdown(reports: Sequence[dict]) -> str:
    """An ablation table across models on the same splits (RT-2 Table 6 style): one row per
    report, a column per split (rate, successes/episodes, 95 % interval), the unseen average.

    Raises:
        ValueError: with fewer than one report.
    """
    if not reports:
        raise ValueError("reports: expected at least one report, got none")
    splits = list(dict.fromkeys(s for r in reports for s in r["aggregates"]["splits"]))
    paired = len({(r["config"]["seed"], r["config"]["episodes_per_split"],
                   tuple(r["config"]["families"])) for r in reports}) == 1
    lines = [
        "# Ablation: success rate per split",
        "",
        "Rate (successes/episodes) [Wilson 95 % interval]. "
        + ("All runs used the same seeds and families: the comparison is paired (same scenes)."
           if paired else "**Runs differ in seeds, episode counts or families: not paired.**"),
        "",
        "| model | " + " | ".join(split_title(s) for s in splits) + " | unseen average |",
        "|---|" + "---|" * len(splits) + "---|",
    ]
    for r in reports:
        per = r["aggregates"]["splits"]
        cells = [_cell(per[s]["overall"], True) if s in per else "–" for s in splits]
        label = r["config"]["label"] + ("" if r.get("complete", True) else " (partial)")
        lines.append(f"| {label} | " + " | ".join(cells)
                     + f" | {_pct(r['aggregates']['unseen_average'])} |")
    lines.append("")
    return "\n".join(lines)


def plot_comparison(reports: Sequence[dict], path: str | Path) -> Path:
    """Grouped bars: per split, one bar per model with its Wilson 95 % interval."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not reports:
        raise ValueError("reports: expected at least one report, got none")
    splits = list(dict.fromkeys(s for r in reports for s in r["aggregates"]["splits"]))
    fig = Figure(figsize=(max(6.0, 2.2 * len(splits)), 4.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / len(reports)
    empty = rate(0, 0)
    for k, r in enumerate(reports):
        rates = [r["aggregates"]["splits"].get(s, {"overall": empty})["overall"] for s in splits]
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(splits))]
        ax.bar(xs, [100 * (x["rate"] or 0.0) for x in rates], width,
               yerr=[[100 * _errors(x)[0] for x in rates], [100 * _errors(x)[1] for x in rates]],
               capsize=3, label=r["config"]["label"])
    ax.set_xticks(range(len(splits)))
    ax.set_xticklabels([split_title(s) for s in splits])
    ax.set_ylim(0, 105)
    ax.set_ylabel("success rate (%)")
    ax.set_title("success rate per split (error bars: Wilson 95 %)")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


# ---------------------------------------------------------------------------------- parallel runs
def plan_key(plan: EpisodePlan) -> str:
    """``"split:index"``, the name of an episode in ``--only`` (e.g. ``"seen:3"``)."""
    return f"{plan.split}:{plan.index}"


def select_plans(plans: Sequence[EpisodePlan], keys: Iterable[str]) -> list[EpisodePlan]:
    """The plans named by ``keys``, in the order of ``plans`` (seeds and families unchanged).

    Args:
        plans: the run's plans (:func:`plan_episodes`).
        keys: :func:`plan_key` names, e.g. ``["seen:0", "unseen_objects:3"]``; an item may hold
            several, comma-separated.

    Returns:
        The selected plans, each once.

    Raises:
        ValueError: if no key is given or a key names no plan of ``plans``.
    """
    wanted = [k.strip() for item in keys for k in item.split(",") if k.strip()]
    known = {plan_key(p) for p in plans}
    unknown = [k for k in wanted if k not in known]
    if not wanted or unknown:
        raise ValueError(f"only: expected episodes as split:index from {len(known)} planned "
                         f"(e.g. {plan_key(plans[0]) if plans else 'seen:0'}), got "
                         f"{unknown or wanted!r}")
    chosen = set(wanted)
    return [p for p in plans if plan_key(p) in chosen]


def partition_plans(plans: Sequence[EpisodePlan], jobs: int) -> list[list[EpisodePlan]]:
    """Deal ``plans`` round-robin to ``jobs`` workers: plan ``k`` goes to worker ``k % jobs``.

    Each worker gets a share of every split (the splits take about as long on every worker) and
    keeps the sequential order within it; the plans themselves (seeds, families) are unchanged.

    Args:
        plans: the run's plans in sequential order.
        jobs: number of workers, >= 1.

    Returns:
        ``min(jobs, len(plans))`` non-empty lists (none for no plans).

    Raises:
        ValueError: if ``jobs`` is not an int >= 1.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected an int >= 1, got {jobs!r}")
    workers = min(jobs, len(plans))
    return [list(plans[w::workers]) for w in range(workers)]


def merge_records(plans: Sequence[EpisodePlan],
                  parts: Iterable[Sequence[EpisodeRecord]]) -> list[EpisodeRecord]:
    """The records of several workers in the order of ``plans`` (as a sequential run has them).

    Episodes no worker finished (a failed or interrupted worker) are left out.

    Args:
        plans: the run's plans in sequential order.
        parts: each worker's records, in any order.

    Returns:
        The records, ordered by the position of their plan in ``plans``.

    Raises:
        ValueError: if a record names no plan, differs from its plan's seed or family, or comes
            twice.
    """
    position = {(p.split, p.index): (k, p) for k, p in enumerate(plans)}
    merged: dict[int, EpisodeRecord] = {}
    for records in parts:
        for r in records:
            found = position.get((r.split, r.index))
            if found is None:
                raise ValueError(f"records: episode {r.split}:{r.index} is not planned")
            k, plan = found
            if (r.seed, r.family) != (plan.seed, plan.family):
                raise ValueError(f"records: episode {r.split}:{r.index} has seed {r.seed} and "
                                 f"family {r.family!r}, planned {plan.seed} and {plan.family!r}")
            if k in merged:
                raise ValueError(f"records: episode {r.split}:{r.index} appears twice")
            merged[k] = r
    return [merged[k] for k in sorted(merged)]


def report_records(report: dict) -> list[EpisodeRecord]:
    """The :class:`EpisodeRecord` s of a loaded ``report.json``."""
    return [EpisodeRecord.from_dict(e) for e in report.get("episodes", [])]
