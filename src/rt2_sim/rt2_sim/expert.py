"""A privileged-state scripted expert that demonstrates every task family with RT-2 actions.

The expert reads object poses from the simulator (privileged state a policy never sees), walks a
short list of waypoints per task family (approach, descend, grasp, lift, transport, release;
or line up and push), and emits one RT-2 action per control step: ``[terminate, Δx, Δy, Δz,
Δroll, Δpitch, Δyaw, gripper]`` (Brohan et al., 2023, §3.2), deltas in ``panda_link0`` (metres,
radians per step), gripper 0 open … 1 closed. It emits ``terminate = 1`` as soon as the task's
success check (:func:`rt2_sim.tasks.check_success`) holds. A grasp (release) is held only until
the fingers grip (let go), so the next frame already shows the next phase and is labelled with
it: two identical frames never carry different labels. For the same reason an object is let go
at the carrying height, above its destination, and falls the last few centimetres: the
expert never lowers a held object, so "holding, low" always means "lift" (with a descent to
release, the frames of the lift and of the descent looked alike and a trained policy alternated
between the two near the pick-up spot; README, "Train -> Status"). Relabelling a learned
policy's states (DAgger), a held object above the carrying height is carried on level at
that height (:data:`CARRY_BAND`), not lowered to it first.

Actions run exactly as the ROS loop runs the policy's: quantised to RT-2's 256 bins with
:class:`rt2_policy.action_tokenizer.ActionTokenizer`, turned into a twist with
:func:`rt2_policy.servo_command.action_to_twist` for one control period, and streamed to the
simulated MoveIt Servo. Optional DART-style noise (Laskey et al., 2017) perturbs the *executed*
motion while the *recorded* action stays the expert's correction, so demonstrations visit and
recover from off-path states. For DAgger (Ross et al., 2011) a learned policy can drive instead:
:func:`rollout` then executes the policy's action (or, with probability ``expert_share`` per
step, the expert's) and records the expert's action at every state the policy visits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np

from rt2_policy.action_tokenizer import ActionBounds, ActionTokenizer
from rt2_policy.contract import RobotAction
from rt2_policy.servo_command import TwistLimits, action_to_twist, matrix_to_rotation_vector
from rt2_sim.scene import BASE_FRAME
from rt2_sim.simulation import ArmSimulation
from rt2_sim.tasks import DIRECTIONS, EpisodeSpec, check_success

#: Largest translation per step the expert commands, metres (0.24 m/s at 5 Hz).
MAX_STEP = 0.048
#: Re-stream period of the twist within a control period, seconds (policy node: 50 Hz).
KEEPALIVE_PERIOD = 0.02
#: Tcp height above an object's centre when approaching it, metres.
APPROACH_HEIGHT = 0.10
#: Tcp height above the table while carrying an object (move near, place), metres; the object
#: is released there, its bottom about 7.5 cm above the table.
CARRY_HEIGHT = 0.10
#: Band above :data:`CARRY_HEIGHT`, metres: a tcp higher than ``CARRY_HEIGHT + CARRY_BAND``
#: while holding (a learned policy that lifted further than the expert would, when relabelling
#: for DAgger) carries the object on at its own height instead of lowering it.
CARRY_BAND = 0.02
#: Finger joint speed below which a closed grasp has settled, m/s.
FINGER_SETTLED_SPEED = 0.01
#: Tcp height above the table while pushing (finger tips about 1 cm above it), metres.
PUSH_HEIGHT = 0.03


@dataclass
class _Waypoint:
    goal: Callable[[], np.ndarray]
    gripper: float
    tolerance: float = 0.012
    max_step: float = MAX_STEP
    hold_steps: int = 0  # > 0: stay up to this many steps (grasp/release), ignore the tolerance
    # With hold_steps: the hold ends early, after at least one step, once this holds (the
    # fingers have closed on / let go of the object), so no two identical frames get
    # different labels ("stay" then "lift"): a policy cannot count steps it cannot see.
    settled: Callable[[], bool] | None = None
    max_steps: int = 15  # give up on reaching this waypoint after this many steps


class ScriptedExpert:
    """Waypoint expert for one episode.

    Args:
        sim: the simulation, already set up with ``sim.reset_episode(spec)``.
        spec: the episode.
        control_rate: policy steps per second, Hz (RT-2 ran at 1-5 Hz).
        bounds: action ranges; the expert stays inside them.
        give_up: move on from a waypoint not reached within its step budget (the expert
            driving: a blocked approach should not stall the demo). ``False`` when relabelling
            a learned policy's states (DAgger): a waypoint the policy has not reached stays the
            target, so a wandering policy is never labelled with the next phase's action
            (e.g. closing the gripper short of the object); and the phase follows the grasp
            (:meth:`_follow_grasp_state`): holding the target means carry on, losing it means
            re-grasp.

    Raises:
        ValueError: for an unknown task family.
    """

    def __init__(self, sim: ArmSimulation, spec: EpisodeSpec, control_rate: float = 5.0,
                 bounds: ActionBounds | None = None, give_up: bool = True) -> None:
        self.sim = sim
        self.give_up = give_up
        self.spec = spec
        self.period = 1.0 / control_rate
        self.tokenizer = ActionTokenizer(bounds or ActionBounds())
        self._reference_rotation = self._tcp_rotation()
        self._waypoints = self._plan()
        # Waypoints [_grasp_end, _carry_end) are walked with the target in the gripper: from
        # the one after the closing hold up to the first that opens again (none for push).
        closing = [i for i, wp in enumerate(self._waypoints) if wp.hold_steps and wp.gripper]
        self._grasp_end = closing[0] + 1 if closing else 0
        self._carry_end = next((i for i, wp in enumerate(self._waypoints)
                                if i >= self._grasp_end and not wp.gripper),
                               len(self._waypoints)) if closing else 0
        self._index = 0
        self._held = 0
        self._steps_on_waypoint = 0
        #: Where the last :meth:`act` heads the tcp: the current waypoint, ``(x, y, z)``
        #: metres in ``panda_link0`` (the tcp itself once done or terminating); while the
        #: fingers settle on the grasp, the lift point that follows it (see
        #: :meth:`_grasp_hold`); None before the first call.
        self.goal_position: np.ndarray | None = None

    # ------------------------------------------------------------------ geometry
    def _base(self) -> np.ndarray:
        return self.sim.base_pose()[0]

    def _position(self, name: str) -> np.ndarray:
        return self.sim.object_positions()[name] - self._base()

    def _tcp_height(self) -> float:
        return float(self.sim.ee_pose()[0][2])

    def _carry_height(self) -> float:
        """Tcp height to carry and release at, metres: :data:`CARRY_HEIGHT`, or the tcp's own
        height when it is more than :data:`CARRY_BAND` above it. The expert driving never gets
        there; a learned policy that lifted higher (DAgger relabelling) is told to carry level,
        not to lower the object first: "down while holding" was a label again (measured: the
        model trained on such labels alternated +4.8 / -4.8 cm between 13 and 18 cm)."""
        tcp_z = self._tcp_height()
        return tcp_z if tcp_z > CARRY_HEIGHT + CARRY_BAND else CARRY_HEIGHT

    def _tcp_rotation(self) -> np.ndarray:
        x, y, z, w = self.sim.ee_pose()[1]
        matrix = np.zeros(9)
        mujoco.mju_quat2Mat(matrix, np.array([w, x, y, z]))
        return matrix.reshape(3, 3)

    def _plan(self) -> list[_Waypoint]:
        task = self.spec.task
        start = self.spec.initial_position(task.target)

        def above(name: str, height: float) -> Callable[[], np.ndarray]:
            return lambda: self._position(name) + np.array([0.0, 0.0, height])

        grasp = [
            _Waypoint(above(task.target, APPROACH_HEIGHT), 0.0, tolerance=0.015),
            _Waypoint(above(task.target, 0.005), 0.0, tolerance=0.007, max_step=0.025),
            _Waypoint(above(task.target, 0.005), 1.0, hold_steps=3,
                      settled=lambda: self._gripping(task.target)),
        ]
        if task.family == "pick":
            return [*grasp, _Waypoint(lambda: np.array([start[0], start[1], start[2] + 0.16]),
                                      1.0, tolerance=0.015)]
        if task.family in ("move_near", "place"):
            reference = self.spec.initial_position(task.reference)
            if task.family == "move_near":
                away = start[:2] - reference[:2]
                away /= max(np.linalg.norm(away), 1e-6)
                dest_xy = reference[:2] + 0.065 * away
            else:
                dest_xy = reference[:2]
            # Lift straight up, carry level, open above the destination (no descent while
            # holding: see the module docstring), then move up clear of the dropped object.
            return [
                *grasp,
                _Waypoint(lambda: np.array([*self._position(task.target)[:2],
                                            self._carry_height()]), 1.0, tolerance=0.02),
                _Waypoint(lambda: np.array([*dest_xy, self._carry_height()]), 1.0,
                          tolerance=0.012),
                _Waypoint(lambda: np.array([*dest_xy, self._carry_height()]), 0.0,
                          hold_steps=3,
                          settled=lambda: self.sim.finger_contacts(task.target) == 0),
                _Waypoint(lambda: np.array([*dest_xy, max(CARRY_HEIGHT + 0.03,
                                                          self._tcp_height())]), 0.0,
                          tolerance=0.02),
            ]
        if task.family == "push":
            d = np.array([*DIRECTIONS[task.direction], 0.0])
            pre = start - 0.065 * d
            return [
                _Waypoint(lambda: np.array([pre[0], pre[1], APPROACH_HEIGHT]), 1.0,
                          tolerance=0.015),
                _Waypoint(lambda: np.array([pre[0], pre[1], PUSH_HEIGHT]), 1.0,
                          tolerance=0.008, max_step=0.025),
                _Waypoint(lambda: np.array([*(start + 0.12 * d)[:2], PUSH_HEIGHT]), 1.0,
                          tolerance=0.01, max_step=0.02),
                _Waypoint(lambda: np.array([*(start + 0.12 * d)[:2], APPROACH_HEIGHT]), 1.0,
                          tolerance=0.02),
            ]
        raise ValueError(f"family: expected pick, move_near, place or push, got {task.family!r}")

    # ------------------------------------------------------------------ actions
    @property
    def done(self) -> bool:
        """True once every waypoint has been reached."""
        return self._index >= len(self._waypoints)

    def act(self) -> np.ndarray:
        """The expert's action for the current state.

        Returns:
            shape (8,), float64: terminate (0/1), Δx, Δy, Δz (metres), Δroll, Δpitch, Δyaw
            (radians), gripper (0..1); quantised to bin centres.
        """
        tcp = self.sim.ee_pose()[0]
        self.goal_position = tcp
        if check_success(self.sim, self.spec):
            return self._quantise(1.0, np.zeros(3), np.zeros(3), self.sim.gripper_command)
        if not self.give_up:
            self._follow_grasp_state()
        # Advance past reached waypoints (one per step at most, so grasps get their hold).
        while not self.done:
            wp = self._waypoints[self._index]
            if wp.hold_steps:
                settled = self._held >= 1 and wp.settled is not None and wp.settled()
                if self._held < wp.hold_steps and not settled:
                    self._held += 1
                    break
                self._held = 0
                self._index += 1
                continue
            if (np.linalg.norm(wp.goal() - tcp) < wp.tolerance
                    or (self.give_up and self._steps_on_waypoint >= wp.max_steps)):
                self._index += 1
                self._steps_on_waypoint = 0
                continue
            self._steps_on_waypoint += 1
            break
        if self.done:
            return self._quantise(0.0, np.zeros(3), self._rotation_correction(),
                                  self._waypoints[-1].gripper)
        wp = self._waypoints[self._index]
        goal = wp.goal()
        self.goal_position = (self._waypoints[self._index + 1].goal() if self._grasp_hold()
                              else goal)
        delta = goal - tcp
        norm = float(np.linalg.norm(delta))
        if norm > wp.max_step:
            delta *= wp.max_step / norm
        return self._quantise(0.0, delta, self._rotation_correction(), wp.gripper)

    def _grasp_hold(self) -> bool:
        """The fingers are settling on the grasp: a step of the closing hold after the one that
        commanded the close, with a finger on the target. Such a step stays put, but its
        :attr:`goal_position` (the label of waypoint plans) is the lift point that follows: a
        plan that named the grasp point there ("bring" to where the tcp already is) was a fixed
        point for a learned policy, which then held the object at the table for the rest of the
        episode (README, "Train -> Status", item 19: traced, 9 of 13 grasps by the item-18 plan
        model were never lifted)."""
        return (self._index == self._grasp_end - 1 and self._held >= 2
                and self._index + 1 < len(self._waypoints)
                and self.sim.finger_contacts(self.spec.task.target) > 0)

    def _gripping(self, name: str) -> bool:
        """Both finger pads touch ``name`` and the fingers have stopped closing."""
        finger_speed = np.abs(self.sim.joint_velocities()[7:]).max()
        return self.sim.finger_contacts(name) == 2 and finger_speed < FINGER_SETTLED_SPEED

    def _follow_grasp_state(self) -> None:
        """Relabelling a learned policy's states: take the phase from the grasp, not from the
        waypoint history. A policy that closed the gripper on the target short of the descent
        waypoint (within a grasp's reach, but not within its 7 mm) is holding it: the label is
        to carry on (lift), not to open and descend. One that lost or never got the target
        while the plan says it is carrying it goes back to the approach (open, re-grasp).
        Without this, a policy gripping the object 1-2 cm above the descent waypoint was
        labelled "open and descend" (measured: its grasps there lift the object in 5 of 12
        pick seeds)."""
        if self._grasp_end == self._carry_end:
            return
        closed = self.sim.gripper_command > 0.5
        contacts = self.sim.finger_contacts(self.spec.task.target)
        if self._index < self._grasp_end and closed and contacts == 2:
            self._jump(self._grasp_end)
        elif self._grasp_end <= self._index < self._carry_end and (not closed or contacts == 0):
            self._jump(0)

    def _jump(self, index: int) -> None:
        self._index = index
        self._held = 0
        self._steps_on_waypoint = 0

    def _rotation_correction(self) -> np.ndarray:
        """Small roll/pitch/yaw step back to the starting orientation (stops slow drift)."""
        error = self._reference_rotation @ self._tcp_rotation().T
        return np.clip(0.5 * matrix_to_rotation_vector(error), -0.05, 0.05)

    def _quantise(self, terminate: float, delta_position: np.ndarray,
                  delta_rotation: np.ndarray, gripper: float) -> np.ndarray:
        bins = self.tokenizer.encode(bool(terminate >= 0.5), delta_position, delta_rotation,
                                     float(gripper))
        return action_values(self.tokenizer, bins)


def action_values(tokenizer: ActionTokenizer, bins: np.ndarray) -> np.ndarray:
    """Bins → the 8 continuous values (bin centres), shape (8,), float64
    (:meth:`rt2_policy.contract.RobotAction.values`)."""
    return tokenizer.decode(bins).values()


def execute(sim: ArmSimulation, tokenizer: ActionTokenizer, values: np.ndarray,
            period: float, limits: TwistLimits | None = None) -> None:
    """Run one action for one control period as the ROS loop does: quantise, turn into a twist,
    and re-stream it every :data:`KEEPALIVE_PERIOD` (the policy node's keep-alive) so the
    servo's ``incoming_command_timeout`` never halts it mid-period."""
    bins = tokenizer.encode(bool(values[0] >= 0.5), values[1:4], values[4:7], float(values[7]))
    execute_action(sim, tokenizer.decode(bins), period, limits)


def execute_action(sim: ArmSimulation, action: RobotAction, period: float,
                   limits: TwistLimits | None = None, *, start: float = 0.0,
                   stop: float | None = None) -> None:
    """Run a decoded action (``rt2_policy.contract.RobotAction``: metres, radians in
    ``panda_link0``, gripper 0 open .. 1 closed) for one control period of ``period`` seconds,
    as :func:`execute` does after quantising: the gripper command unless it terminates, and the
    twist (``rt2_policy.servo_command.action_to_twist``, clamped to ``limits``) re-streamed
    every :data:`KEEPALIVE_PERIOD`.

    ``start`` and ``stop`` (seconds into the period, ``0 <= start <= stop <= period``; ``stop``
    None = ``period``) run only that part of it, at the same velocity: the gripper is commanded
    when the part begins at 0. An empty part does nothing.

    Raises:
        ValueError: ``period <= 0`` or the part outside ``[0, period]``.
    """
    stop = period if stop is None else stop
    if not period > 0 or not 0.0 <= start <= stop <= period:
        raise ValueError(f"start, stop: expected 0 <= start <= stop <= period (> 0), got "
                         f"{start!r}, {stop!r}, {period!r}")
    twist = action_to_twist(action, period, limits or TwistLimits())
    if start == 0.0 and not action.terminate:
        sim.command_gripper(float(np.clip(action.gripper, 0.0, 1.0)))
    seconds = stop - start
    if seconds <= 0.0:
        return
    chunks = max(1, round(seconds / KEEPALIVE_PERIOD))
    for _ in range(chunks):
        sim.command_twist(twist.linear, twist.angular, BASE_FRAME, sim.time)
        sim.step(seconds / chunks)


@dataclass
class Rollout:
    """One demonstration.

    Attributes:
        images: RGB frames seen before each action, each (H, W, 3) uint8.
        actions: the expert's actions, each (8,) float64 (see :meth:`ScriptedExpert.act`).
        states: joint positions (arm then fingers) before each action, each (9,) float64.
        target_points: image position of the instructed target's centre in each frame, each
            ``(x, y)`` float32 in 0..255 (x right, y down; the units of pointing answers,
            :func:`rt2_sim.vqa_generation.point_answer`), ``(-1, -1)`` when out of view.
        reference_points: the same for the task's reference object (move near: the object to
            put the target next to; place: the container), ``(-1, -1)`` when the task has none
            (pick, push) or it is out of view.
        goal_positions: where each action heads the tcp (:attr:`ScriptedExpert.goal_position`,
            the expert's current waypoint), each ``(x, y, z)`` float32 metres in
            ``panda_link0``: the label of waypoint plans (``TrainConfig.cot_plan="waypoint"``).
        instruction: the task's instruction.
        success: the success check at the end.
        terminated: the expert emitted terminate.
    """

    images: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)
    target_points: list[np.ndarray] = field(default_factory=list)
    reference_points: list[np.ndarray] = field(default_factory=list)
    goal_positions: list[np.ndarray] = field(default_factory=list)
    instruction: str = ""
    success: bool = False
    terminated: bool = False

    @property
    def steps(self) -> int:
        """Number of recorded steps."""
        return len(self.actions)


def _image_point(sim: ArmSimulation, name: str | None) -> np.ndarray:
    """Where object ``name``'s centre is in ``sim``'s camera image now: ``(x, y)`` float32 in
    0..255 (x right, y down), ``(-1, -1)`` when ``name`` is None or it is out of view."""
    from rt2_sim.vqa_generation import image_points_world, point_coordinates

    uv = image_points_world(sim, sim.object_positions()[name]) if name else None
    if uv is None:
        return np.full(2, -1.0, np.float32)
    return np.array(point_coordinates(*uv[0]), np.float32)


def target_point(sim: ArmSimulation, spec: EpisodeSpec) -> np.ndarray:
    """Where the instructed target's centre is in ``sim``'s camera image now: ``(x, y)``
    float32 in 0..255 (x right, y down), ``(-1, -1)`` when it is out of view."""
    return _image_point(sim, spec.task.target)


def reference_point(sim: ArmSimulation, spec: EpisodeSpec) -> np.ndarray:
    """Where the task's reference object's centre (move near: the object named after "near";
    place: the container) is in ``sim``'s camera image now: ``(x, y)`` float32 in 0..255,
    ``(-1, -1)`` when the task has no reference (pick, push) or it is out of view."""
    return _image_point(sim, spec.task.reference)


#: A driver for :func:`rollout`: (RGB frame (H, W, 3) uint8, instruction, joint positions (9,)
#: float64, arm radians then finger metres, :meth:`ArmSimulation.joint_positions`) → an action
#: in the layout of :meth:`ScriptedExpert.act`, shape (8,).
Driver = Callable[[np.ndarray, str, np.ndarray], np.ndarray]


def rollout(sim: ArmSimulation, spec: EpisodeSpec, control_rate: float = 5.0,
            max_steps: int = 80, noise: float = 0.0, seed: int = 0,
            render: bool = True, driver: Driver | None = None,
            expert_share: float = 0.0) -> Rollout:
    """Reset to ``spec`` and run the expert (or ``driver``, labelled by the expert) until the
    expert terminates or ``max_steps`` pass.

    Args:
        sim: a simulation built with :func:`rt2_sim.tasks.task_scene_config`.
        spec: the episode.
        control_rate: Hz.
        max_steps: step budget.
        noise: standard deviation of DART noise on the executed translation, metres per step
            (0 = none); the recorded action is the noise-free expert action.
        seed: seed of the noise.
        render: record camera frames (False for fast checks).
        driver: a learned policy that chooses the executed action (DAgger data collection);
            ``None``: the expert drives. A driver's terminate is not executed (the episode goes
            on, its label says whether to stop); the episode ends when the expert terminates.
        expert_share: with a driver, the probability per step that the expert's action is
            executed instead (DAgger's β, Ross et al., 2011, §3), 0..1.

    Returns:
        The rollout; ``success`` is :func:`check_success` at the end.

    Raises:
        ValueError: ``expert_share`` outside 0..1, a driver without ``render``, or a driver's
            action not of shape (8,).
    """
    if not 0.0 <= expert_share <= 1.0:
        raise ValueError(f"expert_share: expected 0..1, got {expert_share}")
    if driver is not None and not render:
        raise ValueError("render: expected True when a driver (which needs frames) is given")
    sim.reset_episode(spec)
    sim.step(0.2)  # let objects settle
    expert = ScriptedExpert(sim, spec, control_rate, give_up=driver is None)
    rng = np.random.default_rng(seed)
    out = Rollout(instruction=spec.task.instruction)
    period = 1.0 / control_rate
    for _ in range(max_steps):
        if render:
            out.images.append(sim.render())
            out.target_points.append(target_point(sim, spec))
            out.reference_points.append(reference_point(sim, spec))
        out.states.append(sim.joint_positions())
        values = expert.act()
        out.actions.append(values)
        out.goal_positions.append(np.asarray(expert.goal_position, np.float32))
        if values[0] >= 0.5:
            out.terminated = True
            sim.command_twist(np.zeros(3), np.zeros(3), BASE_FRAME, sim.time)
            break
        executed = values.copy()
        if driver is not None and rng.random() >= expert_share:
            executed = np.asarray(driver(out.images[-1], spec.task.instruction, out.states[-1]),
                                  np.float64)
            if executed.shape != (8,):
                raise ValueError(f"driver: expected an action of shape (8,), got "
                                 f"{executed.shape}")
            executed[0] = 0.0  # not executed: the expert's label decides when to stop
        if noise > 0:
            executed[1:4] += rng.normal(0.0, noise, 3)
        execute(sim, expert.tokenizer, executed, period)
    out.success = bool(check_success(sim, spec))
    return out
