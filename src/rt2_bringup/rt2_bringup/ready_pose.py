"""ROS 2 node ``rt2_ready_pose``: moves the arm to a named pose of its MoveIt config on request.

    ros2 service call /rt2_ready_pose/move_to_ready std_srvs/srv/Trigger

Service ``~/move_to_ready`` (``std_srvs/Trigger``): plans with moveit_py from the current state
to the SRDF group state ``named_state`` (default ``ready``) of ``planning_group`` (default
``panda_arm``) and executes the trajectory through the MoveIt config's trajectory controller;
replies when the motion has finished (``success``) or failed (``message`` says why). The policy
node calls it before each episode when its ``ready_service`` parameter names it, and pauses
MoveIt Servo meanwhile (both drive the same arm controller). ``true`` on the e-stop topic
(``std_msgs/Bool``, ``/rt2/estop``) stops a running move (moveit_py's trajectory execution
manager, ``stop_execution``) and refuses moves until ``false``.

moveit_py usage follows moveit2_tutorials' "Motion Planning Python API"
(``moveit.planning.MoveItPy``, ``get_planning_component``, ``set_start_state_to_current_state``,
``set_goal_state(configuration_name=...)``, ``plan()``, ``MoveItPy.execute(trajectory,
controllers=[])``). MoveItPy reads its configuration (robot description, SRDF, kinematics,
planning pipelines, controllers) from the parameters the launch file passes to this process
(``MoveItConfigsBuilder(...).moveit_cpp(config/moveit_py.yaml).to_dict()``).

moveit_py is not on PyPI: where it is missing the service answers ``success: false`` with the
reason, so the policy refuses to start episodes rather than start from an unknown pose.
"""

from __future__ import annotations

import sys
import threading

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Bool
from std_srvs.srv import Trigger


def _load_moveit_py():
    """``moveit.planning.MoveItPy`` or None where moveit_py is not installed."""
    try:
        from moveit.planning import MoveItPy  # type: ignore[import-not-found]
    except ImportError:
        return None
    return MoveItPy


class ReadyPose(Node):
    """See the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("rt2_ready_pose", **kwargs)
        self._group = self.declare_parameter("planning_group", "panda_arm", ParameterDescriptor(
            description="MoveIt planning group (SRDF)", read_only=True)).value
        self._state = self.declare_parameter("named_state", "ready", ParameterDescriptor(
            description="SRDF group_state to move to", read_only=True)).value
        moveit_node = self.declare_parameter("moveit_node_name", "rt2_ready_pose_moveit",
            ParameterDescriptor(description="name of moveit_py's internal node",
                                read_only=True)).value
        estop_topic = self.declare_parameter("estop_topic", "/rt2/estop", ParameterDescriptor(
            description="std_msgs/Bool e-stop: true stops a running move and refuses moves",
            read_only=True)).value
        self._estopped = threading.Event()
        self._lock = threading.Lock()
        self._moveit = None
        self._unavailable = ""
        moveit_py = _load_moveit_py()
        if moveit_py is None:
            self._unavailable = "moveit_py is not installed (apt: ros-$ROS_DISTRO-moveit-py)"
            self.get_logger().error(self._unavailable)
        else:
            try:
                self._moveit = moveit_py(node_name=moveit_node)
            except Exception as exc:  # MoveItPy raises RuntimeError subclasses from C++
                self._unavailable = f"moveit_py failed to start: {exc}"
                self.get_logger().error(self._unavailable)
        self.create_service(Trigger, "~/move_to_ready", self._on_move,
                            callback_group=MutuallyExclusiveCallbackGroup())
        # Its own group: an e-stop must be handled while a move blocks the service callback.
        self.create_subscription(Bool, estop_topic, self._on_estop, 10,
                                 callback_group=ReentrantCallbackGroup())
        self.get_logger().info(f"~/move_to_ready moves {self._group} to {self._state!r}")

    def _on_move(self, _request, response):
        response.success, response.message = self.move()
        # (rclpy refuses two severities from one call site: two separate calls.)
        if response.success:
            self.get_logger().info(f"move to {self._state!r}: {response.message}")
        else:
            self.get_logger().error(f"move to {self._state!r}: {response.message}")
        return response

    def _on_estop(self, msg: Bool) -> None:
        if not msg.data:
            self._estopped.clear()
            return
        self._estopped.set()
        if self._moveit is None:
            return
        try:
            self._moveit.get_trajectory_execution_manager().stop_execution(True)
            self.get_logger().error("e-stop: trajectory execution stopped")
        except Exception as exc:  # an older moveit_py without the binding, or a C++ error
            self.get_logger().error(f"e-stop: could not stop the execution: {exc}")

    def move(self) -> tuple[bool, str]:
        """Plan and execute the move to the named state; ``(success, message)``."""
        if self._moveit is None:
            return False, self._unavailable
        if self._estopped.is_set():
            return False, "e-stop engaged"
        with self._lock:  # one motion at a time
            try:
                arm = self._moveit.get_planning_component(self._group)
                arm.set_start_state_to_current_state()
                arm.set_goal_state(configuration_name=self._state)
                plan = arm.plan()
                if not plan:
                    return False, f"no plan from the current state to {self._state!r}"
                if self._estopped.is_set():
                    return False, "e-stop engaged"
                status = self._moveit.execute(plan.trajectory, controllers=[])
            except Exception as exc:  # moveit_py surfaces C++ errors as RuntimeError etc.
                return False, f"{type(exc).__name__}: {exc}"
        if self._estopped.is_set():
            return False, "e-stop engaged during the move"
        if not execution_succeeded(status):
            return False, f"execution ended with {getattr(status, 'status', status)}"
        return True, f"at {self._state!r}"


def execution_succeeded(status) -> bool:
    """Whether ``MoveItPy.execute``'s return value reports success.

    Jazzy returns a ``moveit_controller_manager::ExecutionStatus`` whose ``status`` is a string
    (``"SUCCEEDED"``, ``"ABORTED"``, ...); older moveit_py releases return None after a blocking
    execution (errors raise instead).
    """
    if status is None:
        return True
    if hasattr(status, "status"):
        return str(status.status).upper() == "SUCCEEDED"
    return bool(status)


def main(args=None) -> int:
    rclpy.init(args=args)
    node = ReadyPose()
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        executor.spin()
    except KeyboardInterrupt:
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
