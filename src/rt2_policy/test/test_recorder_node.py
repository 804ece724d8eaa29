"""The recorder node over real rclpy and DDS: hand-published inputs, and a live policy node."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built: run make setup")

from rclpy.exceptions import InvalidParameterValueException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from rt2_msgs.msg import EpisodeStatus, RT2Action  # noqa: E402
from rt2_policy.action_tokenizer import ActionTokenizer  # noqa: E402
from rt2_policy.data.lerobot_dataset import LeRobotDataset  # noqa: E402
from rt2_policy.data.recorder import PANDA_STATE_JOINTS  # noqa: E402
from rt2_policy.recorder_node import RecorderNode  # noqa: E402
from rt2_policy.ros_testing import RosHarness  # noqa: E402

H, W = 16, 20


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


def start_recorder(harness, output, **params) -> RecorderNode:
    overrides = [Parameter("output_dir", value=str(output)), Parameter("fps", value=10.0)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return harness.add(RecorderNode(context=harness.context, parameter_overrides=overrides))


def _stamp(msg, t):
    msg.header.stamp.sec = int(t)
    msg.header.stamp.nanosec = int(round((t - int(t)) * 1e9))


class Publisher:
    """Test-side node publishing camera frames, statuses and actions one at a time."""

    def __init__(self, harness, recorder: RecorderNode) -> None:
        self.harness, self.recorder = harness, recorder
        self.node = harness.add(harness.rclpy.create_node("feeder", context=harness.context))
        self.image = self.node.create_publisher(Image, "/camera/image_raw",
                                                qos_profile_sensor_data)
        self.action = self.node.create_publisher(RT2Action, "/rt2/action", 50)
        self.status = self.node.create_publisher(EpisodeStatus, "/rt2/episode_status", 10)
        self.instruction = self.node.create_publisher(String, "/rt2/instruction", 10)
        for pub in (self.image, self.action, self.status, self.instruction):
            assert harness.wait_for(lambda p=pub: p.get_subscription_count() > 0, 10.0)

    def _wait(self, key, before):
        assert self.harness.wait_for(
            lambda: self.recorder.summary["counters"].get(key, 0) > before, 5.0), key

    def send_image(self, t, value, encoding="rgb8"):
        msg = Image()
        _stamp(msg, t)
        msg.height, msg.width, msg.encoding, msg.step = H, W, encoding, W * 3
        msg.data = np.full(H * W * 3, value, np.uint8).tobytes()
        before = self.recorder.summary["counters"]["images"]
        self.image.publish(msg)
        self._wait("images", before)

    def send_action(self, t, episode_id, step, terminate=False, dx=0.01):
        msg = RT2Action()
        _stamp(msg, t)
        msg.header.frame_id = "panda_link0"
        msg.episode_id, msg.step, msg.terminate = episode_id, step, terminate
        msg.bins = [int(terminate), 128, 128, 128, 128, 128, 128, 0]
        msg.delta_position.x, msg.delta_rotation.z, msg.gripper = dx, -0.1, 0.5
        before = self.recorder.summary["counters"]["actions"]
        self.action.publish(msg)
        self._wait("actions", before)

    def send_status(self, t, episode_id, instruction, state, outcome=0):
        msg = EpisodeStatus()
        _stamp(msg, t)
        msg.episode_id, msg.instruction, msg.state, msg.outcome = (episode_id, instruction,
                                                                    state, outcome)
        self.status.publish(msg)


def test_recorder_writes_episodes_split_by_terminate_and_status(harness, tmp_path):
    recorder = start_recorder(harness, tmp_path / "ds", state_joints=[])  # no joint states
    feed = Publisher(harness, recorder)
    feed.send_status(99.0, "ep1", "pick up the red cube", 1)
    for k in range(3):
        feed.send_image(100.0 + 0.1 * k, 10 + k)
        feed.send_action(100.0 + 0.1 * k + 0.01, "ep1", k, terminate=k == 2, dx=0.01 * k)
    feed.send_status(100.5, "ep2", "push the blue ball", 1)
    feed.send_image(101.0, 50)
    feed.send_action(101.05, "ep2", 0)
    feed.send_action(101.7, "ep2", 1)  # frame 0.7 s old: dropped as stale
    feed.send_image(101.8, 60, encoding="bgr8")
    feed.send_action(101.85, "ep2", 2)
    feed.send_status(102.0, "ep2", "push the blue ball", 3, outcome=2)

    client = feed.node.create_client(Trigger, "/rt2_recorder/flush")
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(Trigger.Request())
    assert harness.wait_for(future.done, 30.0)
    assert future.result().success, future.result().message

    summary = recorder.summary
    assert (summary["episodes"], summary["frames"]) == (2, 5)
    assert summary["counters"]["dropped_stale_frame"] == 1
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2 and len(ds) == 5 and ds.fps == 10.0 and not ds.has_state
    assert [ds[i]["task"] for i in range(5)] == ["pick up the red cube"] * 3 + [
        "push the blue ball"] * 2
    assert [int(ds[i]["image"][0, 0, 0]) for i in range(5)] == [10, 11, 12, 50, 60]
    assert ds[2]["action"][0] == 1.0 and ds[2]["done"]
    np.testing.assert_allclose(ds[1]["action"], [0, 0.01, 0, 0, 0, 0, -0.1, 0.5], atol=1e-7)
    assert ds[4]["timestamp"] == pytest.approx(0.8, abs=1e-5)


def test_recorder_records_a_live_policy_episode(harness, tmp_path):
    from rt2_policy.policy_node import PolicyNode

    recorder = start_recorder(harness, tmp_path / "ds", state_joints=[""])  # no state
    feeder = harness.add(harness.rclpy.create_node("camera", context=harness.context))
    camera = feeder.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)

    def frame():
        msg = Image()
        msg.header.stamp = feeder.get_clock().now().to_msg()
        msg.height, msg.width, msg.encoding, msg.step = H, W, "rgb8", W * 3
        msg.data = np.full(H * W * 3, 77, np.uint8).tobytes()
        camera.publish(msg)

    feeder.create_timer(0.05, frame)
    move, stop = "0 255 128 128 128 128 128 255", "1 128 128 128 128 128 128 255"
    policy = PolicyNode(context=harness.context, parameter_overrides=[
        Parameter("backend", value="scripted"),
        Parameter("scripted_actions", value=[move, move, stop]),
        Parameter("control_rate", value=10.0), Parameter("autostart", value=False)])
    assert policy.trigger_configure().name == "SUCCESS"
    assert policy.trigger_activate().name == "SUCCESS"
    harness.add(policy)
    instruction = feeder.create_publisher(String, "/rt2/instruction", 10)
    assert harness.wait_for(lambda: instruction.get_subscription_count() >= 2, 10.0)
    assert harness.wait_for(lambda: recorder.summary["counters"]["images"] > 2, 10.0)
    instruction.publish(String(data="wave at the camera"))
    assert harness.wait_for(lambda: recorder.summary["episodes"] == 1, 15.0), recorder.summary
    assert recorder.flush()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 1 and len(ds) == 3 and ds.tasks == ["wave at the camera"]
    expected = ActionTokenizer().decode([int(b) for b in move.split()])
    assert ds[0]["action"][1] == pytest.approx(expected.delta_position[0], rel=1e-6)
    assert ds[0]["action"][7] == pytest.approx(expected.gripper, rel=1e-6)
    assert ds[2]["action"][0] == 1.0
    assert int(ds[0]["image"][0, 0, 0]) == 77


class JointStates:
    """Two test-side publishers of /joint_states, as a real arm has: the arm's and the hand's."""

    ARM = [f"panda_joint{i}" for i in range(1, 8)]
    FINGERS = ["panda_finger_joint1", "panda_finger_joint2"]

    def __init__(self, harness, recorder: RecorderNode) -> None:
        self.harness, self.recorder = harness, recorder
        self.arm = harness.add(harness.rclpy.create_node("arm", context=harness.context)
                               ).create_publisher(JointState, "/joint_states", 10)
        self.hand = harness.add(harness.rclpy.create_node("hand", context=harness.context)
                                ).create_publisher(JointState, "/joint_states", 10)
        for pub in (self.arm, self.hand):
            assert harness.wait_for(lambda p=pub: p.get_subscription_count() > 0, 10.0)

    def send(self, pub, t, names, positions):
        msg = JointState()
        _stamp(msg, t)
        msg.name, msg.position = list(names), [float(q) for q in positions]
        before = self.recorder.summary["counters"]["joint_states"]
        pub.publish(msg)
        assert self.harness.wait_for(
            lambda: self.recorder.summary["counters"]["joint_states"] > before, 10.0)


def test_recorder_records_the_joint_state_as_observation_state(harness, tmp_path):
    recorder = start_recorder(harness, tmp_path / "ds")  # default: the Panda's 9 joints
    feed = Publisher(harness, recorder)
    joints = JointStates(harness, recorder)
    arm, fingers = JointStates.ARM, JointStates.FINGERS
    q1 = [0.1 * (i + 1) for i in range(7)]
    q2 = [-0.3 + 0.05 * i for i in range(7)]
    feed.send_status(99.0, "ep1", "pick up the red cube", 1)
    joints.send(joints.arm, 99.95, reversed(arm), reversed(q1))  # names in another order
    feed.send_image(100.0, 10)
    feed.send_action(100.01, "ep1", 0)                 # no finger position yet: not recorded
    assert recorder.summary["counters"]["dropped_no_state"] == 1
    joints.send(joints.hand, 100.05, fingers, [0.035, 0.034])
    feed.send_image(100.1, 11)
    feed.send_action(100.11, "ep1", 1)
    joints.send(joints.arm, 100.15, arm, q2)
    feed.send_image(100.2, 12)
    joints.send(joints.arm, 100.25, arm, [1.0] * 7)    # after frame 100.2: not its state
    feed.send_action(100.21, "ep1", 2, terminate=True)
    assert recorder.flush()

    summary = recorder.summary
    assert (summary["episodes"], summary["frames"]) == (1, 2), summary
    assert summary["counters"]["dropped_no_state"] == 1
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.has_state and len(ds) == 2
    assert ds.features["observation.state"]["names"] == list(PANDA_STATE_JOINTS)  # info.json
    assert [int(ds[i]["image"][0, 0, 0]) for i in range(2)] == [11, 12]
    np.testing.assert_allclose(ds[0]["state"], [*q1, 0.035, 0.034], rtol=1e-6)
    np.testing.assert_allclose(ds[1]["state"], [*q2, 0.035, 0.034], rtol=1e-6)


def test_recorder_state_joints_parameter(harness, tmp_path):
    node = start_recorder(harness, tmp_path / "a")
    assert tuple(node.get_parameter("state_joints").value) == PANDA_STATE_JOINTS
    descriptor = node.describe_parameter("state_joints")
    assert descriptor.read_only and "observation.state" in descriptor.description
    assert node.describe_parameter("joint_states_topic").read_only
    with pytest.raises(ValueError, match="state_joints"):
        RecorderNode(context=harness.context, parameter_overrides=[
            Parameter("output_dir", value=str(tmp_path / "b")),
            Parameter("state_joints", value=["panda_joint1", "panda_joint1"])])


class _Logger:
    """Collects a node's warnings (stands in for its rclpy logger)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, text, **_kwargs) -> None:
        self.warnings.append(text)

    def info(self, *_args, **_kwargs) -> None:
        pass

    error = info


