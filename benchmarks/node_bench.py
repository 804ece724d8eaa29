"""Node-overhead benchmark: the policy node's achieved control rate vs the raw ``infer`` rate.

The raw rate is ``VLAPolicy.infer`` in a loop in this process. The node runs as its own process
(``python -m rt2_policy.policy_node``, its real executor and threads) with ``control_rate``
set far above what inference allows (uncapped), fed 96 px frames at 30 Hz by a probe node here;
its rate is taken from the ``RT2Action`` stamps. Same model, same torch thread count; the two
measurements run one after the other so they do not share the CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import cpu_seconds, image, rate_for


def raw_rate(model_path: str, seconds: float, threads: int) -> tuple[float, int]:
    import torch

    from rt2_policy.contract import Observation
    from rt2_policy.vla_policy import VLAPolicy

    torch.set_num_threads(threads)
    policy = VLAPolicy.from_pretrained(model_path)
    size = policy.image_size or 224
    obs = Observation(image(0, size), "pick up the red cube", gripper_state=0.0,
                      tcp_position=(0.3, 0.0, 0.5))
    rate, _ = rate_for(lambda: policy.infer(obs), seconds)
    return rate, size


def node_rate(model_path: str, seconds: float, threads: int, size: int, domain: int,
              control_rate: float = 100.0) -> dict:
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from rt2_msgs.msg import RT2Action

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    params = {"backend": "local", "model_path": model_path, "control_rate": control_rate,
              "num_threads": threads, "max_steps": 1_000_000, "time_limit": 86_400.0,
              "max_image_age": 5.0, "max_linear_speed": 2.0}
    args = [sys.executable, "-m", "rt2_policy.policy_node", "--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    args += ["--log-level", "warn"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bench_probe", context=context)
    stamps: list[float] = []
    frame = image(1, size).tobytes()

    def publish_frame() -> None:
        msg = Image()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.height = msg.width = size
        msg.encoding, msg.step, msg.data = "rgb8", size * 3, frame
        image_pub.publish(msg)

    image_pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    instruction_pub = node.create_publisher(String, "/rt2/instruction", 10)
    node.create_subscription(RT2Action, "/rt2/action", lambda m: stamps.append(
        m.header.stamp.sec + m.header.stamp.nanosec * 1e-9), 1000)
    node.create_timer(1 / 30, publish_frame)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 120
        while not stamps and time.monotonic() < deadline and proc.poll() is None:
            instruction_pub.publish(String(data="pick up the red cube"))
            executor.spin_once(timeout_sec=0.5)
        if not stamps:
            err = proc.stderr.read().decode() if proc.poll() is not None else ""
            raise RuntimeError(f"the policy node produced no action: {err[-2000:]}")
        end = time.monotonic() + 1.0  # settle
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        first = len(stamps)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        window = np.asarray(stamps[first:])
        rate = (len(window) - 1) / float(window[-1] - window[0]) if len(window) > 2 else 0.0
        return {"rate_hz": rate, "steps": len(window), "node_cpu_cores": round(cpu, 2)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def run(model_path: str, *, seconds: float, threads: int = 1, domain: int = 37) -> dict:
    raw, size = raw_rate(model_path, seconds, threads)
    node = node_rate(model_path, seconds, threads, size, domain)
    # At RT-2's 5 Hz: what the node costs while inference is mostly idle (executor spinning
    # would show here as ~1 core).
    at_5hz = node_rate(model_path, seconds, threads, size, domain, control_rate=5.0)
    return {"raw_infer_hz": round(raw, 2), "node_control_hz": round(node["rate_hz"], 2),
            "ratio": round(node["rate_hz"] / raw, 3), "node_steps": node["steps"],
            "node_cpu_cores": node["node_cpu_cores"], "threads": threads,
            "node_5hz_rate_hz": round(at_5hz["rate_hz"], 2),
            "node_5hz_cpu_cores": at_5hz["node_cpu_cores"]}


def table(result: dict) -> list[str]:
    return [f"node overhead: raw infer {result['raw_infer_hz']:.1f} Hz, policy node (uncapped) "
            f"{result['node_control_hz']:.1f} Hz -> ratio {result['ratio']:.2f} "
            f"(node process uses {result['node_cpu_cores']:.2f} cores)",
            f"  at 5 Hz: {result['node_5hz_rate_hz']:.2f} Hz achieved, node process uses "
            f"{result['node_5hz_cpu_cores']:.2f} cores"]
