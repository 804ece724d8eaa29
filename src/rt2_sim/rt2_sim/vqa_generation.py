"""Vision-language examples about rendered sim scenes (co-fine-tuning data standing in for web VQA).

RT-2 keeps the VLM's web knowledge by co-fine-tuning on vision-language data next to robot
episodes (Brohan et al., 2023, §3.2). No web data is reachable here, so this module renders
sim scenes and asks questions about them: colours, shapes, counts, existence, left/right and
near relations, "where is …", pointing ("point to the red cube" → ``"x y"`` image coordinates
as integers 0..255, the referring-expression/detection outputs PaLI-X and PaliGemma were
pre-trained on), the closest object to the robot, captions ("describe the scene"
→ "a red cube left of a blue sphere"), and questions phrased with synonyms (block ↔ cube,
ball ↔ sphere, crimson ↔ red, lift ↔ pick up, …) whose answers use the canonical words the
robot's instructions use, so the language knowledge reaches the policy.

The question logic is pure (:func:`generate_questions` over :class:`ObjectFact` lists, no
MuJoCo); :func:`scene_facts` projects a simulation's objects into its camera image, and
:func:`generate_dataset` renders scenes and writes the :mod:`rt2_policy.data.vqa` format.

Conventions: positions are metres in ``panda_link0`` (REP 103: x forward, y left, z up);
"left"/"right" are as seen in the camera image (``image_x`` 0 = left edge, 1 = right edge),
and "where is X" answers left / middle / right among the scene's objects; "near" is the 3-D
distance between object centres. Answers are 1-8 lower-case
words without punctuation (the tiny model's word-level tokenizer is built from these texts).

CLI: ``generate_vqa --output DIR --scenes N --per-scene K --seed S`` prints a one-line JSON
summary.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rt2_sim.scene import READY_POSE

#: Canonical colour → synonyms a question may use instead (answers use the canonical word).
COLOUR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("crimson", "scarlet"),
    "green": ("emerald", "lime"),
    "blue": ("azure", "cobalt"),
    "yellow": ("golden", "lemon"),
    "orange": ("amber", "tangerine"),
    "purple": ("violet", "lilac"),
    "white": ("ivory", "snowy"),
    "black": ("ebony", "jet"),
    "pink": ("rose", "magenta"),
    "brown": ("chocolate", "tan"),
    "grey": ("gray", "silver"),
    "cyan": ("turquoise", "teal"),
}
#: Canonical shape → synonyms.
SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "cube": ("block", "box"),
    "sphere": ("ball", "orb"),
    "cylinder": ("can", "tube"),
    "capsule": ("pill",),
    "bowl": ("basin",),
    "plate": ("platter", "saucer"),
    "cup": ("mug",),
}
#: Canonical instruction verb → synonyms (RT-2 instructions: "pick up", "move … near", …).
VERB_SYNONYMS: dict[str, tuple[str, ...]] = {
    "pick up": ("lift", "grab", "grasp", "raise"),
    "push": ("shove", "nudge"),
    "move": ("bring", "carry", "slide"),
    "place": ("put", "set"),
}
#: Verbs whose instructions need no second object ("pick up the red cube").
GROUNDING_VERBS = ("pick up", "push")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten")


@dataclass(frozen=True)
class ObjectFact:
    """One object as the questions see it.

    Attributes:
        colour: canonical colour word, e.g. ``"red"``.
        shape: canonical shape word, e.g. ``"cube"``.
        position: centre in ``panda_link0``, ``(3,)`` metres.
        image_x: horizontal image position of the centre, 0 (left edge) .. 1 (right edge).
        kind: ``"object"`` (can be manipulated) or ``"container"`` (bowl, plate: static).
        image_y: vertical image position of the centre, 0 (top edge) .. 1 (bottom edge), or
            None when unknown (then no pointing question is asked about it).

    Raises:
        ValueError: on an empty word, a non-finite position, image_x or image_y.
    """

    colour: str
    shape: str
    position: tuple[float, float, float]
    image_x: float
    kind: str = "object"
    image_y: float | None = None

    def __post_init__(self) -> None:
        for name in ("colour", "shape"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or value != value.lower():
                raise ValueError(f"{name}: expected a non-empty lower-case word, got {value!r}")
        pos = tuple(float(v) for v in self.position)
        if len(pos) != 3 or not all(math.isfinite(v) for v in pos):
            raise ValueError(f"position: expected 3 finite metres, got {self.position!r}")
        object.__setattr__(self, "position", pos)
        if not math.isfinite(float(self.image_x)):
            raise ValueError(f"image_x: expected a finite number, got {self.image_x!r}")
        if self.image_y is not None and not math.isfinite(float(self.image_y)):
            raise ValueError(f"image_y: expected a finite number or None, got {self.image_y!r}")

    @property
    def name(self) -> str:
        """``"{colour} {shape}"``, e.g. ``"red cube"``."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class QAPair:
    """A question, its short canonical answer and the question family (``kind``)."""

    question: str
    answer: str
    kind: str


