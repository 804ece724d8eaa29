"""Vision-language (VQA) examples for co-fine-tuning: the on-disk format, a writer and loaders.

RT-2 co-fine-tunes on robot data mixed with web vision-language data (Brohan et al., 2023,
§3.2); here generated sim scenes (:mod:`rt2_sim.vqa_generation`) stand in for the web data,
and any local or cached Hugging Face dataset with question/answer/image columns can be mixed in.

Local format (a directory)::

    root/vqa.jsonl        one JSON object per line:
                          {"image": "images/000123.png", "question": "...", "answer": "...",
                           ...optional extra keys (e.g. "kind", "scene")}
    root/images/*.png     RGB frames; paths in vqa.jsonl are relative to root

Texts feed a word-level tokenizer (:mod:`rt2_policy.tiny_model`) whose vocabulary is built from
the datasets, so the writer keeps them lower case with single spaces, and answers short
(:data:`MAX_ANSWER_WORDS` words) with no punctuation (:func:`normalize_answer`).

Examples (``dataset[i]``) are ``{"image": uint8 (H, W, 3) RGB, "question": str,
"answer": str}`` plus the line's extra keys (local format), which is what
:mod:`rt2_policy.training` consumes.

Nothing in this module imports torch, transformers or rclpy; ``datasets`` is imported only
for Hugging Face datasets.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rt2_policy.data.lerobot_dataset import decode_png, encode_png

VQA_FILE = "vqa.jsonl"
IMAGES_DIR = "images"
#: Longest answer the writer accepts, words (the tiny model's answers are short).
MAX_ANSWER_WORDS = 8
#: Column names tried, in order, when mapping a Hugging Face dataset.
QUESTION_COLUMNS = ("question", "query", "prompt", "instruction")
ANSWER_COLUMNS = ("answer", "answers", "multiple_choice_answer", "label", "response", "caption")
IMAGE_COLUMNS = ("image", "img", "images", "image_path", "file_name")

_WS = re.compile(r"\s+")
_ANSWER_OK = re.compile(r"^[a-z0-9' -]+$")


def normalize_question(text: str) -> str:
    """Lower-case, collapse whitespace; ``"What colour is the ball ?"`` → ``"what colour is
    the ball ?"``.

    Raises:
        ValueError: when ``text`` is not a string or is empty.
    """
    if not isinstance(text, str):
        raise ValueError(f"question: expected a string, got {type(text).__name__}")
    out = _WS.sub(" ", text).strip().lower()
    if not out:
        raise ValueError(f"question: expected a non-empty string, got {text!r}")
    return out


def normalize_answer(text: str) -> str:
    """Lower-case, collapse whitespace, drop a trailing full stop; check the answer is short.

    Raises:
        ValueError: when the answer is empty, longer than :data:`MAX_ANSWER_WORDS` words, or
            holds characters other than letters, digits, spaces, hyphens and apostrophes.
    """
    if not isinstance(text, str):
        raise ValueError(f"answer: expected a string, got {type(text).__name__}")
    out = _WS.sub(" ", text).strip().lower().rstrip(".").strip()
    if not out:
        raise ValueError(f"answer: expected a non-empty string, got {text!r}")
    if len(out.split()) > MAX_ANSWER_WORDS:
        raise ValueError(f"answer: expected at most {MAX_ANSWER_WORDS} words, got {out!r}")
    if not _ANSWER_OK.match(out):
        raise ValueError(f"answer: expected letters, digits, spaces, hyphens or apostrophes, "
                         f"got {out!r}")
    return out


class VQAWriter:
    """Writes a local VQA directory (see the module doc).

    Usage::

        with VQAWriter(root) as w:
            ref = w.add_image(rgb)                 # images/000000.png
            w.add(ref, "what colour is the cube?", "red", kind="colour")

    Args:
        root: output directory; created. An existing ``vqa.jsonl`` is appended to (image
            numbering continues after the images already there).

    Raises:
        ValueError: from :meth:`add_image` / :meth:`add` on bad input.
    """

    def __init__(self, root) -> None:
        self.root = Path(root)
        (self.root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        existing = sorted((self.root / IMAGES_DIR).glob("*.png"))
        self._next_image = (max(int(p.stem) for p in existing if p.stem.isdigit()) + 1
                            if any(p.stem.isdigit() for p in existing) else 0)
        self._file = (self.root / VQA_FILE).open("a", encoding="utf-8")
        self.num_examples = 0
        self.num_images = 0

    def add_image(self, image: np.ndarray) -> str:
        """Save an ``(H, W, 3)`` uint8 RGB frame as PNG; returns its path relative to root."""
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3 and image.size):
            raise ValueError(f"image: expected a non-empty (H, W, 3) uint8 array, got "
                             f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', None)}")
        rel = f"{IMAGES_DIR}/{self._next_image:06d}.png"
        self._next_image += 1
        (self.root / rel).write_bytes(encode_png(np.ascontiguousarray(image)))
        self.num_images += 1
        return rel

    def add(self, image: str, question: str, answer: str, **extra: Any) -> dict:
        """Append one example about the image at ``image`` (a path from :meth:`add_image`).

        Extra keyword values must be JSON-serialisable. Returns the written line as a dict.

        Raises:
            ValueError: on a missing image file, an empty question or a bad answer
                (:func:`normalize_answer`).
        """
        if not (self.root / image).is_file():
            raise ValueError(f"image: expected a file under {self.root}, got {image!r}")
        line = {"image": image, "question": normalize_question(question),
                "answer": normalize_answer(answer), **extra}
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.num_examples += 1
        return line

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> VQAWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VQADataset(Sequence):
    """A local VQA directory as a sequence of examples (images decoded on access).

    Raises:
        FileNotFoundError: when ``root/vqa.jsonl`` is missing.
        ValueError: on a malformed line (named by number) or a line whose image is missing.
    """

    def __init__(self, root) -> None:
        self.root = Path(root)
        path = self.root / VQA_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (not a VQA directory)")
        self._items: list[dict] = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: invalid JSON ({exc})") from exc
            if not isinstance(item, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object")
            for key in ("image", "question", "answer"):
                if not isinstance(item.get(key), str) or not item[key].strip():
                    raise ValueError(f"{path}:{n}: {key}: expected a non-empty string, "
                                     f"got {item.get(key)!r}")
            if not (self.root / item["image"]).is_file():
                raise ValueError(f"{path}:{n}: image: {item['image']!r} not found under "
                                 f"{self.root}")
            self._items.append(item)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        item = dict(self._items[i])
        item["image_path"] = item["image"]
        item["image"] = decode_png((self.root / item["image"]).read_bytes())
        return item

    def texts(self) -> list[str]:
        """Every question and answer, in order (no image decoding)."""
        return [t for it in self._items for t in (it["question"], it["answer"])]


def _first_present(columns: Sequence[str], candidates: Sequence[str], what: str) -> str:
    for name in candidates:
        if name in columns:
            return name
    raise ValueError(f"{what}: expected one of the columns {list(candidates)}, "
                     f"got {list(columns)}")


def _pick_answer(value: Any) -> str:
    """One answer from VQA-style answer fields: str, list of str, list of {"answer": str}
    (VQAv2: the most common), {"text": [...]} (SQuAD-like)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("answer", "text"):
            if key in value:
                return _pick_answer(value[key])
    if isinstance(value, (list, tuple)) and value:
        texts = [_WS.sub(" ", _pick_answer(v)).strip().lower() for v in value]
        return Counter(texts).most_common(1)[0][0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"answer: cannot read an answer from {value!r}")


