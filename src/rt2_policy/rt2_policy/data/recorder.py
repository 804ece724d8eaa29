"""Pairs executed RT-2 actions with camera frames and instructions into episodes (pure core).

Shared by the live recorder node (:mod:`rt2_policy.recorder_node`) and the rosbag2 importer
(:mod:`rt2_policy.data.rosbag_import`); nothing here imports rclpy or rosbags. Inputs are plain
samples with ROS times in seconds:

- camera frames (``/camera/image_raw``, ``sensor_msgs/Image``): :meth:`EpisodePairer.add_image`
  with the header stamp and the RGB frame (or a callable that decodes it on demand, so frames
  that no action uses are never decoded);
- executed actions (``/rt2/action``, ``rt2_msgs/RT2Action``): :meth:`EpisodePairer.add_action`;
- instructions (``/rt2/instruction``, ``std_msgs/String``) and episode status
  (``/rt2/episode_status``, ``rt2_msgs/EpisodeStatus``, which carries the episode id and its
  instruction): :meth:`add_instruction`, :meth:`add_status`;
- joint states (``/joint_states``, ``sensor_msgs/JointState``), only when
  :attr:`RecorderConfig.state_joints` names joints: :meth:`EpisodePairer.add_joint_state`.

Pairing rule: ``RT2Action.header.stamp`` is the "time of the camera frame this action was
computed from" (``RT2Action.msg``), so a frame with exactly that stamp (within
:data:`STAMP_TOLERANCE`) is taken. Otherwise the action was stamped when it was published (as
rt2_policy's policy node does at the time of writing), and it is paired with the newest frame
not later than ``stamp - inference_latency`` (the time the policy took its frame; plain
``stamp`` with ``subtract_inference_latency=False``). A frame older than ``max_frame_age``
seconds before that time is stale: the action is dropped and counted.

Episodes are split by ``RT2Action.episode_id``: an action of another episode, a ``terminate``
action (kept as the episode's last step), or an ``EpisodeStatus`` in state FINISHED for the
open episode closes it. The episode's task is the instruction its ``EpisodeStatus`` messages
carry, else the latest ``/rt2/instruction`` text received before its first action.

Robot state (``observation.state``): with :attr:`RecorderConfig.state_joints` set, every
recorded step carries the positions of those joints, in that order, as a float32 vector of
shape ``(len(state_joints),)``: radians for revolute joints, metres for prismatic ones (the
Panda's finger joints, 0 = closed, 0.04 = open). The default Panda layout,
:data:`PANDA_STATE_JOINTS` (``panda_joint1..7``, ``panda_finger_joint1..2``), is the one
``rt2_sim.generate_demos`` writes, so ``TrainConfig.gripper_state_indices = (7, 8)`` reads the
fingers of both. Joint states may come split over several messages (e.g. the arm's and the
hand's publishers): each joint's position is taken from the newest message carrying it whose
stamp is at or before the paired camera frame's stamp (the observation the action was computed
from). Missing-joint rule: when one or more configured joints has no such position (never
received, or only after the frame), the step is **not recorded** and counted as
``dropped_no_state`` (:attr:`EpisodePairer.last_missing_joints` names the joints): a made-up
state would poison training. Stale-joint rule: when a joint's position is older than
:attr:`RecorderConfig.max_state_age` seconds at the frame's stamp (its publisher died or
stalled; 0.5 s by default, 0 = no limit), the step is not recorded either and counted as
``dropped_stale_state`` (:attr:`EpisodePairer.last_stale_joints` gives each such joint and the
age of its position); missing joints take precedence. Non-finite positions are ignored. With
``state_joints`` empty (the :class:`RecorderConfig` default; the node and the CLI default to
:data:`PANDA_STATE_JOINTS`) no state is recorded and joint states are ignored.

Action vectors follow :data:`rt2_policy.contract.ACTION_DIM_NAMES` (RT-2 §3.2): terminate
(0/1), Δx Δy Δz (m) and Δroll Δpitch Δyaw (rad) per step in ``header.frame_id``
(``panda_link0``), gripper 0 = open … 1 = closed.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rt2_policy.contract import ACTION_DIMS
from rt2_policy.proprioception import PANDA_FINGER_JOINTS, joint_names
from rt2_policy.stamps import stamp_seconds

#: Two stamps closer than this are the same frame time, seconds (ROS stamps are nanoseconds).
STAMP_TOLERANCE = 1e-6
#: EpisodeStatus.state value of a finished episode (``rt2_msgs/msg/EpisodeStatus``).
STATE_FINISHED = 3
#: EpisodeStatus.outcome names by value (``rt2_msgs/msg/EpisodeStatus``).
OUTCOME_NAMES = {0: "NONE", 1: "SUCCEEDED", 2: "TIMED_OUT", 3: "ABORTED", 4: "CANCELED"}

#: Default ``observation.state`` joints: the Panda's 7 arm joints (rad) then its 2 finger joints
#: (m), in ``rt2_sim``'s order (``gripper_state_indices`` 7 8).
PANDA_STATE_JOINTS = (*(f"panda_joint{i}" for i in range(1, 8)), *PANDA_FINGER_JOINTS)

ImageSource = np.ndarray | Callable[[], np.ndarray]


@dataclass(frozen=True)
class RecorderConfig:
    """How actions are paired with frames and which episodes are kept.

    Attributes:
        max_frame_age: seconds; an action whose newest preceding frame is older than this is
            dropped (> 0).
        frame_buffer: seconds of camera history kept behind the newest frame (> 0, at least
            ``max_frame_age``).
        subtract_inference_latency: when no frame has exactly the action's stamp, pair with
            the newest frame before ``stamp - inference_latency`` rather than before ``stamp``
            (for publishers that stamp actions when publishing them).
        success_only: keep only episodes that ended with a terminate action or a SUCCEEDED
            status.
        min_episode_length: episodes with fewer paired steps are dropped (>= 1).
        image_size: ``(height, width)`` in pixels every frame is resized to (bilinear), or
            ``None`` to keep the size of the first recorded frame (later frames of another size
            are resized to it).
        state_joints: joint names whose positions make ``observation.state``, in this order
            (rad for revolute, m for prismatic joints; see the module doc for the
            missing-joint rule); empty: no state is recorded.
        max_state_age: seconds (>= 0, finite); a step for which some ``state_joints`` joint's
            newest position at or before the frame's stamp is older than this, relative to
            that stamp, is dropped (``dropped_stale_state``); 0 = no limit.

    Raises:
        ValueError: on an out-of-range field, naming it.
    """

    max_frame_age: float = 0.5
    frame_buffer: float = 2.0
    subtract_inference_latency: bool = True
    success_only: bool = False
    min_episode_length: int = 1
    image_size: tuple[int, int] | None = None
    state_joints: tuple[str, ...] = ()
    max_state_age: float = 0.5

    def __post_init__(self) -> None:
        if not (isinstance(self.max_frame_age, (int, float)) and self.max_frame_age > 0
                and math.isfinite(self.max_frame_age)):
            raise ValueError(f"max_frame_age: expected a finite number > 0 (s), "
                             f"got {self.max_frame_age!r}")
        if not (isinstance(self.frame_buffer, (int, float)) and math.isfinite(self.frame_buffer)
                and self.frame_buffer >= self.max_frame_age):
            raise ValueError(f"frame_buffer: expected a finite number >= max_frame_age "
                             f"({self.max_frame_age} s), got {self.frame_buffer!r}")
        if isinstance(self.min_episode_length, bool) or not isinstance(
                self.min_episode_length, int) or self.min_episode_length < 1:
            raise ValueError(f"min_episode_length: expected an int >= 1, "
                             f"got {self.min_episode_length!r}")
        if self.image_size is not None:
            size = tuple(self.image_size)
            if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
                raise ValueError(f"image_size: expected (height, width) positive ints or None, "
                                 f"got {self.image_size!r}")
        object.__setattr__(self, "state_joints",
                           joint_names("state_joints", self.state_joints, allow_empty=True))
        if not (isinstance(self.max_state_age, (int, float))
                and not isinstance(self.max_state_age, bool)
                and math.isfinite(self.max_state_age) and self.max_state_age >= 0):
            raise ValueError(f"max_state_age: expected a finite number >= 0 (s; 0 = no limit), "
                             f"got {self.max_state_age!r}")


@dataclass(frozen=True)
class ActionSample:
    """One executed action, as carried by ``rt2_msgs/RT2Action``.

    Attributes:
        stamp: ``header.stamp`` in seconds (ROS time).
        episode_id: the policy's episode id.
        step: 0-based control step in the episode.
        action: ``(8,)`` float vector in ACTION_DIM_NAMES order (see module doc).
        inference_latency: seconds the policy spent on it (>= 0).
    """

    stamp: float
    episode_id: str
    step: int
    action: np.ndarray
    inference_latency: float = 0.0

    @property
    def terminate(self) -> bool:
        return bool(self.action[0] >= 0.5)


@dataclass(frozen=True)
class StatusSample:
    """One ``rt2_msgs/EpisodeStatus``: stamp (s), episode id, instruction, state, outcome."""

    stamp: float
    episode_id: str
    instruction: str
    state: int
    outcome: int = 0


@dataclass(frozen=True)
class RecordedStep:
    """One paired step: ``image`` (H, W, 3) uint8 RGB, ``action`` (8,) float32, the action's
    ``stamp`` and the paired frame's ``image_stamp`` (s), the policy's ``step``, and ``state``:
    the :attr:`RecorderConfig.state_joints` positions at ``image_stamp``, ``(S,)`` float32 (rad
    or m), or None when no state is recorded."""

    image: np.ndarray
    action: np.ndarray
    stamp: float
    image_stamp: float
    step: int
    state: np.ndarray | None = None


@dataclass
class RecordedEpisode:
    """A closed episode: id, task (instruction), paired steps, and how it ended."""

    episode_id: str
    task: str
    steps: list[RecordedStep]
    terminated: bool = False
    outcome: str = "NONE"

    @property
    def succeeded(self) -> bool:
        return self.terminated or self.outcome == "SUCCEEDED"

    def timestamps(self) -> np.ndarray:
        """Seconds since the first step, non-decreasing (clock jumps are clamped), float64."""
        stamps = np.array([s.stamp for s in self.steps], dtype=np.float64)
        return np.maximum.accumulate(stamps - stamps[0]) if len(stamps) else stamps


@dataclass
class PairingCounters:
    """What happened to the inputs so far (for logs and summaries)."""

    images: int = 0
    actions: int = 0
    joint_states: int = 0
    joint_states_ignored: int = 0
    paired: int = 0
    dropped_no_frame: int = 0
    dropped_no_state: int = 0
    dropped_stale_state: int = 0
    dropped_stale_frame: int = 0
    dropped_bad_frame: int = 0
    dropped_bad_action: int = 0
    dropped_late_action: int = 0
    episodes_closed: int = 0
    episodes_dropped_no_task: int = 0
    episodes_dropped_short: int = 0
    episodes_dropped_unsuccessful: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _OpenEpisode:
    episode_id: str
    fallback_task: str | None
    steps: list[RecordedStep] = field(default_factory=list)
    terminated: bool = False


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``(H, W, 3)`` uint8 frame to ``size = (height, width)``."""
    from PIL import Image

    if image.shape[:2] == tuple(size):
        return image
    pil = Image.fromarray(image, mode="RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(pil, dtype=np.uint8)


class EpisodePairer:
    """Turns a stream of frames, actions, instructions and statuses into closed episodes.

    Feed samples in arrival order; every ``add_*`` method returns the episodes it closed (most
    calls return ``[]``). Call :meth:`flush` at the end to close the open episode. Closed
    episodes that fail the config's filters (no task, too short, not successful) are counted in
    :attr:`counters` and not returned. Not thread-safe: call from one thread.
    """

    def __init__(self, config: RecorderConfig | None = None) -> None:
        self.config = config or RecorderConfig()
        self.counters = PairingCounters()
        self._frame_stamps: list[float] = []
        self._frames: list[ImageSource] = []
        self._instructions: list[tuple[float, str]] = []
        self._status_tasks: dict[str, str] = {}
        self._outcomes: dict[str, str] = {}
        self._open: _OpenEpisode | None = None
        self._closed_ids: deque[str] = deque(maxlen=64)
        self._image_size = (tuple(self.config.image_size) if self.config.image_size is not None
                            else None)
        # per state joint: stamps (sorted, s) and positions of its samples
        self._joint_stamps: dict[str, list[float]] = {j: [] for j in self.config.state_joints}
        self._joint_positions: dict[str, list[float]] = {j: [] for j in self.config.state_joints}
        self._newest_joint_stamp = -math.inf
        #: State joints that had no position for the last step dropped as ``dropped_no_state``.
        self.last_missing_joints: tuple[str, ...] = ()
        #: ``(joint, age in s)`` of the state joints whose position was older than
        #: ``max_state_age`` for the last step dropped as ``dropped_stale_state``.
        self.last_stale_joints: tuple[tuple[str, float], ...] = ()

    # -- inputs ---------------------------------------------------------------------------
    def add_image(self, stamp: float, image: ImageSource) -> list[RecordedEpisode]:
        """Buffer a camera frame stamped ``stamp`` (s); ``image`` is ``(H, W, 3)`` uint8 RGB or
        a callable returning it (called only if an action is paired with it)."""
        self.counters.images += 1
        stamp = float(stamp)
        i = bisect.bisect_right(self._frame_stamps, stamp)
        self._frame_stamps.insert(i, stamp)
        self._frames.insert(i, image)
        horizon = self._frame_stamps[-1] - self.config.frame_buffer
        cut = bisect.bisect_left(self._frame_stamps, horizon)
        if cut:
            del self._frame_stamps[:cut]
            del self._frames[:cut]
        return []

    def add_instruction(self, stamp: float, text: str) -> list[RecordedEpisode]:
        """Record an ``/rt2/instruction`` text (an empty text stops the policy; ignored here)."""
        text = (text or "").strip()
        if text:
            self._instructions.append((float(stamp), text))
            del self._instructions[:-32]
        return []

    def add_status(self, status: StatusSample) -> list[RecordedEpisode]:
        """Record an episode status; a FINISHED status of the open episode closes it."""
        if status.episode_id and status.instruction.strip():
            self._status_tasks[status.episode_id] = status.instruction.strip()
        if status.state == STATE_FINISHED and status.episode_id:
            self._outcomes[status.episode_id] = OUTCOME_NAMES.get(int(status.outcome), "NONE")
        closed = []
        if self._open is not None and status.episode_id:
            if status.episode_id != self._open.episode_id or status.state == STATE_FINISHED:
                closed = self._close()
        self._trim_maps()
        return closed

    def add_joint_state(self, stamp: float, names, positions) -> list[RecordedEpisode]:
        """Record one ``sensor_msgs/JointState`` stamped ``stamp`` (s): ``names`` and their
        ``positions`` (rad or m). Joints not in :attr:`RecorderConfig.state_joints` and
        non-finite positions are skipped; a message whose ``positions`` do not match ``names``
        in length (e.g. an effort-only message) is ignored and counted. Messages may carry any
        subset of the joints (split publishers) and arrive in any order."""
        self.counters.joint_states += 1
        names, positions = list(names), list(positions)
        if len(names) != len(positions):
            self.counters.joint_states_ignored += 1
            return []
        if not self._joint_stamps:
            return []
        stamp = float(stamp)
        for name, position in zip(names, positions, strict=True):
            stamps = self._joint_stamps.get(name)
            if stamps is None or not math.isfinite(position):
                continue
            i = bisect.bisect_right(stamps, stamp)
            stamps.insert(i, stamp)
            self._joint_positions[name].insert(i, float(position))
        self._newest_joint_stamp = max(self._newest_joint_stamp, stamp)
        # Keep the newest sample at or before the horizon, and all later ones: a lookup at a
        # time before the oldest kept sample finds nothing (missing), never a later state.
        horizon = self._newest_joint_stamp - self.config.frame_buffer
        for name, stamps in self._joint_stamps.items():
            cut = bisect.bisect_right(stamps, horizon) - 1
            if cut > 0:
                del stamps[:cut]
                del self._joint_positions[name][:cut]
        return []

    def state_at(self, stamp: float) -> tuple[np.ndarray | None, tuple[str, ...]]:
        """The :attr:`RecorderConfig.state_joints` positions at time ``stamp`` (s): each
        joint's newest position stamped at or before it, as ``((S,) float32, ())``, or
        ``(None, unusable_joint_names)`` when some joint has none, or only one older than
        :attr:`RecorderConfig.max_state_age` (missing joints first, then stale ones).
        ``(None, ())`` when no state is configured."""
        state, missing, stale = self._lookup_state(stamp)
        if missing or stale:
            return None, (*missing, *(name for name, _ in stale))
        return state, ()

    def _lookup_state(self, stamp: float) -> tuple[np.ndarray | None, tuple[str, ...],
                                                   tuple[tuple[str, float], ...]]:
        """``(state, missing joints, ((stale joint, age s), ...))`` at ``stamp`` (s); state is
        None unless every joint has a fresh position."""
        if not self._joint_stamps:
            return None, (), ()
        stamp = float(stamp)
        max_age = self.config.max_state_age
        values, missing, stale = [], [], []
        for name, stamps in self._joint_stamps.items():
            i = bisect.bisect_right(stamps, stamp + STAMP_TOLERANCE) - 1
            if i < 0:
                missing.append(name)
                continue
            age = max(0.0, stamp - stamps[i])
            if max_age > 0 and age > max_age + STAMP_TOLERANCE:
                stale.append((name, age))
            values.append(self._joint_positions[name][i])
        if missing or stale:
            return None, tuple(missing), tuple(stale)
        return np.array(values, dtype=np.float32), (), ()

    def add_action(self, sample: ActionSample) -> list[RecordedEpisode]:
        """Pair an executed action with its frame; returns the episodes this closes."""
        self.counters.actions += 1
        action = np.asarray(sample.action, dtype=np.float64)
        if action.shape != (ACTION_DIMS,) or not np.all(np.isfinite(action)):
            self.counters.dropped_bad_action += 1
            return []
        if sample.episode_id in self._closed_ids:  # arrived after its episode was closed
            self.counters.dropped_late_action += 1
            return []
        closed: list[RecordedEpisode] = []
        if self._open is not None and self._open.episode_id != sample.episode_id:
            closed += self._close()
        if self._open is None:
            self._open = _OpenEpisode(sample.episode_id, self._latest_instruction(sample.stamp))
        ref = float(sample.stamp)
        i = bisect.bisect_right(self._frame_stamps, ref + STAMP_TOLERANCE) - 1
        exact = i >= 0 and abs(self._frame_stamps[i] - ref) <= STAMP_TOLERANCE
        if (not exact and self.config.subtract_inference_latency
                and math.isfinite(sample.inference_latency)):
            ref -= max(0.0, float(sample.inference_latency))
            i = bisect.bisect_right(self._frame_stamps, ref) - 1
        if i < 0:
            self.counters.dropped_no_frame += 1
        elif ref - self._frame_stamps[i] > self.config.max_frame_age:
            self.counters.dropped_stale_frame += 1
        else:
            state, missing, stale = self._lookup_state(self._frame_stamps[i])
            image = None if missing or stale else self._materialise(self._frames[i])
            if missing:
                self.counters.dropped_no_state += 1
                self.last_missing_joints = missing
            elif stale:
                self.counters.dropped_stale_state += 1
                self.last_stale_joints = stale
            elif image is None:
                self.counters.dropped_bad_frame += 1
            else:
                self._open.steps.append(RecordedStep(
                    image=image, action=action.astype(np.float32), stamp=float(sample.stamp),
                    image_stamp=self._frame_stamps[i], step=int(sample.step), state=state))
                self.counters.paired += 1
        if sample.terminate:
            self._open.terminated = True
            closed += self._close()
        return closed

    def flush(self) -> list[RecordedEpisode]:
        """Close the open episode (end of a bag, node shutdown)."""
        return self._close()

    @property
    def open_episode_id(self) -> str | None:
        """Id of the episode being collected, or None."""
        return self._open.episode_id if self._open is not None else None

    # -- internals ------------------------------------------------------------------------
    def _materialise(self, source: ImageSource) -> np.ndarray | None:
        try:
            image = source() if callable(source) else source
        except ValueError:
            return None
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3 and image.size):
            return None
        if self._image_size is None:
            self._image_size = tuple(image.shape[:2])
        return np.ascontiguousarray(resize_rgb(image, self._image_size))

    def _latest_instruction(self, stamp: float) -> str | None:
        for t, text in reversed(self._instructions):
            if t <= stamp:
                return text
        return None

    def _trim_maps(self) -> None:
        for d in (self._status_tasks, self._outcomes):
            while len(d) > 256:
                d.pop(next(iter(d)))

    def _close(self) -> list[RecordedEpisode]:
        ep, self._open = self._open, None
        if ep is None:
            return []
        if ep.episode_id:
            self._closed_ids.append(ep.episode_id)
        self.counters.episodes_closed += 1
        task = self._status_tasks.get(ep.episode_id) or ep.fallback_task
        episode = RecordedEpisode(ep.episode_id, task or "", ep.steps, ep.terminated,
                                  self._outcomes.get(ep.episode_id, "NONE"))
        if not task:
            self.counters.episodes_dropped_no_task += 1
            return []
        if len(ep.steps) < self.config.min_episode_length:
            self.counters.episodes_dropped_short += 1
            return []
        if self.config.success_only and not episode.succeeded:
            self.counters.episodes_dropped_unsuccessful += 1
            return []
        return [episode]

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(height, width)`` every recorded frame has, once known."""
        return self._image_size


def write_episode(writer, episode: RecordedEpisode) -> int:
    """Append ``episode`` to a :class:`~rt2_policy.data.lerobot_dataset.LeRobotDatasetWriter`
    (timestamps: seconds since the episode's first action; each step's ``state``, if any, as
    ``observation.state``) and return its episode index.

    Raises:
        ValueError: on an empty episode, or frames or states that do not match the writer's
            image shape or ``state_dim`` (create it with ``state_dim=len(state_joints)``,
            ``state_names=state_joints``).
    """
    writer.discard_episode()
    for step, ts in zip(episode.steps, episode.timestamps(), strict=True):
        writer.add_frame(step.image, step.action, episode.task, state=step.state,
                         timestamp=float(ts))
    return writer.save_episode()


def action_from_rt2_msg(msg) -> np.ndarray:
    """``(8,)`` float64 action of an ``rt2_msgs/RT2Action`` (duck-typed; see module doc)."""
    return np.array([
        1.0 if msg.terminate else 0.0,
        msg.delta_position.x, msg.delta_position.y, msg.delta_position.z,
        msg.delta_rotation.x, msg.delta_rotation.y, msg.delta_rotation.z,
        msg.gripper,
    ], dtype=np.float64)


def action_sample_from_msg(msg) -> ActionSample:
    """:class:`ActionSample` of an ``rt2_msgs/RT2Action`` (rclpy or rosbags object)."""
    return ActionSample(stamp=stamp_seconds(msg.header.stamp), episode_id=str(msg.episode_id),
                        step=int(msg.step), action=action_from_rt2_msg(msg),
                        inference_latency=float(msg.inference_latency))


def status_sample_from_msg(msg) -> StatusSample:
    """:class:`StatusSample` of an ``rt2_msgs/EpisodeStatus`` (rclpy or rosbags object)."""
    return StatusSample(stamp=stamp_seconds(msg.header.stamp), episode_id=str(msg.episode_id),
                        instruction=str(msg.instruction), state=int(msg.state),
                        outcome=int(msg.outcome))