@dataclass(frozen=True)
class QuestionConfig:
    """Thresholds that keep questions unambiguous.

    Attributes:
        near_distance: centres closer than this are "near", metres (> 0); pairs between
            this and ``far_factor`` times it are never asked about.
        far_factor: see ``near_distance`` (> 1).
        side_margin: minimum ``image_x`` difference for left/right questions (0..1).
        distance_margin: minimum difference between the closest and second-closest distances
            for "nearest"/"closer" questions, metres (>= 0).
        synonym_rate: probability that an object reference uses synonyms (0..1).

    Raises:
        ValueError: on an out-of-range field, naming it.
    """

    near_distance: float = 0.15
    far_factor: float = 1.5
    side_margin: float = 0.06
    distance_margin: float = 0.03
    synonym_rate: float = 0.5

    def __post_init__(self) -> None:
        if not self.near_distance > 0:
            raise ValueError(f"near_distance: expected > 0 m, got {self.near_distance!r}")
        if not self.far_factor > 1:
            raise ValueError(f"far_factor: expected > 1, got {self.far_factor!r}")
        if not 0 <= self.side_margin < 1:
            raise ValueError(f"side_margin: expected in [0, 1), got {self.side_margin!r}")
        if not self.distance_margin >= 0:
            raise ValueError(f"distance_margin: expected >= 0 m, got {self.distance_margin!r}")
        if not 0 <= self.synonym_rate <= 1:
            raise ValueError(f"synonym_rate: expected in [0, 1], got {self.synonym_rate!r}")


def plural(word: str) -> str:
    """English plural of a shape word: ``box`` → ``boxes``, ``cube`` → ``cubes``."""
    return word + "es" if word.endswith(("x", "s", "sh", "ch")) else word + "s"


def article(word: str) -> str:
    """``"a"`` or ``"an"`` before ``word`` (by its first letter)."""
    return "an" if word[:1] in "aeiou" else "a"


def number_word(n: int) -> str:
    """``3`` → ``"three"`` (digits above ten)."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


class _Scene:
    """Helpers over one scene's objects for the question families."""

    def __init__(self, objects: Sequence[ObjectFact], rng: np.random.Generator,
                 config: QuestionConfig, background: str | None,
                 gripper: tuple[float, float] | None = None) -> None:
        self.objects = list(objects)
        self.gripper = gripper
        self.rng = rng
        self.config = config
        self.background = background
        self.names = Counter(o.name for o in self.objects)
        self.colours = Counter(o.colour for o in self.objects)
        self.shapes = Counter(o.shape for o in self.objects)

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def maybe_syn(self, word: str, table: dict[str, tuple[str, ...]]) -> str:
        if word in table and self.rng.random() < self.config.synonym_rate:
            return self.pick(table[word])
        return word

    def ref(self, obj: ObjectFact) -> str | None:
        """A phrase naming ``obj`` uniquely ("crimson block"), or None when it is not unique."""
        if self.names[obj.name] != 1:
            return None
        return (f"{self.maybe_syn(obj.colour, COLOUR_SYNONYMS)} "
                f"{self.maybe_syn(obj.shape, SHAPE_SYNONYMS)}")

    def unique(self) -> list[ObjectFact]:
        return [o for o in self.objects if self.names[o.name] == 1]

    def dist(self, a: ObjectFact, b: ObjectFact) -> float:
        return float(np.linalg.norm(np.subtract(a.position, b.position)))


# -- question families --------------------------------------------------------------------
# Each takes a _Scene and returns a QAPair or None (not applicable to this scene).

def _q_colour(s: _Scene) -> QAPair | None:
    shapes = [sh for sh, n in s.shapes.items() if n == 1]
    if not shapes:
        return None
    shape = s.pick(shapes)
    obj = next(o for o in s.objects if o.shape == shape)
    word = s.maybe_syn(shape, SHAPE_SYNONYMS)
    q = s.pick((f"what colour is the {word}?", f"what color is the {word}?",
                f"which colour does the {word} have?"))
    return QAPair(q, obj.colour, "colour")


