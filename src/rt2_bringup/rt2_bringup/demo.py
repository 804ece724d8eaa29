"""``rt2-demo``: one episode of the VLA in the embedded MuJoCo simulator, over real ROS 2.

It starts the graph of :func:`rt2_bringup.graph.embedded_graph` as separate processes (what
``ros2 launch rt2_bringup sim.launch.py simulator:=mujoco`` starts), resets the scene (a task
of split ``seen`` sampled by the simulator, unless ``--instruction`` is given), sends an
``ExecuteInstruction`` goal, waits for the result, asks the simulator whether the task is solved
(``/rt2_sim/task_status``), stops the nodes, and prints a one-line JSON summary as the last line
of standard output:

    {"outcome": "SUCCEEDED", "steps": 12, "control_rate_hz": 4.98,
     "mean_inference_latency_ms": 41.3, "task_success": true,
     "instruction": "pick up the red cube", "task": {"family": "pick", ...}, ...}

``outcome`` is how the policy ended the episode (``SUCCEEDED`` = it emitted terminate);
``task_success`` is the simulator's check of the task (null when there is no task).

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

from rt2_bringup.evaluation import parse_json_object  # noqa: E402
from rt2_bringup.graph import (  # noqa: E402
    TOPICS,
    EmbeddedGraphConfig,
    NodeSpec,
    embedded_graph,
    parameters_yaml,
    ros_args,
)
from rt2_policy.stamps import stamp_seconds  # noqa: E402

DEFAULT_INSTRUCTION = "pick up the red cube"
#: Scene/task seed of the demo: the first evaluation seed (training scenes use seeds below it).
DEMO_SEED = 1_000_000
#: Where the trained model of the project lives (``rt2_policy/models/rt2_tiny_sim``).
TRAINED_MODEL = Path("src") / "rt2_policy" / "models" / "rt2_tiny_sim"


def default_model_dir() -> Path:
    """Where the demo keeps its model: ``$RT2_MODEL`` or ``<repo>/.cache/rt2/models/...``."""
    if os.environ.get("RT2_MODEL"):
        return Path(os.environ["RT2_MODEL"])
    root = Path(os.environ.get("RT2_ROOT", Path.cwd()))
    return root / ".cache" / "rt2" / "models" / "rt2-tiny-random"


def trained_model_dir() -> Path | None:
    """The project's trained model, if present: ``<repo>/src/rt2_policy/models/rt2_tiny_sim``
    (found from ``$RT2_ROOT``, the working directory or the symlink-installed ``rt2_policy``
    sources), else None."""
    roots = [Path(os.environ["RT2_ROOT"])] if os.environ.get("RT2_ROOT") else []
    roots.append(Path.cwd())
    try:
        import rt2_policy

        roots.append(Path(rt2_policy.__file__).resolve().parents[3])
    except ImportError:
        pass
    for root in roots:
        if (root / TRAINED_MODEL / "config.json").exists():
            return root / TRAINED_MODEL
    return None


def default_model() -> Path:
    """The model the demo and the evaluation use without ``--model``: ``$RT2_MODEL``, else the
    trained model (:func:`trained_model_dir`) when present, else the small random-weight VLA
    (built on first use at :func:`default_model_dir`)."""
    if os.environ.get("RT2_MODEL"):
        return Path(os.environ["RT2_MODEL"])
    return trained_model_dir() or ensure_model(default_model_dir())


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
    """Starts node processes, logs their output to ``<log_dir>/<node>.log`` (and relays it to
    stderr when ``echo``), and stops them with SIGINT."""

    def __init__(self, specs: list[NodeSpec], log_dir: Path, echo: bool = True) -> None:
        self.specs = specs
        self.log_dir = log_dir
        self.echo = echo
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
                log.flush()
                if self.echo:
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


#: ``std_srvs/Trigger`` of the simulator's task check (rt2_sim with task support).
TASK_STATUS_SERVICE = "/rt2_sim/task_status"

#: ``ExecuteInstruction.Result.outcome`` -> name.
OUTCOME_NAMES = {1: "SUCCEEDED", 2: "TIMED_OUT", 3: "ABORTED", 4: "CANCELED"}


class GraphClient:
    """Client side of the embedded graph over ROS 2: scene resets, goals, the task check.

    Owns an rclpy node in the default context (``rclpy.init`` here, ``rclpy.shutdown`` in
    :meth:`close`) and spins it from the calling thread only while it waits, so it is used from
    one thread. ``ROS_DOMAIN_ID`` must be set before it is created.

    Args:
        node_name: name of the client node.
    """

    def __init__(self, node_name: str = "rt2_demo") -> None:
        import rclpy
        from rclpy.action import ActionClient
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger

        from rt2_msgs.action import ExecuteInstruction
        from rt2_msgs.msg import RT2Action
        from rt2_msgs.srv import ResetScene

        self._rclpy = rclpy
        self._ResetScene, self._Trigger = ResetScene, Trigger
        self._ExecuteInstruction = ExecuteInstruction
        rclpy.init()
        self.node = rclpy.create_node(node_name)
        self.action_stamps: list[float] = []  # header stamps of /rt2/action, seconds
        self.latencies: list[float] = []  # inference latency per step (feedback), seconds
        self.frames = 0  # camera frames received so far

        def on_action(msg: RT2Action) -> None:
            self.action_stamps.append(stamp_seconds(msg.header.stamp))

        def on_image(_msg: Image) -> None:
            self.frames += 1

        self.node.create_subscription(RT2Action, TOPICS["action"], on_action, 100)
        self.node.create_subscription(Image, TOPICS["image"], on_image, qos_profile_sensor_data)
        self._reset = self.node.create_client(ResetScene, TOPICS["reset_scene"])
        self._status = self.node.create_client(Trigger, TASK_STATUS_SERVICE)
        self._action = ActionClient(self.node, ExecuteInstruction, TOPICS["execute_instruction"])

    # -------------------------------------------------------------------- waiting
    def spin_for(self, seconds: float) -> None:
        """Process callbacks for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            left = max(0.0, end - time.monotonic())
            self._rclpy.spin_once(self.node, timeout_sec=min(0.05, left))

    def _wait(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            self._rclpy.spin_once(self.node, timeout_sec=0.05)
        return True

    def _result(self, future, timeout: float, what: str):
        if not self._wait(future.done, timeout):
            raise TimeoutError(f"{what}: no reply within {timeout:.0f} s")
        return future.result()

    def wait_ready(self, timeout: float) -> None:
        """Wait until the reset service and the policy's action server are up.

        Raises:
            TimeoutError: if they are not within ``timeout`` seconds.
        """
        if not self._wait(lambda: self._reset.service_is_ready()
                          and self._action.server_is_ready(), timeout):
            raise TimeoutError(f"nodes not up within {timeout:.0f} s "
                               f"(reset service ready: {self._reset.service_is_ready()}, "
                               f"action server ready: {self._action.server_is_ready()})")

    def wait_task_status(self, timeout: float) -> bool:
        """Whether ``/rt2_sim/task_status`` becomes available within ``timeout`` seconds."""
        return self._wait(self._status.service_is_ready, timeout)

    def wait_fresh_frames(self, count: int = 2, minimum: float = 0.3,
                          timeout: float = 10.0) -> bool:
        """Wait until ``count`` camera frames arrived from now on (the second frame after a
        reset reply was rendered from the reset scene), and at least ``minimum`` seconds.

        Returns:
            False if they did not arrive within ``timeout`` seconds.
        """
        start_frames, start = self.frames, time.monotonic()
        ok = self._wait(lambda: self.frames - start_frames >= count, timeout)
        self.spin_for(minimum - (time.monotonic() - start))
        return ok

    # -------------------------------------------------------------------- calls
    def reset(self, seed: int, split: str = "", family: str = "", timeout: float = 30.0):
        """Call ``/rt2_sim/reset``; returns the ``ResetScene.Response``.

        Raises:
            RuntimeError: if the simulator reports failure. TimeoutError: no reply.
        """
        request = self._ResetScene.Request(seed=int(seed), split=split, task_family=family)
        scene = self._result(self._reset.call_async(request), timeout, "scene reset")
        if scene is None or not scene.success:
            raise RuntimeError(f"scene reset failed: {getattr(scene, 'message', 'no reply')}")
        return scene

    def task_status(self, timeout: float = 10.0) -> tuple[bool, str]:
        """Call ``/rt2_sim/task_status``: ``(success, message)`` of the sim's task check now.

        Raises:
            TimeoutError: no reply within ``timeout`` seconds.
        """
        reply = self._result(self._status.call_async(self._Trigger.Request()), timeout,
                             "task status")
        return bool(reply.success), str(reply.message)

    def execute(self, instruction: str, max_steps: int, time_limit: float,
                drain: float = 0.3) -> dict:
        """Run one ``ExecuteInstruction`` goal to its end.

        Args:
            instruction: the instruction.
            max_steps: step limit (0 = the node's default).
            time_limit: time limit, seconds (0 = the node's default).
            drain: seconds to keep receiving ``/rt2/action`` after the result.

        Returns:
            ``{"outcome", "steps", "duration_s", "control_rate_hz", "mean_inference_latency_ms",
            "message", "episode_id"}``.

        Raises:
            RuntimeError: goal rejected. TimeoutError: no result ``time_limit + 30`` s after the
                goal was accepted (the goal is then canceled).
        """
        self.action_stamps.clear()
        self.latencies.clear()

        def on_feedback(msg) -> None:
            self.latencies.append(float(msg.feedback.inference_latency))

        goal = self._ExecuteInstruction.Goal(instruction=instruction, max_steps=int(max_steps),
                                             time_limit=float(time_limit))
        handle = self._result(self._action.send_goal_async(goal, feedback_callback=on_feedback),
                              30.0, "goal")
        if handle is None or not handle.accepted:
            raise RuntimeError("goal rejected by the policy node")
        limit = (time_limit or 60.0) + 30.0
        try:
            wrapped = self._result(handle.get_result_async(), limit, "episode result")
        except TimeoutError:
            handle.cancel_goal_async()
            self.spin_for(0.5)
            raise
        if wrapped is None:
            raise TimeoutError("no result from the policy node")
        self.spin_for(drain)
        result = wrapped.result
        stamps = self.action_stamps
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) \
            if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
        return {
            "outcome": OUTCOME_NAMES.get(result.outcome, f"UNKNOWN({result.outcome})"),
            "steps": int(result.steps),
            "control_rate_hz": round(rate, 2),
            "mean_inference_latency_ms": round(1000 * sum(self.latencies) / len(self.latencies),
                                               1) if self.latencies else None,
            "duration_s": round(float(result.duration), 2),
            "message": result.message,
            "episode_id": result.episode_id,
        }

    def close(self) -> None:
        self.node.destroy_node()
        self._rclpy.shutdown()


