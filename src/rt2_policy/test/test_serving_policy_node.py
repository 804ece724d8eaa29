"""The policy node with ``backend: remote`` over real DDS: the server dies mid-episode, the arm
gets a zero twist within one control period, and the episode resumes when the server returns."""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built: run make setup")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rt2_msgs.msg import EpisodeStatus, RT2Action  # noqa: E402
from rt2_policy import ros_testing  # noqa: E402
from rt2_policy.policy_node import PolicyNode  # noqa: E402
from rt2_policy.scripted_policy import ScriptedPolicy  # noqa: E402
from rt2_policy.serving.config import ServerConfig  # noqa: E402
from rt2_policy.serving.server import ServerThread  # noqa: E402

MOVE = "0 255 128 128 128 128 128 255"  # +x at the upper bound
RATE = 10.0  # Hz: control period 0.1 s
KEEPALIVE = 50.0  # Hz
#: What rt2_policy.serving.client says once the connection is closed (not on a late reply).
CONNECTION_GONE = re.compile(r"connection lost|\(reconnecting\)|gave up reconnecting")


def stamp_of(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


@pytest.fixture
def harness(monkeypatch):
    domain = os.environ.get("RT2_TEST_ROS_DOMAIN_ID")  # pin a domain when sharing a machine
    if domain:
        monkeypatch.setattr(ros_testing, "next_domain_id", lambda: int(domain))
    h = ros_testing.RosHarness()
    yield h
    h.close()


class Probe:
    def __init__(self, harness) -> None:
        self.node = harness.rclpy.create_node("remote_probe", context=harness.context)
        self.twists: list[TwistStamped] = []
        self.actions: list[RT2Action] = []
        self.statuses: list[EpisodeStatus] = []
        self.image_pub = self.node.create_publisher(Image, "/camera/image_raw",
                                                    qos_profile_sensor_data)
        self.instruction_pub = self.node.create_publisher(String, "/rt2/instruction", 10)
        self.node.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds",
                                      self.twists.append, 200)
        self.node.create_subscription(RT2Action, "/rt2/action", self.actions.append, 100)
        self.node.create_subscription(EpisodeStatus, "/rt2/episode_status",
                                      self.statuses.append, 100)
        self.node.create_timer(0.05, self._frame)
        harness.add(self.node)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _frame(self) -> None:
        msg = Image()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.height, msg.width, msg.encoding, msg.step = 32, 32, "rgb8", 96
        msg.data = np.full(32 * 32 * 3, 90, np.uint8).tobytes()
        self.image_pub.publish(msg)


class LateOnce(ScriptedPolicy):
    """Answers its ``late_call``-th inference 1.5 s late (past the node's 1 s request timeout),
    as a loaded server may: the node holds, then moves again on the next reply."""

    def __init__(self, late_call: int) -> None:
        super().__init__([MOVE])
        self.late_call, self.calls = late_call, 0

    def infer(self, observation):
        self.calls += 1
        if self.calls == self.late_call:
            time.sleep(1.5)
        return super().infer(observation)


