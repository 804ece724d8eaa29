"""The evaluation harness's pure core: plans, records, Wilson intervals, aggregates, writers."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from rt2_bringup.evaluation import (
    EVAL_SEED_MIN,
    SPLITS,
    TASK_FAMILIES,
    EpisodePlan,
    EpisodeRecord,
    aggregate,
    build_report,
    comparison_markdown,
    load_report,
    merge_records,
    partition_plans,
    plan_episodes,
    plan_key,
    plot_comparison,
    report_records,
    results_markdown,
    select_plans,
    summary_line,
    wilson_interval,
    write_outputs,
)


def record(split="seen", family="pick", index=0, success=True, terminated=True,
           outcome="SUCCEEDED", steps=20, latency=40.0) -> EpisodeRecord:
    return EpisodeRecord(split=split, family=family, index=index, seed=EVAL_SEED_MIN + index,
                         instruction=f"do {family}", task={"family": family, "split": split},
                         success=success, terminated=terminated, outcome=outcome, steps=steps,
                         duration_s=steps / 5.0, mean_inference_latency_ms=latency,
                         details={"lift_height": 0.07})


def config(**overrides) -> dict:
    base = {"label": "tiny", "model": "/m/tiny", "backend": "local", "splits": list(SPLITS),
            "families": list(TASK_FAMILIES), "episodes_per_split": 4, "seed": EVAL_SEED_MIN,
            "max_steps": 60, "time_limit": 30.0, "control_rate": 5.0}
    base.update(overrides)
    return base


def test_mirrored_names_match_the_simulator():
    from rt2_sim import tasks

    assert tuple(tasks.SPLITS) == SPLITS
    assert tuple(tasks.TASK_FAMILIES) == TASK_FAMILIES


def test_plan_pairs_seeds_across_splits_and_rotates_families():
    plans = plan_episodes(["seen", "unseen_objects"], ["pick", "push", "place"], 7, 1_000_000)
    assert len(plans) == 14
    seen = [p for p in plans if p.split == "seen"]
    other = [p for p in plans if p.split == "unseen_objects"]
    assert [p.seed for p in seen] == [p.seed for p in other] == list(range(1_000_000, 1_000_007))
    assert [p.family for p in seen] == ["pick", "push", "place"] * 2 + ["pick"]
    assert [p.index for p in other] == list(range(7))
    assert plans[0] == EpisodePlan("seen", "pick", 0, 1_000_000)


@pytest.mark.parametrize("kwargs, field", [
    ({"seed": 999_999}, "seed"),
    ({"episodes": 0}, "episodes"),
    ({"splits": []}, "splits"),
    ({"splits": ["seen", "seen"]}, "splits"),
    ({"families": "pick"}, "families"),
])
def test_plan_rejects_bad_settings(kwargs, field):
    args = {"splits": ["seen"], "families": ["pick"], "episodes": 2, "seed": EVAL_SEED_MIN}
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        plan_episodes(**args)


def test_wilson_interval_reference_values():
    # Reference values: Wilson score interval at z = 1.96 (e.g. statsmodels proportion_confint
    # method="wilson"): 5/10 -> [0.2366, 0.7634], 0/10 -> [0, 0.2775], 10/10 -> [0.7225, 1].
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(45, 50) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(31, 50)
    assert low < 31 / 50 < high
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(-1, 2)


def test_record_validation_and_round_trip():
    r = record()
    assert EpisodeRecord.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    with pytest.raises(ValueError, match="outcome"):
        record(outcome="WON")
    with pytest.raises(ValueError, match="success"):
        record(success=1)
    with pytest.raises(ValueError, match="success"):
        record(outcome="ERROR", success=True)
    with pytest.raises(ValueError, match="steps"):
        record(steps=-1)
    err = EpisodeRecord.error(EpisodePlan("seen", "push", 3, EVAL_SEED_MIN + 3), "no reply")
    assert (err.success, err.outcome, err.message, err.seed) == (False, "ERROR", "no reply",
                                                                 EVAL_SEED_MIN + 3)


def test_aggregate_per_split_family_and_unseen_average():
    records = [
        record("seen", "pick", 0, True),
        record("seen", "push", 1, True, terminated=False, outcome="TIMED_OUT", steps=60),
        record("seen", "pick", 2, False, terminated=True),  # terminated but task not solved
        record("seen", "push", 3, False, terminated=False, outcome="TIMED_OUT"),
        record("unseen_objects", "pick", 0, True),
        record("unseen_objects", "push", 1, False, terminated=False, outcome="TIMED_OUT"),
        EpisodeRecord.error(EpisodePlan("unseen_backgrounds", "pick", 0, EVAL_SEED_MIN), "x"),
        record("unseen_backgrounds", "push", 1, True),
    ]
    agg = aggregate(records, ["seen", "unseen_objects", "unseen_backgrounds",
                              "unseen_instructions"], ["pick", "push"])
    seen = agg["splits"]["seen"]
    assert seen["overall"] == {"successes": 2, "episodes": 4, "rate": 0.5,
                               "ci95": [0.1500, 0.8500]}
    assert seen["families"]["pick"]["rate"] == 0.5 and seen["families"]["push"]["rate"] == 0.5
    assert seen["terminated"]["rate"] == 0.5
    # of the two it terminated, one (pick 2) fails its task check: an early terminate
    assert (seen["terminated_unsolved"]["successes"], seen["terminated_unsolved"]["episodes"]) \
        == (1, 4)
    assert agg["splits"]["unseen_objects"]["terminated_unsolved"]["successes"] == 0
    assert seen["mean_steps"] == pytest.approx((20 + 60 + 20 + 20) / 4)
    assert agg["splits"]["unseen_backgrounds"]["errors"] == 1
    assert agg["splits"]["unseen_backgrounds"]["overall"]["rate"] == 0.5  # error = failure
    assert agg["splits"]["unseen_backgrounds"]["mean_steps"] == 20  # errors have no steps
    empty = agg["splits"]["unseen_instructions"]["overall"]
    assert (empty["episodes"], empty["rate"]) == (0, None)
    assert agg["unseen_average"] == 0.5  # mean of 0.5, 0.5 (the empty split is left out)
    assert agg["overall"]["successes"] == 4 and agg["episodes"] == 8
    assert agg["families"]["pick"] == {"successes": 2, "episodes": 4, "rate": 0.5,
                                       "ci95": [0.15, 0.85]}


def test_writers_produce_valid_json_markdown_png_and_summary(tmp_path):
    records = [record(s, f, i, success=(i % 2 == 0)) for s in SPLITS
               for i, f in enumerate(TASK_FAMILIES)]
    report = build_report(config(), records)
    paths = write_outputs(report, tmp_path / "run")
    loaded = load_report(paths["report"])
    assert loaded["complete"] is True and len(loaded["episodes"]) == 16
    assert [EpisodeRecord.from_dict(e) for e in loaded["episodes"]] == records
    assert loaded["aggregates"]["splits"]["seen"]["overall"]["rate"] == 0.5

    md = paths["markdown"].read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0].startswith("| split | pick | move_near | place | push | overall")
    assert len(table) == 2 + len(SPLITS) + 1  # header, rule, a row per split, all
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert "| unseen objects | 100% (1/1) | 0% (0/1) |" in md
    # every episode terminated; the two that failed did so early
    assert "| 100% | 2 of 4 | 0 |" in md.splitlines()[table_start(md) + 2]
    del loaded["aggregates"]["splits"]["seen"]["terminated_unsolved"]  # a report from before
    assert "| 100% | – | 0 |" in results_markdown(loaded)
    assert "50% (2/4) [15%–85%]" in md

    with Image.open(paths["plot"]) as png:
        assert png.format == "PNG" and png.size[0] > 300 and png.size[1] > 200

    line = summary_line(loaded, paths["report"])
    assert "\n" not in line
    summary = json.loads(line)
    assert summary["success_rate"] == {s: 0.5 for s in SPLITS}
    assert (summary["episodes"], summary["seed"], summary["model"]) == (16, EVAL_SEED_MIN, "tiny")
    assert summary["report"] == str(paths["report"])


def table_start(markdown: str) -> int:
    return next(i for i, line in enumerate(markdown.splitlines()) if line.startswith("|"))


def test_partial_report_and_bad_inputs(tmp_path):
    report = build_report(config(), [record()], complete=False)
    assert "partial run" in results_markdown(report)
    assert json.loads(summary_line(report, "r.json"))["complete"] is False
    with pytest.raises(ValueError, match="label"):
        build_report({"splits": ["seen"], "families": ["pick"], "seed": EVAL_SEED_MIN,
                      "episodes_per_split": 1}, [])
    bad = tmp_path / "other.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="rt2 evaluation report"):
        load_report(bad)


def test_comparison_table_and_plot(tmp_path):
    robot_only = build_report(config(label="robot data only"),
                              [record(s, "pick", 0, success=(s == "seen")) for s in SPLITS])
    cofinetuned = build_report(config(label="co-fine-tuned"),
                               [record(s, "pick", 0, success=True) for s in SPLITS])
    md = comparison_markdown([robot_only, cofinetuned])
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows[0] == ("| model | seen | unseen objects | unseen backgrounds | "
                       "unseen instructions | unseen average |")
    assert rows[1].startswith("| robot data only | 100% (1/1)") and rows[1].endswith("| 0% |")
    assert rows[2].startswith("| co-fine-tuned |") and rows[2].endswith("| 100% |")
    assert "paired" in md and "not paired" not in md
    unpaired = build_report(config(label="other seed", seed=2_000_000), [record()])
    assert "not paired" in comparison_markdown([robot_only, unpaired])
    with Image.open(plot_comparison([robot_only, cofinetuned], tmp_path / "c.png")) as png:
        assert png.format == "PNG"
    with pytest.raises(ValueError):
        comparison_markdown([])


def test_partition_deals_plans_round_robin_with_their_seeds_and_families():
    plans = plan_episodes(["seen", "unseen_objects"], ["pick", "push", "place"], 5)
    parts = partition_plans(plans, 2)
    assert [[plan_key(p) for p in part] for part in parts] == [
        ["seen:0", "seen:2", "seen:4", "unseen_objects:1", "unseen_objects:3"],
        ["seen:1", "seen:3", "unseen_objects:0", "unseen_objects:2", "unseen_objects:4"]]
    assert sorted((p for part in parts for p in part), key=plans.index) == plans  # same plans
    assert partition_plans(plans, 1) == [plans]
    assert [len(part) for part in partition_plans(plans, 3)] == [4, 3, 3]
    assert partition_plans(plans[:2], 8) == [[plans[0]], [plans[1]]]  # no idle workers
    assert partition_plans([], 2) == []
    for jobs in (0, 1.5, True):
        with pytest.raises(ValueError, match="jobs"):
            partition_plans(plans, jobs)


def test_select_plans_keeps_plan_order_and_rejects_unknown_episodes():
    plans = plan_episodes(["seen", "unseen_objects"], ["pick", "push"], 3, EVAL_SEED_MIN)
    chosen = select_plans(plans, ["unseen_objects:2,seen:1", "seen:1"])
    assert chosen == [EpisodePlan("seen", "push", 1, EVAL_SEED_MIN + 1),
                      EpisodePlan("unseen_objects", "pick", 2, EVAL_SEED_MIN + 2)]
    for keys in (["seen:3"], ["nowhere:0"], ["seen"], []):
        with pytest.raises(ValueError, match="only"):
            select_plans(plans, keys)


def test_merge_records_restores_the_sequential_order():
    plans = plan_episodes(["seen", "unseen_objects"], ["pick", "move_near"], 3)

    def run(plan):
        return record(plan.split, plan.family, plan.index, success=plan.index % 2 == 0)

    sequential = [run(p) for p in plans]
    parts = [[run(p) for p in part] for part in partition_plans(plans, 2)]
    merged = merge_records(plans, reversed(parts))
    assert merged == sequential
    cfg = config(splits=["seen", "unseen_objects"], families=["pick", "move_near"],
                 episodes_per_split=3)
    assert build_report(cfg, merged) == build_report(cfg, sequential)
    # A failed worker: its unfinished episodes are left out, the rest stay in order.
    partial = merge_records(plans, [parts[0], parts[1][:1]])
    assert [plan_key(r) for r in partial] == ["seen:0", "seen:1", "seen:2", "unseen_objects:1"]
    with pytest.raises(ValueError, match="twice"):
        merge_records(plans, [parts[0], parts[0][:1]])
    with pytest.raises(ValueError, match="not planned"):
        merge_records(plans[:1], parts)
    wrong_seed = EpisodeRecord.from_dict({**sequential[0].to_dict(), "seed": EVAL_SEED_MIN + 7})
    with pytest.raises(ValueError, match="seed"):
        merge_records(plans, [[wrong_seed]])


def test_report_records_round_trip(tmp_path):
    records = [record("seen", "pick", 0), record("seen", "push", 1, success=False)]
    paths = write_outputs(build_report(config(), records), tmp_path)
    assert report_records(load_report(paths["report"])) == records
