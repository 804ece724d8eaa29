"""Task families, instruction templates, evaluation splits and success checks of the sim.

Task families follow RT-1's skills (Brohan et al., 2022, Table 1) as RT-2 evaluates them
(Brohan et al., 2023, §4.1):

* ``pick``: "pick up the red cube" — the target is lifted and held;
* ``move_near``: "move the red cube near the blue cylinder" — the target rests next to the
  reference and the gripper has let go;
* ``place``: "place the red cube into the white bowl" / "on the black plate" — the target rests
  on or in the container and the gripper has let go;
* ``push``: "push the red cube left" — the target slid at least :data:`PUSH_DISTANCE` in the
  commanded direction (``panda_link0``: left = +y, right = -y, forward = +x, REP 103).

Splits mirror RT-2's generalisation axes (§4.2, Table 4): ``seen`` (the training distribution),
``unseen_objects`` (a held-out colour or a held-out shape as the target), ``unseen_backgrounds``
(held-out table colours and lighting) and ``unseen_instructions`` (held-out paraphrases and
synonyms). Training data comes from ``seen`` with seeds below :data:`EVAL_SEED_START`;
evaluation uses seeds from it on, so the same :func:`sample_episode` serves both.

Every success check is an explicit function of simulator state (:func:`check_success`).
Positions are metres in ``panda_link0`` unless a name says ``world``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from rt2_sim.scene import (
    BOWL_RADIUS,
    CONTAINER_SHAPES,
    PALETTE,
    PLATE_RADIUS,
    SceneConfig,
)
from rt2_sim.vqa_generation import COLOUR_SYNONYMS, SHAPE_SYNONYMS, VERB_SYNONYMS

if TYPE_CHECKING:  # pragma: no cover
    from rt2_sim.simulation import ArmSimulation

#: RT-1 style skills this simulator can set up, check and demonstrate.
TASK_FAMILIES = ("pick", "move_near", "place", "push")
#: Evaluation splits (RT-2 §4.2).
SPLITS = ("seen", "unseen_objects", "unseen_backgrounds", "unseen_instructions")
#: Seeds from here on are evaluation episodes; training demonstrations use smaller seeds.
EVAL_SEED_START = 1_000_000

_RGB = dict(PALETTE)
#: Target/distractor colours of the training distribution.
SEEN_COLOURS = ("red", "green", "blue", "yellow", "orange")
#: Colours that only ``unseen_objects`` uses.
UNSEEN_COLOURS = ("purple",)
#: Object shapes of the training distribution.
SEEN_SHAPES = ("cube", "cylinder")
#: Shapes that only ``unseen_objects`` uses.
UNSEEN_SHAPES = ("sphere",)
#: Container colours (linear RGB).
CONTAINER_COLOURS = {"white": (0.92, 0.92, 0.9), "black": (0.08, 0.08, 0.08),
                     "pink": (0.95, 0.45, 0.65)}
#: Object edge / diameter, metres.
OBJECT_SIZE = 0.04
#: Push success: displacement along the commanded direction, metres.
PUSH_DISTANCE = 0.06
#: Pick success: lift of the target's centre above its start, metres.
LIFT_HEIGHT = 0.05
#: move_near success: horizontal distance between target and reference centres, metres.
NEAR_DISTANCE = 0.10
#: Directions of ``push`` in ``panda_link0`` (REP 103: x forward, y left).
DIRECTIONS = {"left": (0.0, 1.0), "right": (0.0, -1.0), "forward": (1.0, 0.0)}


@dataclass(frozen=True)
class Background:
    """Table, floor and light of an episode.

    Attributes:
        name: label, e.g. ``"oak"``.
        table_rgb: linear RGB in [0, 1] of the table top.
        floor_rgb: linear RGB of the floor.
        light_direction: direction of the key light, world frame, unit-less (normalised).
        light_diffuse: diffuse intensity of the key light, 0..1 per channel (grey).
    """

    name: str
    table_rgb: tuple[float, float, float]
    floor_rgb: tuple[float, float, float]
    light_direction: tuple[float, float, float]
    light_diffuse: float


SEEN_BACKGROUNDS = (
    Background("oak", (0.72, 0.6, 0.45), (0.35, 0.37, 0.4), (-0.2, 0.3, -1.0), 0.6),
    Background("birch", (0.82, 0.74, 0.6), (0.3, 0.3, 0.32), (0.1, 0.2, -1.0), 0.55),
    Background("walnut", (0.5, 0.38, 0.28), (0.4, 0.4, 0.42), (-0.3, -0.1, -1.0), 0.65),
)
UNSEEN_BACKGROUNDS = (
    Background("green_felt", (0.2, 0.45, 0.3), (0.25, 0.25, 0.3), (0.3, -0.3, -1.0), 0.5),
    Background("steel", (0.62, 0.64, 0.68), (0.45, 0.35, 0.3), (0.0, 0.4, -1.0), 0.75),
    Background("dark_slate", (0.28, 0.3, 0.36), (0.5, 0.5, 0.5), (-0.4, 0.0, -1.0), 0.45),
)

#: Seen instruction templates per family ({t}: target name, {r}: reference, {p}: preposition,
#: {d}: direction words).
SEEN_TEMPLATES = {
    "pick": ("pick up the {t}", "pick the {t} up"),
    "move_near": ("move the {t} near the {r}", "move the {t} next to the {r}"),
    "place": ("place the {t} {p} the {r}",),
    "push": ("push the {t} {d}", "push the {t} to the {d}"),
}
#: Held-out paraphrases (``unseen_instructions``), built from synonyms the VQA data teaches.
UNSEEN_TEMPLATES = {
    "pick": tuple(f"{verb} the {{t}}" for verb in VERB_SYNONYMS["pick up"]),
    "move_near": tuple(f"{verb} the {{t}} near the {{r}}" for verb in VERB_SYNONYMS["move"]),
    "place": tuple(f"{verb} the {{t}} {{p}} the {{r}}" for verb in VERB_SYNONYMS["place"]),
    "push": tuple(f"{verb} the {{t}} {{d}}" for verb in VERB_SYNONYMS["push"]),
}
_DIRECTION_WORDS = {"left": "left", "right": "right", "forward": "forward"}
_PREPOSITIONS = {"bowl": "into", "plate": "on"}


@dataclass(frozen=True)
class ObjectSpec:
    """One object or container of an episode.

    Attributes:
        name: name in instructions, e.g. ``"red cube"``.
        colour: colour word.
        shape: one of ``cube``, ``sphere``, ``cylinder`` (objects) or ``bowl``, ``plate``.
        rgb: linear RGB in [0, 1].
        size: edge / diameter of objects, inner diameter of containers, metres.
        kind: ``"object"`` (a free body) or ``"container"`` (static, mocap).
    """

    name: str
    colour: str
    shape: str
    rgb: tuple[float, float, float]
    size: float
    kind: str = "object"


@dataclass(frozen=True)
class Task:
    """What the robot is asked to do.

    Attributes:
        family: one of :data:`TASK_FAMILIES`.
        instruction: the natural-language instruction.
        target: name of the object to act on.
        reference: name of the second object (``move_near``, ``place``), else ``""``.
        direction: ``left``, ``right`` or ``forward`` for ``push``, else ``""``.
        split: one of :data:`SPLITS`.
        seed: the seed the episode was sampled with.
    """

    family: str
    instruction: str
    target: str
    reference: str = ""
    direction: str = ""
    split: str = "seen"
    seed: int = 0

    def to_json(self) -> str:
        """One-line JSON of all fields."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Task:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: on malformed JSON or missing/unknown fields.
        """
        try:
            data = json.loads(text)
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"task JSON: expected Task fields, got {text!r}: {exc}") from None


@dataclass(frozen=True, eq=False)
class EpisodeSpec:
    """Everything needed to set up one episode.

    Attributes:
        task: the task.
        objects: free objects first (target first), then containers.
        background: table, floor and light.
        positions: centres of ``objects`` on the table, ``panda_link0``, shape (N, 3), metres
            (containers: the centre of their base).
    """

    task: Task
    objects: tuple[ObjectSpec, ...]
    background: Background
    positions: np.ndarray

    def object(self, name: str) -> ObjectSpec:
        """The object called ``name``; raises ``KeyError`` when absent."""
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(name)

    def initial_position(self, name: str) -> np.ndarray:
        """Initial centre of ``name`` in ``panda_link0``, shape (3,), metres."""
        for obj, pos in zip(self.objects, self.positions, strict=True):
            if obj.name == name:
                return np.array(pos, dtype=float)
        raise KeyError(name)


#: Scene camera of task episodes: in front of and above the table looking down at the workspace
#: and back at the robot, framed so the gripper is in view from the "ready" pose down to the
#: table and a 4 cm object spans about 5 px of a 96 px policy image (``panda_link0``, metres).
TASK_CAMERA_EYE = (0.95, 0.0, 0.9)
TASK_CAMERA_TARGET = (0.42, 0.0, 0.2)
TASK_CAMERA_FOVY = math.radians(42.0)


def task_scene_config(**overrides) -> SceneConfig:
    """The scene that can hold any episode: 5 object slots, the two containers and the task
    camera; ``overrides`` are :class:`~rt2_sim.scene.SceneConfig` fields."""
    values = {"num_objects": 5, "num_containers": len(CONTAINER_SHAPES),
              "camera_eye": TASK_CAMERA_EYE, "camera_target": TASK_CAMERA_TARGET,
              "camera_fovy": TASK_CAMERA_FOVY}
    values.update(overrides)
    return SceneConfig(**values)


def templates(split: str) -> dict[str, tuple[str, ...]]:
    """Instruction templates per family used by ``split``."""
    _check_split(split)
    return UNSEEN_TEMPLATES if split == "unseen_instructions" else SEEN_TEMPLATES


def instruction_vocabulary() -> list[str]:
    """Every word an instruction of any split may contain, sorted."""
    words: set[str] = set()
    for table in (SEEN_TEMPLATES, UNSEEN_TEMPLATES):
        for family_templates in table.values():
            for template in family_templates:
                words.update(re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", template)))
    words.update(_PREPOSITIONS.values())
    words.update(_DIRECTION_WORDS.values())
    for colour in (*SEEN_COLOURS, *UNSEEN_COLOURS, *CONTAINER_COLOURS):
        words.add(colour)
        words.update(COLOUR_SYNONYMS.get(colour, ()))
    for shape in (*SEEN_SHAPES, *UNSEEN_SHAPES, *CONTAINER_SHAPES):
        words.add(shape)
        words.update(SHAPE_SYNONYMS.get(shape, ()))
    return sorted(words)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")


def _object(colour: str, shape: str) -> ObjectSpec:
    return ObjectSpec(f"{colour} {shape}", colour, shape, _RGB[colour], OBJECT_SIZE)


def _container(colour: str, shape: str) -> ObjectSpec:
    size = 2 * (BOWL_RADIUS if shape == "bowl" else PLATE_RADIUS)
    return ObjectSpec(f"{colour} {shape}", colour, shape, CONTAINER_COLOURS[colour], size,
                      "container")


def sample_episode(seed: int, split: str = "seen", family: str | None = None) -> EpisodeSpec:
    """Sample objects, layout, background and instruction of one episode.

    Args:
        seed: non-negative int; the only source of randomness.
        split: one of :data:`SPLITS`.
        family: one of :data:`TASK_FAMILIES`, or None to draw one.

    Returns:
        The episode. The target is ``objects[0]``; 2-3 distractor objects follow, then 0-1
        containers (always one for ``place``).

    Raises:
        ValueError: on an unknown split or family or a negative seed.
    """
    _check_split(split)
    if family is not None and family not in TASK_FAMILIES:
        raise ValueError(f"family: expected one of {TASK_FAMILIES} or None, got {family!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    rng = np.random.default_rng([int(seed), SPLITS.index(split), 7])
    if family is None:
        family = TASK_FAMILIES[int(rng.integers(len(TASK_FAMILIES)))]

    # Objects: a target (held-out colour or shape in unseen_objects) and distinct distractors.
    if split == "unseen_objects":
        if rng.random() < 0.5:
            target = _object(str(rng.choice(UNSEEN_COLOURS)), str(rng.choice(SEEN_SHAPES)))
        else:
            target = _object(str(rng.choice(SEEN_COLOURS)), str(rng.choice(UNSEEN_SHAPES)))
    else:
        target = _object(str(rng.choice(SEEN_COLOURS)), str(rng.choice(SEEN_SHAPES)))
    n_distractors = int(rng.integers(2, 4))
    objects = [target]
    # Distractors never share the target's colour, so every name in an instruction is unique.
    colours = [c for c in SEEN_COLOURS if c != target.colour]
    rng.shuffle(colours)
    for colour in colours[:n_distractors]:
        objects.append(_object(colour, str(rng.choice(SEEN_SHAPES))))
    containers: list[ObjectSpec] = []
    if family == "place" or rng.random() < 0.4:
        shape = CONTAINER_SHAPES[int(rng.integers(len(CONTAINER_SHAPES)))]
        colour = str(rng.choice(sorted(CONTAINER_COLOURS)))
        containers.append(_container(colour, shape))

    reference = ""
    direction = ""
    if family == "move_near":
        reference = objects[1 + int(rng.integers(len(objects) - 1))].name
    elif family == "place":
        reference = containers[0].name
    elif family == "push":
        direction = str(rng.choice(sorted(DIRECTIONS)))

    all_objects = tuple(objects + containers)
    positions = _sample_layout(rng, all_objects, family, direction, reference)

    backgrounds = UNSEEN_BACKGROUNDS if split == "unseen_backgrounds" else SEEN_BACKGROUNDS
    background = backgrounds[int(rng.integers(len(backgrounds)))]

    template = str(rng.choice(templates(split)[family]))
    target_words = target.name
    reference_words = reference
    if split == "unseen_instructions":
        target_words = _synonym_name(rng, target)
        if reference:
            reference_words = _synonym_name(rng, next(o for o in all_objects
                                                      if o.name == reference))
    preposition = _PREPOSITIONS.get(reference.split()[-1], "") if family == "place" else ""
    instruction = template.format(t=target_words, r=reference_words, p=preposition,
                                  d=_DIRECTION_WORDS.get(direction, ""))
    task = Task(family, " ".join(instruction.split()), target.name, reference, direction,
                split, int(seed))
    return EpisodeSpec(task, all_objects, background, positions)


def _synonym_name(rng: np.random.Generator, obj: ObjectSpec) -> str:
    colour, shape = obj.colour, obj.shape
    if rng.random() < 0.5 and COLOUR_SYNONYMS.get(colour):
        colour = str(rng.choice(COLOUR_SYNONYMS[colour]))
    if rng.random() < 0.5 and SHAPE_SYNONYMS.get(shape):
        shape = str(rng.choice(SHAPE_SYNONYMS[shape]))
    return f"{colour} {shape}"


#: Reachable table area for object centres, panda_link0, metres.
_X_RANGE = (0.36, 0.58)
_Y_RANGE = (-0.2, 0.2)


def _sample_layout(rng: np.random.Generator, objects: tuple[ObjectSpec, ...], family: str,
                   direction: str, reference: str, max_tries: int = 5000) -> np.ndarray:
    """Rejection-sample centres with clearance (wider around containers and push paths)."""
    for _ in range(max_tries):
        xy: list[np.ndarray] = []
        ok = True
        for i, obj in enumerate(objects):
            radius = obj.size / 2 if obj.kind == "container" else OBJECT_SIZE
            placed = False
            for _ in range(200):
                if obj.kind == "container":
                    p = np.array([rng.uniform(0.4, 0.56), rng.uniform(-0.17, 0.17)])
                else:
                    p = np.array([rng.uniform(*_X_RANGE), rng.uniform(*_Y_RANGE)])
                if i == 0 and family == "push":
                    d = np.array(DIRECTIONS[direction])
                    end = p + 0.12 * d
                    if not (0.33 <= end[0] <= 0.66 and abs(end[1]) <= 0.26):
                        continue
                clear = True
                for j, q in enumerate(xy):
                    other = objects[j]
                    other_r = other.size / 2 if other.kind == "container" else OBJECT_SIZE
                    need = radius + other_r + 0.03
                    if np.linalg.norm(p - q) < need:
                        clear = False
                        break
                    if family == "push" and (i == 0 or j == 0):
                        start, path = (p, q) if i == 0 else (q, p)
                        if _segment_distance(path, start - 0.07 * np.array(
                                DIRECTIONS[direction]), start + 0.14 * np.array(
                                DIRECTIONS[direction])) < 0.07 + (other_r if i == 0 else radius):
                            clear = False
                            break
                if clear:
                    xy.append(p)
                    placed = True
                    break
            if not placed:
                ok = False
                break
        if ok:
            z = [OBJECT_SIZE / 2 if o.kind == "object" else 0.0 for o in objects]
            return np.array([[p[0], p[1], zz] for p, zz in zip(xy, z, strict=True)])
    raise RuntimeError(f"could not lay out {len(objects)} objects for {family}")


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(point - a, ab) / np.dot(ab, ab), 0.0, 1.0))
    return float(np.linalg.norm(point - (a + t * ab)))


# ---------------------------------------------------------------------- success checks
def target_state(sim: ArmSimulation, spec: EpisodeSpec) -> dict[str, float]:
    """Measurements the success checks use, all metres in ``panda_link0``.

    Keys: ``lift`` (target z above its start), ``displacement`` (along the push direction, or
    horizontal distance moved), ``reference_distance`` (horizontal distance to the reference),
    ``tcp_distance`` (target centre to the tcp), ``resting`` (1.0 when the target lies on the
    table or in a container, not held), ``gripper`` (last closure command).
    """
    base = sim.base_pose()[0]
    task = spec.task
    positions = sim.object_positions()
    target = positions[task.target] - base
    start = spec.initial_position(task.target)
    tcp = sim.ee_pose()[0]
    out = {
        "lift": float(target[2] - start[2]),
        "displacement": float(np.linalg.norm(target[:2] - start[:2])),
        "tcp_distance": float(np.linalg.norm(target - tcp)),
        "gripper": float(sim.gripper_command),
        "target_z": float(target[2]),
    }
    if task.direction:
        out["displacement"] = float(np.dot(target[:2] - start[:2], DIRECTIONS[task.direction]))
    if task.reference:
        ref = positions[task.reference] - base
        out["reference_distance"] = float(np.linalg.norm(target[:2] - ref[:2]))
    return out


def check_success(sim: ArmSimulation, spec: EpisodeSpec) -> bool:
    """True when the episode's task holds in the current simulator state.

    * pick: target lifted >= :data:`LIFT_HEIGHT` and within 6 cm of the tcp (held).
    * move_near: target within :data:`NEAR_DISTANCE` (horizontal) of the reference, back on the
      table (centre below 3 cm above its resting height) and the gripper open.
    * place: target centre inside the container's radius, not above 6 cm over the table
      (resting on/in it) and the gripper open.
    * push: target moved >= :data:`PUSH_DISTANCE` along the direction, still on the table.
    """
    state = target_state(sim, spec)
    family = spec.task.family
    on_table = abs(state["lift"]) < 0.03
    released = state["gripper"] < 0.5
    if family == "pick":
        return state["lift"] >= LIFT_HEIGHT and state["tcp_distance"] < 0.06
    if family == "move_near":
        return state["reference_distance"] <= NEAR_DISTANCE and on_table and released
    if family == "place":
        container = spec.object(spec.task.reference)
        inside = state["reference_distance"] <= container.size / 2 - 0.01
        return inside and state["target_z"] < 0.08 and released
    if family == "push":
        return state["displacement"] >= PUSH_DISTANCE and on_table
    raise ValueError(f"family: expected one of {TASK_FAMILIES}, got {family!r}")


def episode_summary(sim: ArmSimulation, spec: EpisodeSpec) -> dict:
    """JSON-able details of the task state (for ``/rt2_sim/task_status``)."""
    state = {k: round(v, 4) for k, v in target_state(sim, spec).items()}
    return {"success": bool(check_success(sim, spec)), "family": spec.task.family,
            "instruction": spec.task.instruction, "split": spec.task.split,
            "seed": spec.task.seed, **state}


__all__ = [
    "Background", "EVAL_SEED_START", "EpisodeSpec", "ObjectSpec", "SPLITS", "TASK_FAMILIES",
    "Task", "check_success", "episode_summary", "instruction_vocabulary", "sample_episode",
    "target_state", "task_scene_config", "templates",
]
