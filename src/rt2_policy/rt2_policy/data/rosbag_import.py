"""rosbag2 (sqlite3 or mcap) → LeRobot ``v2.1`` dataset, with the live recorder's pairing rules.

Reads a bag with the ``rosbags`` library (no ROS installation needed), decodes
``/camera/image_raw`` (``sensor_msgs/Image``: rgb8, bgr8, rgba8, bgra8, mono8),
``/rt2/action`` (``rt2_msgs/RT2Action``), ``/rt2/instruction`` (``std_msgs/String``) and
``/rt2/episode_status`` (``rt2_msgs/EpisodeStatus``) and ``/joint_states``
(``sensor_msgs/JointState``) in log-time order, pairs them with
:class:`rt2_policy.data.recorder.EpisodePairer` and writes each kept episode with
:class:`rt2_policy.data.lerobot_dataset.LeRobotDatasetWriter`.

Robot state: with ``RecorderConfig.state_joints`` set (the CLI's ``--state-joints``, default
:data:`~rt2_policy.data.recorder.PANDA_STATE_JOINTS`: ``panda_joint1..7`` in rad, then
``panda_finger_joint1..2`` in m, the ``rt2_sim`` layout), each frame's ``observation.state``
holds those joints' positions, shape ``(len(state_joints),)`` float32, named by those joints
in ``info.json``: per joint, the newest ``/joint_states`` position whose header stamp (log time
when unset) is at or before the frame's camera stamp; the joints may be split over several
messages and connections (arm, hand). A step for which some joint has no such position is not
recorded (counted as ``dropped_no_state``), nor is one for which some joint's position is older
than ``--max-state-age`` seconds at the frame's stamp (``dropped_stale_state``; default 0.5 s,
0 = no limit); a bag without the joint-state topic is an error. ``--state-joints`` with no
names imports without a state column.

The rt2_msgs types are registered from their ``.msg`` files with
``rosbags.typesys.get_types_from_msg`` (found through the ament index, ``AMENT_PREFIX_PATH`` or
the source tree); message definitions stored in the bag take precedence (rosbags'
``AnyReader``).

CLI::

    rosbag_to_lerobot BAG_DIR OUTPUT_DIR [--fps HZ] [--success-only] [--image-size H W]
                      [--state-joints [JOINT ...]] [--max-state-age S] ...

prints a one-line JSON summary (episodes, frames, tasks, pairing counters).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rt2_policy.data.lerobot_dataset import LeRobotDatasetWriter
from rt2_policy.data.recorder import (
    PANDA_STATE_JOINTS,
    EpisodePairer,
    RecorderConfig,
    action_sample_from_msg,
    status_sample_from_msg,
    write_episode,
)
from rt2_policy.image_conversion import image_msg_to_rgb
from rt2_policy.stamps import stamp_seconds

DEFAULT_TOPICS = {
    "image": "/camera/image_raw",
    "action": "/rt2/action",
    "instruction": "/rt2/instruction",
    "status": "/rt2/episode_status",
    "joint_states": "/joint_states",
}
RT2_MSG_TYPES = ("RT2Action", "EpisodeStatus")
#: Dataset rate used when neither ``fps`` is given nor the bag has two actions of one episode.
FALLBACK_FPS = 5.0


def find_rt2_msgs_dir() -> Path:
    """Directory holding ``RT2Action.msg`` and ``EpisodeStatus.msg``.

    Looks in the ament index (``share/rt2_msgs/msg``), then ``AMENT_PREFIX_PATH``, then the
    source tree next to this package (``src/rt2_msgs/msg``).

    Raises:
        FileNotFoundError: when none of them has the files.
    """
    candidates: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("rt2_msgs")) / "msg")
    except Exception:  # not installed, or rt2_msgs not in the index
        pass
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "rt2_msgs" / "msg")
    here = Path(__file__).resolve()
    candidates += [p / "rt2_msgs" / "msg" for p in here.parents]
    for cand in candidates:
        if all((cand / f"{name}.msg").is_file() for name in RT2_MSG_TYPES):
            return cand
    raise FileNotFoundError("rt2_msgs .msg files not found (ament index, AMENT_PREFIX_PATH, "
                            "source tree); pass msg_dir")


def rt2_typestore(msg_dir: Path | str | None = None):
    """A rosbags ROS 2 (Jazzy) typestore with ``rt2_msgs/msg/*`` registered from ``msg_dir``.

    Raises:
        FileNotFoundError: when the .msg files cannot be found.
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    msg_dir = Path(msg_dir) if msg_dir is not None else find_rt2_msgs_dir()
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for name in RT2_MSG_TYPES:
        path = msg_dir / f"{name}.msg"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing")
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"rt2_msgs/msg/{name}"))
    store.register(types)
    return store


def _estimate_fps(stamps_by_episode: dict[str, list[float]]) -> float | None:
    diffs = [d for stamps in stamps_by_episode.values() for d in np.diff(sorted(stamps)) if d > 0]
    if not diffs:
        return None
    return round(1.0 / float(np.median(diffs)), 3)


def import_rosbag(bag: Path | str, output: Path | str, *, fps: float | None = None,
                  config: RecorderConfig | None = None, topics: dict[str, str] | None = None,
                  robot_type: str = "panda", msg_dir: Path | str | None = None) -> dict:
    """Convert the rosbag2 directory ``bag`` into (or append to) the dataset at ``output``.

    Args:
        bag: rosbag2 directory (``metadata.yaml`` + ``.db3`` or ``.mcap``).
        output: dataset root (see :class:`LeRobotDatasetWriter` for appending).
        fps: dataset rate in Hz; default: from the median spacing of the bag's actions.
        config: pairing and filtering rules; ``config.state_joints`` selects the recorded
            ``observation.state`` and names its dimensions in ``info.json`` (default config:
            none; the CLI defaults to :data:`~rt2_policy.data.recorder.PANDA_STATE_JOINTS`),
            ``config.max_state_age`` drops steps with stale joint positions.
        topics: overrides of :data:`DEFAULT_TOPICS` (keys image, action, instruction, status,
            joint_states).
        robot_type: stored in ``info.json``.
        msg_dir: directory of the rt2_msgs ``.msg`` files (default: found automatically).

    Returns:
        Summary: ``{"bag", "output", "episodes", "frames", "fps", "tasks", "state_joints",
        "counters"}``.

    Raises:
        FileNotFoundError: missing bag or .msg files.
        ValueError: the bag has no action topic, or no joint-state topic while
            ``config.state_joints`` is set, or a dataset at ``output`` does not match.
    """
    from rosbags.highlevel import AnyReader

    bag = Path(bag)
    if not bag.exists():
        raise FileNotFoundError(f"bag: {bag} does not exist")
    names = {**DEFAULT_TOPICS, **(topics or {})}
    pairer = EpisodePairer(config)
    state_joints = pairer.config.state_joints
    store = rt2_typestore(msg_dir)
    writer: LeRobotDatasetWriter | None = None
    episodes, frames, tasks = 0, 0, set()
    with AnyReader([bag], default_typestore=store) as reader:
        conns = {key: [c for c in reader.connections if c.topic == topic]
                 for key, topic in names.items()}
        if not conns["action"]:
            raise ValueError(f"bag: {bag} has no {names['action']!r} topic; topics: "
                             f"{sorted(reader.topics)}")
        if not state_joints:
            conns["joint_states"] = []
        elif not conns["joint_states"]:
            raise ValueError(f"bag: {bag} has no {names['joint_states']!r} topic for the state "
                             f"joints {list(state_joints)} (import without state: "
                             f"--state-joints with no names); topics: {sorted(reader.topics)}")
        if fps is None:
            stamps: dict[str, list[float]] = {}
            for conn, _, raw in reader.messages(connections=conns["action"]):
                msg = reader.deserialize(raw, conn.msgtype)
                stamps.setdefault(msg.episode_id, []).append(stamp_seconds(msg.header.stamp))
            fps = _estimate_fps(stamps) or FALLBACK_FPS
        wanted = [c for group in conns.values() for c in group]
        kinds = {c.id: key for key, group in conns.items() for c in group}
        for conn, log_time, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            kind = kinds[conn.id]
            if kind == "image":
                stamp = stamp_seconds(msg.header.stamp) or log_time * 1e-9
                closed = pairer.add_image(
                    stamp, lambda m=msg: image_msg_to_rgb(m, use_cv_bridge=False))
            elif kind == "action":
                closed = pairer.add_action(action_sample_from_msg(msg))
            elif kind == "instruction":
                closed = pairer.add_instruction(log_time * 1e-9, msg.data)
            elif kind == "joint_states":
                stamp = stamp_seconds(msg.header.stamp) or log_time * 1e-9
                closed = pairer.add_joint_state(stamp, msg.name, msg.position)
            else:
                closed = pairer.add_status(status_sample_from_msg(msg))
            for episode in closed:
                writer = writer or _open_writer(output, fps, episode, robot_type, state_joints)
                write_episode(writer, episode)
                episodes, frames = episodes + 1, frames + len(episode.steps)
                tasks.add(episode.task)
    for episode in pairer.flush():
        writer = writer or _open_writer(output, fps, episode, robot_type, state_joints)
        write_episode(writer, episode)
        episodes, frames = episodes + 1, frames + len(episode.steps)
        tasks.add(episode.task)
    if writer is not None:
        writer.finalize()
    return {"bag": str(bag), "output": str(output), "episodes": episodes, "frames": frames,
            "fps": fps, "tasks": sorted(tasks), "state_joints": list(state_joints),
            "counters": pairer.counters.as_dict()}


def _open_writer(output, fps: float, episode, robot_type: str,
                 state_joints: Sequence[str]) -> LeRobotDatasetWriter:
    return LeRobotDatasetWriter(output, fps=fps, robot_type=robot_type,
                                image_shape=episode.steps[0].image.shape,
                                state_dim=len(state_joints), state_names=state_joints)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rosbag_to_lerobot",
        description="Convert a rosbag2 of rt2 topics into a LeRobot v2.1 dataset.")
    parser.add_argument("bag", help="rosbag2 directory (sqlite3 or mcap)")
    parser.add_argument("output", help="dataset directory (created, or appended to)")
    parser.add_argument("--fps", type=float, default=None,
                        help="dataset rate, Hz (default: estimated from the actions)")
    parser.add_argument("--max-frame-age", type=float, default=0.5,
                        help="drop actions whose newest preceding frame is older, s")
    parser.add_argument("--no-latency-compensation", action="store_true",
                        help="when no frame has an action's exact stamp, pair with the frame "
                             "before the stamp, not before stamp - inference_latency")
    parser.add_argument("--success-only", action="store_true",
                        help="keep only episodes that terminated / SUCCEEDED")
    parser.add_argument("--min-episode-length", type=int, default=1)
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="resize frames to H x W pixels")
    parser.add_argument("--robot-type", default="panda")
    parser.add_argument("--state-joints", nargs="*", default=list(PANDA_STATE_JOINTS),
                        metavar="JOINT",
                        help="joints recorded as observation.state, in this order (rad for "
                             "revolute, m for prismatic joints; steps before every joint has a "
                             "position are dropped); no names: no state (default: "
                             "panda_joint1..7 panda_finger_joint1 panda_finger_joint2)")
    parser.add_argument("--max-state-age", type=float, default=0.5,
                        help="drop steps for which some state joint's position is older than "
                             "this at the frame's stamp, s; 0 = no limit")
    parser.add_argument("--msg-dir", default=None, help="directory of the rt2_msgs .msg files")
    for key, topic in DEFAULT_TOPICS.items():
        parser.add_argument(f"--{key.replace('_', '-')}-topic", default=topic)
    args = parser.parse_args(argv)
    try:
        config = RecorderConfig(
            max_frame_age=args.max_frame_age,
            frame_buffer=max(2.0, args.max_frame_age),
            subtract_inference_latency=not args.no_latency_compensation,
            success_only=args.success_only, min_episode_length=args.min_episode_length,
            image_size=tuple(args.image_size) if args.image_size else None,
            state_joints=tuple(args.state_joints), max_state_age=args.max_state_age)
        summary = import_rosbag(
            args.bag, args.output, fps=args.fps, config=config, robot_type=args.robot_type,
            msg_dir=args.msg_dir,
            topics={k: getattr(args, f"{k}_topic") for k in DEFAULT_TOPICS})
    except (OSError, ValueError) as exc:
        print(f"rosbag_to_lerobot: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
