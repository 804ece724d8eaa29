"""``rt2-demo``: one episode of the VLA in the embedded MuJoCo simulator, over real ROS 2.

It starts the graph of :func:`rt2_bringup.graph.embedded_graph` as separate processes (what
``ros2 launch rt2_bringup sim.launch.py simulator:=mujoco`` starts), resets the scene, sends an
``ExecuteInstruction`` goal, waits for the result, stops the nodes, and prints a one-line JSON
summary as the last line of standard output:

    {"outcome": "SUCCEEDED", "steps": 12, "control_rate_hz": 4.98,
     "mean_inference_latency_ms": 41.3, ...}

DDS stays on loopback: ``ROS_AUTOMATIC_DISCOVERY_RANGE`` defaults to ``LOCALHOST`` here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import yaml  # noqa: E402

from rt2_bringup.graph import (  # noqa: E402
    TOPICS,
    EmbeddedGraphConfig,
    NodeSpec,
    embedded_graph,
    parameters_yaml,
    ros_args,
)

DEFAULT_INSTRUCTION = "pick up the red cube"


def default_model_dir() -> Path:
    """Where the demo keeps its model: ``$RT2_MODEL`` or ``<repo>/.cache/rt2/models/...``."""
    if os.environ.get("RT2_MODEL"):
        return Path(os.environ["RT2_MODEL"])
    root = Path(os.environ.get("RT2_ROOT", Path.cwd()))
    return root / ".cache" / "rt2" / "models" / "rt2-tiny-random"


def ensure_model(path: Path) -> Path:
    """Build the small random-weight Idefics3 VLA at ``path`` unless a checkpoint is there."""
    if (path / "config.json").exists():
        return path
    from rt2_policy.tiny_model import build_tiny_vla  # heavy import only when needed

    print(f"[rt2-demo] building the small offline VLA at {path} (random weights)", file=sys.stderr)
    return Path(build_tiny_vla(path, seed=0))


def executable_path(spec: NodeSpec) -> str:
    """``<prefix>/lib/<package>/<executable>``, as ``ros2 run`` resolves it."""
    from ament_index_python.packages import get_package_prefix

    exe = Path(get_package_prefix(spec.package)) / "lib" / spec.package / spec.executable
    if not exe.exists():
        raise FileNotFoundError(f"{exe} not found: is the workspace built (make setup)?")
    return str(exe)


class GraphProcesses:
    """Starts node processes, relays their output to stderr, and stops them with SIGINT."""

    def __init__(self, specs: list[NodeSpec], log_dir: Path) -> None:
        self.specs = specs
        self.log_dir = log_dir
        self.procs: list[tuple[NodeSpec, subprocess.Popen]] = []

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            params = self.log_dir / f"{spec.name}.params.yaml"
            params.write_text(yaml.safe_dump(parameters_yaml(spec)))
            cmd = [executable_path(spec), *ros_args(spec, str(params))]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, bufsize=1, start_new_session=True)
            threading.Thread(target=self._relay, args=(spec.name, proc), daemon=True).start()
            self.procs.append((spec, proc))

    def _relay(self, name: str, proc: subprocess.Popen) -> None:
        with open(self.log_dir / f"{name}.log", "w") as log:
            for line in proc.stdout:
                log.write(line)
                print(f"[{name}] {line}", end="", file=sys.stderr)

    def failed(self) -> list[str]:
        return [spec.name for spec, proc in self.procs if proc.poll() not in (None, 0)]

    def stop(self, timeout: float = 10.0) -> None:
        for _spec, proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        for _spec, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_episode(instruction: str, seed: int, max_steps: int, time_limit: float,
                startup_timeout: float) -> dict:
    """Client side of the demo: reset the scene, run one goal, collect figures."""
    import rclpy
    from rclpy.action import ActionClient

    from rt2_msgs.action import ExecuteInstruction
    from rt2_msgs.msg import RT2Action
    from rt2_msgs.srv import ResetScene

    rclpy.init()
    node = rclpy.create_node("rt2_demo")
    try:
        stamps: list[float] = []
        latencies: list[float] = []

        def on_action(msg: RT2Action) -> None:
            stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
            latencies.append(float(msg.inference_latency))

        node.create_subscription(RT2Action, TOPICS["action"], on_action, 100)
        reset = node.create_client(ResetScene, TOPICS["reset_scene"])
        client = ActionClient(node, ExecuteInstruction, TOPICS["execute_instruction"])
        deadline = time.monotonic() + startup_timeout
        while not (reset.service_is_ready() and client.server_is_ready()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes not up within {startup_timeout:.0f} s "
                                   f"(reset service ready: {reset.service_is_ready()}, "
                                   f"action server ready: {client.server_is_ready()})")
            rclpy.spin_once(node, timeout_sec=0.2)
        future = reset.call_async(ResetScene.Request(seed=seed))
        rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
        scene = future.result()
        if scene is None or not scene.success:
            raise RuntimeError(f"scene reset failed: {getattr(scene, 'message', 'no reply')}")
        print(f"[rt2-demo] scene: {scene.description}", file=sys.stderr)
        # Let the camera stream a few fresh frames of the reset scene.
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            rclpy.spin_once(node, timeout_sec=0.05)

        goal = ExecuteInstruction.Goal(instruction=instruction, max_steps=max_steps,
                                       time_limit=time_limit)
        print(f"[rt2-demo] instruction: {instruction!r}", file=sys.stderr)
        send = client.send_goal_async(goal)
        rclpy.spin_until_future_complete(node, send, timeout_sec=30.0)
        handle = send.result()
        if handle is None or not handle.accepted:
            raise RuntimeError("goal rejected by the policy node")
        result_future = handle.get_result_async()
        rclpy.spin_until_future_complete(node, result_future, timeout_sec=time_limit + 30.0)
        wrapped = result_future.result()
        if wrapped is None:
            raise TimeoutError("no result from the policy node")
        # Drain the last RT2Action messages.
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        result = wrapped.result
        outcome = {1: "SUCCEEDED", 2: "TIMED_OUT", 3: "ABORTED", 4: "CANCELED"}.get(
            result.outcome, f"UNKNOWN({result.outcome})")
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and \
            stamps[-1] > stamps[0] else 0.0
        return {
            "outcome": outcome,
            "steps": int(result.steps),
            "control_rate_hz": round(rate, 2),
            "mean_inference_latency_ms": round(1000 * sum(latencies) / len(latencies), 1)
            if latencies else None,
            "duration_s": round(float(result.duration), 2),
            "message": result.message,
            "instruction": instruction,
            "episode_id": result.episode_id,
            "scene": list(scene.object_names),
        }
    finally:
        node.destroy_node()
        rclpy.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruction", default=DEFAULT_INSTRUCTION)
    parser.add_argument("--model", default=None,
                        help="checkpoint directory or hub id (default: the small offline VLA)")
    parser.add_argument("--backend", choices=("local", "scripted"), default="local")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=1,
                        help="torch CPU threads of the policy (the simulator needs a core too)")
    parser.add_argument("--control-rate", type=float, default=5.0, help="Hz")
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds")
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds")
    args = parser.parse_args(argv)

    started = time.monotonic()
    model = args.model
    if args.backend == "local" and model is None:
        model = str(ensure_model(default_model_dir()))
    config = EmbeddedGraphConfig(backend=args.backend, model_path=model or "",
                                 device=args.device, num_threads=args.num_threads,
                                 control_rate=args.control_rate,
                                 max_steps=args.max_steps, time_limit=args.time_limit,
                                 seed=args.seed)
    log_dir = Path(tempfile.mkdtemp(prefix="rt2-demo-"))
    graph = GraphProcesses(embedded_graph(config), log_dir)
    summary: dict = {}
    code = 0
    try:
        graph.start()
        summary = run_episode(args.instruction, args.seed, args.max_steps, args.time_limit,
                              args.startup_timeout)
    except (TimeoutError, RuntimeError, FileNotFoundError) as exc:
        failed = graph.failed()
        summary = {"outcome": "ERROR", "message": str(exc) + (
            f"; exited early: {', '.join(failed)}" if failed else "")}
        code = 1
    except KeyboardInterrupt:
        summary = {"outcome": "INTERRUPTED"}
        code = 130
    finally:
        graph.stop()
    summary.update({"backend": args.backend, "model": model or "scripted",
                    "ros_domain_id": int(os.environ.get("ROS_DOMAIN_ID", "0")),
                    "wall_time_s": round(time.monotonic() - started, 1),
                    "logs": str(log_dir)})
    sys.stdout.flush()
    print(json.dumps(summary), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
