"""Training-throughput benchmark: how many optimizer steps a co-fine-tuning run gets per second
with one torch thread alone, with two threads alone (``OMP_WAIT_POLICY=PASSIVE``, as every rt2
process sets it, and ``ACTIVE``, spinning threads), and beside a twin run (one thread each, as
``make train`` runs the co-fine-tuned model and its robot-only ablation side by side).

Each arrangement runs :class:`rt2_policy.training.trainer.Trainer`'s real loop (model, AdamW,
pointer loss, mixture sampler) in its own process, on synthetic in-memory data shaped like the
recipe's: 224 px frames resized to the tiny model's input, waypoint-plan prompts with the
gripper state and tcp position, and 34 % VQA examples with pointing answers (``make train``'s
``RT2_PLAN=waypoint`` mixture). The figures are ratios against one thread alone measured in the
same run; preprocessing and the first step are not timed (``TrainResult.steps_per_s``).

Run it on a quiet machine: ``python -m benchmarks.train_bench`` (``--seconds``, ``--image-size``,
``--patch-size``), or ``make bench ARGS="--sections train"``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _examples(count: int, seed: int):
    """(robot, vqa) synthetic examples: 224 x 224 x 3 uint8 frames, 8-D actions in the default
    bounds (metres, radians, gripper 0..1), 9-D states (7 arm joints, rad; 2 finger joints, m),
    image points (0..255) and goal positions (metres, ``panda_link0``) for the waypoint plan."""
    import numpy as np

    rng = np.random.default_rng(seed)
    robot, vqa = [], []
    for i in range(count):
        image = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        action = np.concatenate([[0.0], rng.uniform(-0.02, 0.02, 6), [float(i % 2)]])
        state = np.concatenate([rng.uniform(-1.0, 1.0, 7), rng.uniform(0.0, 0.04, 2)])
        point = [int(v) for v in rng.integers(0, 256, 2)]
        goal = rng.uniform([0.3, -0.3, 0.05], [0.7, 0.3, 0.3])  # metres, panda_link0
        robot.append({"image": image, "action": action.astype(np.float32),
                      "observation.state": state.astype(np.float32),
                      "task": "put the red cube near the bowl",
                      "observation.target_point": np.asarray(point, np.float32),
                      "observation.goal_position": goal.astype(np.float32)})
        vqa.append({"image": image, "question": "where is the red cube?",
                    "answer": f"{point[0]} {point[1]}"})
    return robot, vqa


def worker(threads: int, seconds: float, image_size: int, patch_size: int,
           batch_size: int) -> dict:
    """One timed run in this process: ``{"threads", "step", "seconds", "steps_per_s"}`` from
    its :class:`~rt2_policy.training.trainer.TrainResult` (``seconds`` of training loop)."""
    from rt2_policy.training.config import TinyModelConfig, TrainConfig
    from rt2_policy.training.trainer import Trainer

    robot, vqa = _examples(96, seed=0)
    with tempfile.TemporaryDirectory(prefix="rt2_train_bench_") as out:
        config = TrainConfig(
            robot_datasets=("in-memory",), vqa_datasets=("in-memory",), output_dir=out,
            robot_fraction=0.66, max_steps=1_000_000, batch_size=batch_size, cot=1.0,
            cot_plan="waypoint", grounding_point="goal", grounding_loss_weight=1.0,
            gripper_state_indices=(7, 8), tcp_position_indices=tuple(range(7)),
            learning_rate=5e-4, warmup_steps=10,
            time_budget_min=seconds / 60.0, log_interval=10_000, eval_interval=0,
            save_interval=0, num_threads=threads, num_workers=0, progress=False, seed=0,
            tiny=TinyModelConfig(image_size=image_size, patch_size=patch_size,
                                 image_position="suffix"))
        result = Trainer(config, robot=robot, vqa=vqa).train()
    return {"threads": threads, "step": result.step, "seconds": round(result.seconds, 2),
            "steps_per_s": result.steps_per_s}


def _spawn(threads: int, flags: list[str], wait_policy: str = "PASSIVE") -> subprocess.Popen:
    """Start one worker process (``flags``: its ``--seconds``, sizes and batch)."""
    env = dict(os.environ, OMP_WAIT_POLICY=wait_policy, HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "benchmarks.train_bench", "--worker", "--threads", str(threads),
           *flags]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _collect(procs: list[subprocess.Popen]) -> list[dict]:
    """Wait for every worker (none is left running), then parse their JSON lines.

    Raises:
        RuntimeError: a worker exited non-zero (its stderr's tail in the message).
    """
    done = [proc.communicate() for proc in procs]
    out = []
    for proc, (stdout, stderr) in zip(procs, done, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"train_bench worker failed ({proc.returncode}): {stderr[-2000:]}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def run(*, seconds: float = 60.0, image_size: int = 144, patch_size: int = 18,
        batch_size: int = 16) -> dict:
    """Time the four arrangements one after another (1 thread, 2 threads PASSIVE, 2 threads
    ACTIVE, two 1-thread runs together); rates in optimizer steps/s, ratios against 1 thread
    alone and against the slower run of the pair (``*_vs_beside_twin``).

    Raises:
        RuntimeError: a worker failed (e.g. an image size that is no multiple of 2 x patch).
    """
    flags = ["--seconds", str(seconds), "--image-size", str(image_size),
             "--patch-size", str(patch_size), "--batch-size", str(batch_size)]
    alone1 = _collect([_spawn(1, flags)])[0]
    alone2 = _collect([_spawn(2, flags)])[0]
    active2 = _collect([_spawn(2, flags, "ACTIVE")])[0]
    pair = _collect([_spawn(1, flags), _spawn(1, flags)])
    base = alone1["steps_per_s"]
    each = min(p["steps_per_s"] for p in pair)

    def ratio(rate: float, baseline: float) -> float:  # NaN for a zero baseline
        return round(rate / (baseline or float("nan")), 3)

    return {"image_size": image_size, "patch_size": patch_size, "batch_size": batch_size,
            "seconds": seconds, "alone_1_thread": alone1, "alone_2_threads": alone2,
            "alone_2_threads_active": active2, "beside_twin_1_thread": pair,
            "two_threads_vs_one": ratio(alone2["steps_per_s"], base),
            "beside_twin_vs_alone": ratio(each, base),
            "two_threads_alone_vs_beside_twin": ratio(alone2["steps_per_s"], each),
            "two_threads_active_vs_one": ratio(active2["steps_per_s"], base),
            "two_threads_active_vs_beside_twin": ratio(active2["steps_per_s"], each)}


def table(result: dict) -> list[str]:
    base = result["alone_1_thread"]["steps_per_s"] or float("nan")
    rows = [f"## Training throughput ({result['image_size']} px, {result['patch_size']} px "
            f"patches, batch {result['batch_size']}, {result['seconds']:.0f} s each)", "",
            "| arrangement | steps/s | vs one thread alone |", "|---|---|---|"]
    rows.append(f"| one run, 1 thread | {base:.2f} | 1.00x |")
    two = result["alone_2_threads"]["steps_per_s"]
    rows.append(f"| one run, 2 threads | {two:.2f} | {two / base:.2f}x |")
    active = result["alone_2_threads_active"]["steps_per_s"]
    rows.append(f"| one run, 2 threads, OMP_WAIT_POLICY=ACTIVE | {active:.2f} | "
                f"{active / base:.2f}x |")
    for i, p in enumerate(result["beside_twin_1_thread"]):
        rows.append(f"| beside a twin (make train), run {i + 1}, 1 thread | "
                    f"{p['steps_per_s']:.2f} | {p['steps_per_s'] / base:.2f}x |")
    rows.append("")
    rows.append(f"one run with both cores gets {result['two_threads_alone_vs_beside_twin']:.2f}x "
                f"(ACTIVE: {result['two_threads_active_vs_beside_twin']:.2f}x) the steps it gets "
                "beside its twin")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="timed seconds per run")
    parser.add_argument("--image-size", type=int, default=144, help="policy image side, px")
    parser.add_argument("--patch-size", type=int, default=18, help="vision patch side, px")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.threads, args.seconds, args.image_size, args.patch_size,
                                args.batch_size)), flush=True)
        return 0
    result = run(seconds=args.seconds, image_size=args.image_size, patch_size=args.patch_size,
                 batch_size=args.batch_size)
    print("\n".join(table(result)), flush=True)
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
