"""The policy node over real rclpy and DDS, with a scripted policy double and a fake camera."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
pytest.importorskip("rt2_msgs.msg", reason="rt2_msgs not built: run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64, String  # noqa: E402

from rt2_msgs.action import ExecuteInstruction  # noqa: E402
from rt2_msgs.msg import EpisodeStatus, RT2Action  # noqa: E402
from rt2_policy import policy_node  # noqa: E402
from rt2_policy.action_tokenizer import ActionTokenizer  # noqa: E402
from rt2_policy.policy_node import PolicyNode  # noqa: E402
from rt2_policy.proprioception import panda_tcp_position  # noqa: E402
from rt2_policy.ros_testing import RosHarness  # noqa: E402
from rt2_policy.scripted_policy import ScriptedPolicy  # noqa: E402

MOVE = "0 255 128 128 128 128 128 255"  # +x at the upper bound, gripper closed
STOP = "1 128 128 128 128 128 128 255"
RATE = 10.0


class Probe:
    """Test-side node: fake camera, and recorders of everything the policy node publishes."""

    def __init__(self, harness: RosHarness, encoding: str = "rgb8") -> None:
        self.node = harness.rclpy.create_node("probe", context=harness.context)
        self.encoding = encoding
        self.camera_on = threading.Event()
        self.camera_on.set()
        self.twists: list[tuple[float, TwistStamped]] = []
        self.actions: list[RT2Action] = []
        self.statuses: list[EpisodeStatus] = []
        self.gripper: list[float] = []
        self.frame_stamps: list[float] = []  # header stamps of the camera frames published
        self.image_pub = self.node.create_publisher(Image, "/camera/image_raw",
                                                    qos_profile_sensor_data)
        self.instruction_pub = self.node.create_publisher(String, "/rt2/instruction", 10)
        self.node.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds",
                                      lambda m: self.twists.append((self.now(), m)), 100)
        self.node.create_subscription(RT2Action, "/rt2/action", self.actions.append, 100)
        self.node.create_subscription(EpisodeStatus, "/rt2/episode_status",
                                      self.statuses.append, 100)
        self.node.create_subscription(Float64, "/rt2/gripper_command",
                                      lambda m: self.gripper.append(m.data), 100)
        self.node.create_timer(0.05, self._publish_frame)
        self.client = ActionClient(self.node, ExecuteInstruction, "/rt2/execute_instruction")
        harness.add(self.node)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _publish_frame(self) -> None:
        if not self.camera_on.is_set():
            return
        msg = Image()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = "scene_camera_optical_frame"
        msg.height, msg.width, msg.encoding = 32, 32, self.encoding
        channels = 4 if self.encoding == "32FC1" else 3
        msg.step = 32 * channels
        msg.data = np.full(32 * 32 * channels, 100, np.uint8).tobytes()
        self.image_pub.publish(msg)
        self.frame_stamps.append(stamp_of(msg))


def stamp_of(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


def start_policy(harness: RosHarness, actions, **params) -> PolicyNode:
    overrides = [Parameter("backend", value="scripted"),
                 Parameter("scripted_actions", value=list(actions)),
                 Parameter("control_rate", value=RATE),
                 Parameter("autostart", value=False)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = PolicyNode(context=harness.context, parameter_overrides=overrides)
    assert node.trigger_configure().name == "SUCCESS"
    assert node.trigger_activate().name == "SUCCESS"
    harness.add(node)
    return node


def run_goal(harness, probe, instruction, timeout=20.0):
    assert probe.client.wait_for_server(timeout_sec=10.0)
    feedback = []
    send = probe.client.send_goal_async(ExecuteInstruction.Goal(instruction=instruction),
                                        feedback_callback=feedback.append)
    assert harness.wait_for(send.done, 10.0)
    handle = send.result()
    assert handle.accepted
    result = handle.get_result_async()
    assert harness.wait_for(result.done, timeout)
    return result.result(), feedback


def test_episode_ends_on_terminate_with_servo_twists(harness):
    probe = Probe(harness)
    start_policy(harness, [MOVE, MOVE, MOVE, STOP], max_linear_speed=1.0)
    assert harness.wait_for(lambda: probe.node.count_publishers("/servo_node/delta_twist_cmds"),
                            5.0)
    wrapped, feedback = run_goal(harness, probe, "push the red cube forward")
    result = wrapped.result
    assert result.outcome == ExecuteInstruction.Result.OUTCOME_SUCCEEDED
    assert result.steps == 4 and result.duration > 0
    assert len(feedback) >= 3

    time.sleep(0.3)
    # RT2Action: the decoded script, in order, with latency and frame.
    assert [list(a.bins) for a in probe.actions[:4]] == [
        [int(b) for b in s.split()] for s in (MOVE, MOVE, MOVE, STOP)]
    assert probe.actions[3].terminate and probe.actions[0].header.frame_id == "panda_link0"
    decoded = ActionTokenizer().decode([int(b) for b in MOVE.split()])
    dx, dy = decoded.delta_position[:2]
    assert probe.actions[0].delta_position.x == pytest.approx(dx)

    # Twist stream: MoveIt Servo's frame from header.frame_id, m/s units, fresh stamps.
    moving = [m for _, m in probe.twists if m.twist.linear.x != 0.0]
    assert moving, "no motion twist was streamed"
    for m in moving:
        assert m.header.frame_id == "panda_link0"
        assert m.twist.linear.x == pytest.approx(dx * RATE, rel=1e-5)  # Δx / control period
        # bin 128 is the bin just above zero (256 bins have no zero centre): |Δ| < half a bin
        assert m.twist.linear.y == pytest.approx(dy * RATE, rel=1e-5)
        assert abs(dy) <= 0.1 / 256 / 2 + 1e-12
    # Every message is stamped when it is sent (MoveIt Servo judges staleness by header.stamp):
    # stamps strictly increase, and typical delivery is far inside incoming_command_timeout.
    # Medians, not maxima: the probe shares this Python process with the node under test.
    stamps = np.array([stamp_of(m) for _, m in probe.twists])
    delays = np.array([received - stamp_of(m) for received, m in probe.twists])
    assert np.all(np.diff(stamps) > 0)
    assert np.all(delays >= 0.0) and np.median(delays) < 0.05
    # Keep-alive: the stream (50 Hz) runs faster than the servo's 0.1 s timeout.
    assert np.median(np.diff(stamps)) < 0.05
    # After terminate the arm is commanded to stop: the node stops the hold before it stamps
    # the terminate action, so every twist *stamped* after that action is zero. Judged by the
    # twists' own stamps, not by when this probe received them: a moving twist stamped before
    # the stop can arrive more than 50 ms late on a loaded machine (CI failed so, receive
    # time + 0.05 s margin), while its stamp is what the servo acts on.
    last_action_time = stamp_of(probe.actions[3])
    after = [m for _, m in probe.twists if stamp_of(m) > last_action_time]
    assert after and all(m.twist.linear.x == 0.0 for m in after)
    assert probe.gripper and probe.gripper[0] == pytest.approx(1.0, abs=0.01)
    finished = [s for s in probe.statuses if s.state == EpisodeStatus.STATE_FINISHED]
    assert finished and finished[-1].outcome == EpisodeStatus.OUTCOME_SUCCEEDED


def test_each_step_streams_its_twist_at_once_not_at_the_next_keepalive_tick(harness):
    """A step's twist window opens when the step sets it, and so must the motion: its first
    twist is published at once (stamped before the step's RT2Action), not at the next
    keep-alive tick. With a 2 Hz keep-alive (0.5 s between ticks, 0.1 s steps) waiting for the
    tick would leave most steps without any moving twist at all."""
    probe = Probe(harness)
    start_policy(harness, [MOVE] * 4 + [STOP], max_linear_speed=1.0, keepalive_rate=2.0)
    assert harness.wait_for(lambda: probe.node.count_publishers("/servo_node/delta_twist_cmds"),
                            5.0)
    wrapped, _ = run_goal(harness, probe, "push the red cube forward")
    assert wrapped.result.outcome == ExecuteInstruction.Result.OUTCOME_SUCCEEDED
    time.sleep(0.2)
    moving = [stamp_of(m) for _, m in probe.twists if m.twist.linear.x != 0.0]
    steps = [stamp_of(a) for a in probe.actions if not a.terminate]
    assert len(steps) == 4
    for t in steps:  # published just before the action, in the same control step
        assert any(t - 0.05 <= s <= t for s in moving), (t, moving)


def test_stale_camera_yields_zero_twist_then_abort(harness):
    probe = Probe(harness)
    max_image_age = 0.3
    start_policy(harness, [MOVE], max_image_age=max_image_age, max_consecutive_faults=8)
    assert harness.wait_for(lambda: probe.node.count_subscribers("/rt2/instruction"), 5.0)
    probe.instruction_pub.publish(String(data="pick up the red cube"))
    assert harness.wait_for(lambda: len(probe.actions) >= 2, 5.0)
    probe.camera_on.clear()
    # 8 faults at 10 Hz take 0.8 s; the margin is for a loaded 2-core CI machine.
    assert harness.wait_for(lambda: any(s.outcome == EpisodeStatus.OUTCOME_ABORTED
                                        for s in probe.statuses), 15.0)
    # The first step that finds the last frame older than max_image_age holds the arm. From the
    # node's report of it on (+ one control period for the report and the stop racing each
    # other), every twist it publishes is zero and it publishes no more actions. Times are the
    # messages' publish stamps, not their arrival: delivery on a loaded CI machine is late.
    stale = [s for s in probe.statuses
             if s.state == EpisodeStatus.STATE_HOLDING and "stale camera" in s.message]
    assert stale, [s.message for s in probe.statuses]
    # A frame the timer was publishing as the camera was switched off can reach the node late,
    # after its first stale report; it may act on it until that frame too is max_image_age old.
    settle = max(stamp_of(stale[0]), probe.frame_stamps[-1] + max_image_age) + 1 / RATE
    late = [m for _, m in probe.twists if stamp_of(m) > settle]
    assert late and all(m.twist.linear.x == 0.0 and m.twist.angular.z == 0.0 for m in late)
    assert not [a for a in probe.actions if stamp_of(a) > settle]
    holding = [s for s in probe.statuses if s.state == EpisodeStatus.STATE_HOLDING]
    assert holding and "stale camera" in holding[-1].message


def test_control_loop_switches_to_sim_time_and_follows_it(harness):
    """Wall time paces the loop on the steady clock; turning ``use_sim_time`` on mid-episode
    hands the pacing to /clock (steps stop while sim time is frozen, resume as it advances)
    instead of ending the inference thread."""
    probe = Probe(harness)
    node = start_policy(harness, [MOVE])
    clock_pub = probe.node.create_publisher(Clock, "/clock", 10)
    assert harness.wait_for(lambda: probe.node.count_subscribers("/rt2/instruction"), 5.0)
    probe.instruction_pub.publish(String(data="push the red cube forward"))
    assert harness.wait_for(lambda: len(probe.actions) >= 2, 5.0)

    clock_pub.publish(Clock(clock=Time(sec=100)))
    assert node.set_parameters([Parameter("use_sim_time", value=True)])[0].successful
    assert harness.wait_for(lambda: (clock_pub.publish(Clock(clock=Time(sec=100))) or
                                     node.get_clock().now().nanoseconds == 100 * 10**9), 5.0)
    time.sleep(0.5)
    frozen = len(probe.actions)
    time.sleep(1.0)  # sim time stands still: at most the step already under way
    assert len(probe.actions) <= frozen + 1

    sim = [100.0]

    def advance() -> bool:
        sim[0] += 0.05
        sec, frac = divmod(sim[0], 1.0)
        clock_pub.publish(Clock(clock=Time(sec=int(sec), nanosec=int(frac * 1e9))))
        return len(probe.actions) >= frozen + 5

    assert harness.wait_for(advance, 10.0), "the control loop did not follow /clock"
    sim_stamps = [stamp_of(a) for a in probe.actions[frozen + 1:]]
    assert sim_stamps and all(100.0 <= t <= sim[0] for t in sim_stamps)


def test_bad_encoding_and_empty_instruction_keep_arm_still(harness):
    probe = Probe(harness, encoding="32FC1")
    node = start_policy(harness, [MOVE])
    assert harness.wait_for(lambda: probe.node.count_subscribers("/rt2/instruction"), 5.0)
    probe.instruction_pub.publish(String(data="pick up the red cube"))
    assert harness.wait_for(lambda: any(s.state == EpisodeStatus.STATE_HOLDING
                                        for s in probe.statuses), 5.0)
    assert "encoding" in [s for s in probe.statuses if s.state == 2][-1].message
    assert probe.actions == []
    assert all(m.twist.linear.x == 0.0 for _, m in probe.twists)
    probe.instruction_pub.publish(String(data="   "))
    assert harness.wait_for(lambda: any(s.outcome == EpisodeStatus.OUTCOME_CANCELED
                                        for s in probe.statuses), 5.0)
    assert node._active  # still alive and serving


# ---------------------------------------------------------------------------- gripper state
ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
FINGER_JOINTS = ["panda_finger_joint1", "panda_finger_joint2"]


class _NeedsGripperState(ScriptedPolicy):
    """Like a VLAPolicy trained with the gripper state: refuses an observation without it."""

    def infer(self, observation):
        if observation.gripper_state is None:
            raise ValueError("observation.gripper_state: expected a number in [0, 1], got None")
        return super().infer(observation)


def _use_policy(monkeypatch, policy) -> None:
    """Make the node's ``make_policy`` (imported into rt2_policy.policy_node) return ``policy``."""
    monkeypatch.setattr(policy_node, "make_policy", lambda *args, **kwargs: policy)


def _joint_state(probe: Probe, names, positions) -> JointState:
    msg = JointState()
    msg.header.stamp = probe.node.get_clock().now().to_msg()
    msg.name = list(names)
    msg.position = [float(p) for p in positions]
    return msg


def _publish_joint_states(probe: Probe, extra_bad: bool = False) -> None:
    """Publish the arm and hand at 20 Hz with both fingers at 0.01 m (closure 0.75); with
    ``extra_bad``, each tick also sends messages the node must ignore, after the good one."""
    pub = probe.node.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)

    def tick() -> None:
        pub.publish(_joint_state(probe, [*ARM_JOINTS, *FINGER_JOINTS], [0.3] * 7 + [0.01, 0.01]))
        if extra_bad:
            pub.publish(_joint_state(probe, ARM_JOINTS, [0.3] * 7))  # no finger joints
            pub.publish(_joint_state(probe, FINGER_JOINTS, [float("nan"), 0.01]))
            pub.publish(_joint_state(probe, ARM_JOINTS, [0.3] * 6 + [float("nan")]))
            pub.publish(_joint_state(probe, FINGER_JOINTS, [0.04]))  # length mismatch

    probe.node.create_timer(0.05, tick)