def run_episode(instruction: str | None, seed: int, max_steps: int, time_limit: float,
                startup_timeout: float) -> dict:
    """Client side of the demo: reset the scene, run one goal, check the task, collect figures.

    With ``instruction`` None and a simulator that samples tasks, the scene is reset with split
    ``seen`` and ``seed``, the task's own instruction is sent, and the sim's task check decides
    ``task_success``. With an ``instruction``, the scene is a plain random one from ``seed``
    (``task_success`` None: there is no task to check).
    """
    client = GraphClient("rt2_demo")
    try:
        client.wait_ready(startup_timeout)
        task: dict = {}
        if instruction is None:
            scene = client.reset(seed, split="seen")
            if scene.instruction:
                instruction = scene.instruction
                task = parse_json_object(scene.task) or {"split": "seen", "seed": seed}
            else:  # a simulator without tasks ignores the split
                instruction = DEFAULT_INSTRUCTION
        else:
            scene = client.reset(seed)
        print(f"[rt2-demo] scene: {scene.description}", file=sys.stderr)
        client.wait_fresh_frames(count=2, minimum=1.0)
        print(f"[rt2-demo] instruction: {instruction!r}", file=sys.stderr)
        summary = client.execute(instruction, max_steps, time_limit)
        task_success, details = None, {}
        if task:
            if client.wait_task_status(5.0):
                task_success, message = client.task_status()
                details = parse_json_object(message)
            else:
                details = {"error": f"{TASK_STATUS_SERVICE} not available"}
        summary.update({"task_success": task_success, "instruction": instruction, "task": task,
                        "task_details": details, "scene": list(scene.object_names)})
        return summary
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruction", default=None,
                        help="instruction on a plain random scene (default: the instruction of "
                             "the task the simulator samples on split 'seen' for --seed)")
    parser.add_argument("--model", default=None,
                        help="checkpoint directory or hub id (default: $RT2_MODEL, else the "
                             "trained src/rt2_policy/models/rt2_tiny_sim when present, else the "
                             "small offline random-weight VLA)")
    parser.add_argument("--backend", choices=("local", "scripted"), default="local")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=1,
                        help="torch CPU threads of the policy (the simulator needs a core too)")
    parser.add_argument("--control-rate", type=float, default=5.0, help="Hz")
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds")
    parser.add_argument("--seed", type=int, default=DEMO_SEED,
                        help="scene and task seed (default: an evaluation seed, >= 1000000, "
                             "so the scene is not one the model was trained on)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds")
    args = parser.parse_args(argv)

    started = time.monotonic()
    model = args.model
    if args.backend == "local" and model is None:
        model = str(default_model())
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
