"""Map RT-2 action bins (0..255) to vocabulary ids of a VLM's tokenizer, and back.

RT-2 (Brohan et al., 2023, §3.2) outputs actions as ordinary text tokens, and which tokens
depends on the backbone:

``"integer_tokens"``
    PaLI-X: the integers 0..1000 each have their own token, so bin ``b`` is the token ``str(b)``.
    Gemma / Qwen2 / Llama tokenizers split numbers into digits, so this only applies to vocabularies
    that really hold the integers as single tokens (such as :mod:`rt2_policy.tiny_model`'s).
``"least_used"``
    PaLM-E: "symbol tuning" overwrites the 256 *least frequently used* tokens with action bins.
    Frequencies come from a corpus tokenised with the same tokenizer (or a counts array);
    special / added tokens are never chosen. Ties are broken towards the higher id.
``"last_n"``
    OpenVLA (``prismatic/vla/action_tokenizer.py``): the last 256 ids of the vocabulary, bin ``b``
    → id ``vocab_size - 1 - b``.

The mapping is stored next to a checkpoint in ``action_tokenizer_config.json`` together with the
:class:`~rt2_policy.action_tokenizer.ActionTokenizer` bounds (see :func:`save_action_config`),
so a directory holds model + processor + action config.

Nothing in this module imports torch, transformers or rclpy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rt2_policy.action_tokenizer import (
    ACTION_CONFIG_NAME,
    DEFAULT_NUM_BINS,
    ActionTokenizer,
)
from rt2_policy.contract import ACTION_DIMS

#: The token schemes this module implements.
SCHEMES = ("integer_tokens", "least_used", "last_n")

#: Version of the ``action_tokenizer_config.json`` layout.
CONFIG_FORMAT_VERSION = 1


def _special_ids(tokenizer: Any) -> set[int]:
    """Ids of special and added tokens of a Hugging Face tokenizer (never used for actions)."""
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", []) if i is not None}
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(int(i) for i in added)
    return ids


@dataclass(frozen=True)
class ActionTokenMapping:
    """Bijection between action bins ``0..num_bins-1`` and vocabulary ids.

    Attributes:
        scheme: one of :data:`SCHEMES`.
        token_ids: ``token_ids[b]`` is the vocabulary id of bin ``b``; ``num_bins`` distinct
            non-negative ints.
        vocab_size: size of the vocabulary the ids index (ids must be below it), or None.

    Raises:
        ValueError: on an unknown scheme, duplicate / negative / out-of-vocabulary ids.
    """

    scheme: str
    token_ids: tuple[int, ...]
    vocab_size: int | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme: expected one of {SCHEMES}, got {self.scheme!r}")
        ids = np.asarray(self.token_ids)
        if ids.ndim != 1 or ids.size < 2:
            raise ValueError(f"token_ids: expected a 1-D sequence of >= 2 ids, got {ids.shape}")
        if ids.dtype.kind not in "iu":
            raise ValueError(f"token_ids: expected integers, got dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        if ids.min() < 0:
            raise ValueError(f"token_ids: expected non-negative ids, got min {int(ids.min())}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"token_ids: expected {len(ids)} distinct ids, got duplicates")
        if self.vocab_size is not None:
            if int(self.vocab_size) <= 0:
                raise ValueError(f"vocab_size: expected a positive int, got {self.vocab_size}")
            object.__setattr__(self, "vocab_size", int(self.vocab_size))
            if ids.max() >= self.vocab_size:
                raise ValueError(
                    f"token_ids: expected ids < vocab_size={self.vocab_size}, got {int(ids.max())}"
                )
        object.__setattr__(self, "token_ids", tuple(int(i) for i in ids))
        inverse = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
        inverse[ids] = np.arange(len(ids), dtype=np.int64)
        object.__setattr__(self, "_ids", ids)
        object.__setattr__(self, "_inverse", inverse)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def integer_tokens(cls, tokenizer: Any, num_bins: int = DEFAULT_NUM_BINS) -> ActionTokenMapping:
        """PaLI-X scheme: bin ``b`` → the single token spelling ``str(b)``.

        Args:
            tokenizer: a Hugging Face tokenizer (``convert_tokens_to_ids``, ``encode``).

        Raises:
            ValueError: when some ``str(b)`` is not one token of the vocabulary (e.g. Llama,
                Gemma and Qwen2 split numbers into digits; use ``"least_used"``/``"last_n"``).
        """
        unk = getattr(tokenizer, "unk_token_id", None)
        ids: list[int] = []
        missing: list[str] = []
        for b in range(num_bins):
            text = str(b)
            tid = tokenizer.convert_tokens_to_ids(text)
            if tid is None or (unk is not None and tid == unk):
                encoded = tokenizer.encode(text, add_special_tokens=False)
                if len(encoded) == 1 and encoded[0] != unk:
                    tid = encoded[0]
                else:
                    missing.append(text)
                    continue
            ids.append(int(tid))
        if missing:
            shown = ", ".join(missing[:8]) + (" …" if len(missing) > 8 else "")
            raise ValueError(
                f"integer_tokens: expected the tokens '0'..'{num_bins - 1}' in the vocabulary, "
                f"got {len(missing)} missing ({shown}); use scheme 'least_used' or 'last_n'"
            )
        return cls("integer_tokens", tuple(ids), len(tokenizer))

    @classmethod
    def least_used(
        cls,
        tokenizer: Any,
        counts: Sequence[int] | np.ndarray | None = None,
        corpus: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        num_bins: int = DEFAULT_NUM_BINS,
        vocab_size: int | None = None,
    ) -> ActionTokenMapping:
        """PaLM-E symbol-tuning scheme: the ``num_bins`` least-used non-special ids.

        Exactly one of ``counts`` and ``corpus`` is given.

        Args:
            tokenizer: a Hugging Face tokenizer; its special and added tokens are excluded.
            counts: token frequencies, shape ``(vocab_size,)`` (shorter arrays are zero-padded).
            corpus: texts (or a callable returning them) tokenised with ``tokenizer`` without
                special tokens to count frequencies.
            vocab_size: number of candidate ids; default ``len(tokenizer)``.

        Returns:
            bin ``b`` → the ``b``-th smallest selected id (selection: ascending count, ties
            towards the higher id).

        Raises:
            ValueError: when both/neither of counts and corpus are given or too few ids remain.
        """
        if (counts is None) == (corpus is None):
            raise ValueError("least_used: expected exactly one of counts and corpus, got "
                             f"counts={'set' if counts is not None else None}, "
                             f"corpus={'set' if corpus is not None else None}")
        size = int(vocab_size) if vocab_size is not None else len(tokenizer)
        if corpus is not None:
            counts = token_counts(tokenizer, corpus, size)
        freq = np.asarray(counts, dtype=np.int64)
        if freq.ndim != 1 or freq.size > size:
            raise ValueError(f"counts: expected shape (<= {size},), got {freq.shape}")
        freq = np.pad(freq, (0, size - freq.size))
        candidates = np.array(sorted(set(range(size)) - _special_ids(tokenizer)), dtype=np.int64)
        if candidates.size < num_bins:
            raise ValueError(
                f"least_used: expected >= {num_bins} non-special ids, got {candidates.size}"
            )
        # lexsort: last key is primary → ascending count, then descending id.
        order = np.lexsort((-candidates, freq[candidates]))
        chosen = np.sort(candidates[order[:num_bins]])
        return cls("least_used", tuple(int(i) for i in chosen), size)

    @classmethod
    def last_n(
        cls, vocab_size: int, num_bins: int = DEFAULT_NUM_BINS, tokenizer: Any = None
    ) -> ActionTokenMapping:
        """OpenVLA scheme: bin ``b`` → id ``vocab_size - 1 - b``.

        Source: OpenVLA ``prismatic/vla/action_tokenizer.py`` (token = vocab end − bin).

        Raises:
            ValueError: when the vocabulary is too small, or (with ``tokenizer``) when one of the
                ids is a special or added token.
        """
        if vocab_size < num_bins:
            raise ValueError(f"vocab_size: expected >= {num_bins}, got {vocab_size}")
        ids = tuple(int(vocab_size) - 1 - b for b in range(num_bins))
        if tokenizer is not None:
            clash = sorted(set(ids) & _special_ids(tokenizer))
            if clash:
                raise ValueError(
                    f"last_n: expected the last {num_bins} ids to be ordinary tokens, got "
                    f"special/added ids {clash[:8]}"
                )
        return cls("last_n", ids, int(vocab_size))

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Any, scheme: str, num_bins: int = DEFAULT_NUM_BINS, **kwargs: Any
    ) -> ActionTokenMapping:
        """Dispatch to :meth:`integer_tokens`, :meth:`least_used` or :meth:`last_n`.

        ``kwargs`` go to the scheme's constructor (``counts``/``corpus``/``vocab_size``);
        ``last_n`` defaults ``vocab_size`` to ``len(tokenizer)``.

        Raises:
            ValueError: on an unknown scheme or as the chosen constructor.
        """
        if scheme == "integer_tokens":
            return cls.integer_tokens(tokenizer, num_bins, **kwargs)
        if scheme == "least_used":
            return cls.least_used(tokenizer, num_bins=num_bins, **kwargs)
        if scheme == "last_n":
            size = kwargs.pop("vocab_size", None) or len(tokenizer)
            return cls.last_n(size, num_bins, tokenizer=tokenizer, **kwargs)
        raise ValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")

    # ------------------------------------------------------------------ lookups
    @property
    def num_bins(self) -> int:
        """Number of action bins mapped (256 for RT-2)."""
        return len(self.token_ids)

    @property
    def action_token_ids(self) -> np.ndarray:
        """The ids of bins ``0..num_bins-1`` in bin order, shape ``(num_bins,)``, int64 (a copy)."""
        return self._ids.copy()

    def bin_to_token_id(self, bins: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """Vocabulary ids of ``bins`` (any shape), int64 array of the same shape.

        Raises:
            ValueError: on non-integer bins or bins outside ``[0, num_bins - 1]``.
        """
        arr = np.asarray(bins)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"bins: expected integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_bins):
            raise ValueError(
                f"bins: expected values in [0, {self.num_bins - 1}], got {arr.tolist()}"
            )
        return self._ids[arr.astype(np.int64)]

    def token_id_to_bin(self, ids: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """Bins of vocabulary ``ids`` (any shape), int64 array of the same shape.

        Raises:
            ValueError: when an id is not one of :attr:`action_token_ids`.
        """
        arr = np.asarray(ids)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"ids: expected integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        inside = (arr >= 0) & (arr < self._inverse.size)
        bins = np.full(arr.shape, -1, dtype=np.int64)
        bins[inside] = self._inverse[arr[inside]]
        if (bins < 0).any():
            bad = sorted({int(i) for i in arr[bins < 0].ravel()})
            raise ValueError(
                f"ids: expected action token ids ({self.scheme}), got non-action ids {bad[:8]}"
            )
        return bins

    def is_action_token(self, ids: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """Boolean array, same shape as ``ids``: True where the id encodes a bin."""
        arr = np.asarray(ids, dtype=np.int64)
        inside = (arr >= 0) & (arr < self._inverse.size)
        out = np.zeros(arr.shape, dtype=bool)
        out[inside] = self._inverse[arr[inside]] >= 0
        return out

    def allowed_ids_per_step(self) -> list[np.ndarray]:
        """Ids allowed at each of RT-2's 8 decoding steps, for constrained decoding.

        Step 0 (terminate) allows the ids of bins 0 and 1; steps 1..7 allow all ``num_bins``
        ids. Each entry is an int64 array.
        """
        return [self._ids[:2].copy()] + [self._ids.copy() for _ in range(ACTION_DIMS - 1)]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable ``{"scheme", "num_bins", "vocab_size", "token_ids"}``."""
        return {
            "scheme": self.scheme,
            "num_bins": self.num_bins,
            "vocab_size": self.vocab_size,
            "token_ids": list(self.token_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionTokenMapping:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: on missing keys or a ``num_bins`` that disagrees with ``token_ids``.
        """
        for key in ("scheme", "token_ids"):
            if key not in data:
                raise ValueError(f"token mapping: expected key {key!r}, got {sorted(data)}")
        mapping = cls(data["scheme"], tuple(data["token_ids"]), data.get("vocab_size"))
        if "num_bins" in data and int(data["num_bins"]) != mapping.num_bins:
            raise ValueError(
                f"num_bins: expected {mapping.num_bins} (len(token_ids)), got {data['num_bins']}"
            )
        return mapping

    def save_pretrained(
        self, directory: str | Path, action_tokenizer: ActionTokenizer | None = None
    ) -> Path:
        """Write the mapping (and the bounds, if given) to ``action_tokenizer_config.json``.

        An existing ``"action_tokenizer"`` section is kept when ``action_tokenizer`` is None.

        Returns:
            the path written.
        """
        path = Path(directory) / ACTION_CONFIG_NAME
        data: dict[str, Any] = {}
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
        data["format_version"] = CONFIG_FORMAT_VERSION
        data["token_mapping"] = self.to_dict()
        if action_tokenizer is not None:
            data["action_tokenizer"] = action_tokenizer.to_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ActionTokenMapping:
        """Load the ``"token_mapping"`` section of ``directory/action_tokenizer_config.json``.

        Raises:
            FileNotFoundError: when the file is missing.
            ValueError: when it is malformed.
        """
        path = Path(directory) / ACTION_CONFIG_NAME
        data = json.loads(path.read_text(encoding="utf-8"))
        if "token_mapping" not in data:
            raise ValueError(f"{path}: expected a 'token_mapping' section, got {sorted(data)}")
        return cls.from_dict(data["token_mapping"])


def token_counts(
    tokenizer: Any, corpus: Iterable[str] | Callable[[], Iterable[str]], vocab_size: int
) -> np.ndarray:
    """Token frequencies of ``corpus`` under ``tokenizer`` (no special tokens added).

    Returns:
        shape ``(vocab_size,)``, int64; ids at or above ``vocab_size`` are ignored.
    """
    texts = corpus() if callable(corpus) else corpus
    counts = np.zeros(int(vocab_size), dtype=np.int64)
    for text in texts:
        ids = np.asarray(tokenizer.encode(text, add_special_tokens=False), dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < vocab_size)]
        counts += np.bincount(ids, minlength=vocab_size)
    return counts


def save_action_config(
    directory: str | Path, action_tokenizer: ActionTokenizer, mapping: ActionTokenMapping,
    image_position: str | None = None, gripper_state: bool | None = None,
    tcp_position: bool | None = None, chain_of_thought: bool | None = None,
    cot_plan: str | None = None, terminate_threshold: float | None = None,
    grasp_memory: bool | None = None,
) -> Path:
    """Write bounds and token mapping to ``directory/action_tokenizer_config.json``.

    ``image_position`` (``"prefix"``/``"suffix"``, see :func:`rt2_policy.prompts.with_image`)
    is stored as ``{"prompt": {"image_position": ...}}``, ``gripper_state`` (the action prompt
    carries the gripper state, :func:`rt2_policy.prompts.action_prompt`) as
    ``{"prompt": {"gripper_state": ...}}``, ``tcp_position`` (it carries the tool centre
    point's position) as ``{"prompt": {"tcp_position": ...}}``, ``grasp_memory`` (it carries
    whether the episode has grasped something, :mod:`rt2_policy.grasp_memory`) as
    ``{"prompt": {"grasp_memory": ...}}``, ``chain_of_thought`` (every
    robot target of its training began with a plan, RT-2 §4.4: the model must plan before it
    acts) as ``{"prompt": {"chain_of_thought": ...}}``, ``cot_plan`` (what its plans say,
    ``"task"`` or ``"goal"``, :mod:`rt2_policy.plans`) as ``{"prompt": {"cot_plan": ...}}``;
    ``terminate_threshold`` (the probability of terminate this checkpoint's decode asks for,
    :func:`check_terminate_threshold`) as ``{"decoding": {"terminate_threshold": ...}}``;
    None leaves that entry as it is.

    Raises:
        ValueError: when ``mapping.num_bins`` differs from ``action_tokenizer.num_bins``, on
            an unknown ``image_position`` or a threshold outside (0, 1).
    """
    from rt2_policy.prompts import check_image_position

    if mapping.num_bins != action_tokenizer.num_bins:
        raise ValueError(
            f"mapping.num_bins: expected {action_tokenizer.num_bins}, got {mapping.num_bins}"
        )
    if image_position is not None:
        check_image_position(image_position)
    if terminate_threshold is not None:
        check_terminate_threshold(terminate_threshold)
    previous = Path(directory) / ACTION_CONFIG_NAME
    old = json.loads(previous.read_text(encoding="utf-8")) if previous.is_file() else {}
    prompt = old.get("prompt") or {}
    decoding = old.get("decoding") or {}
    path = mapping.save_pretrained(directory, action_tokenizer)
    if image_position is not None:
        prompt["image_position"] = image_position
    if gripper_state is not None:
        prompt["gripper_state"] = bool(gripper_state)
    if tcp_position is not None:
        prompt["tcp_position"] = bool(tcp_position)
    if grasp_memory is not None:
        prompt["grasp_memory"] = bool(grasp_memory)
    if chain_of_thought is not None:
        prompt["chain_of_thought"] = bool(chain_of_thought)
    if cot_plan is not None:
        prompt["cot_plan"] = str(cot_plan)
    if terminate_threshold is not None:
        decoding["terminate_threshold"] = float(terminate_threshold)
    if prompt or decoding:
        data = json.loads(path.read_text(encoding="utf-8"))
        if prompt:
            data["prompt"] = prompt
        if decoding:
            data["decoding"] = decoding
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


#: RT-2's greedy decode: terminate when its probability beats continuing's (§3.2).
DEFAULT_TERMINATE_THRESHOLD = 0.5
#: Highest threshold a ROS parameter or launch setting takes (the range of the policy node's
#: ``terminate_threshold``; :func:`check_terminate_threshold` itself takes any value below 1).
MAX_TERMINATE_THRESHOLD = 0.999


def check_terminate_threshold(threshold: object) -> float:
    """``threshold`` as a float after checking it is a probability in (0, 1).

    The terminate threshold is the probability of the terminate bin (1, among RT-2's two
    terminate bins) that the action decode needs before it ends the episode;
    :data:`DEFAULT_TERMINATE_THRESHOLD` is plain greedy decoding.

    Raises:
        ValueError: "terminate_threshold: expected a probability in (0, 1), got ...".
    """
    if (isinstance(threshold, bool) or not isinstance(threshold, int | float)
            or not 0.0 < float(threshold) < 1.0):
        raise ValueError(f"terminate_threshold: expected a probability in (0, 1), "
                         f"got {threshold!r}")
    return float(threshold)


def stored_terminate_threshold(data: dict) -> float:
    """The terminate threshold a loaded action config asks for (its ``"decoding"`` section),
    :data:`DEFAULT_TERMINATE_THRESHOLD` when the section or the entry is missing.

    Raises:
        ValueError: when the stored value is not a probability in (0, 1).
    """
    value = (data.get("decoding") or {}).get("terminate_threshold", DEFAULT_TERMINATE_THRESHOLD)
    return check_terminate_threshold(value)


def load_image_position(directory: str | Path) -> str:
    """The stored ``image_position`` of ``directory``'s action config, ``"prefix"`` when the
    file or the section is missing (checkpoints written before it existed)."""
    path = Path(directory) / ACTION_CONFIG_NAME
    if not path.is_file():
        return "prefix"
    return stored_image_position(json.loads(path.read_text(encoding="utf-8")))


def stored_image_position(data: dict) -> str:
    """The ``image_position`` of a loaded action config, ``"prefix"`` when the ``"prompt"``
    section is missing."""
    return str(_prompt_setting(data, "image_position", "prefix"))


def stored_gripper_state(data: dict) -> bool:
    """Whether a loaded action config's model reads the gripper state in its action prompt
    (False when the ``"prompt"`` section or the entry is missing)."""
    return bool(_prompt_setting(data, "gripper_state", False))


def load_gripper_state(directory: str | Path) -> bool:
    """:func:`stored_gripper_state` of ``directory``'s action config (False without the file)."""
    return _stored_flag(directory, stored_gripper_state)


def stored_tcp_position(data: dict) -> bool:
    """Whether a loaded action config's model reads the tool centre point's position in its
    action prompt (False when the ``"prompt"`` section or the entry is missing)."""
    return bool(_prompt_setting(data, "tcp_position", False))


def load_tcp_position(directory: str | Path) -> bool:
    """:func:`stored_tcp_position` of ``directory``'s action config (False without the file)."""
    return _stored_flag(directory, stored_tcp_position)


def stored_grasp_memory(data: dict) -> bool:
    """Whether a loaded action config's model reads the episode's grasp memory in its action
    prompt (:mod:`rt2_policy.grasp_memory`; False when the ``"prompt"`` section or the entry
    is missing)."""
    return bool(_prompt_setting(data, "grasp_memory", False))


def load_grasp_memory(directory: str | Path) -> bool:
    """:func:`stored_grasp_memory` of ``directory``'s action config (False without the file)."""
    return _stored_flag(directory, stored_grasp_memory)


def stored_chain_of_thought(data: dict) -> bool:
    """Whether a loaded action config's model was trained to write a plan before every action
    (RT-2 §4.4; False when the ``"prompt"`` section or the entry is missing)."""
    return bool(_prompt_setting(data, "chain_of_thought", False))


def stored_cot_plan(data: dict) -> str:
    """What a loaded action config's model writes in its plans: ``"goal"`` (goal plans with an
    image point, :func:`rt2_policy.plans.goal_plan`), ``"waypoint"`` (goal plans with a point in
    tcp bins) or ``"task"`` (words; also when the entry is missing)."""
    return str(_prompt_setting(data, "cot_plan", "task"))


def _prompt_setting(data: dict, key: str, default: object) -> object:
    """``key`` of a loaded action config's ``"prompt"`` section, ``default`` when the section
    or the entry is missing (checkpoints written before it existed)."""
    return (data.get("prompt") or {}).get(key, default)


def _stored_flag(directory: str | Path, read) -> bool:
    """``read(config)`` of ``directory``'s action config, False without the file."""
    path = Path(directory) / ACTION_CONFIG_NAME
    if not path.is_file():
        return False
    return read(json.loads(path.read_text(encoding="utf-8")))


def load_action_config(directory: str | Path) -> tuple[ActionTokenizer, ActionTokenMapping]:
    """Read what :func:`save_action_config` wrote.

    Raises:
        FileNotFoundError: when ``action_tokenizer_config.json`` is missing.
        ValueError: when it is malformed or the two sections disagree on ``num_bins``.
    """
    action_tokenizer = ActionTokenizer.from_pretrained(directory)
    mapping = ActionTokenMapping.from_pretrained(directory)
    if mapping.num_bins != action_tokenizer.num_bins:
        raise ValueError(
            f"token_mapping.num_bins: expected {action_tokenizer.num_bins}, got {mapping.num_bins}"
        )
    return action_tokenizer, mapping