def _q_shape(s: _Scene) -> QAPair | None:
    colours = [c for c, n in s.colours.items() if n == 1]
    if not colours:
        return None
    colour = s.pick(colours)
    obj = next(o for o in s.objects if o.colour == colour)
    word = s.maybe_syn(colour, COLOUR_SYNONYMS)
    q = s.pick((f"what shape is the {word} object?", f"what is the {word} object?"))
    return QAPair(q, obj.shape, "shape")


def _q_count(s: _Scene) -> QAPair | None:
    mode = s.pick(("all", "shape", "colour"))
    if mode == "all":
        return QAPair(s.pick(("how many objects are there?",
                              "how many objects are on the table?")),
                      number_word(len(s.objects)), "count")
    if mode == "shape":
        shape = s.pick(sorted(set(s.shapes) | set(SHAPE_SYNONYMS)))
        word = plural(s.maybe_syn(shape, SHAPE_SYNONYMS))
        return QAPair(f"how many {word} are there?", number_word(s.shapes.get(shape, 0)),
                      "count")
    colour = s.pick(sorted(s.colours))
    word = s.maybe_syn(colour, COLOUR_SYNONYMS)
    return QAPair(f"how many {word} objects are there?", number_word(s.colours[colour]),
                  "count")


def _q_exists(s: _Scene) -> QAPair | None:
    if s.rng.random() < 0.5:
        obj = s.pick(s.objects)
        colour, shape, answer = obj.colour, obj.shape, "yes"
    else:
        colour = s.pick(sorted(COLOUR_SYNONYMS))
        shape = s.pick(sorted(set(s.shapes) | {"cube", "sphere", "cylinder"}))
        answer = "yes" if s.names[f"{colour} {shape}"] else "no"
    c, sh = s.maybe_syn(colour, COLOUR_SYNONYMS), s.maybe_syn(shape, SHAPE_SYNONYMS)
    a = article(c)
    return QAPair(s.pick((f"is there {a} {c} {sh}?", f"is there {a} {c} {sh} on the table?")),
                  answer, "exists")


def _q_left_right(s: _Scene) -> QAPair | None:
    objs = s.unique()
    if len(objs) < 2:
        return None
    i, j = s.rng.choice(len(objs), 2, replace=False)
    a, b = objs[int(i)], objs[int(j)]
    dx = a.image_x - b.image_x
    if abs(dx) < s.config.side_margin:
        return None
    ra, rb = s.ref(a), s.ref(b)
    side = "left" if dx < 0 else "right"
    form = s.pick(("which_side", "yes_no"))
    if form == "which_side":
        return QAPair(f"is the {ra} left or right of the {rb}?", side, "relation")
    asked = s.pick(("left", "right"))
    return QAPair(f"is the {ra} {asked} of the {rb}?", "yes" if asked == side else "no",
                  "relation")


def _q_extreme(s: _Scene) -> QAPair | None:
    if len(s.objects) < 2:
        return None
    side = s.pick(("left", "right"))
    order = sorted(s.objects, key=lambda o: o.image_x, reverse=side == "right")
    first, second = order[0], order[1]
    if abs(first.image_x - second.image_x) < s.config.side_margin or s.names[first.name] != 1:
        return None
    q = s.pick((f"which object is furthest to the {side}?", f"what is on the far {side}?",
                f"which object is the {side}most one?"))
    return QAPair(q, first.name, "where")


def _q_where(s: _Scene) -> QAPair | None:
    """Left / middle / right among the scene's objects (they cluster mid-image)."""
    objs = s.unique()
    if not objs or len(s.objects) < 2:
        return None
    obj = s.pick(objs)
    xs = sorted(o.image_x for o in s.objects if o is not obj)
    m = s.config.side_margin
    if obj.image_x < xs[0] - m:
        answer = "on the left"
    elif obj.image_x > xs[-1] + m:
        answer = "on the right"
    elif len(s.objects) == 3 and xs[0] + m < obj.image_x < xs[-1] - m:
        answer = "in the middle"
    else:
        return None
    return QAPair(s.pick((f"where is the {s.ref(obj)}?",
                          f"where is the {s.ref(obj)} in the image?")), answer, "where")


#: Resolution of pointing answers: image coordinates are written as integers 0..POINT_BINS-1.
POINT_BINS = 256


