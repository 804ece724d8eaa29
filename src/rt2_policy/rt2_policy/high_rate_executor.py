"""High-rate callbacks (camera frames, the twist keep-alive) on their own node, executor, thread.

rclpy's ``MultiThreadedExecutor`` (9.1.x, Kilted; 7.x, Jazzy) hands every callback to a thread
pool and, until a pool thread starts it, yields the same task again from its wait loop, so each
callback costs milliseconds of GIL-holding Python: a 30 Hz camera plus a 50 Hz timer took 0.27–0.38
cores of a 2-core machine, against 0.05 cores under a ``SingleThreadedExecutor`` (same messages;
measured 2026-11-22). In the policy node that GIL time is taken from the model, whose decode is
mostly Python on a small VLA. :class:`HighRateExecutor` therefore serves such callbacks from a
private node spun by a ``SingleThreadedExecutor`` on a daemon thread; the node's other callbacks
(services, actions, status) stay on its multi-threaded executor.

The private node is ``<parent name>_high_rate`` in the parent's namespace, without parameter
services or rosout. Topic names are resolved by the parent (its remappings and ``~/`` names
apply) and timers run on the parent's clock (``use_sim_time`` applies), so the callbacks see
exactly what they would have seen on the parent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor


class HighRateExecutor:
    """A private node + ``SingleThreadedExecutor`` spinning in a daemon thread.

    Args:
        parent: the node the callbacks belong to logically (name, namespace, context, clock and
            topic-name resolution are taken from it).
        suffix: appended to the parent's name for the private node.

    Callbacks run on the executor's thread, one at a time: keep them short and thread-safe with
    respect to the parent's callbacks.
    """

    def __init__(self, parent: Any, suffix: str = "_high_rate") -> None:
        self._parent = parent
        self.node = rclpy.create_node(
            f"{parent.get_name()}{suffix}", namespace=parent.get_namespace(),
            context=parent.context, start_parameter_services=False, enable_rosout=False)
        self._executor = SingleThreadedExecutor(context=parent.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{parent.get_name()}{suffix}",
                                        daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass  # the context was shut down: nothing left to serve

    def subscribe(self, msg_type: Any, topic: str, callback: Callable[[Any], None],
                  qos: Any) -> Any:
        """Subscribe to ``topic`` as resolved by the parent node; returns the subscription."""
        return self.node.create_subscription(msg_type, self._parent.resolve_topic_name(topic),
                                             callback, qos)

    def timer(self, period: float, callback: Callable[[], None]) -> Any:
        """A timer of ``period`` seconds on the parent's clock; returns it."""
        return self.node.create_timer(period, callback, clock=self._parent.get_clock())

    def destroy(self, entity: Any, timeout: float = 2.0) -> None:
        """Destroy a subscription or timer made here, between two of its callbacks.

        Destroyed from another thread, an entity the executor has just found ready fails its
        pending callback (``InvalidHandle``); so the destruction runs as a task on the
        executor's own thread, and this waits for it (``timeout`` seconds at most).
        """
        def destroy_now() -> None:
            try:
                if hasattr(entity, "timer_period_ns"):
                    self.node.destroy_timer(entity)
                else:
                    self.node.destroy_subscription(entity)
            finally:
                done.set()

        done = threading.Event()
        if threading.current_thread() is self._thread or not self._thread.is_alive():
            destroy_now()
            return
        self._executor.create_task(destroy_now)
        if not done.wait(timeout):  # executor stuck or stopping: destroy from here after all
            destroy_now()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the executor thread (``timeout`` seconds at most) and destroy the private node."""
        self._executor.shutdown(timeout_sec=timeout)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.node.destroy_node()
