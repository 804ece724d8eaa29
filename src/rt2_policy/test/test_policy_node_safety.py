"""Safety of the policy node over real rclpy + DDS: dry run, e-stop, ready move before episodes.

A scripted policy double and a fake camera drive the node; fake MoveIt Servo
``/servo_node/pause_servo`` (std_srvs/SetBool) and ready-pose (std_srvs/Trigger) services record
the calls the node makes.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built: run make setup")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.callback_groups import ReentrantCallbackGroup  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Bool, Float64, String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from rt2_msgs.action import ExecuteInstruction  # noqa: E402
from rt2_msgs.msg import EpisodeStatus, RT2Action  # noqa: E402
from rt2_policy.policy_node import PolicyNode  # noqa: E402
from rt2_policy.ros_testing import RosHarness  # noqa: E402
from rt2_policy.safety import ESTOP_MESSAGE  # noqa: E402

MOVE = "0 255 128 128 128 128 128 255"  # +x at the upper bound, gripper closed; never terminates
RATE = 10.0
READY = "/rt2_ready_pose/move_to_ready"


class Probe:
    """Fake camera + fake servo/ready services + recorders of what the policy node sends."""

    def __init__(self, harness: RosHarness, ready_ok: bool = True) -> None:
        self.node = harness.rclpy.create_node("safety_probe", context=harness.context)
        group = ReentrantCallbackGroup()
        self.lock = threading.Lock()
        self.twists: list[tuple[float, TwistStamped]] = []
        self.actions: list[RT2Action] = []
        self.statuses: list[EpisodeStatus] = []
        self.gripper: list[float] = []
        self.calls: list[str] = []  # "pause", "resume", "ready", in call order
        self.ready_ok = ready_ok
        self.image_pub = self.node.create_publisher(Image, "/camera/image_raw",
                                                    qos_profile_sensor_data)
        self.instruction_pub = self.node.create_publisher(String, "/rt2/instruction", 10)
        self.estop_pub = self.node.create_publisher(Bool, "/rt2/estop", 10)
        self.node.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds",
                                      lambda m: self._record(self.twists, (self.now(), m)), 200)
        self.node.create_subscription(RT2Action, "/rt2/action",
                                      lambda m: self._record(self.actions, m), 100)
        self.node.create_subscription(EpisodeStatus, "/rt2/episode_status",
                                      lambda m: self._record(self.statuses, m), 100)
        self.node.create_subscription(Float64, "/rt2/gripper_command",
                                      lambda m: self._record(self.gripper, m.data), 100)
        self.node.create_service(SetBool, "/servo_node/pause_servo", self._on_pause,
                                 callback_group=group)
        self.node.create_service(Trigger, READY, self._on_ready, callback_group=group)
        self.node.create_timer(0.05, self._publish_frame)
        self.client = ActionClient(self.node, ExecuteInstruction, "/rt2/execute_instruction")
        harness.add(self.node)

    def _record(self, bucket: list, item) -> None:
        with self.lock:
            bucket.append(item)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_pause(self, request, response):
        self._record(self.calls, "pause" if request.data else "resume")
        response.success = True
        return response

    def _on_ready(self, _request, response):
        self._record(self.calls, "ready")
        response.success = self.ready_ok
        response.message = "at ready" if self.ready_ok else "planning failed"
        return response

    def _publish_frame(self) -> None:
        msg = Image()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.height, msg.width, msg.encoding, msg.step = 32, 32, "rgb8", 96
        msg.data = np.full(32 * 32 * 3, 100, np.uint8).tobytes()
        self.image_pub.publish(msg)

    def twists_after(self, t: float) -> list[TwistStamped]:
        with self.lock:
            return [m for received, m in self.twists if received > t]


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


def start_policy(harness: RosHarness, **params) -> PolicyNode:
    overrides = [Parameter("backend", value="scripted"),
                 Parameter("scripted_actions", value=[MOVE]),
                 Parameter("control_rate", value=RATE),
                 Parameter("max_linear_speed", value=1.0),
                 Parameter("autostart", value=False)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = PolicyNode(context=harness.context, parameter_overrides=overrides)
    assert node.trigger_configure().name == "SUCCESS"
    assert node.trigger_activate().name == "SUCCESS"
    harness.add(node)
    return node


def moving(msg: TwistStamped) -> bool:
    return msg.twist.linear.x != 0.0 or msg.twist.angular.z != 0.0


def test_dry_run_publishes_actions_but_never_moves(harness):
    probe = Probe(harness)
    start_policy(harness, dry_run=True)
    assert harness.wait_for(lambda: probe.node.count_subscribers("/rt2/instruction"), 5.0)
    probe.instruction_pub.publish(String(data="push the red cube"))
    assert harness.wait_for(lambda: len(probe.actions) >= 5, 10.0)
    assert [int(b) for b in probe.actions[0].bins] == [int(b) for b in MOVE.split()]
    assert probe.actions[0].delta_position.x > 0.0  # the decoded action is reported …
    with probe.lock:
        twists = [m for _, m in probe.twists]
    assert len(twists) > 10 and not any(moving(m) for m in twists)  # … but only zeros are sent
    assert probe.gripper == []


def test_estop_zeroes_twists_aborts_pauses_servo_and_refuses_until_released(harness):
    probe = Probe(harness)
    start_policy(harness)
    assert harness.wait_for(lambda: probe.node.count_subscribers("/rt2/estop"), 5.0)
    probe.instruction_pub.publish(String(data="push the red cube"))
    assert harness.wait_for(lambda: any(moving(m) for m in probe.twists_after(0.0)), 10.0)

    probe.estop_pub.publish(Bool(data=True))
    stopped = probe.now()
    assert harness.wait_for(lambda: "pause" in probe.calls, 5.0)
    assert harness.wait_for(lambda: any(s.outcome == EpisodeStatus.OUTCOME_ABORTED
                                        for s in probe.statuses), 5.0)
    aborted = [s for s in probe.statuses if s.outcome == EpisodeStatus.OUTCOME_ABORTED][-1]
    assert aborted.message == ESTOP_MESSAGE
    # From the first zero after the e-stop on, the stream carries only zeros.
    assert harness.wait_for(lambda: len(probe.twists_after(stopped)) >= 20, 5.0)
    after = probe.twists_after(stopped)
    first_zero = next(i for i, m in enumerate(after) if not moving(m))
    assert not any(moving(m) for m in after[first_zero:])

    # Refused while engaged: topic instructions start nothing, action goals are rejected.
    actions_before = len(probe.actions)
    probe.instruction_pub.publish(String(data="push the red cube"))
    assert probe.client.wait_for_server(timeout_sec=10.0)
    # Short limits: a wrongly accepted goal must end by itself rather than hang the test.
    send = probe.client.send_goal_async(ExecuteInstruction.Goal(instruction="push it", max_steps=3,
                                                                time_limit=2.0))
    assert harness.wait_for(send.done, 10.0)
    assert not send.result().accepted
    assert len(probe.actions) == actions_before

    probe.estop_pub.publish(Bool(data=False))
    assert harness.wait_for(lambda: "resume" in probe.calls, 5.0)
    assert probe.calls == ["pause", "resume"]
    probe.instruction_pub.publish(String(data="push the red cube"))
    assert harness.wait_for(lambda: len(probe.actions) > actions_before, 10.0)


def test_ready_move_runs_before_each_episode_with_servo_paused(harness):
    probe = Probe(harness)
    start_policy(harness, ready_service=READY)
    assert harness.wait_for(lambda: probe.node.count_subscribers("/rt2/instruction"), 5.0)
    probe.instruction_pub.publish(String(data="push the red cube"))
    assert harness.wait_for(lambda: len(probe.actions) >= 2, 10.0)
    assert probe.calls[:3] == ["pause", "ready", "resume"]


def test_failed_ready_move_refuses_the_episode(harness):
    probe = Probe(harness, ready_ok=False)
    start_policy(harness, ready_service=READY)
    assert probe.client.wait_for_server(timeout_sec=10.0)
    send = probe.client.send_goal_async(ExecuteInstruction.Goal(instruction="push it"))
    assert harness.wait_for(send.done, 10.0)
    handle = send.result()
    assert handle.accepted
    result = handle.get_result_async()
    assert harness.wait_for(result.done, 20.0)
    assert result.result().result.outcome == ExecuteInstruction.Result.OUTCOME_ABORTED
    assert "planning failed" in result.result().result.message
    assert probe.actions == [] and "ready" in probe.calls
    assert probe.calls[-1] == "resume"  # the servo is not left paused