def point_coordinates(image_x: float, image_y: float) -> tuple[int, int]:
    """Normalised image coordinates (0 = left/top edge, 1 = right/bottom edge) as integers in
    ``[0, POINT_BINS - 1]``, e.g. ``(0.5, 0.25)`` → ``(128, 64)``."""
    def q(v: float) -> int:
        return int(min(POINT_BINS - 1, max(0, math.floor(float(v) * POINT_BINS))))
    return q(image_x), q(image_y)


def point_answer(image_x: float, image_y: float) -> str:
    """``"x y"`` of :func:`point_coordinates`, e.g. ``(0.5, 0.25)`` → ``"128 64"``."""
    x, y = point_coordinates(image_x, image_y)
    return f"{x} {y}"


def _q_point(s: _Scene) -> QAPair | None:
    """Pointing: the image position of a uniquely named object as ``"x y"`` (0..255)."""
    objs = [o for o in s.unique() if o.image_y is not None]
    if not objs:
        return None
    obj = s.pick(objs)
    ref = s.ref(obj)
    q = s.pick((f"point to the {ref}", f"where is the {ref}? answer with a point",
                f"point at the {ref}"))
    return QAPair(q, point_answer(obj.image_x, obj.image_y), "point")


def _q_point_gripper(s: _Scene) -> QAPair | None:
    """Pointing at the robot's gripper (its tool centre point) as ``"x y"`` (0..255)."""
    if s.gripper is None:
        return None
    q = s.pick(("point to the gripper", "where is the gripper? answer with a point",
                "point at the robot hand"))
    return QAPair(q, point_answer(*s.gripper), "point_gripper")


def _q_nearest(s: _Scene) -> QAPair | None:
    objs = s.unique()
    if len(objs) < 3:
        return None
    anchor = s.pick(objs)
    others = sorted((o for o in s.objects if o is not anchor), key=lambda o: s.dist(anchor, o))
    if s.dist(anchor, others[1]) - s.dist(anchor, others[0]) < s.config.distance_margin:
        return None
    if s.names[others[0].name] != 1:
        return None
    q = s.pick((f"which object is nearest to the {s.ref(anchor)}?",
                f"what is closest to the {s.ref(anchor)}?"))
    return QAPair(q, others[0].name, "near")


def _q_near_yes_no(s: _Scene) -> QAPair | None:
    objs = s.unique()
    if len(objs) < 2:
        return None
    i, j = s.rng.choice(len(objs), 2, replace=False)
    a, b = objs[int(i)], objs[int(j)]
    d = s.dist(a, b)
    near = s.config.near_distance
    if d < near:
        answer = "yes"
    elif d > near * s.config.far_factor:
        answer = "no"
    else:
        return None
    q = s.pick((f"is the {s.ref(a)} near the {s.ref(b)}?",
                f"is the {s.ref(a)} next to the {s.ref(b)}?"))
    return QAPair(q, answer, "near")


def _q_closer_to_robot(s: _Scene) -> QAPair | None:
    objs = s.unique()
    if len(objs) < 2:
        return None
    i, j = s.rng.choice(len(objs), 2, replace=False)
    a, b = objs[int(i)], objs[int(j)]
    da, db = (float(np.hypot(*o.position[:2])) for o in (a, b))
    if abs(da - db) < s.config.distance_margin:
        return None
    return QAPair(f"which is closer to the robot the {s.ref(a)} or the {s.ref(b)}?",
                  (a if da < db else b).name, "near")


def _q_caption(s: _Scene) -> QAPair | None:
    q = s.pick(("describe the scene", "what do you see?", "caption the image",
                "what is on the table?"))
    if len(s.objects) == 1:
        return QAPair(q, f"{article(s.objects[0].name)} {s.objects[0].name}", "caption")
    if len(s.objects) == 2 or s.rng.random() < 0.6:
        order = sorted(s.objects, key=lambda o: o.image_x)
        i, j = sorted(int(v) for v in s.rng.choice(len(order), 2, replace=False))
        a, b = order[i], order[j]
        if b.image_x - a.image_x < s.config.side_margin:
            return None
        return QAPair(q, f"{article(a.name)} {a.name} left of {article(b.name)} {b.name}",
                      "caption")
    names = [o.name for o in sorted(s.objects, key=lambda o: o.image_x)]
    answer = " ".join(names[:-1]) + f" and {names[-1]}"
    if len(answer.split()) > 8:
        return QAPair(q, f"{number_word(len(names))} objects on a table", "caption")
    return QAPair(q, answer, "caption")


