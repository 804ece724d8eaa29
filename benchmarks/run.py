"""rt2 benchmarks: ``make bench`` (``make bench ARGS=--quick`` for a short check).

Prints a table per section, then, as the very last line, a one-line JSON summary with every
figure as a ratio measured in this run and whether each target is met. Targets (issue 4, a
2-core machine, the small model): constrained decoder >= 1.3x ``generate``; policy node >= 0.9x
the raw infer rate (uncapped); 8 clients batched >= 4x one at a time; remote path <= +5 ms p50.

Run it on a quiet machine: every figure is a ratio of two measurements of this run, but other
processes competing for the cores move them. ``--model PATH`` benchmarks another checkpoint
(default: the offline tiny VLA, 5.6 M parameters, built once into the temp directory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks import common, decode_bench, node_bench, serving_bench, train_bench

TARGETS = {"decode_speedup": 1.3, "node_rate_ratio": 0.9, "batching_throughput_ratio": 4.0,
           "remote_added_p50_ms": 5.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="checkpoint (default: the tiny VLA)")
    parser.add_argument("--quick", action="store_true", help="short windows (a smoke run)")
    parser.add_argument("--sections", default="decode,node,serving",
                        help="comma-separated subset of decode,node,serving,train (train: "
                             "training steps/s, 1 vs 2 threads vs beside a twin run; "
                             "about 4.5 min, not in the default)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for local inference, the node and the server")
    parser.add_argument("--server-threads", default="1,2",
                        help="comma-separated torch thread counts of the policy server; each "
                             "serving mode is measured at each and compared at its best")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the torch.compile decode variant")
    parser.add_argument("--domain", type=int,
                        default=int(os.environ.get("ROS_DOMAIN_ID", "37") or 37),
                        help="ROS_DOMAIN_ID of the node benchmark")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else 8.0
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    model = common.model_dir(args.model or None)
    summary: dict = {"machine": common.machine(), "model": args.model or "tiny_vla",
                     "quick": bool(args.quick)}
    figures: dict = {}
    if "decode" in sections:
        result = decode_bench.run(model, seconds=seconds / 2, compile=not args.no_compile,
                                  threads=args.threads)
        print("\n".join(decode_bench.table(result)), flush=True)
        summary["model_parameters"] = result["model_parameters"]
        speed = result["batch1"]["speedup_vs_generate"]
        figures["decode_speedup"] = max(speed.get("rt2", 0.0), speed.get("rt2_compiled", 0.0))
        figures["decode_speedup_eager"] = speed.get("rt2")
        figures["decode_speedup_compiled"] = speed.get("rt2_compiled")
        summary["decode"] = result
    if "node" in sections:
        result = node_bench.run(model, seconds=seconds, threads=args.threads,
                                domain=args.domain)
        print("\n".join(node_bench.table(result)), flush=True)
        figures["node_rate_ratio"] = result["ratio"]
        summary["node"] = result
    if "serving" in sections:
        server_threads = [int(t) for t in str(args.server_threads).split(",") if t.strip()]
        result = serving_bench.run(model, seconds=seconds / 2,
                                   threads=server_threads or [args.threads])
        print("\n".join(serving_bench.table(result)), flush=True)
        figures["batching_throughput_ratio"] = result["throughput_ratio_at_max_clients"]
        figures["batching_threads"] = {"batched": result["batched_threads"],
                                       "one_at_a_time": result["one_at_a_time_threads"]}
        figures["batching_throughput_ratio_same_threads"] = result[
            "throughput_ratio_same_threads"]
        figures["remote_added_p50_ms"] = result["remote_added_p50_ms"]
        figures["p99_ms_8_clients_batched"] = result["batched"].get("8", {}).get("p99_ms")
        summary["serving"] = result
    if "train" in sections:
        result = train_bench.run(seconds=15.0 if args.quick else 60.0)
        print("\n".join(train_bench.table(result)), flush=True)
        figures["train_two_threads_vs_one"] = result["two_threads_vs_one"]
        figures["train_beside_twin_vs_alone"] = result["beside_twin_vs_alone"]
        figures["train_two_threads_alone_vs_beside_twin"] = result[
            "two_threads_alone_vs_beside_twin"]
        figures["train_two_threads_active_vs_beside_twin"] = result[
            "two_threads_active_vs_beside_twin"]
        summary["train"] = result
    met = {}
    for name, target in TARGETS.items():
        if figures.get(name) is None:
            continue
        value = figures[name]
        met[name] = value <= target if name == "remote_added_p50_ms" else value >= target
    line = {"figures": figures, "targets": TARGETS, "met": met,
            "all_met": bool(met) and all(met.values()), "machine": summary["machine"],
            "model": summary["model"], "model_parameters": summary.get("model_parameters"),
            "quick": summary["quick"]}
    print(json.dumps(line, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
