"""ROS time stamps as seconds, in one place (the nodes, the recorder, the demo client)."""

from __future__ import annotations


def stamp_seconds(stamp) -> float:
    """Seconds of a ``builtin_interfaces/Time`` (``sec`` + ``nanosec``; an rclpy message or a
    rosbags object), as a float; 0.0 for an unset stamp."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9