def _q_grounding(s: _Scene) -> QAPair | None:
    objs = s.unique()
    if not objs:
        return None
    obj = s.pick(objs)
    colour = s.pick(COLOUR_SYNONYMS.get(obj.colour, (obj.colour,)))
    shape = s.pick(SHAPE_SYNONYMS.get(obj.shape, (obj.shape,)))
    if obj.kind == "object" and s.rng.random() < 0.5:  # synonym → canonical instruction
        verb = s.pick(GROUNDING_VERBS)
        verb_word = s.pick(VERB_SYNONYMS[verb])
        return QAPair(f"what should the robot do to {verb_word} the {colour} {shape}?",
                      f"{verb} the {obj.name}", "grounding")
    return QAPair(f"which object is the {colour} {shape}?", obj.name, "grounding")


def _q_synonym(s: _Scene) -> QAPair | None:
    table = s.pick(("colour", "shape", "verb"))
    if table == "colour":
        word = s.pick(sorted(s.colours))
        syn = s.pick(COLOUR_SYNONYMS.get(word, (word,)))
        return QAPair(s.pick((f"what colour is {syn}?", f"what is another word for {syn}?")),
                      word, "synonym")
    if table == "shape":
        word = s.pick(sorted(s.shapes))
        syns = SHAPE_SYNONYMS.get(word)
        if not syns:
            return None
        syn = s.pick(syns)
        if s.rng.random() < 0.5:
            return QAPair(f"what is another word for {syn}?", word, "synonym")
        other = s.pick([sh for sh in SHAPE_SYNONYMS if sh != word])
        asked = s.pick((word, other))
        return QAPair(f"is {article(syn)} {syn} {article(asked)} {asked}?",
                      "yes" if asked == word else "no", "synonym")
    verb = s.pick(sorted(VERB_SYNONYMS))
    syn = s.pick(VERB_SYNONYMS[verb])
    return QAPair(s.pick((f"what does {syn} mean?", f"what is another word for {syn}?")),
                  verb, "synonym")


def _q_background(s: _Scene) -> QAPair | None:
    if not s.background:
        return None
    return QAPair(s.pick(("what is the table made of?", "what does the table look like?")),
                  s.background, "background")


#: Question families and their sampling weights.
QUESTION_FAMILIES: dict[str, tuple[Callable[[_Scene], QAPair | None], float]] = {
    "colour": (_q_colour, 1.0),
    "shape": (_q_shape, 1.0),
    "count": (_q_count, 1.0),
    "exists": (_q_exists, 1.0),
    "left_right": (_q_left_right, 1.5),
    "extreme": (_q_extreme, 1.0),
    "where": (_q_where, 1.0),
    "point": (_q_point, 3.0),
    "point_gripper": (_q_point_gripper, 1.5),
    "nearest": (_q_nearest, 1.0),
    "near": (_q_near_yes_no, 1.0),
    "closer_to_robot": (_q_closer_to_robot, 0.7),
    "caption": (_q_caption, 1.0),
    "grounding": (_q_grounding, 1.0),
    "synonym": (_q_synonym, 0.7),
    "background": (_q_background, 0.3),
}


def generate_questions(objects: Sequence[ObjectFact], k: int, rng: np.random.Generator,
                       config: QuestionConfig | None = None, background: str | None = None,
                       max_tries_per_question: int = 20,
                       gripper: tuple[float, float] | None = None) -> list[QAPair]:
    """Up to ``k`` distinct question/answer pairs about one scene.

    Families are drawn by :data:`QUESTION_FAMILIES` weight; a family that does not apply (a
    reference would be ambiguous, a distance or position too close to a threshold) is
    redrawn. Fewer than ``k`` pairs come back when the scene offers too few distinct ones.

    Args:
        objects: the scene's objects (at least one).
        k: questions wanted (>= 1).
        rng: the only source of randomness.
        config: ambiguity thresholds and synonym rate.
        background: name of the table/background appearance, for a "background" question.
        max_tries_per_question: draws per wanted question before giving up.
        gripper: normalised image position ``(x, y)`` of the gripper's tool centre point
            (0 = left/top edge, 1 = right/bottom), for "point to the gripper"; None = not asked.

    Raises:
        ValueError: when ``objects`` is empty or ``k < 1``.
    """
    if not objects:
        raise ValueError("objects: expected at least one object, got none")
    if k < 1:
        raise ValueError(f"k: expected >= 1, got {k}")
    scene = _Scene(objects, rng, config or QuestionConfig(), background, gripper)
    names = list(QUESTION_FAMILIES)
    weights = np.array([QUESTION_FAMILIES[n][1] for n in names], dtype=float)
    weights /= weights.sum()
    out: dict[str, QAPair] = {}
    for _ in range(k * max_tries_per_question):
        if len(out) >= k:
            break
        family = names[int(rng.choice(len(names), p=weights))]
        qa = QUESTION_FAMILIES[family][0](scene)
        if qa is not None and qa.question not in out:
            out[qa.question] = qa
    return list(out.values())


