"""VQA examples: the local directory format, its writer and load_vqa (local and Hugging Face)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rt2_policy.data.vqa import (
    VQAWriter,
    load_vqa,
    normalize_answer,
)


def _rgb(value, shape=(6, 8, 3)):
    return np.full(shape, value, dtype=np.uint8)


def test_local_round_trip(tmp_path):
    with VQAWriter(tmp_path / "vqa") as w:
        ref = w.add_image(_rgb(10))
        w.add(ref, "What  colour is the   cube?", "Red.", kind="colour", scene=3)
        w.add(ref, "how many balls are there?", "two")
        ref2 = w.add_image(_rgb(20, (4, 4, 3)))
        w.add(ref2, "describe the scene", "a red cube left of a blue sphere")
    assert ref == "images/000000.png" and ref2 == "images/000001.png"
    lines = [json.loads(x) for x in (tmp_path / "vqa/vqa.jsonl").read_text().splitlines()]
    assert lines[0] == {"image": "images/000000.png", "question": "what colour is the cube?",
                        "answer": "red", "kind": "colour", "scene": 3}
    ds = load_vqa(tmp_path / "vqa")
    assert len(ds) == 3
    ex = ds[2]
    assert ex["image"].dtype == np.uint8 and ex["image"].shape == (4, 4, 3)
    assert int(ex["image"][0, 0, 0]) == 20 and ex["image_path"] == "images/000001.png"
    assert (ex["question"], ex["answer"]) == ("describe the scene",
                                              "a red cube left of a blue sphere")
    assert ds[0]["kind"] == "colour"
    assert ds.texts()[:2] == ["what colour is the cube?", "red"]
    assert [e["answer"] for e in ds[0:2]] == ["red", "two"]


def test_appending_continues_image_numbering(tmp_path):
    with VQAWriter(tmp_path) as w:
        w.add(w.add_image(_rgb(1)), "q one", "a")
    with VQAWriter(tmp_path) as w:
        assert w.add_image(_rgb(2)) == "images/000001.png"
        w.add("images/000001.png", "q two", "b")
    assert [e["answer"] for e in load_vqa(tmp_path)] == ["a", "b"]


@pytest.mark.parametrize(
    ("answer", "match"),
    [("", "non-empty"), ("one two three four five six seven eight nine", "at most 8"),
     ("red, blue", "letters"), ("red?", "letters")],
)
def test_bad_answers_are_rejected(answer, match):
    with pytest.raises(ValueError, match=match):
        normalize_answer(answer)


def test_writer_rejects_bad_images_and_unknown_paths(tmp_path):
    with VQAWriter(tmp_path) as w:
        with pytest.raises(ValueError, match="image"):
            w.add_image(np.zeros((4, 4), np.uint8))
        with pytest.raises(ValueError, match="image"):
            w.add("images/999999.png", "q", "a")
        with pytest.raises(ValueError, match="question"):
            w.add(w.add_image(_rgb(0)), "  ", "a")


def test_broken_local_datasets_raise(tmp_path):
    with VQAWriter(tmp_path) as w:
        w.add(w.add_image(_rgb(0)), "q", "a")
    (tmp_path / "images/000000.png").unlink()
    with pytest.raises(ValueError, match=r"vqa.jsonl:1: image"):
        load_vqa(tmp_path)
    (tmp_path / "vqa.jsonl").write_text('{"image": "x.png", "question": "q"}\n')
    with pytest.raises(ValueError, match="answer"):
        load_vqa(tmp_path)
    (tmp_path / "vqa.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_vqa(tmp_path)


def test_hugging_face_dataset_columns_are_mapped(tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets not installed")
    from PIL import Image

    images = [Image.fromarray(_rgb(v)) for v in (30, 40, 50)]
    ds = datasets.Dataset.from_dict({  # VQAv2-style answers: the most common one is taken
        "image": images,
        "question": ["What is red?", "How many?", "Where?"],
        "answers": [[{"answer": "block"}, {"answer": "Cube"}, {"answer": "cube "}],
                    [{"answer": "two"}, {"answer": "2"}, {"answer": "two"}],
                    [{"answer": "left"}]],
    })
    root = tmp_path / "hf"
    datasets.DatasetDict({"train": ds, "validation": ds.select([0])}).save_to_disk(str(root))
    loaded = load_vqa(root)
    assert len(loaded) == 3
    assert [e["answer"] for e in loaded] == ["cube", "two", "left"]  # "Cube" + "cube" win
    assert loaded[0]["question"] == "what is red?"
    assert loaded[1]["image"].dtype == np.uint8 and int(loaded[1]["image"][0, 0, 0]) == 40
    assert len(load_vqa(root, split="validation")) == 1
    with pytest.raises(ValueError, match="split"):
        load_vqa(root, split="test")
    single = tmp_path / "single"
    datasets.Dataset.from_dict({"img": images[:1], "query": ["q"], "label": ["yes"]}
                               ).save_to_disk(str(single))
    assert load_vqa(single)[0]["answer"] == "yes"
    datasets.Dataset.from_dict({"img": images[:1], "text": ["q"]}).save_to_disk(
        str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="question"):
        load_vqa(tmp_path / "bad")


def test_unknown_name_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_vqa(tmp_path / "does-not-exist")
