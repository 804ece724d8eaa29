"""Test support over real rclpy + DDS: an isolated context per test on its own domain (used by the
rt2 test suites; importing it sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).

DDS discovery stays on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, set before rclpy loads).
"""

from __future__ import annotations

import itertools
import os
import threading
import time

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Domains 0-101 are valid on Linux; spread by PID so parallel test runs do not meet.
_domains = itertools.count((os.getpid() * 7) % 60 + 20)


def next_domain_id() -> int:
    return 20 + (next(_domains) - 20) % 80


class RosHarness:
    """An rclpy context, a MultiThreadedExecutor spinning in a thread, and added nodes."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.rclpy = rclpy
        self.domain_id = next_domain_id()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.executor = MultiThreadedExecutor(num_threads=6, context=self.context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # context shut down
            pass

    def add(self, node):
        self.executor.add_node(node)
        return node

    def wait_for(self, predicate, timeout: float, interval: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return bool(predicate())

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        for node in list(self.executor.get_nodes()):
            node.destroy_node()
        self.rclpy.shutdown(context=self.context)
        self._thread.join(timeout=2.0)