# -- simulation ---------------------------------------------------------------------------

def _rotation_from_quat_xyzw(q) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def project_to_image(points_world: np.ndarray, camera_position: np.ndarray,
                     camera_quat_xyzw: np.ndarray, fx: float, fy: float, cx: float,
                     cy: float) -> np.ndarray:
    """Pixel coordinates ``(N, 2)`` (u right, v down) of world points seen by a pinhole camera
    whose optical frame (z forward, x right, y down; REP 103) has the given pose in world.
    Points behind the camera get NaN."""
    rot = _rotation_from_quat_xyzw(camera_quat_xyzw)
    cam = (np.asarray(points_world, float) - np.asarray(camera_position, float)) @ rot
    with np.errstate(divide="ignore", invalid="ignore"):
        u = fx * cam[:, 0] / cam[:, 2] + cx
        v = fy * cam[:, 1] / cam[:, 2] + cy
    uv = np.stack([u, v], axis=1)
    uv[cam[:, 2] <= 0] = np.nan
    return uv


def image_points(sim, points_local: np.ndarray) -> np.ndarray | None:
    """Normalised image positions ``(N, 2)`` (x: 0 left .. 1 right, y: 0 top .. 1 bottom) of
    points given in ``panda_link0`` (``(N, 3)``, metres) in ``sim``'s camera, or None when one
    falls outside the image or behind the camera."""
    base_pos, base_quat = sim.base_pose()
    world = np.asarray(points_local, float).reshape(-1, 3) @ _rotation_from_quat_xyzw(
        base_quat).T + base_pos
    return image_points_world(sim, world)


def image_points_world(sim, points_world: np.ndarray) -> np.ndarray | None:
    """:func:`image_points` of points given in the world frame (``(N, 3)``, metres, e.g.
    ``sim.object_positions()``)."""
    world = np.asarray(points_world, float).reshape(-1, 3)
    cam_pos, cam_quat = sim.camera_pose()
    intr = sim.camera_info()
    uv = project_to_image(world, cam_pos, cam_quat, intr.fx, intr.fy, intr.cx, intr.cy)
    if not (np.all(np.isfinite(uv)) and np.all((uv[:, 0] >= 0) & (uv[:, 0] <= intr.width - 1))
            and np.all((uv[:, 1] >= 0) & (uv[:, 1] <= intr.height - 1))):
        return None
    return uv / [intr.width - 1, intr.height - 1]


def scene_facts(sim, objects: Sequence[tuple[str, str, str, str]],
                positions: np.ndarray | None = None) -> list[ObjectFact] | None:
    """:class:`ObjectFact` of each ``(name, colour, shape, kind)`` in a reset simulation.

    Positions are ``positions`` (``(N, 3)``, ``panda_link0``, metres, e.g. an episode spec's)
    when given, else ``sim.object_positions()[name]`` (world) moved into ``panda_link0`` with
    ``sim.base_pose()``. ``image_x`` comes from projecting each centre with
    ``sim.camera_pose()`` and ``sim.camera_info()``. Returns None when a centre falls outside
    the image (questions about it could be wrong).
    """
    if positions is None:
        base_pos, base_quat = sim.base_pose()
        world_positions = sim.object_positions()
        world = np.stack([np.asarray(world_positions[o[0]], float) for o in objects])
        local = (world - base_pos) @ _rotation_from_quat_xyzw(base_quat)
    else:
        local = np.asarray(positions, float).reshape(len(objects), 3)
    xy = image_points(sim, local)
    if xy is None:
        return None
    return [ObjectFact(colour, shape, tuple(p), float(x), kind, float(y))
            for (_, colour, shape, kind), p, (x, y) in zip(objects, local, xy, strict=True)]