def test_joint_states_give_the_policy_the_gripper_state_and_tcp_position(harness, monkeypatch):
    policy = ScriptedPolicy([MOVE])
    _use_policy(monkeypatch, policy)
    probe = Probe(harness)
    node = start_policy(harness, [MOVE])
    assert node._policy is policy
    _publish_joint_states(probe)
    assert harness.wait_for(lambda: probe.node.count_subscribers("/joint_states"), 5.0)
    assert harness.wait_for(lambda: node._gripper is not None, 10.0)
    probe.instruction_pub.publish(String(data="pick up the red cube"))
    assert harness.wait_for(
        lambda: sum(o.gripper_state is not None for o in list(policy.observations)) >= 3, 15.0)
    states = [o.gripper_state for o in list(policy.observations)]
    assert all(s == pytest.approx(0.75) for s in states if s is not None), states
    # the tcp from the arm joints' forward kinematics (parameters arm_joints, tcp_offset 0.13)
    expected = panda_tcp_position([0.3] * 7, 0.13)
    tcps = [o.tcp_position for o in list(policy.observations) if o.tcp_position is not None]
    assert tcps and all(t == pytest.approx(expected) for t in tcps), tcps


def test_grasp_memory_counts_the_episodes_joint_states_and_restarts_with_each_episode(
        harness, monkeypatch):
    """A memory-wrapped policy (as make_policy builds one for a model that reads it) sees
    ``grasped`` turn on after 3 control steps of fingers on an object (0.75 closed, from
    /joint_states), and off again when a new instruction starts a new episode (the node resets
    the policy)."""
    from rt2_policy.grasp_memory import GraspMemory

    inner = ScriptedPolicy([MOVE])
    _use_policy(monkeypatch, GraspMemory(inner))
    probe = Probe(harness)
    node = start_policy(harness, [MOVE], max_image_age=10.0)
    _publish_joint_states(probe)
    assert harness.wait_for(lambda: node._gripper is not None, 10.0)
    for instruction in ("move the red cube near the bowl", "place the red cube on the plate"):
        probe.instruction_pub.publish(String(data=instruction))
        assert harness.wait_for(
            lambda text=instruction: sum(o.instruction == text
                                         for o in list(inner.observations)) >= 5,
            15.0)
        seen = [o.grasped for o in list(inner.observations) if o.instruction == instruction]
        assert seen[:5] == [False, False, True, True, True], seen


