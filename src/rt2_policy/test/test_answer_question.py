"""The policy node's VQA service ``/rt2_policy/answer_question`` over real rclpy and DDS."""

from __future__ import annotations

import types

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
pytest.importorskip("rt2_msgs.srv", reason="rt2_msgs not built: run make setup")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from rt2_msgs.srv import AnswerQuestion  # noqa: E402
from rt2_policy.policy_node import PolicyNode  # noqa: E402
from rt2_policy.ros_testing import RosHarness  # noqa: E402

SERVICE = "/rt2_policy/answer_question"


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


class Asker:
    """Test-side node: a camera that publishes on demand and a client of the VQA service."""

    def __init__(self, harness: RosHarness) -> None:
        self.harness = harness
        self.node = harness.rclpy.create_node("asker", context=harness.context)
        self.image_pub = self.node.create_publisher(Image, "/camera/image_raw",
                                                    qos_profile_sensor_data)
        self.client = self.node.create_client(AnswerQuestion, SERVICE)
        harness.add(self.node)

    def publish_frame(self, age: float = 0.0, size: int = 32) -> float:
        """Publish one rgb8 frame stamped ``age`` seconds ago; returns its stamp (s)."""
        now = self.node.get_clock().now().nanoseconds
        stamp_ns = now - int(age * 1e9)
        msg = Image()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        msg.height, msg.width, msg.encoding, msg.step = size, size, "rgb8", size * 3
        msg.data = np.full(size * size * 3, 90, np.uint8).tobytes()
        self.image_pub.publish(msg)
        return stamp_ns * 1e-9

    def ask(self, question: str, max_new_tokens: int = 0) -> AnswerQuestion.Response:
        assert self.client.wait_for_service(timeout_sec=10.0)
        future = self.client.call_async(
            AnswerQuestion.Request(question=question, max_new_tokens=max_new_tokens))
        assert self.harness.wait_for(future.done, 30.0)
        return future.result()


def start_policy(harness: RosHarness, **params) -> PolicyNode:
    overrides = [Parameter("backend", value="scripted"), Parameter("autostart", value=False),
                 Parameter("control_rate", value=5.0)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = PolicyNode(context=harness.context, parameter_overrides=overrides)
    assert node.trigger_configure().name == "SUCCESS"
    assert node.trigger_activate().name == "SUCCESS"
    harness.add(node)
    return node


def wait_for_frame(harness, node, asker, age=0.0):
    stamp = asker.publish_frame(age)
    assert harness.wait_for(lambda: node._frame is not None
                            and abs(node._frame.stamp - stamp) < 1e-6, 5.0)
    return stamp


def test_answers_about_the_latest_frame(harness):
    asker = Asker(harness)
    node = start_policy(harness)
    assert harness.wait_for(lambda: asker.node.count_subscribers("/camera/image_raw"), 5.0)
    stamp = wait_for_frame(harness, node, asker)
    reply = asker.ask("what is on the table?")
    assert reply.success, reply.message
    assert reply.answer == "scripted answer: what is on the table?"
    assert reply.message == "" and reply.latency >= 0.0
    assert reply.image_stamp.sec + reply.image_stamp.nanosec * 1e-9 == pytest.approx(stamp,
                                                                                      abs=1e-6)
    assert node._policy.questions == [("what is on the table?", (32, 32, 3))]
    # max_new_tokens caps the answer; 0 means the node's answer_max_new_tokens
    assert asker.ask("what is on the table?", max_new_tokens=2).answer == "scripted answer:"


def test_clear_failures(harness):
    asker = Asker(harness)
    node = start_policy(harness, max_image_age=0.5)
    assert harness.wait_for(lambda: asker.node.count_subscribers("/camera/image_raw"), 5.0)

    reply = asker.ask("what colour is the cube?")
    assert not reply.success and reply.answer == ""
    assert reply.message == "no camera frame received yet on /camera/image_raw"

    wait_for_frame(harness, node, asker, age=5.0)
    reply = asker.ask("what colour is the cube?")
    assert not reply.success and reply.message.startswith("camera frame is stale: 5.")

    wait_for_frame(harness, node, asker)
    reply = asker.ask("   ")
    assert not reply.success and reply.message == "empty question"

    def broken(image, question, max_new_tokens):
        raise RuntimeError("VLA generation failed: boom")

    node._policy.answer = broken
    reply = asker.ask("what colour is the cube?")
    assert not reply.success
    assert reply.message == "model error: RuntimeError: VLA generation failed: boom"

    scripted = node._policy
    node._policy = types.SimpleNamespace(infer=scripted.infer, reset=scripted.reset)
    reply = asker.ask("what colour is the cube?")
    assert not reply.success and reply.message == "backend 'scripted' cannot answer questions"

    node._policy = scripted
    del scripted.answer  # the instance attribute: back to ScriptedPolicy.answer
    wait_for_frame(harness, node, asker)
    assert asker.ask("still alive?").success  # the node survived every failure


def test_tiny_model_answers_and_takes_chain_of_thought(harness, tiny_vla_dir):
    asker = Asker(harness)
    node = start_policy(harness, backend="local", model_path=str(tiny_vla_dir),
                        num_threads=1, chain_of_thought=True)
    assert node._policy.chain_of_thought is True
    assert harness.wait_for(lambda: asker.node.count_subscribers("/camera/image_raw"), 5.0)
    wait_for_frame(harness, node, asker)
    reply = asker.ask("what is on the table?", max_new_tokens=4)
    assert reply.success, reply.message
    # random weights: any text of at most 4 words of the vocabulary
    assert isinstance(reply.answer, str) and len(reply.answer.split()) <= 4