def _to_rgb(value: Any, base: Path | None) -> np.ndarray:
    from PIL import Image

    if isinstance(value, (list, tuple)) and value:  # "images" columns: take the first
        value = value[0]
    if isinstance(value, np.ndarray):
        img = Image.fromarray(value)
    elif isinstance(value, Image.Image):
        img = value
    elif isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        if value.get("bytes"):
            return decode_png(value["bytes"])
        img = Image.open(Path(base or ".") / value["path"])
    elif isinstance(value, str):
        img = Image.open(Path(base or ".") / value)
    else:
        raise ValueError(f"image: cannot read an image from {type(value).__name__}")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


class HFVQADataset(Sequence):
    """A Hugging Face ``datasets.Dataset`` mapped to ``{"image", "question", "answer"}``.

    Answers are taken as they are (lower-cased, whitespace collapsed), not length-checked:
    web answers may be longer than generated ones.

    Raises:
        ValueError: when no question, answer or image column is found.
    """

    def __init__(self, dataset, base: Path | None = None) -> None:
        cols = list(dataset.column_names)
        self.question_column = _first_present(cols, QUESTION_COLUMNS, "question")
        self.answer_column = _first_present(cols, ANSWER_COLUMNS, "answer")
        self.image_column = _first_present(cols, IMAGE_COLUMNS, "image")
        self.dataset = dataset
        self.base = base

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = self.dataset[int(i)]
        return {"image": _to_rgb(row[self.image_column], self.base),
                "question": normalize_question(str(row[self.question_column])),
                "answer": _WS.sub(" ", _pick_answer(row[self.answer_column])).strip().lower()}

    def texts(self) -> list[str]:
        """Every question and answer, in order (no image decoding)."""
        out = []
        for q, a in zip(self.dataset[self.question_column], self.dataset[self.answer_column],
                        strict=True):
            out += [normalize_question(str(q)), _WS.sub(" ", _pick_answer(a)).strip().lower()]
        return out


def load_vqa(path_or_hf_name, split: str = "train") -> Sequence:
    """Open VQA examples from a local directory or a Hugging Face dataset.

    Args:
        path_or_hf_name: a local VQA directory (holding ``vqa.jsonl``); a directory written by
            ``datasets`` ``save_to_disk`` (a Dataset or DatasetDict); or a Hub id / local
            dataset script directory loadable by ``datasets.load_dataset`` from the local
            cache (set ``HF_DATASETS_OFFLINE=1`` where the Hub is unreachable).
        split: the split of a DatasetDict / ``load_dataset`` (ignored for the local format).

    Returns:
        A sequence of ``{"image": uint8 (H, W, 3), "question": str, "answer": str, ...}``.

    Raises:
        FileNotFoundError: when the path is not a VQA directory and ``datasets`` is not
            installed or cannot find the dataset.
        ValueError: on a malformed dataset or a missing split / column.
    """
    path = Path(str(path_or_hf_name))
    if (path / VQA_FILE).is_file():
        return VQADataset(path)
    try:
        import datasets
    except ImportError as exc:
        raise FileNotFoundError(f"{path_or_hf_name}: no {VQA_FILE} there, and the "
                                f"'datasets' package is not installed") from exc
    if path.is_dir() and ((path / "dataset_info.json").is_file()
                          or (path / "dataset_dict.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"split: expected one of {list(loaded)}, got {split!r}")
            loaded = loaded[split]
        return HFVQADataset(loaded, base=path)
    try:
        loaded = datasets.load_dataset(str(path_or_hf_name), split=split)
    except FileNotFoundError:
        raise
    except Exception as exc:  # offline / not cached / unknown id: ConnectionError, DatasetNotFound…
        raise FileNotFoundError(f"{path_or_hf_name}: not a VQA directory, and datasets could "
                                f"not load it ({type(exc).__name__}: {exc})") from exc
    return HFVQADataset(loaded, base=path if path.is_dir() else None)