def test_recorder_drops_steps_with_a_stale_joint_state(harness, tmp_path, monkeypatch):
    recorder = start_recorder(harness, tmp_path / "ds", max_state_age=0.3,
                              state_joints=["panda_joint1", "panda_finger_joint1"])
    assert recorder._config.max_state_age == 0.3
    logger = _Logger()
    monkeypatch.setattr(recorder, "get_logger", lambda: logger)
    feed = Publisher(harness, recorder)
    joints = JointStates(harness, recorder)
    feed.send_status(99.0, "ep1", "pick up the red cube", 1)
    joints.send(joints.hand, 99.9, ["panda_finger_joint1"], [0.04])  # then the hand dies
    joints.send(joints.arm, 99.95, ["panda_joint1"], [0.1])
    feed.send_image(100.0, 10)
    feed.send_action(100.01, "ep1", 0)                 # fingers 0.1 s old: recorded
    joints.send(joints.arm, 100.45, ["panda_joint1"], [0.2])
    feed.send_image(100.5, 11)
    feed.send_action(100.51, "ep1", 1, terminate=True)  # fingers 0.6 s old: dropped
    assert recorder.flush()

    summary = recorder.summary
    assert (summary["episodes"], summary["frames"]) == (1, 1), summary
    assert summary["counters"]["dropped_stale_state"] == 1
    assert summary["counters"]["dropped_no_state"] == 0
    (warning,) = logger.warnings
    assert "ep1/1 not recorded: dropped_stale_state" in warning
    assert "panda_finger_joint1 0.600 s old" in warning and "panda_joint1 " not in warning
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.features["observation.state"]["names"] == ["panda_joint1", "panda_finger_joint1"]
    np.testing.assert_allclose(ds[0]["state"], [0.1, 0.04], rtol=1e-6)


def test_recorder_max_state_age_parameter(harness, tmp_path):
    node = start_recorder(harness, tmp_path / "a")
    assert node.get_parameter("max_state_age").value == 0.5
    assert node._config.max_state_age == 0.5
    descriptor = node.describe_parameter("max_state_age")
    assert descriptor.read_only and "0 = no limit" in descriptor.description
    (limits,) = descriptor.floating_point_range
    assert (limits.from_value, limits.to_value) == (0.0, 60.0)
    assert start_recorder(harness, tmp_path / "b", max_state_age=0.0)._config.max_state_age == 0
    with pytest.raises(InvalidParameterValueException, match="max_state_age"):  # range
        start_recorder(harness, tmp_path / "c", max_state_age=-1.0)


def test_recorder_needs_an_output_dir(harness):
    with pytest.raises(ValueError, match="output_dir"):
        RecorderNode(context=harness.context)
