"""VQA generation: answers checked against an independent reading of the scene, synonyms,
ambiguity rules, the dataset writer and the camera projection on a rendered scene."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rt2_policy.data.vqa import load_vqa, normalize_answer
from rt2_sim.vqa_generation import (
    COLOUR_SYNONYMS,
    NUMBER_WORDS,
    SHAPE_SYNONYMS,
    VERB_SYNONYMS,
    ObjectFact,
    QuestionConfig,
    generate_dataset,
    generate_questions,
    main,
    plural,
    point_answer,
    project_to_image,
)

COLOUR_OF = {w: c for c, ws in COLOUR_SYNONYMS.items() for w in (c, *ws)}
SHAPE_OF = {w: c for c, ws in SHAPE_SYNONYMS.items() for w in (c, *ws)}
VERB_OF = {w: c for c, ws in VERB_SYNONYMS.items() for w in (c, *ws)}

SCENE = [
    ObjectFact("red", "cube", (0.40, 0.15, 0.02), 0.30, image_y=0.71),
    ObjectFact("blue", "sphere", (0.45, -0.10, 0.02), 0.75, image_y=0.62),
    ObjectFact("green", "cylinder", (0.60, 0.05, 0.02), 0.52, image_y=0.35),
    ObjectFact("yellow", "cube", (0.50, 0.12, 0.03), 0.40),
    ObjectFact("white", "bowl", (0.48, -0.02, 0.0), 0.62, kind="container", image_y=0.55),
]


def _obj(scene, phrase):
    """The object an (optionally synonym) phrase like 'crimson block' names."""
    colour, shape = phrase.split()
    matches = [o for o in scene if o.colour == COLOUR_OF[colour] and o.shape == SHAPE_OF[shape]]
    assert len(matches) == 1, f"{phrase!r} is ambiguous or unknown"
    return matches[0]


def _dist(a, b):
    return float(np.linalg.norm(np.subtract(a.position, b.position)))


def _check(scene, qa):
    """Recompute the answer of ``qa`` from ``scene``; returns True when the form is known."""
    q, a = qa.question, qa.answer
    if m := re.fullmatch(r"(?:what colou?r is the|which colour does the) (\w+)(?: have)?\?", q):
        (obj,) = [o for o in scene if o.shape == SHAPE_OF[m[1]]]
        return a == obj.colour
    if m := re.fullmatch(r"what (?:shape is|is) the (\w+) object\?", q):
        (obj,) = [o for o in scene if o.colour == COLOUR_OF[m[1]]]
        return a == obj.shape
    if re.fullmatch(r"how many objects are (?:there|on the table)\?", q):
        return a == NUMBER_WORDS[len(scene)]
    if m := re.fullmatch(r"how many (\w+) objects are there\?", q):
        return a == NUMBER_WORDS[sum(o.colour == COLOUR_OF[m[1]] for o in scene)]
    if m := re.fullmatch(r"how many (\w+) are there\?", q):
        shape = next(s for s in SHAPE_OF if plural(s) == m[1])
        return a == NUMBER_WORDS[sum(o.shape == SHAPE_OF[shape] for o in scene)]
    if m := re.fullmatch(r"is there an? (\w+) (\w+)(?: on the table)?\?", q):
        found = any(o.colour == COLOUR_OF[m[1]] and o.shape == SHAPE_OF[m[2]] for o in scene)
        return a == ("yes" if found else "no")
    if m := re.fullmatch(r"is the (\w+ \w+) left or right of the (\w+ \w+)\?", q):
        x, y = _obj(scene, m[1]), _obj(scene, m[2])
        return a == ("left" if x.image_x < y.image_x else "right")
    if m := re.fullmatch(r"is the (\w+ \w+) (left|right) of the (\w+ \w+)\?", q):
        x, y = _obj(scene, m[1]), _obj(scene, m[3])
        is_left = x.image_x < y.image_x
        return a == ("yes" if is_left == (m[2] == "left") else "no")
    if m := re.fullmatch(r"(?:which object is furthest to the|what is on the far) (\w+)\?", q) \
            or (m := re.fullmatch(r"which object is the (\w+)most one\?", q)):
        pick = min if m[1] == "left" else max
        return a == pick(scene, key=lambda o: o.image_x).name
    if m := re.fullmatch(r"where is the (\w+ \w+)(?: in the image)?\?", q):
        obj = _obj(scene, m[1])
        others = [o.image_x for o in scene if o is not obj]
        if obj.image_x < min(others):
            return a == "on the left"
        if obj.image_x > max(others):
            return a == "on the right"
        return a == "in the middle"
    if m := re.fullmatch(r"(?:which object is nearest to|what is closest to) the (\w+ \w+)\?", q):
        anchor = _obj(scene, m[1])
        return a == min((o for o in scene if o is not anchor),
                        key=lambda o: _dist(anchor, o)).name
    if m := re.fullmatch(r"is the (\w+ \w+) (?:near|next to) the (\w+ \w+)\?", q):
        return a == ("yes" if _dist(_obj(scene, m[1]), _obj(scene, m[2])) < 0.15 else "no")
    if m := re.fullmatch(r"which is closer to the robot the (\w+ \w+) or the (\w+ \w+)\?", q):
        x, y = _obj(scene, m[1]), _obj(scene, m[2])
        return a == min((x, y), key=lambda o: np.hypot(*o.position[:2])).name
    if re.fullmatch(r"describe the scene|what do you see\?|caption the image|"
                    r"what is on the table\?", q):
        if m := re.fullmatch(r"an? (\w+ \w+) left of an? (\w+ \w+)", a):
            x = next(o for o in scene if o.name == m[1])
            y = next(o for o in scene if o.name == m[2])
            return x.image_x < y.image_x
        names = [o.name for o in sorted(scene, key=lambda o: o.image_x)]
        return a in (" ".join(names[:-1]) + f" and {names[-1]}",
                     f"{NUMBER_WORDS[len(scene)]} objects on a table")
    if m := re.fullmatch(r"which object is the (\w+ \w+)\?", q):
        return a == _obj(scene, m[1]).name
    if m := re.fullmatch(r"what should the robot do to (\w+(?: \w+)?) the (\w+ \w+)\?", q):
        obj = _obj(scene, m[2])
        return obj.kind == "object" and a == f"{VERB_OF[m[1]]} the {obj.name}"
    if m := re.fullmatch(r"(?:what colour is|what is another word for|what does) (\w+)"
                         r"(?: mean)?\?", q):
        return a in (COLOUR_OF.get(m[1]), SHAPE_OF.get(m[1]), VERB_OF.get(m[1]))
    if m := re.fullmatch(r"is an? (\w+) an? (\w+)\?", q):
        return a == ("yes" if SHAPE_OF[m[1]] == m[2] else "no")
    if m := re.fullmatch(r"(?:point to the|point at the|where is the) (\w+ \w+)"
                         r"(?:\? answer with a point)?", q):
        obj = _obj(scene, m[1])
        assert obj.image_y is not None  # objects without image_y are never pointed at
        x, y = (int(v) for v in a.split())
        return (x, y) == (int(obj.image_x * 256), int(obj.image_y * 256))
    if re.fullmatch(r"point to the gripper|where is the gripper\? answer with a point|"
                    r"point at the robot hand", q):
        return a == "128 64"  # FakeSource's gripper at (0.5, 0.25)
    if re.fullmatch(r"what does the table look like\?|what is the table made of\?", q):
        return a == "wooden table"
    return False


def test_every_answer_matches_an_independent_reading_of_the_scene():
    kinds, questions = set(), []
    for seed in range(40):
        pairs = generate_questions(SCENE, 12, np.random.default_rng(seed),
                                   background="wooden table")
        assert len(pairs) == 12 and len({p.question for p in pairs}) == 12
        for qa in pairs:
            assert _check(SCENE, qa), qa
            assert normalize_answer(qa.answer) == qa.answer and len(qa.answer.split()) <= 8
            assert qa.question == qa.question.lower()
            kinds.add(qa.kind)
            questions.append(qa.question)
    for form in ("nearest to|closest to", "closer to the robot", "near the|next to",
                 "left or right of", "furthest to|far |most one", "where is",
                 "what should the robot do", "how many", "is there"):
        assert any(re.search(form, q) for q in questions), form
    assert kinds == {"colour", "shape", "count", "exists", "relation", "where", "point", "near",
                     "caption", "grounding", "synonym", "background"}


def test_synonyms_appear_in_questions_but_never_in_answers():
    pairs = [qa for seed in range(20)
             for qa in generate_questions(SCENE, 12, np.random.default_rng(seed))]
    words = {w for qa in pairs for w in re.findall(r"\w+", qa.question)}
    assert {"crimson", "block", "ball"} & words
    synonyms = {w for ws in (*COLOUR_SYNONYMS.values(), *SHAPE_SYNONYMS.values()) for w in ws}
    for qa in pairs:
        if qa.kind not in ("synonym", "exists"):
            assert not set(qa.answer.split()) & synonyms, qa
    no_syn = generate_questions(SCENE, 12, np.random.default_rng(0),
                                QuestionConfig(synonym_rate=0.0))
    for qa in no_syn:
        if qa.kind in ("colour", "relation", "where", "near"):
            assert not set(re.findall(r"\w+", qa.question)) & synonyms, qa


def test_ambiguous_objects_are_never_referred_to_as_unique():
    twins = [ObjectFact("red", "cube", (0.4, 0.1, 0.02), 0.2),
             ObjectFact("red", "cube", (0.5, -0.1, 0.02), 0.8),
             ObjectFact("blue", "sphere", (0.6, 0.0, 0.02), 0.5)]
    for seed in range(30):
        for qa in generate_questions(twins, 10, np.random.default_rng(seed)):
            for colour, shape in re.findall(r"the (\w+) (\w+)", qa.question):
                if colour in COLOUR_OF and shape in SHAPE_OF:
                    assert (COLOUR_OF[colour], SHAPE_OF[shape]) != ("red", "cube"), qa
            assert _check(twins, qa) or qa.kind in ("caption",), qa
            if qa.kind == "colour":
                assert "cube" not in qa.question and "block" not in qa.question


def test_same_seed_same_questions_and_bad_arguments():
    a = generate_questions(SCENE, 8, np.random.default_rng(3))
    b = generate_questions(SCENE, 8, np.random.default_rng(3))
    assert a == b
    with pytest.raises(ValueError, match="objects"):
        generate_questions([], 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="k"):
        generate_questions(SCENE, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="position"):
        ObjectFact("red", "cube", (0, 0, float("nan")), 0.5)
    with pytest.raises(ValueError, match="colour"):
        ObjectFact("Red", "cube", (0, 0, 0), 0.5)
    with pytest.raises(ValueError, match="synonym_rate"):
        QuestionConfig(synonym_rate=2.0)


class FakeSource:
    """Scene source without MuJoCo: scene 1 has an object out of view (None)."""

    mode = "fake"

    def next(self, seed, split, family):
        image = np.full((8, 8, 3), seed, np.uint8)
        return image, (None if seed == 1 else SCENE), "wooden table", (0.5, 0.25)

    def close(self):
        pass


def test_generate_dataset_writes_the_vqa_format(tmp_path):
    summary = generate_dataset(tmp_path / "vqa", scenes=3, per_scene=5, seed=0,
                               source=FakeSource())
    assert (summary["images"], summary["examples"], summary["skipped_scenes"]) == (2, 10, 1)
    assert sum(summary["kinds"].values()) == 10
    ds = load_vqa(tmp_path / "vqa")
    assert len(ds) == 10
    assert int(ds[9]["image"][0, 0, 0]) == 2 and ds[9]["scene"] == 2
    for i in range(len(ds)):
        assert _check(SCENE, type("QA", (), ds[i])), ds[i]


def test_generate_dataset_keeps_only_the_asked_kinds(tmp_path):
    summary = generate_dataset(tmp_path / "vqa", scenes=3, per_scene=8, seed=0,
                               source=FakeSource(), kinds_kept=("point", "point_gripper"))
    assert summary["examples"] > 0
    assert set(summary["kinds"]) <= {"point", "point_gripper"}
    ds = load_vqa(tmp_path / "vqa")
    assert {ds[i]["kind"] for i in range(len(ds))} <= {"point", "point_gripper"}
    with pytest.raises(ValueError, match="kinds_kept"):
        generate_dataset(tmp_path / "bad", scenes=1, per_scene=1, source=FakeSource(),
                         kinds_kept=("pointing",))


def test_projection_matches_a_pinhole_camera():
    # camera at the origin looking along world +x (optical z), optical x = world -y,
    # optical y = world -z: the rotation columns are the optical axes in world.
    rot = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    w = np.sqrt(1 + np.trace(rot)) / 2
    quat = np.array([(rot[2, 1] - rot[1, 2]) / (4 * w), (rot[0, 2] - rot[2, 0]) / (4 * w),
                     (rot[1, 0] - rot[0, 1]) / (4 * w), w])
    uv = project_to_image(np.array([[2.0, 0.0, 0.0], [2.0, 0.5, 0.25], [-1.0, 0, 0]]),
                          np.zeros(3), quat, fx=100, fy=100, cx=50, cy=40)
    np.testing.assert_allclose(uv[0], [50, 40])
    np.testing.assert_allclose(uv[1], [50 - 100 * 0.25, 40 - 100 * 0.125])  # left and up
    assert np.isnan(uv[2]).all()


def test_rendered_scene_facts_match_the_image(tmp_path, capsys):
    pytest.importorskip("mujoco", reason="mujoco not installed")
    from rt2_sim.vqa_generation import SceneSource

    source = SceneSource(arm_pose_rate=0.5)
    assert source.mode == "tasks"  # rt2_sim.tasks + ArmSimulation.reset_episode are in the tree
    palette = {"red": 0, "green": 1, "blue": 2}
    seen, grippers = [], []
    try:
        for seed in range(2, 9):
            image, facts, background, gripper = source.next(seed)
            # the gripper point (the tcp, between the finger tips) has the white/grey fingers
            # within 14 px (of 224): light grey, unlike the seen tables and objects
            gx, gy = gripper
            u, v = round(gx * (image.shape[1] - 1)), round(gy * (image.shape[0] - 1))
            px = image[max(v - 14, 0):v + 15, max(u - 14, 0):u + 15].reshape(-1, 3).astype(int)
            assert ((px.max(1) - px.min(1) < 20) & (px.min(1) > 100)).any(), (seed, gripper)
            grippers.append(gripper)
            assert image.dtype == np.uint8 and image.shape[2] == 3
            assert facts is not None  # nothing out of view
            assert isinstance(background, str) and "_" not in background
            seen += facts
            width = image.shape[1]
            for fact in facts:
                if fact.colour not in palette:
                    continue
                # the object's colour dominates the image column at its projected image_x
                col = int(round(fact.image_x * (width - 1)))
                strip = image[:, max(col - 1, 0):col + 2].reshape(-1, 3).astype(int)
                channel = palette[fact.colour]
                others = [c for c in range(3) if c != channel]
                dominant = ((strip[:, channel] > 100)
                            & (strip[:, channel] > 2 * strip[:, others].max(1)))
                assert dominant.any(), (seed, fact)
                # ... and the pointing answer lands on the object itself
                x, y = (int(v) for v in point_answer(fact.image_x, fact.image_y).split())
                u = round((x + 0.5) / 256 * (width - 1))
                v = round((y + 0.5) / 256 * (image.shape[0] - 1))
                patch = image[max(v - 2, 0):v + 3, max(u - 2, 0):u + 3].reshape(-1, 3).astype(int)
                assert ((patch[:, channel] > 100)
                        & (patch[:, channel] > 2 * patch[:, others].max(1))).any(), (seed, fact)
    finally:
        source.close()
    assert {f.kind for f in seen} == {"object", "container"}  # containers and mixed shapes
    assert len({np.round(g, 2).tobytes() for g in map(np.asarray, grippers)}) >= 3  # posed arm
    assert len({f.shape for f in seen}) >= 3
    assert main(["--output", str(tmp_path / "cli"), "--scenes", "2", "--per-scene", "3",
                 "--seed", "5"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["examples"] == len(load_vqa(tmp_path / "cli")) > 0
