"""Direct rollouts: one evaluation episode in this process, without ROS.

The simulator (:class:`rt2_sim.simulation.ArmSimulation`) and the policy run in one thread, in
the order the demonstrations are recorded (:mod:`rt2_sim.generate_demos`): render a frame, read
the joint positions, infer, then run the action for one control period
(:func:`rt2_sim.expert.execute_action`: the gripper command, and the twist re-streamed as the
policy node's keep-alive does), and again. Nothing moves while the policy infers and the
simulator's clock times the episode, so a rollout is deterministic, and about three times
faster than an episode of ``make eval``'s ROS loop (``python -m rt2_bringup.evaluate
--direct``: 200 episodes in 5.5 min with ``--jobs 2`` on 2 cores, against 17).

It is not what ``make eval`` measures: there the policy node, the simulator node and DDS run
as users run them, and the frame a step reads shows the arm part-way through the previous
twist. ``observation_lag`` reproduces that timing (the next frame taken that many seconds
before the previous action's motion ends, the rest of it run while the model infers): with
0.1 s, direct rollouts of the shipped model score what the ROS loop does (README, "Train ->
Status", item 30).
"""

from __future__ import annotations

import json
import time

from rt2_bringup.evaluation import EpisodePlan, EpisodeRecord


def check_observation_lag(lag: float, control_period: float, name: str = "observation_lag"
                          ) -> None:
    """Check an observation lag (seconds) against its range ``[0, control_period)``.

    Raises:
        ValueError: "<name>: expected a number in [0, <period>) s (the control period), got X"
            (NaN included).
    """
    if not 0.0 <= lag < control_period:
        raise ValueError(f"{name}: expected a number in [0, {control_period:g}) s (the control "
                         f"period), got {lag!r}")


def run_direct_episode(policy, plan: EpisodePlan, *, max_steps: int, control_period: float,
                       image_size: int = 224, gripper_open_position: float | None = None,
                       tcp_offset: float | None = None,
                       observation_lag: float = 0.0) -> EpisodeRecord:
    """Run ``plan``'s episode with ``policy``, as :func:`rt2_bringup.evaluate.run_planned_episode`
    runs it over ROS.

    Args:
        policy: an ``rt2_policy.contract.Policy`` (``infer``, ``reset``), wrapped as the
            policy node wraps it (``rt2_policy.policy_factory.make_policy``).
        plan: the episode (split, family, seed) of :func:`rt2_bringup.evaluation.plan_episodes`.
        max_steps: step limit, >= 1; the episode is ``TIMED_OUT`` when it is reached.
        control_period: seconds each action runs for (1 / control rate), > 0.
        image_size: camera width = height, pixels (the simulator node's ``image_width`` and
            ``image_height``).
        gripper_open_position: one finger's open position, metres (None: the Panda's 0.04);
            the observation's ``gripper_state`` (``rt2_policy.proprioception.gripper_state``).
        tcp_offset: flange to tool centre point, metres (None: rt2_sim's 0.13); the
            observation's ``tcp_position`` in ``panda_link0`` (REP 105 base frame).
        observation_lag: seconds, in ``[0, control_period)``, by which each observation
            comes before the previous action's motion has ended, as in the ROS loop stepping
            every control period: the node's next frame is taken while the previous twist
            (sent one inference latency after its own frame) still has that long to run, and
            it runs on while the model infers. 0 (the default): observe after the motion, as
            the demonstrations are recorded. About 0.1 s reproduces ``make eval``'s ROS loop
            with the shipped model (README, "Train -> Status", item 30).

    Returns:
        The episode's record: ``outcome`` ``SUCCEEDED`` when the policy emitted terminate,
        ``TIMED_OUT`` at ``max_steps``, ``ERROR`` when the policy raised (the message says
        what; counted as a failure, never raised); ``success`` is
        :func:`rt2_sim.tasks.check_success` at the end, ``duration_s`` simulated seconds,
        ``details`` :func:`rt2_sim.tasks.episode_summary`, ``episode_id`` empty.

    Raises:
        ValueError: ``max_steps < 1``, ``control_period <= 0`` or ``observation_lag`` outside
            ``[0, control_period)``.
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps: expected an int >= 1, got {max_steps!r}")
    if not control_period > 0:
        raise ValueError(f"control_period: expected > 0 s, got {control_period!r}")
    check_observation_lag(observation_lag, control_period)
    from rt2_policy.contract import Observation
    from rt2_policy.proprioception import (
        PANDA_FINGER_OPEN_POSITION,
        PANDA_TCP_OFFSET,
        gripper_state,
        panda_tcp_position,
    )
    from rt2_sim.expert import execute_action
    from rt2_sim.simulation import ArmSimulation
    from rt2_sim.tasks import episode_summary, sample_episode, task_scene_config

    opening = PANDA_FINGER_OPEN_POSITION if gripper_open_position is None else gripper_open_position
    offset = PANDA_TCP_OFFSET if tcp_offset is None else tcp_offset
    spec = sample_episode(plan.seed, plan.split, plan.family)
    task = spec.task
    latencies: list[float] = []
    steps, terminated, error = 0, False, ""
    previous = None  # the action whose motion is still running when the next frame is taken
    split = control_period - observation_lag  # seconds of an action's motion before that frame
    with ArmSimulation(task_scene_config(image_width=image_size, image_height=image_size)) as sim:
        sim.reset_episode(spec)
        sim.step(0.2)  # objects settle, as before every demonstration
        policy.reset()  # a new episode: grasp memory and release gate start afresh
        while steps < max_steps:
            joints = sim.joint_positions()
            observation = Observation(sim.render(), task.instruction,
                                      gripper_state=gripper_state(joints[7:], opening),
                                      tcp_position=panda_tcp_position(joints[:7], offset))
            started = time.perf_counter()
            try:
                action = policy.infer(observation)
            except Exception as exc:  # noqa: BLE001 - a model error fails the episode only
                error = f"policy error at step {steps}: {exc}"
                break
            latencies.append(time.perf_counter() - started)
            steps += 1
            if previous is not None:  # its last observation_lag seconds, during inference
                execute_action(sim, previous, control_period, start=split)
            if action.terminate:
                terminated = True
                break
            execute_action(sim, action, control_period, stop=split)
            previous = action
        if previous is not None and not terminated and not error:  # the step limit: finish it
            execute_action(sim, previous, control_period, start=split)
        details = episode_summary(sim, spec)
    task_dict = json.loads(task.to_json())  # as /rt2_sim/reset reports it
    if error:
        return EpisodeRecord.error(plan, error, task.instruction, task_dict)
    return EpisodeRecord(
        split=plan.split, family=plan.family, index=plan.index, seed=plan.seed,
        instruction=task.instruction, task=task_dict, success=bool(details["success"]),
        terminated=terminated, outcome="SUCCEEDED" if terminated else "TIMED_OUT", steps=steps,
        duration_s=round(steps * control_period, 3),
        mean_inference_latency_ms=(round(1000 * sum(latencies) / len(latencies), 2)
                                   if latencies else None),
        message="policy emitted terminate" if terminated else f"step limit {max_steps} reached",
        details=details)
