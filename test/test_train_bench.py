"""The training-throughput benchmark runs the real training loop in its four arrangements."""

from __future__ import annotations

import pytest

from benchmarks import train_bench


def test_train_bench_times_every_arrangement_against_one_thread_alone():
    result = train_bench.run(seconds=1.0, image_size=48, patch_size=12, batch_size=2)
    runs = [result["alone_1_thread"], result["alone_2_threads"], result["alone_2_threads_active"],
            *result["beside_twin_1_thread"]]
    assert [r["threads"] for r in runs] == [1, 2, 2, 1, 1]
    for r in runs:  # each ran optimizer steps of the real loop, for about the budget
        assert r["step"] >= 2 and r["steps_per_s"] > 0 and r["seconds"] >= 1.0
    base = result["alone_1_thread"]["steps_per_s"]
    each = min(r["steps_per_s"] for r in result["beside_twin_1_thread"])
    assert result["two_threads_vs_one"] == pytest.approx(
        result["alone_2_threads"]["steps_per_s"] / base, abs=1e-3)
    assert result["beside_twin_vs_alone"] == pytest.approx(each / base, abs=1e-3)
    assert result["two_threads_active_vs_beside_twin"] == pytest.approx(
        result["alone_2_threads_active"]["steps_per_s"] / each, abs=1e-3)
    assert result["two_threads_alone_vs_beside_twin"] == pytest.approx(
        result["alone_2_threads"]["steps_per_s"] / each, abs=1e-3)
    lines = train_bench.table(result)
    assert lines[0].startswith("## Training throughput (48 px, 12 px patches, batch 2")
    assert sum("beside a twin" in line for line in lines) == 2


def test_a_failing_worker_is_reported():
    with pytest.raises(RuntimeError, match="train_bench worker failed"):
        train_bench.run(seconds=1.0, image_size=50, patch_size=12, batch_size=2)
