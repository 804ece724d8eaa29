"""Typed, ranged ROS 2 parameter descriptors, shared by the rt2 nodes.

A descriptor with a range makes ``ros2 param set`` (and rqt's parameter editor) refuse values
outside it, and its description is what ``ros2 param describe`` prints (rcl_interfaces
``ParameterDescriptor``; ROS 2 docs, "Understanding parameters").
"""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


def float_range(low: float, high: float, description: str,
                read_only: bool = False) -> ParameterDescriptor:
    """Descriptor of a double parameter limited to ``low..high`` (units in ``description``).

    Raises:
        ValueError: when ``low > high``.
    """
    _check_order(low, high)
    return ParameterDescriptor(description=description, read_only=read_only,
                               floating_point_range=[FloatingPointRange(
                                   from_value=float(low), to_value=float(high), step=0.0)])


def int_range(low: int, high: int, description: str,
              read_only: bool = False) -> ParameterDescriptor:
    """Descriptor of an integer parameter limited to ``low..high`` (step 1).

    Raises:
        ValueError: when ``low > high``.
    """
    _check_order(low, high)
    return ParameterDescriptor(description=description, read_only=read_only,
                               integer_range=[IntegerRange(
                                   from_value=int(low), to_value=int(high), step=1)])


def _check_order(low: float, high: float) -> None:
    if low > high:
        raise ValueError(f"range: expected low <= high, got {low} > {high}")