class _Timed(ScriptedPolicy):
    """Records when each inference starts (steady clock, s)."""

    def __init__(self, actions):
        super().__init__(actions)
        self.starts: list[float] = []

    def infer(self, observation):
        self.starts.append(time.monotonic())
        return super().infer(observation)


@pytest.mark.parametrize("after_motion", [True, False])
def test_observe_after_motion_waits_for_the_twist_to_end(harness, monkeypatch, after_motion):
    """With observe_after_motion a step starts no sooner than the previous step's twist (one
    control period, 0.1 s here) has ended plus settle_time (0.3 s): steps at least 0.4 s apart;
    without it, one step per control period."""
    policy = _Timed([MOVE])
    _use_policy(monkeypatch, policy)
    probe = Probe(harness)
    start_policy(harness, [MOVE], observe_after_motion=after_motion, settle_time=0.3,
                 max_image_age=10.0)
    assert harness.wait_for(lambda: probe.node.count_subscribers("/rt2/instruction"), 5.0)
    probe.instruction_pub.publish(String(data="push the red cube left"))
    assert harness.wait_for(lambda: len(policy.starts) >= 6, 20.0)
    gaps = np.diff(policy.starts[:6])
    if after_motion:
        assert gaps.min() >= 0.1 + 0.3 - 0.01, gaps  # sleeps never end early
    else:
        assert np.median(gaps) < 0.3, gaps  # about one control period