class SceneSource:
    """Renders scenes for VQA.

    With :mod:`rt2_sim.tasks` and ``ArmSimulation.reset_episode`` available, scenes are task
    episodes (``tasks.sample_episode(seed, split, family)``: mixed shapes, containers,
    backgrounds) in one simulation built with ``tasks.task_scene_config()``. Otherwise they
    are the plain scene of :class:`rt2_sim.simulation.ArmSimulation` with 3-5 objects of one
    random shape (one simulation per layout, cached).

    With ``arm_pose_rate`` > 0, that share of task scenes shows the arm in a random pose above
    the workspace (:meth:`ArmSimulation.pose_tcp`: the tcp at a random point above it) instead
    of the ready pose, so questions can point at the gripper wherever an episode takes it.

    ``next(seed, split, family)`` returns ``(image (H, W, 3) uint8, facts or None,
    background name or None, gripper (x, y) normalised image position or None)``.
    """

    #: Ranges of the posed tcp in ``panda_link0``, metres.
    TCP_X, TCP_Y, TCP_Z = (0.33, 0.6), (-0.22, 0.22), (0.03, 0.35)

    def __init__(self, arm_pose_rate: float = 0.0) -> None:
        if not 0.0 <= arm_pose_rate <= 1.0:
            raise ValueError(f"arm_pose_rate: expected in [0, 1], got {arm_pose_rate!r}")
        self.arm_pose_rate = float(arm_pose_rate)
        from rt2_sim.simulation import ArmSimulation

        try:
            from rt2_sim import tasks
        except ImportError:
            tasks = None
        if not hasattr(ArmSimulation, "reset_episode"):
            tasks = None
        self.tasks = tasks
        self._sims: dict = {}

    @property
    def mode(self) -> str:
        """``"tasks"`` or ``"plain"`` (see the class doc)."""
        return "tasks" if self.tasks is not None else "plain"

    @property
    def task_simulation(self):
        """The :class:`~rt2_sim.simulation.ArmSimulation` that renders task scenes (the one the
        last :meth:`next` posed, when the task families are available).

        Raises:
            RuntimeError: when ``rt2_sim.tasks`` is not available (plain scenes only).
        """
        if self.tasks is None:
            raise RuntimeError("task scenes: expected rt2_sim.tasks to be importable, got none")
        return self._sim("tasks")

    def _sim(self, key):
        if key not in self._sims:
            from rt2_sim.scene import SceneConfig
            from rt2_sim.simulation import ArmSimulation

            if key == "tasks":
                self._sims[key] = ArmSimulation(self.tasks.task_scene_config())
            else:
                num, shape = key
                self._sims[key] = ArmSimulation(SceneConfig(num_objects=num, object_shape=shape))
        return self._sims[key]

    def next(self, seed: int, split: str = "seen", family: str | None = None):
        if self.tasks is not None:
            spec = self.tasks.sample_episode(seed, split=split, family=family)
            sim = self._sim("tasks")
            sim.reset_episode(spec)
            objects = [(o.name, o.colour, o.shape, getattr(o, "kind", "object"))
                       for o in spec.objects]
            name = getattr(spec.background, "name", spec.background)
            background = str(name).replace("_", " ") if name else None
            positions = np.asarray(spec.positions, float)
            rng = np.random.default_rng([seed, 7])
            if rng.random() < self.arm_pose_rate:
                self._pose_arm(sim, rng)
        else:
            from rt2_sim.scene import OBJECT_SHAPES, PALETTE

            rng = np.random.default_rng(seed)
            num = int(rng.integers(3, min(5, len(PALETTE)) + 1))
            shape = OBJECT_SHAPES[int(rng.integers(len(OBJECT_SHAPES)))]
            sim = self._sim((num, shape))
            info = sim.reset(seed)
            objects = [(n, n.split()[0], n.split()[-1], "object") for n in info.object_names]
            background, positions = None, None
        image = sim.render()
        gripper = image_points(sim, sim.ee_pose()[0][None])
        return (image, scene_facts(sim, objects, positions), background,
                None if gripper is None else tuple(float(v) for v in gripper[0]))

    def _pose_arm(self, sim, rng: np.random.Generator) -> None:
        """The arm posed by inverse kinematics with its tcp at a random point of the space
        episodes move through (over the workspace, 3-35 cm above the table), in view."""
        for _ in range(10):
            tcp = np.array([rng.uniform(*self.TCP_X), rng.uniform(*self.TCP_Y),
                            rng.uniform(*self.TCP_Z)])
            if sim.pose_tcp(tcp) and image_points(sim, sim.ee_pose()[0][None]) is not None:
                return
        sim.pose_arm(np.asarray(READY_POSE, float))

    def close(self) -> None:
        for sim in self._sims.values():
            sim.close()
        self._sims.clear()


