"""The gripper bridge node against a fake GripperCommand action server, over real DDS.

control_msgs is not on PyPI: this test runs where ROS 2 comes from apt (the Docker image, a robot
PC) and skips elsewhere; the mapping itself is tested in test_gripper_command.py everywhere.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) not installed: run make setup")
pytest.importorskip("control_msgs.action", reason="control_msgs not installed (apt only; "
                    "not on PyPI): the gripper bridge node runs only where it exists")

from control_msgs.action import GripperCommand  # noqa: E402
from rclpy.action import ActionServer  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402

from rt2_bringup import moveit_graph as mg  # noqa: E402
from rt2_bringup.gripper_bridge import GripperBridge  # noqa: E402
from rt2_policy.ros_testing import RosHarness  # noqa: E402


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


def test_closure_stream_becomes_few_goals(harness):
    goals = []

    def execute(goal_handle):
        goals.append((goal_handle.request.command.position,
                      goal_handle.request.command.max_effort))
        goal_handle.succeed()
        return GripperCommand.Result(position=goal_handle.request.command.position,
                                     reached_goal=True)

    fake = harness.add(harness.rclpy.create_node("fake_hand", context=harness.context))
    ActionServer(fake, GripperCommand, mg.GRIPPER_ACTION, execute_callback=execute)
    bridge = harness.add(GripperBridge(context=harness.context))
    pub = fake.create_publisher(Float64, "/rt2/gripper_command", 10)
    assert harness.wait_for(lambda: pub.get_subscription_count() > 0, 10.0)
    assert harness.wait_for(bridge._client.server_is_ready, 10.0)
    for value in [1.0] * 5 + [float("nan")] + [0.0] * 5:
        pub.publish(Float64(data=value))
        time.sleep(0.05)
    assert harness.wait_for(lambda: len(goals) >= 2, 10.0)
    time.sleep(0.3)
    assert [round(p, 4) for p, _ in goals] == [0.0, 0.04]  # closed, then open: two goals
    assert all(effort == 20.0 for _, effort in goals)
