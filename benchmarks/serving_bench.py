"""Serving benchmark: rt2-serve on loopback with 1, 4 and 8 robot clients, batched vs one at a
time, and the latency the remote path adds over local inference.

The server runs as its own process (``python -m rt2_policy.serving``), with dynamic batching
(``--max-batch-size 8``) and without (``--max-batch-size 1``), each at every server torch-thread
count asked for (default 1 and 2; servers with several threads run with
``OMP_WAIT_POLICY=ACTIVE``, as passive waiting made 2 threads slower than 1 on the tiny VLA). The
throughput ratio compares each mode at its best thread count (both measured in this run; which
one won is reported), and also at the same thread count. Each robot is a thread here with its
own :class:`RemotePolicy`, in closed loop (next request when the reply is in, as a control loop
at an uncapped rate), each on its own image and instruction.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np

from benchmarks.common import INSTRUCTIONS, free_port, image, percentile_ms, rate_for


class Server:
    def __init__(self, model_path: str, *, max_batch_size: int, window_ms: float,
                 threads: int) -> None:
        self.port = free_port()
        # One thread: OMP's wait policy is moot. Several: PASSIVE (what rt2 sets by default)
        # pays a futex wake-up per parallel op, which made 2 threads ~2x slower than 1 on the
        # tiny VLA; ACTIVE spins the extra core between ops (fine while the server owns it).
        self.omp_wait_policy = "PASSIVE" if threads <= 1 else "ACTIVE"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rt2_policy.serving", "--model", model_path,
             "--port", str(self.port), "--num-threads", str(threads),
             "--max-batch-size", str(max_batch_size), "--batch-window-ms", str(window_ms),
             "--log-level", "WARNING"],
            env=dict(os.environ, RT2_API_KEY="", OMP_WAIT_POLICY=self.omp_wait_policy),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        self.uri = f"ws://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180.0) -> None:
        from rt2_policy.serving.client import RemotePolicy
        from rt2_policy.serving.config import ClientConfig

        probe = RemotePolicy(ClientConfig(uri=self.uri), connect=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rt2-serve exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                probe.health(timeout=1.0)
                return
            except ConnectionError:
                time.sleep(0.2)
        raise TimeoutError(f"rt2-serve not ready within {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def robots(uri: str, count: int, seconds: float, size: int) -> dict:
    """``count`` closed-loop clients for ``seconds``: actions/s and latency percentiles."""
    from rt2_policy.contract import Observation
    from rt2_policy.serving.client import RemotePolicy
    from rt2_policy.serving.config import ClientConfig

    config = ClientConfig(uri=uri, request_timeout=30.0, connect_timeout=30.0)
    clients = [RemotePolicy(config, require_connection=True) for _ in range(count)]
    observations = [Observation(image(i, size), INSTRUCTIONS[i % len(INSTRUCTIONS)],
                                gripper_state=0.0, tcp_position=(0.3, 0.0, 0.5))
                    for i in range(count)]
    for c, o in zip(clients, observations, strict=True):  # warm connections
        c.infer(o)
    latencies: list[list[float]] = [[] for _ in range(count)]
    batch_sizes: list[int] = []
    start_gate = threading.Barrier(count + 1)
    stop_at = [0.0]

    def run(i: int) -> None:
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            action = clients[i].infer(observations[i])
            latencies[i].append(time.perf_counter() - t0)
            batch_sizes.append(int(action.extra["server_timing"].get("batch_size", 1)))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - began
    for c in clients:
        c.close()
    flat = [x for row in latencies for x in row]
    return {"actions_per_s": round(len(flat) / elapsed, 1),
            "p50_ms": round(percentile_ms(flat, 50), 1),
            "p99_ms": round(percentile_ms(flat, 99), 1),
            "mean_batch": round(float(np.mean(batch_sizes)), 2) if batch_sizes else 0.0}


def local_latency(model_path: str, seconds: float, threads: int) -> tuple[float, int]:
    import torch

    from rt2_policy.contract import Observation
    from rt2_policy.vla_policy import VLAPolicy

    torch.set_num_threads(threads)
    policy = VLAPolicy.from_pretrained(model_path)
    size = policy.image_size or 224
    obs = Observation(image(0, size), INSTRUCTIONS[0], gripper_state=0.0,
                      tcp_position=(0.3, 0.0, 0.5))
    _, durations = rate_for(lambda: policy.infer(obs), seconds)
    return percentile_ms(durations, 50), size


def run(model_path: str, *, seconds: float, clients=(1, 4, 8), threads=(1, 2),
        window_ms: float = 20.0) -> dict:
    """Both modes at every server thread count in ``threads``; see the module docstring."""
    threads = tuple(int(t) for t in threads)
    local_p50, size = local_latency(model_path, seconds, threads[0])
    top = str(max(clients))
    out: dict = {"threads": list(threads), "window_ms": window_ms,
                 "local_p50_ms": round(local_p50, 1), "runs": {}}
    for n_threads in threads:
        for mode, max_batch in (("batched", max(clients)), ("one_at_a_time", 1)):
            server = Server(model_path, max_batch_size=max_batch, window_ms=window_ms,
                            threads=n_threads)
            try:
                server.wait_ready()
                out["runs"][f"{mode}@{n_threads}"] = {
                    str(n): robots(server.uri, n, seconds, size) for n in clients}
            finally:
                server.stop()
    for mode in ("batched", "one_at_a_time"):
        best = max(threads, key=lambda t: out["runs"][f"{mode}@{t}"][top]["actions_per_s"])
        out[f"{mode}_threads"] = best
        out[mode] = out["runs"][f"{mode}@{best}"]
    out["throughput_ratio_at_max_clients"] = round(
        out["batched"][top]["actions_per_s"] / out["one_at_a_time"][top]["actions_per_s"], 2)
    out["throughput_ratio_same_threads"] = {
        str(t): round(out["runs"][f"batched@{t}"][top]["actions_per_s"]
                      / out["runs"][f"one_at_a_time@{t}"][top]["actions_per_s"], 2)
        for t in threads}
    same = out["runs"][f"batched@{threads[0]}"]["1"]["p50_ms"]  # local ran on threads[0]
    out["remote_added_p50_ms"] = round(same - local_p50, 1)
    return out


def table(result: dict) -> list[str]:
    lines = [f"serving (loopback, server threads {result['threads']}, window "
             f"{result['window_ms']} ms): local infer p50 {result['local_p50_ms']} ms",
             f"  {'run':>17} {'clients':>7} | {'act/s':>7} {'p50':>7} {'p99':>7} {'batch':>5}"]
    for name, by_clients in result["runs"].items():
        for n, r in by_clients.items():
            lines.append(f"  {name:>17} {n:>7} | {r['actions_per_s']:7.1f} {r['p50_ms']:7.1f} "
                         f"{r['p99_ms']:7.1f} {r['mean_batch']:5.2f}")
    same = ", ".join(f"{t} thread(s) x{v:.2f}"
                     for t, v in result["throughput_ratio_same_threads"].items())
    lines.append(f"  batched ({result['batched_threads']} thread(s)) / one-at-a-time "
                 f"({result['one_at_a_time_threads']} thread(s)) at "
                 f"{max(result['batched'], key=int)} clients: "
                 f"x{result['throughput_ratio_at_max_clients']:.2f} (same threads: {same}); "
                 f"remote adds {result['remote_added_p50_ms']:+.1f} ms at p50 (1 client)")
    return lines