def generate_dataset(output, scenes: int, per_scene: int, seed: int = 0, split: str = "seen",
                     family: str | None = None, config: QuestionConfig | None = None,
                     source: SceneSource | None = None, arm_pose_rate: float = 0.0,
                     kinds_kept: Sequence[str] | None = None) -> dict:
    """Render ``scenes`` scenes and write ``per_scene`` questions about each to ``output``
    (:mod:`rt2_policy.data.vqa` format; appended to when it exists).

    Scene ``i`` uses seed ``seed + i``; its questions use ``np.random.default_rng([seed, i])``.
    Scenes with an object outside the image are skipped (counted). ``kinds_kept`` keeps only
    those question families (e.g. ``("point", "point_gripper")`` for a pointing set); scenes
    left without a question are not written.

    Returns:
        Summary: output, mode (tasks or plain), scenes, skipped_scenes, images, examples,
        kinds (examples per family), seconds.

    Raises:
        ValueError: when ``scenes`` or ``per_scene`` is < 1, or on an unknown kind in
            ``kinds_kept``.
    """
    from rt2_policy.data.vqa import VQAWriter

    if scenes < 1 or per_scene < 1:
        raise ValueError(f"scenes, per_scene: expected >= 1, got {scenes}, {per_scene}")
    if kinds_kept is not None:
        unknown = sorted(set(kinds_kept) - set(QUESTION_FAMILIES))
        if unknown or not kinds_kept:
            raise ValueError(f"kinds_kept: expected some of {sorted(QUESTION_FAMILIES)}, "
                             f"got {list(kinds_kept)}")
    started = time.perf_counter()
    own_source = source is None
    source = source or SceneSource(arm_pose_rate)
    kinds: Counter = Counter()
    skipped = 0
    try:
        with VQAWriter(output) as writer:
            for i in range(scenes):
                image, facts, background, gripper = source.next(seed + i, split, family)
                if not facts:
                    skipped += 1
                    continue
                rng = np.random.default_rng([seed, i])
                pairs = generate_questions(facts, per_scene, rng, config, background,
                                           gripper=gripper)
                if kinds_kept is not None:
                    pairs = [qa for qa in pairs if qa.kind in kinds_kept]
                    if not pairs:
                        continue
                ref = writer.add_image(image)
                for qa in pairs:
                    writer.add(ref, qa.question, qa.answer, kind=qa.kind, scene=seed + i)
                    kinds[qa.kind] += 1
            images, examples = writer.num_images, writer.num_examples
    finally:
        if own_source:
            source.close()
    return {"output": str(output), "mode": source.mode, "scenes": scenes,
            "skipped_scenes": skipped, "images": images, "examples": examples,
            "kinds": dict(sorted(kinds.items())),
            "seconds": round(time.perf_counter() - started, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="generate_vqa",
        description="Render sim scenes and write question/answer pairs about them "
                    "(rt2_policy.data.vqa format).")
    parser.add_argument("--output", required=True, help="output directory (appended to)")
    parser.add_argument("--scenes", type=int, default=100, help="scenes to render")
    parser.add_argument("--per-scene", type=int, default=8, help="questions per scene")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    parser.add_argument("--split", default="seen",
                        help="task split for rt2_sim.tasks.sample_episode (when available)")
    parser.add_argument("--family", default=None, help="task family (when available)")
    parser.add_argument("--synonym-rate", type=float, default=0.5,
                        help="probability that an object reference uses synonyms")
    parser.add_argument("--arm-pose-rate", type=float, default=0.5,
                        help="share of scenes showing the arm in a random pose (else ready)")
    parser.add_argument("--kinds", nargs="+", default=None,
                        help="keep only these question families (e.g. point point_gripper)")
    args = parser.parse_args(argv)
    try:
        summary = generate_dataset(args.output, args.scenes, args.per_scene, args.seed,
                                   args.split, args.family,
                                   QuestionConfig(synonym_rate=args.synonym_rate),
                                   arm_pose_rate=args.arm_pose_rate, kinds_kept=args.kinds)
    except (OSError, ValueError) as exc:
        print(f"generate_vqa: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
