"""Send an instruction to the rt2 policy node from the command line.

    ros2 run rt2_bringup send_instruction "pick up the red cube"   # action: waits, prints result
    ros2 run rt2_bringup send_instruction --topic "pick up the cube"  # topic: fire and forget
    ros2 run rt2_bringup send_instruction --stop                   # end the episode, arm stops

Ctrl-C while waiting cancels the goal. Equivalent ros2cli commands are in the README.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import rclpy
from rclpy.action import ActionClient
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rt2_bringup.graph import TOPICS
from rt2_msgs.action import ExecuteInstruction

OUTCOMES = {1: "SUCCEEDED", 2: "TIMED_OUT", 3: "ABORTED", 4: "CANCELED"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send an instruction to the rt2 policy node.")
    parser.add_argument("instruction", nargs="?", default="")
    parser.add_argument("--topic", action="store_true", help="publish on the instruction topic")
    parser.add_argument("--stop", action="store_true", help="stop the running episode")
    parser.add_argument("--max-steps", type=int, default=0, help="0 = node default")
    parser.add_argument("--time-limit", type=float, default=0.0, help="seconds, 0 = node default")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to find the node")
    args = parser.parse_args(rclpy.utilities.remove_ros_args(argv if argv is not None
                                                             else sys.argv)[1:])
    if not args.stop and not args.instruction.strip():
        parser.error("an instruction is required (or --stop)")
    rclpy.init()
    node = rclpy.create_node("rt2_send_instruction")
    try:
        if args.stop:
            client = node.create_client(Trigger, "/rt2_policy/stop")
            if not client.wait_for_service(timeout_sec=args.timeout):
                print("policy node's ~/stop service not found", file=sys.stderr)
                return 1
            future = client.call_async(Trigger.Request())
            rclpy.spin_until_future_complete(node, future, timeout_sec=args.timeout)
            print(future.result().message if future.result() else "no reply")
            return 0
        if args.topic:
            pub = node.create_publisher(String, TOPICS["instruction"], 10)
            deadline = time.monotonic() + args.timeout
            while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
            pub.publish(String(data=args.instruction))
            rclpy.spin_once(node, timeout_sec=0.2)
            print(f"published {args.instruction!r} on {TOPICS['instruction']}")
            return 0
        client = ActionClient(node, ExecuteInstruction, TOPICS["execute_instruction"])
        if not client.wait_for_server(timeout_sec=args.timeout):
            print(f"action server {TOPICS['execute_instruction']} not found", file=sys.stderr)
            return 1

        def on_feedback(msg) -> None:
            fb = msg.feedback
            print(f"step {fb.step}: {fb.last_action.text} "
                  f"({1000 * fb.inference_latency:.0f} ms)", file=sys.stderr)

        goal = ExecuteInstruction.Goal(instruction=args.instruction, max_steps=args.max_steps,
                                       time_limit=args.time_limit)
        send = client.send_goal_async(goal, feedback_callback=on_feedback)
        rclpy.spin_until_future_complete(node, send)
        handle = send.result()
        if not handle.accepted:
            print("goal rejected (node inactive or empty instruction)", file=sys.stderr)
            return 1
        result_future = handle.get_result_async()
        try:
            rclpy.spin_until_future_complete(node, result_future)
        except KeyboardInterrupt:
            cancel = handle.cancel_goal_async()
            rclpy.spin_until_future_complete(node, cancel, timeout_sec=5.0)
            rclpy.spin_until_future_complete(node, result_future, timeout_sec=5.0)
        result = result_future.result().result
        print(json.dumps({"outcome": OUTCOMES.get(result.outcome, str(result.outcome)),
                          "steps": result.steps, "duration_s": round(result.duration, 2),
                          "message": result.message, "episode_id": result.episode_id}))
        return 0 if result.outcome == 1 else 2
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