def test_bad_joint_states_are_ignored_and_the_last_good_reading_kept(harness, monkeypatch):
    policy = ScriptedPolicy([MOVE])
    _use_policy(monkeypatch, policy)
    probe = Probe(harness)
    # A generous freshness window: the last good reading stays usable between good messages
    # however late a loaded machine delivers them.
    node = start_policy(harness, [MOVE], max_image_age=10.0)
    _publish_joint_states(probe, extra_bad=True)
    assert harness.wait_for(lambda: node._gripper is not None, 10.0)
    probe.instruction_pub.publish(String(data="pick up the red cube"))
    assert harness.wait_for(lambda: len(policy.observations) >= 8, 15.0)
    states = [o.gripper_state for o in list(policy.observations)]
    # every step saw the good reading: neither the arm-only, the NaN nor the mismatched
    # messages replaced it (or stopped the node's subscriptions)
    assert all(s == pytest.approx(0.75) for s in states), states
    assert all(o.tcp_position == pytest.approx(panda_tcp_position([0.3] * 7, 0.13))
               for o in list(policy.observations))  # the NaN arm message was not taken
    # ... and the node still takes new readings and frames after the bad messages
    gripper_stamp, frame_stamp = node._gripper.stamp, node._frame.stamp
    assert harness.wait_for(lambda: node._gripper.stamp > gripper_stamp + 0.2
                            and node._frame.stamp > frame_stamp + 0.2, 10.0)
    assert node._gripper.state == pytest.approx(0.75)


