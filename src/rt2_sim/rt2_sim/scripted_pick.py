"""A scripted pick with privileged state: the reference expert that proves the gripper works.

It drives :class:`~rt2_sim.simulation.ArmSimulation` only through its public commands (twists in
``panda_link0`` streamed at ``command_rate`` like a MoveIt Servo client, and gripper closure),
reading the true object position: approach above the object, descend, close, lift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rt2_sim.scene import BASE_FRAME
from rt2_sim.simulation import ArmSimulation


@dataclass(frozen=True, eq=False)  # holds numpy arrays: compare fields explicitly
class PickResult:
    """Outcome of :func:`scripted_pick`.

    Attributes:
        object_name: the object picked, e.g. ``"red cube"``.
        reached: whether each move (approach, descend, lift) converged within its timeout.
        lift_height: rise of the object's centre from its start, metres (world z).
        finger_positions: finger joint positions after closing, shape (2,), metres.
    """

    object_name: str
    reached: tuple[bool, bool, bool]
    lift_height: float
    finger_positions: np.ndarray


def move_tcp_to(
    sim: ArmSimulation,
    target: np.ndarray,
    tolerance: float = 0.004,
    timeout: float = 6.0,
    max_speed: float = 0.1,
    gain: float = 3.0,
    command_rate: float = 20.0,
) -> bool:
    """Servo the tcp to ``target`` with a saturated proportional twist, orientation held.

    Args:
        sim: the simulation (advanced in place).
        target: tcp goal in ``panda_link0``, shape (3,), metres.
        tolerance: stop when closer than this, metres.
        timeout: give up after this much simulated time, seconds.
        max_speed: linear speed cap, m/s.
        gain: proportional gain, 1/s.
        command_rate: rate of the twist stream, Hz (must beat the servo's command timeout).

    Returns:
        True if the tolerance was reached before the timeout.
    """
    goal = np.asarray(target, dtype=float)
    deadline = sim.time + timeout
    while sim.time < deadline:
        error = goal - sim.ee_pose()[0]
        if np.linalg.norm(error) < tolerance:
            return True
        velocity = gain * error
        speed = float(np.linalg.norm(velocity))
        if speed > max_speed:
            velocity *= max_speed / speed
        sim.command_twist(velocity, np.zeros(3), BASE_FRAME, sim.time)
        sim.step(1.0 / command_rate)
    return False


def scripted_pick(
    sim: ArmSimulation,
    object_name: str,
    approach_height: float = 0.12,
    grasp_height: float = 0.005,
    lift_height: float = 0.15,
) -> PickResult:
    """Pick ``object_name`` from where it lies and lift it.

    Heights are of the tcp above the object's centre, metres. The gripper keeps the orientation
    it has (pointing down in the ready pose).

    Raises:
        KeyError: if ``object_name`` is not in the scene.
    """
    base = sim.base_pose()[0]
    start = sim.object_positions()[object_name]
    in_base = start - base
    up = np.array([0.0, 0.0, 1.0])
    sim.command_gripper(0.0)
    approached = move_tcp_to(sim, in_base + approach_height * up)
    descended = move_tcp_to(sim, in_base + grasp_height * up)
    sim.command_gripper(1.0)
    sim.step(0.6)
    fingers = sim.joint_positions()[7:]
    lifted = move_tcp_to(sim, in_base + lift_height * up)
    sim.step(0.5)
    rise = float(sim.object_positions()[object_name][2] - start[2])
    return PickResult(
        object_name=object_name,
        reached=(approached, descended, lifted),
        lift_height=rise,
        finger_positions=fingers,
    )
