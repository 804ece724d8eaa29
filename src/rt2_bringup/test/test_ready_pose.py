"""The ready-pose helper over real rclpy + DDS, with moveit_py absent or replaced by a fake that
records the calls (the moveit2_tutorials motion planning Python API sequence)."""

from __future__ import annotations

import sys
import types

import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")

from std_msgs.msg import Bool  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from rt2_bringup import moveit_graph as mg  # noqa: E402
from rt2_bringup import ready_pose  # noqa: E402
from rt2_policy.ros_testing import RosHarness  # noqa: E402


class FakeMoveItPy:
    """Stands in for moveit.planning.MoveItPy; records what ReadyPose asks of it."""

    instances: list[FakeMoveItPy] = []
    plan_ok = True
    status = "SUCCEEDED"

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self.calls: list[tuple] = []
        FakeMoveItPy.instances.append(self)

    def get_planning_component(self, group: str):
        outer = self

        class Component:
            def set_start_state_to_current_state(self):
                outer.calls.append(("start_state",))

            def set_goal_state(self, configuration_name: str):
                outer.calls.append(("goal", group, configuration_name))

            def plan(self):
                outer.calls.append(("plan",))
                return types.SimpleNamespace(trajectory="traj") if FakeMoveItPy.plan_ok else None

        return Component()

    def execute(self, trajectory, controllers):
        self.calls.append(("execute", trajectory, tuple(controllers)))
        return types.SimpleNamespace(status=FakeMoveItPy.status)

    def get_trajectory_execution_manager(self):
        return types.SimpleNamespace(
            stop_execution=lambda auto_clear: self.calls.append(("stop", auto_clear)))


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


def ready_client(harness):
    probe = harness.add(harness.rclpy.create_node("probe", context=harness.context))
    client = probe.create_client(Trigger, mg.READY_SERVICE)
    assert client.wait_for_service(timeout_sec=10.0)
    return client


def call(harness, client) -> Trigger.Response:
    # A request can be lost while the server has not yet discovered the client (a known DDS
    # discovery race right after wait_for_service): retry a few times.
    for _ in range(5):
        future = client.call_async(Trigger.Request())
        if harness.wait_for(future.done, 3.0):
            return future.result()
    raise AssertionError(f"no response from {mg.READY_SERVICE}")


def test_without_moveit_py_the_service_refuses(harness, monkeypatch):
    monkeypatch.setattr(ready_pose, "_load_moveit_py", lambda: None)
    harness.add(ready_pose.ReadyPose(context=harness.context))
    client = ready_client(harness)
    response = call(harness, client)
    assert not response.success and "moveit_py is not installed" in response.message


def test_moves_to_the_named_state_with_moveit_py(harness, monkeypatch):
    FakeMoveItPy.instances.clear()
    FakeMoveItPy.plan_ok, FakeMoveItPy.status = True, "SUCCEEDED"
    monkeypatch.setattr(ready_pose, "_load_moveit_py", lambda: FakeMoveItPy)
    harness.add(ready_pose.ReadyPose(context=harness.context))
    client = ready_client(harness)
    response = call(harness, client)
    assert response.success, response.message
    (moveit,) = FakeMoveItPy.instances
    assert moveit.node_name == "rt2_ready_pose_moveit"  # not the service node's name
    assert moveit.calls == [("start_state",), ("goal", "panda_arm", "ready"), ("plan",),
                            ("execute", "traj", ())]
    FakeMoveItPy.plan_ok = False
    response = call(harness, client)
    assert not response.success and "no plan" in response.message
    FakeMoveItPy.plan_ok, FakeMoveItPy.status = True, "ABORTED"
    response = call(harness, client)
    assert not response.success and "ABORTED" in response.message


def test_estop_stops_the_move_and_refuses_until_released(harness, monkeypatch):
    FakeMoveItPy.instances.clear()
    FakeMoveItPy.plan_ok, FakeMoveItPy.status = True, "SUCCEEDED"
    monkeypatch.setattr(ready_pose, "_load_moveit_py", lambda: FakeMoveItPy)
    harness.add(ready_pose.ReadyPose(context=harness.context))
    client = ready_client(harness)
    publisher_node = harness.add(harness.rclpy.create_node("estop_pub", context=harness.context))
    publisher = publisher_node.create_publisher(Bool, "/rt2/estop", 10)
    assert harness.wait_for(lambda: publisher.get_subscription_count() > 0, 10.0)
    (moveit,) = FakeMoveItPy.instances
    publisher.publish(Bool(data=True))
    assert harness.wait_for(lambda: ("stop", True) in moveit.calls, 10.0)
    response = call(harness, client)
    assert not response.success and "e-stop" in response.message
    assert not [c for c in moveit.calls if c[0] == "execute"]
    publisher.publish(Bool(data=False))
    assert harness.wait_for(lambda: call(harness, client).success, 10.0)


def test_execution_status_forms():
    assert ready_pose.execution_succeeded(None)  # older moveit_py: blocking, None
    assert ready_pose.execution_succeeded(types.SimpleNamespace(status="SUCCEEDED"))
    assert not ready_pose.execution_succeeded(types.SimpleNamespace(status="PREEMPTED"))
    assert not ready_pose.execution_succeeded(False)


def test_real_moveit_py_import_is_guarded():
    loaded = ready_pose._load_moveit_py()
    assert loaded is None or "moveit" in sys.modules
