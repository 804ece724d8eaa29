"""Shared helpers of the rt2 benchmarks: the model under test, timing, machine facts."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import platform  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

INSTRUCTIONS = ("pick up the red cube", "open the drawer", "move the blue can to the left",
                "put the small green ball into the big brown bowl")


def model_dir(path: str | None) -> str:
    """``path``, or the offline tiny VLA built into a temporary directory."""
    if path:
        return path
    from rt2_policy.tiny_model import build_tiny_vla

    cache = Path(tempfile.gettempdir()) / "rt2_bench_tiny_vla"
    if not (cache / "config.json").is_file():
        build_tiny_vla(cache, seed=0)
    return str(cache)


def image(seed: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rate_for(fn: Callable[[], object], seconds: float, min_calls: int = 3) -> tuple[float, list]:
    """Call ``fn`` repeatedly for ``seconds`` (after one warm-up call); (calls/s, durations s)."""
    fn()
    durations = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(durations) < min_calls:
        t0 = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - t0)
    return len(durations) / (time.perf_counter() - start), durations


def percentile_ms(durations: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(durations) * 1e3, q)) if durations else float("nan")


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(), "load_avg_1m": round(load[0], 2),
            "date": time.strftime("%Y-%m-%d")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")
