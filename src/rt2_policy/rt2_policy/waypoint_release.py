"""Let go where the plan says: a release gate for waypoint-plan policies.

A model trained with waypoint plans (``TrainConfig.cot_plan="waypoint"``, :mod:`rt2_policy.plans`)
writes, before every action, where it is taking the tcp, in the bins of the prompt's tcp
position: ``"bring 140 87 51"`` while it carries the object. Traced in this project (README
"Status", item 19), such a model carries the object to the demonstrator's release spot (its
waypoint within 3 bins, 1.2 cm, in 5 of 10 place episodes) and then hovers there with the
gripper closed: it has not learned when to say ``drop``, the phase that opens the gripper
(item 18).

:class:`WaypointRelease` wraps any :class:`~rt2_policy.contract.Policy` whose actions carry such
plans (the local VLA, the remote client) and supplies that one decision from the plan itself:
when the plan says ``bring``, the gripper holds something
(:data:`rt2_policy.proprioception.HOLDING_STATE`), the tcp has reached the plan's waypoint
(every axis within ``reach_tolerance`` bins) and that waypoint is a carry's destination (at
least ``min_lift`` bins above, and ``min_carry`` bins in x-y away from, where the tcp was when
the grasp closed: not the lift point straight above the grasp, not a drag along the table),
the action's gripper is set to open and its plan to ``drop`` at the same
point. These are the demonstrator's own release conditions (:class:`rt2_sim.expert.
ScriptedExpert`: lift straight up to the carrying height, carry level, open once the transport
waypoint is reached to 1.2 cm). Every other action passes through unchanged, so a model without
waypoint plans behaves exactly as without the gate.

Nothing in this module imports torch, transformers or rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rt2_policy.contract import Observation, Policy, RobotAction
from rt2_policy.plans import goal_plan, parse_goal_plan
from rt2_policy.prompts import tcp_position_bins
from rt2_policy.proprioception import holds_object

__all__ = ["WaypointRelease", "WaypointReleaseConfig", "release_decision"]


@dataclass(frozen=True)
class WaypointReleaseConfig:
    """When :class:`WaypointRelease` lets go.

    Attributes:
        reach_tolerance: the tcp has reached the plan's waypoint when every axis differs by at
            most this many tcp bins (:func:`rt2_policy.prompts.tcp_position_bins`, 3.9 mm per
            bin; 3 bins = 1.2 cm, the demonstrator's transport tolerance), int >= 0.
        min_carry: the waypoint's x-y must lie at least this many tcp bins (per axis, the larger
            of the two) from the tcp's x-y when the grasp closed, so the lift point straight
            above the grasp is not taken for the destination (10 bins = 3.9 cm), int >= 0.
        min_lift: the waypoint must lie at least this many tcp bins above the tcp's height when
            the grasp closed, so an object dragged along the table is not let go (10 bins =
            3.9 cm; the demonstrator carries 10 cm above the table), int >= 0.
    """

    reach_tolerance: int = 3
    min_carry: int = 10
    min_lift: int = 10

    def __post_init__(self) -> None:
        for name in ("reach_tolerance", "min_carry", "min_lift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                raise ValueError(f"{name}: expected an int in 0..255 (tcp bins), got {value!r}")


def release_decision(plan: str, tcp_bins: tuple[int, int, int],
                     grasp: tuple[int, int, int] | None,
                     config: WaypointReleaseConfig = WaypointReleaseConfig()
                     ) -> tuple[int, int, int] | None:
    """The waypoint to let go at, or None to leave the action as it is.

    Args:
        plan: the action's plan, e.g. ``"bring 140 87 51"`` (:func:`rt2_policy.plans.goal_plan`);
            anything that is not a ``bring`` waypoint plan gives None.
        tcp_bins: the tcp position in tcp bins (``panda_link0``), as in the prompt.
        grasp: the tcp's bins when the current grasp closed; None gives None.
        config: tolerances.
    """
    parsed = parse_goal_plan(plan)
    if parsed is None or grasp is None:
        return None
    phase, point = parsed
    if phase != "bring" or point is None or len(point) != 3:
        return None
    reach = max(abs(p - t) for p, t in zip(point, tcp_bins, strict=True))
    carry = max(abs(p - g) for p, g in zip(point[:2], grasp[:2], strict=True))
    lifted = point[2] - grasp[2] >= config.min_lift
    reached, carried = reach <= config.reach_tolerance, carry >= config.min_carry
    return point if reached and carried and lifted else None  # type: ignore[return-value]


class WaypointRelease:
    """A :class:`~rt2_policy.contract.Policy` that opens the gripper once a waypoint plan's carry
    has arrived (see the module docstring); other attributes (``metadata``, ``answer``,
    ``close`` …) are the wrapped policy's.

    Per episode it remembers where the tcp was when the fingers closed on something (the first
    observation that reads :data:`rt2_policy.proprioception.HOLDING_STATE` after one that did not);
    :meth:`reset` forgets it. Observations without ``gripper_state`` or ``tcp_position`` pass
    through unchanged.

    A released action has ``gripper`` 0.0 (fully open), gripper bin 0, its ``text``'s last
    token ``"0"``, ``plan`` ``"drop X Y Z"`` and ``extra["waypoint_release"]`` True; the rest of
    ``extra`` (the model's own token ids and raw text) is kept as the model emitted it.
    """

    def __init__(self, policy: Policy, config: WaypointReleaseConfig = WaypointReleaseConfig()):
        self.policy = policy
        self.config = config
        self._grasp: tuple[int, int, int] | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "policy":  # not set yet (e.g. during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.policy, name)

    def reset(self) -> None:
        """Forget the grasp, and reset the wrapped policy."""
        self._grasp = None
        self.policy.reset()

    def infer(self, observation: Observation) -> RobotAction:
        """The wrapped policy's action, with the gripper opened when its carry has arrived.

        Raises:
            ValueError, RuntimeError: as the wrapped policy's ``infer``.
        """
        action = self.policy.infer(observation)
        if observation.tcp_position is None or observation.gripper_state is None:
            return action
        if not holds_object(observation.gripper_state):
            self._grasp = None
            return action
        tcp_bins = tcp_position_bins(observation.tcp_position)
        if self._grasp is None:
            self._grasp = tcp_bins
        point = release_decision(action.plan, tcp_bins, self._grasp, self.config)
        if point is None:
            return action
        bins = np.asarray(action.bins).copy()
        bins[-1] = 0
        words = action.text.split()
        text = " ".join([*words[:-1], "0"]) if len(words) == len(bins) else action.text
        return replace(action, gripper=0.0, bins=bins, text=text,
                       plan=goal_plan("drop", point),
                       extra={**action.extra, "waypoint_release": True})
