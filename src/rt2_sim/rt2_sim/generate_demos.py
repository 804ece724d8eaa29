"""Generate scripted-expert demonstrations in the LeRobot dataset format.

``generate_demos --output DIR --episodes N --seed S [--families pick push] [--workers 2]``
rolls out :class:`rt2_sim.expert.ScriptedExpert` on the ``seen`` split (seeds ``S, S+1, …``,
all below :data:`rt2_sim.tasks.EVAL_SEED_START`), keeps the successful episodes and writes them
with :class:`rt2_policy.data.lerobot_dataset.LeRobotDatasetWriter`: per step the camera frame
(224x224 RGB, seen before the action), RT-2's 8-dim action (terminate, metres and radians per
step in ``panda_link0``, gripper 0..1), the joint positions as ``observation.state`` (``(9,)``
float32: ``panda_joint1..7`` in radians then ``panda_finger_joint1..2`` in metres, named so in
``info.json``: :data:`rt2_policy.data.recorder.PANDA_STATE_JOINTS`, the layout the recorder
writes too) and the instruction as the task, and the image position of the instructed target
object as ``observation.target_point`` (``(x, y)`` in 0..255, ``(-1, -1)`` out of view; for the
grounding loss), and that of the task's reference object (move near, place) as
``observation.reference_point`` (``(-1, -1)`` when the task has none; for the reference
grounding loss), and where the expert's action heads the tcp (its current waypoint, ``(x, y,
z)`` metres in ``panda_link0``) as ``observation.goal_position`` (for waypoint plans). The last
line printed is a JSON summary.

DAgger (Ross et al., 2011): ``--policy MODEL`` lets a trained checkpoint drive (the expert's
action is executed with probability ``--expert-share`` per step) while every frame is labelled
with the expert's action at the state the policy reached. All such episodes are written,
failed ones too, since their off-path states are what the data is for; training on
``--robot-datasets DEMOS DAGGER`` then teaches recovery from the policy's own mistakes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np

from rt2_sim.scene import FINGER_OPEN_POSITION, TCP_OFFSET
from rt2_sim.tasks import EVAL_SEED_START, TASK_FAMILIES, sample_episode


class _PolicyDriver:
    """A :data:`rt2_sim.expert.Driver` running the checkpoint at ``model`` on 1 torch thread,
    as the policy node would (with the node's default release gate,
    :class:`rt2_policy.waypoint_release.WaypointRelease`, unless ``release_at_waypoint`` is
    False); :meth:`reset` starts a new episode."""

    def __init__(self, model: str, release_at_waypoint: bool = True):
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads
        from rt2_policy.policy_factory import make_policy

        self.policy = make_policy("local", model_path=model, num_threads=1,
                                  release_at_waypoint=release_at_waypoint)

    def reset(self) -> None:
        self.policy.reset()

    def __call__(self, image: np.ndarray, instruction: str, joints: np.ndarray) -> np.ndarray:
        from rt2_policy.contract import Observation
        from rt2_policy.proprioception import gripper_state, panda_tcp_position

        # The finger joints and the arm's forward kinematics, as the policy node reads them
        # from /joint_states.
        state = gripper_state(joints[7:], FINGER_OPEN_POSITION)
        tcp = panda_tcp_position(joints[:7], TCP_OFFSET)
        return self.policy.infer(Observation(image, instruction, gripper_state=state,
                                             tcp_position=tcp)).values()


def _worker(args: tuple) -> dict:
    seed, family, noise, control_rate, max_steps, model, expert_share, release = args
    from rt2_sim.expert import rollout
    from rt2_sim.simulation import ArmSimulation
    from rt2_sim.tasks import task_scene_config

    global _SIM, _DRIVER
    if _SIM is None:
        _SIM = ArmSimulation(task_scene_config())
    if model is not None and _DRIVER is None:
        _DRIVER = _PolicyDriver(model, release_at_waypoint=release)
    if _DRIVER is not None:
        _DRIVER.reset()  # a new episode: the gate and the grasp memory start afresh
    spec = sample_episode(seed, "seen", family)
    run = rollout(_SIM, spec, control_rate=control_rate, max_steps=max_steps, noise=noise,
                  seed=seed, driver=_DRIVER, expert_share=expert_share)
    return {
        "seed": seed, "family": spec.task.family, "instruction": run.instruction,
        "success": run.success and run.terminated, "images": run.images,
        "actions": run.actions, "states": run.states, "target_points": run.target_points,
        "reference_points": run.reference_points, "goal_positions": run.goal_positions,
    }


_SIM = None
_DRIVER = None


def _jobs(seed: int, episodes: int, families: Sequence[str], noise: float, noisy_fraction: float,
          control_rate: float, max_steps: int, policy: str | None = None,
          expert_share: float = 0.0, release_at_waypoint: bool = True) -> Iterator[tuple]:
    rng = np.random.default_rng(seed)
    for i in range(episodes):
        episode_seed = seed + i
        if episode_seed >= EVAL_SEED_START:
            raise ValueError(f"seed: training seeds must stay below {EVAL_SEED_START}")
        family = families[i % len(families)]
        episode_noise = noise if rng.random() < noisy_fraction else 0.0
        yield (episode_seed, family, episode_noise, control_rate, max_steps, policy,
               expert_share, release_at_waypoint)


def generate(output: str, episodes: int, seed: int = 0,
             families: Sequence[str] = TASK_FAMILIES, workers: int = 2, noise: float = 0.006,
             noisy_fraction: float = 0.5, control_rate: float = 5.0,
             max_steps: int = 80, progress: bool = True, policy: str | None = None,
             expert_share: float = 0.3, release_at_waypoint: bool = True) -> dict:
    """Roll out ``episodes`` expert episodes and write the successful ones to ``output``
    (with ``policy``: DAgger episodes, all written).

    Args:
        output: dataset root (created; appended to when it already holds a dataset with the
            same features, state names included).
        episodes: number of episodes to attempt (families rotate).
        seed: first episode seed (< :data:`EVAL_SEED_START`).
        families: task families to rotate through.
        workers: simulation processes.
        noise: DART noise on executed translations, metres per step (std).
        noisy_fraction: share of episodes that get noise.
        control_rate: Hz.
        max_steps: step budget per episode.
        policy: checkpoint directory (``VLAPolicy.from_pretrained``) that drives the episodes
            for DAgger; ``None``: the expert drives.
        expert_share: with ``policy``, the probability per step that the expert's action is
            executed instead of the policy's (DAgger's β), 0..1.
        release_at_waypoint: with ``policy``, wrap it in the policy node's release gate
            (:class:`rt2_policy.waypoint_release.WaypointRelease`, on in the node by default and
            a no-op for models without waypoint plans), so DAgger visits the states the
            deployed policy reaches.

    Returns:
        Summary: episodes attempted and written, success rate per family (with ``policy``: of
        the mixed policy/expert control), frames, seconds.

    Raises:
        ValueError: an unknown family, a seed reaching the evaluation seeds, or
            ``expert_share`` outside 0..1.
    """
    if not 0.0 <= expert_share <= 1.0:
        raise ValueError(f"expert_share: expected 0..1, got {expert_share}")
    from rt2_policy.data.lerobot_dataset import (
        GOAL_POSITION_KEY,
        REFERENCE_POINT_KEY,
        TARGET_POINT_KEY,
        LeRobotDatasetWriter,
    )
    from rt2_policy.data.recorder import PANDA_STATE_JOINTS  # = ArmSimulation.joint_names

    for family in families:
        if family not in TASK_FAMILIES:
            raise ValueError(f"families: expected items of {TASK_FAMILIES}, got {family!r}")
    start = time.perf_counter()
    writer = LeRobotDatasetWriter(output, fps=control_rate, robot_type="panda",
                                  image_shape=(224, 224, 3),
                                  state_dim=len(PANDA_STATE_JOINTS),
                                  state_names=PANDA_STATE_JOINTS,
                                  extra_features={TARGET_POINT_KEY: 2,
                                                  REFERENCE_POINT_KEY: 2,
                                                  GOAL_POSITION_KEY: 3})
    jobs = list(_jobs(seed, episodes, list(families), noise, noisy_fraction, control_rate,
                      max_steps, policy, expert_share, release_at_waypoint))
    per_family: dict[str, list[bool]] = {f: [] for f in families}
    frames = 0
    written = 0
    ctx = mp.get_context("spawn")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="demos", file=sys.stderr)
    with ctx.Pool(max(1, workers)) as pool:
        for result in pool.imap(_worker, jobs, chunksize=2):
            per_family[result["family"]].append(result["success"])
            if result["success"] or policy is not None:
                for image, action, state, point, reference, goal in zip(
                        result["images"], result["actions"], result["states"],
                        result["target_points"], result["reference_points"],
                        result["goal_positions"], strict=True):
                    writer.add_frame(image, action.astype(np.float32), result["instruction"],
                                     state=state.astype(np.float32),
                                     extras={TARGET_POINT_KEY: point,
                                             REFERENCE_POINT_KEY: reference,
                                             GOAL_POSITION_KEY: goal})
                writer.save_episode()
                written += 1
                frames += len(result["actions"])
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    writer.finalize()
    return {
        "output": os.path.abspath(output), "episodes": len(jobs), "written": written,
        "frames": frames,
        "success_rate": {f: round(float(np.mean(v)), 3) if v else None
                         for f, v in per_family.items()},
        "seed": seed, "policy": policy,
        "release_at_waypoint": release_at_waypoint if policy is not None else None,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="dataset directory")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", nargs="+", default=list(TASK_FAMILIES),
                        choices=TASK_FAMILIES)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noise", type=float, default=0.006,
                        help="DART noise std on executed translation, metres per step")
    parser.add_argument("--noisy-fraction", type=float, default=0.5)
    parser.add_argument("--control-rate", type=float, default=5.0)
    parser.add_argument("--max-steps", type=int, default=80)
    parser.add_argument("--policy", default=None, metavar="MODEL",
                        help="DAgger: checkpoint that drives; the expert labels every frame")
    parser.add_argument("--expert-share", type=float, default=0.3,
                        help="DAgger: probability per step of executing the expert's action")
    parser.add_argument("--no-release-at-waypoint", dest="release_at_waypoint",
                        action="store_false",
                        help="DAgger: drive without the policy node's release gate "
                             "(rt2_policy.waypoint_release; on by default, a no-op for models "
                             "without waypoint plans)")
    args = parser.parse_args(argv)
    summary = generate(args.output, args.episodes, args.seed, args.families, args.workers,
                       args.noise, args.noisy_fraction, args.control_rate, args.max_steps,
                       policy=args.policy, expert_share=args.expert_share,
                       release_at_waypoint=args.release_at_waypoint)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
