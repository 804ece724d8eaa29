"""The rt2 policy wire format: msgpack messages carrying numpy arrays, versioned, never pickle.

Transport: one websocket binary message per request or reply (RFC 6455), no compression.
Every message is a msgpack map with a ``"type"`` string. Arrays use the layout of
``msgpack-numpy`` 0.4.8 (a map ``{b"nd": True, b"type": dtype.str, b"kind": b"", b"shape": [...],
b"data": raw bytes}``, C order), so any msgpack-numpy peer can speak it. Decoding does NOT use
``msgpack_numpy.decode``: that function unpickles object arrays (``kind == b"O"``), i.e. runs
code chosen by the sender. Here only numeric and bool dtypes are accepted, and the byte count is
checked against the shape.

Protocol (``"protocol": 1``; ``id`` is a client-chosen increasing integer echoed in the reply):

============  ======================================================================
direction     message
============  ======================================================================
server→client ``{"type": "metadata", "protocol": 1, "metadata": {...}}`` right after connect:
              model id, action space, bounds, image size, token scheme, batching
client→server ``{"type": "infer", "id": n, "observation": {"image": uint8 (H, W, 3),
              "instruction": str, "stamp": float s, "gripper_state": float 0..1 or nil,
              "tcp_position": float64 (3,) m in the arm's base frame or nil,
              "grasped": bool or nil (rt2_policy.grasp_memory)}}``
server→client ``{"type": "action", "id": n, "action": {"bins": int64 (8,), "terminate": bool,
              "delta_position": float64 (3,) m, "delta_rotation": float64 (3,) rad,
              "gripper": float 0..1, "text": str, "plan": str, "latency": float s},
              "server_timing": {"queue_ms", "infer_ms", "total_ms", "batch_size"}}``
client→server ``{"type": "answer", "id": n, "image": uint8 (H, W, 3), "question": str,
              "max_new_tokens": int}`` → ``{"type": "answer", "id": n, "text": str,
              "server_timing": {...}}``
client→server ``{"type": "reset", "id": n}`` → ``{"type": "reset", "id": n}``
server→client ``{"type": "error", "id": n | None, "code": str, "message": str}``, codes in
              :data:`ERROR_CODES`
============  ======================================================================

Authentication happens in the HTTP upgrade (``Authorization: Bearer <key>``); a refused key is
an HTTP 401 response, not a websocket. ``GET /healthz`` on the same port answers 200 with a JSON
body. Nothing here imports torch or transformers.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import msgpack_numpy
import numpy as np

from rt2_policy.contract import ACTION_DIMS, Observation, RobotAction

#: Version of the message schema; a server refuses other versions with ``unsupported_protocol``.
PROTOCOL_VERSION = 1

#: Error codes of ``error`` replies.
ERROR_CODES = (
    "bad_request",           # malformed message or observation: fix the client
    "unsupported_protocol",  # protocol version mismatch
    "overloaded",            # the request queue is full: back off
    "inference_failed",      # the model failed on this input (the arm must stop)
    "unsupported",           # the served policy cannot do this (e.g. no ``answer``)
    "internal",              # anything else
)

#: dtype kinds accepted on the wire: bool, signed/unsigned integers, floats.
_SAFE_KINDS = frozenset("biuf")
_MAX_NDIM = 8


class WireError(ValueError):
    """A message that does not follow the wire format (maps to ``bad_request``)."""


# ---------------------------------------------------------------------------- codec
def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        if obj.dtype.kind not in _SAFE_KINDS:
            raise TypeError(f"cannot send dtype {obj.dtype} on the wire (only bool, int, float)")
        if isinstance(obj, np.ndarray) and not obj.flags["C_CONTIGUOUS"]:
            obj = np.ascontiguousarray(obj)
        return msgpack_numpy.encode(obj)
    raise TypeError(f"cannot send {type(obj).__name__} on the wire")


def _dtype(descr: Any) -> np.dtype:
    if isinstance(descr, bytes):
        descr = descr.decode("ascii", "replace")
    if not isinstance(descr, str):
        raise WireError(f"array dtype: expected a dtype string such as '|u1', got {descr!r}")
    try:
        dtype = np.dtype(descr)
    except TypeError as exc:
        raise WireError(f"array dtype: not a dtype: {descr!r}") from exc
    if dtype.kind not in _SAFE_KINDS or dtype.fields is not None:
        raise WireError(f"array dtype: expected bool, int or float, got {dtype}")
    return dtype


def _decode(obj: dict) -> Any:
    if b"nd" not in obj:
        return obj
    data = obj.get(b"data")
    if not isinstance(data, bytes | bytearray):
        raise WireError("array: expected raw bytes in b'data'")
    dtype = _dtype(obj.get(b"type"))
    if obj[b"nd"] is True:
        if obj.get(b"kind", b"") not in (b"", ""):
            raise WireError(f"array kind: expected b'' (plain dtype), got {obj.get(b'kind')!r}")
        shape = obj.get(b"shape")
        if not (isinstance(shape, list | tuple) and len(shape) <= _MAX_NDIM
                and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise WireError(f"array shape: expected up to {_MAX_NDIM} sizes >= 0, got {shape!r}")
        if math.prod(shape) * dtype.itemsize != len(data):
            raise WireError(f"array: {len(data)} bytes do not fill shape {tuple(shape)} "
                            f"of {dtype}")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if len(data) != dtype.itemsize:
        raise WireError(f"scalar: expected {dtype.itemsize} bytes of {dtype}, got {len(data)}")
    return np.frombuffer(data, dtype=dtype)[0]


def packb(message: dict) -> bytes:
    """Serialise one message (a dict with str keys; arrays and numpy scalars allowed).

    Raises:
        TypeError: for values the wire cannot carry (object arrays, arbitrary classes).
    """
    return msgpack.packb(message, default=_encode, use_bin_type=True)


def unpackb(data: bytes) -> dict:
    """Parse one message; arrays come back as read-only numpy views of the payload.

    Raises:
        WireError: on anything that is not a msgpack map following this format.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"message: expected a binary frame, got {type(data).__name__}")
    try:
        message = msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=False)
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - msgpack raises several types on garbage
        raise WireError(f"message: not valid msgpack: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise WireError("message: expected a map with a 'type' string")
    return message


# ---------------------------------------------------------------------------- builders
def metadata_message(metadata: dict) -> dict:
    return {"type": "metadata", "protocol": PROTOCOL_VERSION, "metadata": metadata}


def infer_request(request_id: int, observation: Observation) -> dict:
    return {"type": "infer", "id": int(request_id), "protocol": PROTOCOL_VERSION,
            "observation": {"image": np.ascontiguousarray(observation.image),
                            "instruction": observation.instruction,
                            "stamp": float(observation.stamp),
                            "gripper_state": (None if observation.gripper_state is None
                                              else float(observation.gripper_state)),
                            "tcp_position": (None if observation.tcp_position is None
                                             else np.asarray(observation.tcp_position,
                                                             np.float64)),
                            "grasped": observation.grasped}}


def answer_request(request_id: int, image: np.ndarray, question: str,
                   max_new_tokens: int) -> dict:
    return {"type": "answer", "id": int(request_id), "protocol": PROTOCOL_VERSION,
            "image": np.ascontiguousarray(image), "question": str(question),
            "max_new_tokens": int(max_new_tokens)}


def reset_request(request_id: int) -> dict:
    return {"type": "reset", "id": int(request_id), "protocol": PROTOCOL_VERSION}


def error_reply(request_id: int | None, code: str, message: str) -> dict:
    if code not in ERROR_CODES:
        code = "internal"
    return {"type": "error", "id": request_id, "code": code, "message": str(message)}


def action_reply(request_id: int, action: RobotAction, server_timing: dict) -> dict:
    return {"type": "action", "id": int(request_id), "action": action_to_wire(action),
            "server_timing": server_timing}


# ---------------------------------------------------------------------------- payloads
def action_to_wire(action: RobotAction) -> dict:
    """A :class:`RobotAction` as a wire map (``extra`` is not sent)."""
    return {
        "bins": np.asarray(action.bins, dtype=np.int64).reshape(ACTION_DIMS),
        "terminate": bool(action.terminate),
        "delta_position": np.asarray(action.delta_position, dtype=np.float64).reshape(3),
        "delta_rotation": np.asarray(action.delta_rotation, dtype=np.float64).reshape(3),
        "gripper": float(action.gripper),
        "text": str(action.text),
        "plan": str(getattr(action, "plan", "")),
        "latency": float(action.latency),
    }


def _array(payload: dict, key: str, shape: tuple[int, ...], kind: str) -> np.ndarray:
    value = payload.get(key)
    if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype.kind not in kind:
        got = (f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray)
               else type(value).__name__)
        raise WireError(f"{key}: expected an array of shape {shape}, got {got}")
    return value