def test_policy_needing_the_gripper_state_holds_without_joint_states(harness, monkeypatch):
    policy = _NeedsGripperState([MOVE])
    _use_policy(monkeypatch, policy)
    probe = Probe(harness)
    start_policy(harness, [MOVE], max_linear_speed=1.0, max_consecutive_faults=100_000)
    assert harness.wait_for(lambda: probe.node.count_subscribers("/rt2/instruction"), 5.0)
    probe.instruction_pub.publish(String(data="pick up the red cube"))

    def holding_on_gripper_state():
        return [s for s in list(probe.statuses) if s.state == EpisodeStatus.STATE_HOLDING
                and "gripper_state" in s.message]

    assert harness.wait_for(lambda: len(holding_on_gripper_state()) >= 3, 15.0), \
        [s.message for s in probe.statuses]
    assert "policy failed" in holding_on_gripper_state()[0].message
    assert harness.wait_for(lambda: len(probe.twists) >= 10, 5.0)
    # No joint states yet: no action, no motion, and the episode is held, not aborted.
    assert probe.actions == [] and policy.observations == []
    assert all(m.twist.linear.x == 0.0 and m.twist.angular.z == 0.0 for _, m in probe.twists)
    assert not [s for s in probe.statuses if s.state == EpisodeStatus.STATE_FINISHED]

    # Once the finger joints are published the same episode acts, with the state.
    _publish_joint_states(probe)
    assert harness.wait_for(lambda: len(probe.actions) >= 2, 15.0)
    assert harness.wait_for(lambda: any(m.twist.linear.x > 0.0 for _, m in probe.twists), 5.0)
    assert policy.observations
    assert all(o.gripper_state == pytest.approx(0.75) for o in list(policy.observations))