@pytest.mark.parametrize("late_call", [0, 2], ids=["prompt", "one_late_reply_before_the_kill"])
def test_killed_server_holds_the_arm_then_the_episode_resumes(harness, late_call):
    policy = LateOnce(late_call)
    server = ServerThread(policy, ServerConfig(port=0)).start()
    port = server.port
    probe = Probe(harness)
    node = PolicyNode(context=harness.context, parameter_overrides=[
        Parameter("backend", value="remote"),
        Parameter("server_uri", value=f"ws://127.0.0.1:{port}"),
        Parameter("control_rate", value=RATE),
        Parameter("keepalive_rate", value=KEEPALIVE),
        Parameter("max_linear_speed", value=1.0),
        Parameter("max_consecutive_faults", value=3),  # remote outages must not count here
        Parameter("remote_fault_timeout", value=60.0),
        # Server, node and probe share this process's GIL here (not so in deployment): replies
        # can come seconds late on a loaded machine. A late reply is dropped by design (its
        # own test); this test is about the outage, so it allows them a second.
        Parameter("request_timeout", value=1.0),
        # Likewise the probe's 20 Hz camera timer shares that GIL: on a loaded CI machine it has
        # stalled for 0.8 s, and with the default 0.5 s three stale-camera faults aborted the
        # episode during the outage (CI, stop 12). Stale frames have their own test
        # (test_policy_node); here they are allowed 5 s so only the server outage is measured.
        Parameter("max_image_age", value=5.0),
        Parameter("autostart", value=False)])
    assert node.trigger_configure().name == "SUCCESS"
    assert node.trigger_activate().name == "SUCCESS"
    harness.add(node)
    restarted = None
    try:
        assert harness.wait_for(lambda: probe.node.count_subscribers("/rt2/instruction"), 10.0)
        probe.instruction_pub.publish(String(data="push the red cube forward"))
        assert harness.wait_for(lambda: len(probe.actions) >= 3, 15.0), "no remote actions"
        assert any(m.twist.linear.x > 0 for m in probe.twists), "the arm never moved"

        if late_call:  # the late reply held the arm, and the episode went on without it
            # (waited for: status and action topics are delivered independently)
            assert harness.wait_for(
                lambda: [s for s in list(probe.statuses)
                         if s.state == EpisodeStatus.STATE_HOLDING
                         and "no reply to request" in s.message], 5.0), \
                "no HOLDING report on the late reply"
        killed_at = probe.now()
        server.stop()  # the server process dies: connections drop
        assert not server.alive, "the server thread outlived stop()"

        def gone() -> list[EpisodeStatus]:
            # HOLDING reports that say the connection is gone, not merely a late reply: a
            # request can time out on a loaded machine while the server is still up (CI, stop
            # 20: "no reply to request 3", the episode's second inference, before the kill),
            # and the node then rightly moves again on the next reply. Once the client has
            # seen the connection close, no reply can reach it until it reconnects, and every
            # action before was published by the same worker thread before this report.
            return [s for s in list(probe.statuses) if s.state == EpisodeStatus.STATE_HOLDING
                    and stamp_of(s) >= killed_at and CONNECTION_GONE.search(s.message)]

        # The client sees the close when the in-flight request or the reconnection fails (up to
        # connect_timeout, 2 s, on a loaded machine); meanwhile the keep-alive's hold window
        # runs out and the stream is already zero.
        assert harness.wait_for(gone, 10.0), \
            "no HOLDING status saying the server is gone after it died: " + \
            repr([s.message for s in probe.statuses if s.state == EpisodeStatus.STATE_HOLDING])
        time.sleep(max(0.0, killed_at + 1.2 - probe.now()))  # >= 12 control periods down:
        # would abort with max_consecutive_faults=3
        # From the node's report of the outage on (+ one control period for the report and the
        # keep-alive racing each other), every twist is zero and no action is published.
        # Publish stamps, not arrival times.
        period = 1.0 / RATE
        report = gone()[0]
        assert "backend unavailable" in report.message, report.message
        settle = stamp_of(report) + period
        # waited for, not read at once: when stopping the server took most of the 1.2 s
        # (a loaded machine), the report can be the newest message the probe has yet
        assert harness.wait_for(lambda: [m for m in probe.twists if stamp_of(m) > settle],
                                5.0), "the twist stream stopped instead of commanding zero"
        late = [m for m in probe.twists if stamp_of(m) > settle]
        assert all(m.twist.linear.x == 0.0 and m.twist.angular.z == 0.0 for m in late)
        assert not [a for a in probe.actions if stamp_of(a) > settle]
        assert not [s for s in probe.statuses if s.state == EpisodeStatus.STATE_FINISHED]

        restarted = ServerThread(policy, ServerConfig(port=port)).start()
        back_at = probe.now()
        assert harness.wait_for(
            lambda: [a for a in probe.actions if stamp_of(a) > back_at], 15.0), "no recovery"
        assert harness.wait_for(
            lambda: [m for m in probe.twists if stamp_of(m) > back_at and m.twist.linear.x > 0],
            5.0), "the arm did not move again"
        episode_ids = {a.episode_id for a in probe.actions}
        assert len(episode_ids) == 1  # the same episode resumed
        assert not [s for s in probe.statuses if s.outcome == EpisodeStatus.OUTCOME_ABORTED]
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
