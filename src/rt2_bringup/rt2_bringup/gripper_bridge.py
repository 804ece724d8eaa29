"""ROS 2 node ``rt2_gripper_bridge``: policy gripper closure → ``control_msgs`` gripper action.

    ros2 run rt2_bringup gripper_bridge --ros-args \
        -p action_name:=/panda_hand_controller/gripper_cmd

Subscribes ``/rt2/gripper_command`` (``std_msgs/Float64``, 0 open … 1 closed, what the policy
node and the embedded simulator use) and sends ``control_msgs/action/GripperCommand`` goals to a
ros2_control ``GripperActionController`` (Gazebo and hardware graphs), mapped by
:class:`rt2_bringup.gripper_command.GripperMapping`. Only a meaningful change of closure sends a
new goal (a new goal preempts the running one). NaN or out-of-range input is refused or clamped
and logged; the gripper then keeps its last goal.

``control_msgs`` is not on PyPI: the node only runs where ROS 2 is installed from apt (Docker
image, robot PC); elsewhere it exits with a clear message.
"""

from __future__ import annotations

import sys

import rclpy
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.action import ActionClient
from rclpy.node import Node
from std_msgs.msg import Float64

from rt2_bringup.gripper_command import GripperMapping

try:  # apt ROS 2 (Jazzy): control_msgs; absent from the PyPI wheels
    from control_msgs.action import GripperCommand  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the machine
    GripperCommand = None


def _float(lo: float, hi: float, text: str) -> ParameterDescriptor:
    return ParameterDescriptor(description=text, read_only=True, floating_point_range=[
        FloatingPointRange(from_value=lo, to_value=hi, step=0.0)])


class GripperBridge(Node):
    """See the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("rt2_gripper_bridge", **kwargs)
        if GripperCommand is None:
            raise RuntimeError("control_msgs is not installed (apt: ros-$ROS_DISTRO-control-msgs)")
        defaults = GripperMapping()
        p = {
            "gripper_topic": self.declare_parameter("gripper_topic", "/rt2/gripper_command",
                ParameterDescriptor(description="std_msgs/Float64 closure input, 0 open .. 1 "
                                    "closed", read_only=True)).value,
            "action_name": self.declare_parameter(
                "action_name", "/panda_hand_controller/gripper_cmd",
                ParameterDescriptor(description="control_msgs/action/GripperCommand server",
                                    read_only=True)).value,
            "open_position": self.declare_parameter("open_position", defaults.open_position,
                _float(0.0, 1.0, "finger position when open, m")).value,
            "closed_position": self.declare_parameter("closed_position",
                defaults.closed_position, _float(0.0, 1.0, "finger position when closed, m")).value,
            "max_effort": self.declare_parameter("max_effort", defaults.max_effort,
                _float(0.001, 1000.0, "command.max_effort of each goal, N")).value,
            "deadband": self.declare_parameter("deadband", defaults.deadband,
                _float(0.0, 0.99, "closure change that sends a new goal")).value,
            "binarize": self.declare_parameter("binarize", defaults.binarize,
                ParameterDescriptor(description="send only open/closed goals", read_only=True)
            ).value,
        }
        self._mapping = GripperMapping(
            open_position=float(p["open_position"]), closed_position=float(p["closed_position"]),
            max_effort=float(p["max_effort"]), deadband=float(p["deadband"]),
            binarize=bool(p["binarize"]))
        self._last_sent: float | None = None
        self._action_name = p["action_name"]
        self._client = ActionClient(self, GripperCommand, self._action_name)
        self.create_subscription(Float64, p["gripper_topic"], self._on_command, 10)
        self.get_logger().info(f"{p['gripper_topic']} -> {p['action_name']} "
                               f"({self._mapping})")

    def _on_command(self, msg: Float64) -> None:
        try:
            closure = self._mapping.closure(msg.data)
        except ValueError as exc:
            self.get_logger().error(f"ignored: {exc}")
            return
        if not self._mapping.should_send(closure, self._last_sent):
            return
        if not self._client.server_is_ready():
            self.get_logger().warning(f"{self._action_name} not available; gripper "
                                      "command dropped", throttle_duration_sec=5.0)
            return
        goal = GripperCommand.Goal()
        goal.command.position = self._mapping.position(closure)
        goal.command.max_effort = self._mapping.max_effort
        self._client.send_goal_async(goal)
        self._last_sent = closure
        self.get_logger().debug(f"gripper goal {goal.command.position:.4f} m (closure "
                                f"{closure:.2f})")


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = GripperBridge()
    except RuntimeError as exc:
        print(f"rt2_gripper_bridge: {exc}", file=sys.stderr)
        rclpy.shutdown()
        return 1
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
