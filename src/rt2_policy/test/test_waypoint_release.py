"""rt2_policy.waypoint_release: the gate that opens the gripper where a waypoint plan's carry
arrives, and its wiring into make_policy."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from rt2_policy.action_tokenizer import ActionBounds, ActionTokenizer
from rt2_policy.contract import Observation, Policy, RobotAction
from rt2_policy.policy_factory import make_policy
from rt2_policy.prompts import TCP_POSITION_BOUNDS, tcp_position_bins
from rt2_policy.waypoint_release import (
    WaypointRelease,
    WaypointReleaseConfig,
    release_decision,
)

CLOSED_ACTION = "0 130 120 128 128 128 128 255"
HOLDING = 0.5
IMAGE = np.zeros((8, 8, 3), np.uint8)


def metres(bins):
    """The tcp position (panda_link0, metres) whose prompt bins are ``bins``."""
    box = np.asarray(TCP_POSITION_BOUNDS, float)
    return box[:, 0] + np.asarray(bins, float) / 255.0 * (box[:, 1] - box[:, 0])


def observation(tcp_bins=None, state=HOLDING):
    return Observation(IMAGE, "put the red cube into the bowl", gripper_state=state,
                       tcp_position=None if tcp_bins is None else metres(tcp_bins))


class PlanPolicy:
    """Test double: the same closed-gripper action, with the plan it is told to write."""

    def __init__(self, action: str = CLOSED_ACTION):
        self.tokenizer = ActionTokenizer(ActionBounds())
        self.bins = self.tokenizer.from_text(action)
        self.plan = ""
        self.resets = 0
        self.metadata = {"cot_plan": "waypoint"}

    def infer(self, observation: Observation) -> RobotAction:
        action = self.tokenizer.decode(self.bins)
        return dataclasses.replace(action, text=self.tokenizer.to_text(self.bins),
                                   plan=self.plan, extra={"latency_note": 1})

    def reset(self) -> None:
        self.resets += 1


def test_metres_helper_round_trips_the_prompt_bins():
    assert tcp_position_bins(metres((140, 87, 51))) == (140, 87, 51)


@pytest.mark.parametrize("plan, tcp, grasp, expected", [
    ("bring 140 87 51", (139, 84, 51), (105, 171, 32), (140, 87, 51)),  # arrived, carried far
    ("bring 140 87 51", (140, 87, 51), (105, 171, 32), (140, 87, 51)),
    ("bring 140 87 51", (139, 83, 51), (105, 171, 32), None),  # 4 bins short in y
    ("bring 140 87 51", (140, 87, 47), (105, 171, 32), None),  # 4 bins short in z
    ("bring 104 173 52", (105, 171, 51), (105, 171, 32), None),  # the lift point above the grasp
    ("bring 114 173 52", (113, 171, 51), (105, 171, 32), None),  # 9 bins from the grasp
    ("bring 115 173 52", (114, 171, 51), (105, 171, 32), (115, 173, 52)),  # 10 bins
    ("bring 139 86 33", (139, 86, 33), (153, 88, 32), None),  # dragged along the table
    ("bring 140 87 41", (140, 87, 41), (105, 171, 32), None),  # 9 bins above the grasp
    ("bring 140 87 42", (140, 87, 42), (105, 171, 32), (140, 87, 42)),  # 10 bins
    ("bring 140 87 51", (140, 87, 51), None, None),  # no grasp seen
    ("reach 140 87 51", (140, 87, 51), (105, 171, 32), None),
    ("drop 140 87 51", (140, 87, 51), (105, 171, 32), None),
    ("done 140 87 51", (140, 87, 51), (105, 171, 32), None),
    ("bring 40 141", (40, 141, 51), (105, 171, 32), None),  # an image-point goal plan
    ("bring", (140, 87, 51), (105, 171, 32), None),
    ("put the cube into the bowl", (140, 87, 51), (105, 171, 32), None),
    ("", (140, 87, 51), (105, 171, 32), None),
])
def test_release_decision(plan, tcp, grasp, expected):
    assert release_decision(plan, tcp, grasp) == expected


def test_release_decision_follows_the_config():
    config = WaypointReleaseConfig(reach_tolerance=5, min_carry=40, min_lift=19)
    assert release_decision("bring 140 87 51", (135, 87, 51), (120, 100, 32), config) is None
    assert release_decision("bring 140 87 51", (135, 87, 51), (105, 127, 33), config) is None
    assert release_decision("bring 140 87 51", (135, 87, 51), (105, 127, 32),
                            config) == (140, 87, 51)


@pytest.mark.parametrize("field", ["reach_tolerance", "min_carry", "min_lift"])
@pytest.mark.parametrize("value", [-1, 256, 2.0, True, "3", None])
def test_config_refuses_what_is_not_a_bin_count(field, value):
    with pytest.raises(ValueError, match=f"{field}: expected an int in 0..255 .*got"):
        WaypointReleaseConfig(**{field: value})


def carry(policy: WaypointRelease, inner: PlanPolicy, steps):
    """Run ``steps`` of (plan, tcp bins, gripper state) and return the actions."""
    out = []
    for plan, tcp, state in steps:
        inner.plan = plan
        out.append(policy.infer(observation(tcp, state)))
    return out


def test_a_carry_that_arrives_opens_the_gripper_there_and_says_drop():
    inner = PlanPolicy()
    gate = WaypointRelease(inner)
    grasp, lift, on_the_way, arrived = carry(gate, inner, [
        ("bring 105 171 52", (105, 171, 32), HOLDING),  # grasp closed here
        ("bring 105 171 52", (105, 171, 51), HOLDING),  # the lift point: reached, not released
        ("bring 140 87 51", (127, 145, 51), HOLDING),
        ("bring 140 87 51", (139, 84, 51), HOLDING),
    ])
    for action in (grasp, lift, on_the_way):
        assert action.gripper == pytest.approx(inner.tokenizer.decode(inner.bins).gripper)
        assert action.plan.startswith("bring") and "waypoint_release" not in action.extra
    assert arrived.gripper == 0.0 and int(arrived.bins[-1]) == 0
    assert arrived.text == "0 130 120 128 128 128 128 0"
    assert arrived.plan == "drop 140 87 51"
    assert arrived.extra == {"latency_note": 1, "waypoint_release": True}
    np.testing.assert_array_equal(arrived.bins[:-1], inner.bins[:-1])
    np.testing.assert_allclose(arrived.delta_position, lift.delta_position)
    assert not arrived.terminate


@pytest.mark.parametrize("state", [0.0, 0.1, 0.95, 1.0])
def test_nothing_is_released_unless_the_fingers_hold_something(state):
    inner = PlanPolicy()
    gate = WaypointRelease(inner)
    *_, arrived = carry(gate, inner, [("bring 140 87 51", (105, 171, 32), state),
                                      ("bring 140 87 51", (140, 87, 51), state)])
    assert arrived.plan == "bring 140 87 51" and arrived.gripper > 0.5


def test_the_grasp_is_where_the_fingers_closed_last():
    inner = PlanPolicy()
    gate = WaypointRelease(inner)
    *_, arrived = carry(gate, inner, [
        ("bring 105 171 52", (105, 171, 32), HOLDING),
        ("reach 140 87 30", (120, 120, 40), 0.0),  # dropped it on the way
        ("bring 140 87 51", (138, 86, 32), HOLDING),  # grasped again, under the waypoint
        ("bring 140 87 51", (140, 87, 51), HOLDING),  # lifted: this is a lift point now
    ])
    assert arrived.plan == "bring 140 87 51"


def test_reset_forgets_the_grasp_and_resets_the_wrapped_policy():
    inner = PlanPolicy()
    gate = WaypointRelease(inner)
    carry(gate, inner, [("bring 105 171 52", (105, 171, 32), HOLDING)])
    gate.reset()
    assert inner.resets == 1
    *_, arrived = carry(gate, inner, [("bring 140 87 51", (140, 87, 51), HOLDING)])
    assert arrived.plan == "bring 140 87 51"  # the first holding frame is the grasp


@pytest.mark.parametrize("tcp, state", [(None, HOLDING), ((140, 87, 51), None)])
def test_observations_without_proprioception_pass_through(tcp, state):
    inner = PlanPolicy()
    gate = WaypointRelease(inner)
    inner.plan = "bring 140 87 51"
    gate.infer(observation((105, 171, 32), HOLDING))
    action = gate.infer(observation(tcp, state))
    assert action.plan == "bring 140 87 51" and action.gripper > 0.5


def test_the_wrapper_is_a_policy_and_forwards_the_rest():
    inner = PlanPolicy()
    gate = WaypointRelease(inner)
    assert isinstance(gate, Policy)
    assert gate.metadata == {"cot_plan": "waypoint"}
    assert gate.tokenizer is inner.tokenizer
    with pytest.raises(AttributeError):
        gate.no_such_attribute  # noqa: B018


def test_make_policy_wraps_only_when_asked():
    plain = make_policy("scripted", scripted_actions=[CLOSED_ACTION])
    gated = make_policy("scripted", scripted_actions=[CLOSED_ACTION], release_at_waypoint=True)
    assert not isinstance(plain, WaypointRelease)
    assert isinstance(gated, WaypointRelease)
    action = gated.infer(observation((140, 87, 51)))  # no plan: passes through
    assert action.gripper > 0.5 and gated.answer(IMAGE, "what is red?").endswith("red?")


def test_the_gate_imports_neither_torch_nor_transformers():
    code = ("import sys, rt2_policy.waypoint_release; "
            "print([m for m in ('torch', 'transformers', 'rclpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
