"""RT-2 action discretisation: continuous end-effector deltas ↔ 8 integer bins.

RT-2 (Brohan et al., 2023, "RT-2: Vision-Language-Action Models Transfer Web Knowledge to
Robotic Control", §3.2 "Robot-Action Fine-tuning") represents one action as 8 integers::

    terminate Δx Δy Δz Δroll Δpitch Δyaw gripper      e.g. "1 128 91 241 5 101 127 217"

``terminate`` is a discrete flag (0 = continue, 1 = episode done); each of the 7 continuous
dimensions is discretised *uniformly* into 256 bins over a fixed per-dimension range. The
mapping of those 8 integers to vocabulary tokens lives in :mod:`rt2_policy.token_mapping`.

Conventions used here (documented, not guessed from the paper, which leaves them open):

* bin ``b`` of a dimension with range ``[low, high]`` covers ``[low + b·w, low + (b+1)·w)`` with
  ``w = (high - low) / num_bins``; encoding is ``floor((v - low) / w)`` clamped to
  ``[0, num_bins - 1]`` (values outside the range saturate at bin 0 / ``num_bins - 1``);
* decoding returns the bin *centre* ``low + (b + 0.5)·w``, so an in-range value survives a round
  trip with an error of at most ``w / 2``.

OpenVLA (``prismatic/vla/action_tokenizer.py``) instead uses ``np.linspace(-1, 1, 256)`` edges
over normalised actions; the ranges here are physical per-step limits instead (metres, radians).

Nothing in this module imports torch, transformers or rclpy.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rt2_policy.contract import ACTION_DIM_NAMES, ACTION_DIMS, RobotAction

#: File name of the action configuration stored next to a checkpoint (bounds + token mapping).
ACTION_CONFIG_NAME = "action_tokenizer_config.json"

#: Default number of bins per continuous dimension (RT-2 §3.2: 256).
DEFAULT_NUM_BINS = 256

_INT_RE = re.compile(r"^[0-9]+$")


def _as_triple(name: str, value: Any) -> tuple[float, float, float]:
    """Coerce ``value`` into a tuple of 3 finite floats, else raise ValueError."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected 3 numbers, got {value!r}") from exc
    if arr.ndim == 0:
        arr = np.full(3, float(arr))
    if arr.shape != (3,):
        raise ValueError(f"{name}: expected 3 numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite numbers, got {arr.tolist()}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class ActionBounds:
    """Per-step ranges of RT-2's 7 continuous action dimensions.

    All ranges apply to *one control step* (one action), in the command frame of
    :class:`rt2_policy.contract.RobotAction` (REP 103: x forward, y left, z up).

    Attributes:
        position_low: lower bound of (Δx, Δy, Δz), metres; a scalar is broadcast to 3 axes.
        position_high: upper bound of (Δx, Δy, Δz), metres.
        rotation_low: lower bound of (Δroll, Δpitch, Δyaw), radians.
        rotation_high: upper bound of (Δroll, Δpitch, Δyaw), radians.
        gripper_low: gripper value of bin 0's lower edge (0.0 = fully open).
        gripper_high: gripper value of the last bin's upper edge (1.0 = fully closed).

    The defaults (±5 cm and ±0.25 rad per step, gripper in [0, 1]) suit a 3–10 Hz controller of
    a 7-DoF arm; RT-2 §3.2 does not publish its ranges.

    Raises:
        ValueError: when a bound is not finite, not 3 numbers, or ``low >= high``.
    """

    position_low: tuple[float, float, float] = (-0.05, -0.05, -0.05)
    position_high: tuple[float, float, float] = (0.05, 0.05, 0.05)
    rotation_low: tuple[float, float, float] = (-0.25, -0.25, -0.25)
    rotation_high: tuple[float, float, float] = (0.25, 0.25, 0.25)
    gripper_low: float = 0.0
    gripper_high: float = 1.0

    def __post_init__(self) -> None:
        for name in ("position_low", "position_high", "rotation_low", "rotation_high"):
            object.__setattr__(self, name, _as_triple(name, getattr(self, name)))
        for name in ("gripper_low", "gripper_high"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: expected a number, got {value!r}") from exc
            if not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite number, got {value}")
            object.__setattr__(self, name, value)
        low, high = self.low, self.high
        for i in range(7):
            if not low[i] < high[i]:
                dim = ACTION_DIM_NAMES[i + 1]
                raise ValueError(
                    f"{dim}: expected low < high, got low={low[i]!r}, high={high[i]!r}"
                )

    @property
    def low(self) -> np.ndarray:
        """Lower bounds of the 7 continuous dims (Δxyz m, Δrpy rad, gripper), shape ``(7,)``."""
        return np.array([*self.position_low, *self.rotation_low, self.gripper_low])

    @property
    def high(self) -> np.ndarray:
        """Upper bounds of the 7 continuous dims, shape ``(7,)``, float64."""
        return np.array([*self.position_high, *self.rotation_high, self.gripper_high])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (lists of floats); inverse of :meth:`from_dict`."""
        return {
            "position_low": list(self.position_low),
            "position_high": list(self.position_high),
            "rotation_low": list(self.rotation_low),
            "rotation_high": list(self.rotation_high),
            "gripper_low": self.gripper_low,
            "gripper_high": self.gripper_high,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionBounds:
        """Build from :meth:`to_dict` output; missing keys take defaults.

        Raises:
            ValueError: on unknown keys or invalid values.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ActionBounds: expected keys from {sorted(known)}, got {unknown}")
        return cls(**dict(data))


@dataclass(frozen=True)
class ActionTokenizer:
    """Uniform discretisation of RT-2 actions into 8 integer bins (Brohan et al. 2023, §3.2).

    Dimension order (:data:`rt2_policy.contract.ACTION_DIM_NAMES`): terminate, Δx, Δy, Δz,
    Δroll, Δpitch, Δyaw, gripper. ``terminate`` is discrete (bin 0 or 1); every other dimension
    ``d`` uses ``num_bins`` uniform bins over ``[bounds.low[d-1], bounds.high[d-1]]``.

    Attributes:
        bounds: the per-step ranges of the 7 continuous dimensions.
        num_bins: bins per continuous dimension (RT-2: 256); at least 2.

    Raises:
        ValueError: on a ``num_bins`` below 2 or a ``bounds`` that is not :class:`ActionBounds`.
    """

    bounds: ActionBounds = ActionBounds()
    num_bins: int = DEFAULT_NUM_BINS

    def __post_init__(self) -> None:
        if not isinstance(self.bounds, ActionBounds):
            raise ValueError(
                f"bounds: expected ActionBounds, got {type(self.bounds).__name__}"
            )
        if isinstance(self.num_bins, bool) or not isinstance(self.num_bins, (int, np.integer)):
            raise ValueError(f"num_bins: expected an int, got {self.num_bins!r}")
        if self.num_bins < 2:
            raise ValueError(f"num_bins: expected >= 2, got {self.num_bins}")
        object.__setattr__(self, "num_bins", int(self.num_bins))

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def _continuous_index(dim: int | str) -> int:
        """Index 0..6 into ``bounds.low`` for action dim ``dim`` (1..7 or its name)."""
        if isinstance(dim, str):
            if dim not in ACTION_DIM_NAMES:
                raise ValueError(f"dim: expected one of {ACTION_DIM_NAMES}, got {dim!r}")
            dim = ACTION_DIM_NAMES.index(dim)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise ValueError(f"dim: expected an int or a name, got {dim!r}")
        if dim == 0:
            raise ValueError("dim: expected a continuous dimension (1..7), got 0 (terminate)")
        if not 1 <= dim < ACTION_DIMS:
            raise ValueError(f"dim: expected 1..{ACTION_DIMS - 1}, got {dim}")
        return int(dim) - 1

    @property
    def bin_widths(self) -> np.ndarray:
        """Bin width of each continuous dim, shape ``(7,)``, float64, in that dim's unit."""
        return (self.bounds.high - self.bounds.low) / self.num_bins

    def bin_width(self, dim: int | str) -> float:
        """Width of one bin of action dim ``dim`` (1..7 or a name), metres/radians/unitless.

        Raises:
            ValueError: for dim 0 (terminate is discrete) or an unknown dim.
        """
        return float(self.bin_widths[self._continuous_index(dim)])

    def bin_edges(self, dim: int | str) -> np.ndarray:
        """Edges of the bins of action dim ``dim``, shape ``(num_bins + 1,)``, float64, ascending.

        Bin ``b`` covers ``[edges[b], edges[b + 1])``; the last bin also contains ``edges[-1]``.

        Raises:
            ValueError: for dim 0 (terminate is discrete) or an unknown dim.
        """
        i = self._continuous_index(dim)
        return np.linspace(self.bounds.low[i], self.bounds.high[i], self.num_bins + 1)

    def bin_centers(self, dim: int | str) -> np.ndarray:
        """Decoded value of every bin of ``dim``, shape ``(num_bins,)``, float64."""
        edges = self.bin_edges(dim)
        return 0.5 * (edges[:-1] + edges[1:])

    # ------------------------------------------------------------------ encode / decode
    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Discretise the 7 continuous dims, vectorised.

        Args:
            values: shape ``(..., 7)``: Δx, Δy, Δz (m), Δroll, Δpitch, Δyaw (rad), gripper.

        Returns:
            bins, shape ``(..., 7)``, int64, each in ``[0, num_bins - 1]``; out-of-range values
            clamp to the first / last bin.

        Raises:
            ValueError: on a wrong last dimension or any NaN.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 0 or values.shape[-1] != ACTION_DIMS - 1:
            raise ValueError(f"values: expected shape (..., 7), got {values.shape}")
        if np.isnan(values).any():
            raise ValueError(f"values: expected no NaN, got {values.tolist()}")
        low, width = self.bounds.low, self.bin_widths
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = np.floor((values - low) / width)
        return np.clip(scaled, 0, self.num_bins - 1).astype(np.int64)

    def dequantize(self, bins: np.ndarray) -> np.ndarray:
        """Bin centres of the 7 continuous dims, shape ``(..., 7)`` → ``(..., 7)`` float64.

        Raises:
            ValueError: on a wrong shape or bins outside ``[0, num_bins - 1]``.
        """
        bins = np.asarray(bins)
        if bins.ndim == 0 or bins.shape[-1] != ACTION_DIMS - 1:
            raise ValueError(f"bins: expected shape (..., 7), got {bins.shape}")
        if bins.size and (bins.min() < 0 or bins.max() >= self.num_bins):
            raise ValueError(
                f"bins: expected values in [0, {self.num_bins - 1}], got {bins.tolist()}"
            )
        return self.bounds.low + (bins.astype(np.float64) + 0.5) * self.bin_widths

    def encode(
        self,
        terminate: bool,
        delta_position: Sequence[float] | np.ndarray,
        delta_rotation: Sequence[float] | np.ndarray,
        gripper: float,
    ) -> np.ndarray:
        """Encode one action into RT-2's 8 bins.

        Args:
            terminate: True to end the episode (bin 1), else bin 0.
            delta_position: (Δx, Δy, Δz), shape ``(3,)``, metres, command frame.
            delta_rotation: (Δroll, Δpitch, Δyaw), shape ``(3,)``, radians, command frame.
            gripper: 0.0 = open … 1.0 = closed.

        Returns:
            shape ``(8,)``, int64; out-of-range values clamp to bin 0 / ``num_bins - 1``.

        Raises:
            ValueError: on wrong shapes or NaN inputs.
        """
        pos = np.asarray(delta_position, dtype=np.float64)
        rot = np.asarray(delta_rotation, dtype=np.float64)
        if pos.shape != (3,):
            raise ValueError(f"delta_position: expected shape (3,), got {pos.shape}")
        if rot.shape != (3,):
            raise ValueError(f"delta_rotation: expected shape (3,), got {rot.shape}")
        if isinstance(terminate, (float, np.floating)) and math.isnan(terminate):
            raise ValueError("terminate: expected a bool, got NaN")
        values = np.concatenate([pos, rot, [float(gripper)]])
        bins = np.empty(ACTION_DIMS, dtype=np.int64)
        bins[0] = 1 if bool(terminate) else 0
        bins[1:] = self.quantize(values)
        return bins

    def encode_action(self, action: RobotAction) -> np.ndarray:
        """Encode the continuous fields of ``action`` (ignores ``action.bins``); shape ``(8,)``."""
        return self.encode(
            action.terminate, action.delta_position, action.delta_rotation, action.gripper
        )

    def validate_bins(self, bins: Sequence[int] | np.ndarray) -> np.ndarray:
        """Check and copy 8 bins: shape ``(8,)`` integers, terminate in {0, 1}, others in range.

        Returns:
            shape ``(8,)``, int64 copy.

        Raises:
            ValueError: naming the offending dimension.
        """
        arr = np.asarray(bins)
        if arr.shape != (ACTION_DIMS,):
            raise ValueError(f"bins: expected shape ({ACTION_DIMS},), got {arr.shape}")
        if arr.dtype.kind not in "iu":
            if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
                arr = arr.astype(np.int64)
            else:
                raise ValueError(f"bins: expected integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr[0] not in (0, 1):
            raise ValueError(f"terminate: expected bin 0 or 1, got {int(arr[0])}")
        for i in range(1, ACTION_DIMS):
            if not 0 <= arr[i] < self.num_bins:
                raise ValueError(
                    f"{ACTION_DIM_NAMES[i]}: expected a bin in [0, {self.num_bins - 1}], "
                    f"got {int(arr[i])}"
                )
        return arr

    def decode(
        self, bins: Sequence[int] | np.ndarray, *, latency: float = 0.0, plan: str = ""
    ) -> RobotAction:
        """Decode 8 bins into a :class:`~rt2_policy.contract.RobotAction` (bin centres).

        Args:
            bins: shape ``(8,)`` integers: terminate in {0, 1}, the rest in ``[0, num_bins-1]``.
            latency: seconds, copied into the action.
            plan: optional chain-of-thought text (RT-2 §4.4), copied into the action.

        Returns:
            the action; ``text`` is :meth:`to_text` of ``bins``.

        Raises:
            ValueError: on a wrong shape, non-integers or out-of-range bins.
        """
        arr = self.validate_bins(bins)
        values = self.dequantize(arr[1:])
        return RobotAction(
            bins=arr,
            terminate=bool(arr[0] == 1),
            delta_position=values[0:3].copy(),
            delta_rotation=values[3:6].copy(),
            gripper=float(values[6]),
            text=self.to_text(arr),
            latency=float(latency),
            plan=plan,
        )

    # ------------------------------------------------------------------ text form
    def to_text(self, bins: Sequence[int] | np.ndarray) -> str:
        """RT-2's string form: the 8 bins joined by single spaces.

        Example: ``"1 128 91 241 5 101 127 217"`` (RT-2 §3.2).

        Raises:
            ValueError: as :meth:`validate_bins`.
        """
        return " ".join(str(int(b)) for b in self.validate_bins(bins))

    def from_text(self, text: str) -> np.ndarray:
        """Parse RT-2's string form strictly (inverse of :meth:`to_text`).

        Leading/trailing whitespace is ignored; tokens are separated by whitespace.

        Returns:
            shape ``(8,)``, int64.

        Raises:
            ValueError: unless ``text`` holds exactly 8 non-negative decimal integers with
                terminate in {0, 1} and the rest in ``[0, num_bins - 1]``.
        """
        if not isinstance(text, str):
            raise ValueError(f"text: expected a string, got {type(text).__name__}")
        parts = text.split()
        if len(parts) != ACTION_DIMS:
            raise ValueError(
                f"text: expected exactly {ACTION_DIMS} integers, got {len(parts)} in {text!r}"
            )
        bad = [p for p in parts if not _INT_RE.match(p)]
        if bad:
            raise ValueError(f"text: expected non-negative integers, got {bad} in {text!r}")
        return self.validate_bins(np.array([int(p) for p in parts], dtype=np.int64))

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict ``{"num_bins", "bounds", "action_dims"}``."""
        return {
            "num_bins": self.num_bins,
            "action_dims": list(ACTION_DIM_NAMES),
            "bounds": self.bounds.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionTokenizer:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: on a different action layout or invalid values.
        """
        dims = data.get("action_dims", list(ACTION_DIM_NAMES))
        if list(dims) != list(ACTION_DIM_NAMES):
            raise ValueError(f"action_dims: expected {list(ACTION_DIM_NAMES)}, got {list(dims)}")
        return cls(
            bounds=ActionBounds.from_dict(data.get("bounds", {})),
            num_bins=data.get("num_bins", DEFAULT_NUM_BINS),
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ActionTokenizer:
        """Load the ``"action_tokenizer"`` section of ``directory/action_tokenizer_config.json``.

        Raises:
            FileNotFoundError: when the file is missing.
            ValueError: when it is malformed.
        """
        path = Path(directory) / ACTION_CONFIG_NAME
        data = json.loads(path.read_text(encoding="utf-8"))
        if "action_tokenizer" not in data:
            raise ValueError(f"{path}: expected an 'action_tokenizer' section, got {sorted(data)}")
        return cls.from_dict(data["action_tokenizer"])