def action_from_wire(payload: Any) -> RobotAction:
    """Parse an ``action`` map.

    Raises:
        WireError: on a missing field or a wrong shape/type.
    """
    if not isinstance(payload, dict):
        raise WireError(f"action: expected a map, got {type(payload).__name__}")
    try:
        gripper = float(payload["gripper"])
        return RobotAction(
            bins=_array(payload, "bins", (ACTION_DIMS,), "iu").astype(np.int64),
            terminate=bool(payload["terminate"]),
            delta_position=_array(payload, "delta_position", (3,), "f").astype(np.float64),
            delta_rotation=_array(payload, "delta_rotation", (3,), "f").astype(np.float64),
            gripper=gripper,
            text=str(payload.get("text", "")),
            latency=float(payload.get("latency", 0.0)),
            plan=str(payload.get("plan", "")),
        )
    except (KeyError, TypeError) as exc:
        raise WireError(f"action: missing or malformed field: {exc}") from exc


def observation_from_wire(payload: Any) -> Observation:
    """Parse the ``observation`` map of an ``infer`` request.

    Raises:
        WireError: on a missing field or an unusable image/instruction.
    """
    if not isinstance(payload, dict):
        raise WireError(f"observation: expected a map, got {type(payload).__name__}")
    image = payload.get("image")
    if not isinstance(image, np.ndarray):
        raise WireError(f"observation.image: expected a uint8 (H, W, 3) array, "
                        f"got {type(image).__name__}")
    try:
        return Observation(image=image, instruction=payload.get("instruction"),
                           stamp=float(payload.get("stamp", 0.0)),
                           gripper_state=payload.get("gripper_state"),
                           tcp_position=payload.get("tcp_position"),
                           grasped=payload.get("grasped"))
    except (TypeError, ValueError) as exc:
        raise WireError(f"observation.{exc}") from exc