def _factory_arguments(harness, monkeypatch, params: dict) -> dict:
    """The keyword arguments the node gives make_policy when started with ``params``."""
    asked = {}

    def factory(*args, **kwargs):
        asked.update(kwargs)
        return ScriptedPolicy([MOVE])

    monkeypatch.setattr(policy_node, "make_policy", factory)
    start_policy(harness, [MOVE], **params)
    return asked


@pytest.mark.parametrize("params, expected", [({}, True), ({"release_at_waypoint": True}, True),
                                              ({"release_at_waypoint": False}, False)])
def test_the_release_gate_parameter_reaches_the_policy_factory(harness, monkeypatch, params,
                                                              expected):
    """``release_at_waypoint`` (default true) is what make_policy is asked for; the factory's
    wrapping itself is tested in test_waypoint_release."""
    asked = _factory_arguments(harness, monkeypatch, params)
    assert asked["release_at_waypoint"] is expected


@pytest.mark.parametrize("params, expected", [({}, None), ({"terminate_threshold": 0.0}, None),
                                              ({"terminate_threshold": 0.9}, 0.9)])
def test_the_terminate_threshold_parameter_reaches_the_policy_factory(harness, monkeypatch,
                                                                      params, expected):
    """``terminate_threshold`` 0 (the default) asks make_policy for the checkpoint's own
    threshold (None); a probability is passed on. The decode itself is tested in
    test_vla_policy and test_constrained_decoding."""
    assert _factory_arguments(harness, monkeypatch, params)["terminate_threshold"] == expected
