"""HighRateExecutor over real DDS: the parent's topic resolution, its own thread, clean teardown."""

from __future__ import annotations

import threading

import pytest

from rt2_policy.ros_testing import RosHarness


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


def test_callbacks_run_on_their_own_thread_with_the_parents_names(harness):
    from rclpy.node import Node
    from std_msgs.msg import String

    from rt2_policy.high_rate_executor import HighRateExecutor

    # The parent remaps "camera" (node-specific rule): the private node must follow it.
    parent = harness.add(Node("parent", namespace="robot", context=harness.context,
                              cli_args=["--ros-args", "-r", "camera:=cam_remapped"]))
    probe = harness.add(Node("probe", context=harness.context))
    publisher = probe.create_publisher(String, "/robot/cam_remapped", 10)
    high_rate = HighRateExecutor(parent)
    try:
        assert high_rate.node.get_name() == "parent_high_rate"
        assert high_rate.node.get_namespace() == "/robot"
        got, ticks = [], []
        subscription = high_rate.subscribe(
            String, "camera", lambda m: got.append((m.data, threading.current_thread().name)), 10)
        assert subscription.topic_name == "/robot/cam_remapped"
        timer = high_rate.timer(0.01, lambda: ticks.append(threading.current_thread().name))
        assert harness.wait_for(lambda: publisher.get_subscription_count() > 0, 10.0)
        assert harness.wait_for(lambda: (publisher.publish(String(data="frame")), got)[1], 10.0)
        assert got[0] == ("frame", "parent_high_rate")
        assert harness.wait_for(lambda: len(ticks) >= 3, 10.0)
        assert set(ticks) == {"parent_high_rate"}
        high_rate.destroy(timer)
        high_rate.destroy(subscription)
        count = len(ticks)
        # destroyed on the executor's thread, between callbacks: not a single tick more
        assert not harness.wait_for(lambda: len(ticks) > count, 0.2)
        assert subscription not in list(high_rate.node.subscriptions)
    finally:
        high_rate.close()
    assert not high_rate._thread.is_alive()
