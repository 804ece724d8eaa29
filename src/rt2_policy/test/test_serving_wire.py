"""The policy wire format: msgpack + numpy round trips, and nothing is ever unpickled."""

from __future__ import annotations

import pickle

import msgpack
import numpy as np
import pytest

from rt2_policy.action_tokenizer import ActionTokenizer
from rt2_policy.contract import Observation
from rt2_policy.serving import wire

_UNPICKLED = []


class _Evil:
    def __reduce__(self):
        return (_UNPICKLED.append, ("pwned",))


def _image(seed=0, shape=(48, 64, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_infer_request_round_trip_keeps_arrays_exact():
    obs = Observation(_image(), "pick up the red cube", stamp=12.5)
    message = wire.unpackb(wire.packb(wire.infer_request(7, obs)))
    assert message["type"] == "infer" and message["id"] == 7
    assert message["protocol"] == wire.PROTOCOL_VERSION
    back = wire.observation_from_wire(message["observation"])
    assert back.image.dtype == np.uint8 and back.image.shape == (48, 64, 3)
    np.testing.assert_array_equal(back.image, obs.image)
    assert back.instruction == obs.instruction and back.stamp == 12.5


def test_action_round_trip_and_numpy_scalars():
    action = ActionTokenizer().decode([1, 0, 255, 128, 7, 9, 200, 255])
    reply = wire.unpackb(wire.packb(wire.action_reply(3, action, {"batch_size": np.int64(2)})))
    back = wire.action_from_wire(reply["action"])
    np.testing.assert_array_equal(back.bins, action.bins)
    assert back.bins.dtype == np.int64 and back.terminate is True
    np.testing.assert_allclose(back.delta_position, action.delta_position)
    np.testing.assert_allclose(back.delta_rotation, action.delta_rotation)
    assert back.gripper == pytest.approx(action.gripper)
    assert reply["server_timing"]["batch_size"] == 2


def test_msgpack_numpy_peers_interoperate():
    """Arrays packed by msgpack-numpy itself decode here (same layout)."""
    import msgpack_numpy

    data = msgpack.packb({"type": "x", "a": np.arange(6, dtype=np.float32).reshape(2, 3)},
                         default=msgpack_numpy.encode)
    np.testing.assert_array_equal(wire.unpackb(data)["a"],
                                  np.arange(6, dtype=np.float32).reshape(2, 3))


def test_object_arrays_are_never_unpickled():
    # What msgpack_numpy.encode emits for an object array: a pickle in b"data".
    payload = {b"nd": True, b"type": "|O", b"kind": b"O", b"shape": [1],
               b"data": pickle.dumps(_Evil())}
    data = msgpack.packb({"type": "infer", "id": 1, "observation": {"image": payload}},
                         use_bin_type=True)
    with pytest.raises(wire.WireError):
        wire.unpackb(data)
    assert _UNPICKLED == []
    with pytest.raises(TypeError):
        wire.packb({"type": "x", "a": np.array([object()], dtype=object)})
    with pytest.raises(TypeError):
        wire.packb({"type": "x", "a": _Evil()})


@pytest.mark.parametrize("payload, match", [
    ({b"nd": True, b"type": "|u1", b"kind": b"", b"shape": [4, 4, 3], b"data": b"\0" * 5},
     "do not fill"),
    ({b"nd": True, b"type": "<U4", b"kind": b"", b"shape": [1], b"data": b"\0" * 16}, "dtype"),
    ({b"nd": True, b"type": "|V4", b"kind": b"V", b"shape": [1], b"data": b"\0" * 4}, "dtype"),
    ({b"nd": True, b"type": "|u1", b"kind": b"", b"shape": [-1], b"data": b""}, "shape"),
])
def test_malformed_arrays_are_refused(payload, match):
    with pytest.raises(wire.WireError, match=match):
        wire.unpackb(msgpack.packb({"type": "x", "a": payload}, use_bin_type=True))


def test_malformed_messages_and_observations():
    with pytest.raises(wire.WireError, match="msgpack"):
        wire.unpackb(b"\xc1not msgpack")
    with pytest.raises(wire.WireError, match="type"):
        wire.unpackb(msgpack.packb([1, 2, 3]))
    with pytest.raises(wire.WireError, match="image"):
        wire.observation_from_wire({"image": "png bytes", "instruction": "go"})
    with pytest.raises(wire.WireError, match="shape"):
        wire.observation_from_wire({"image": np.zeros((4, 4), np.uint8), "instruction": "go"})
    with pytest.raises(wire.WireError, match="instruction"):
        wire.observation_from_wire({"image": np.zeros((4, 4, 3), np.uint8), "instruction": ""})
    with pytest.raises(wire.WireError, match="bins"):
        wire.action_from_wire({"bins": np.zeros(7, np.int64), "terminate": False,
                               "delta_position": np.zeros(3), "delta_rotation": np.zeros(3),
                               "gripper": 0.0})
    assert wire.error_reply(1, "nonsense", "x")["code"] == "internal"


@pytest.mark.parametrize("state", [0.75, 0.0, 1.0, None])
def test_infer_request_round_trip_keeps_gripper_state(state):
    obs = Observation(_image(), "pick up the red cube", stamp=3.0, gripper_state=state)
    message = wire.unpackb(wire.packb(wire.infer_request(1, obs)))
    assert message["observation"]["gripper_state"] == state
    back = wire.observation_from_wire(message["observation"])
    assert back.gripper_state == state
    if state is not None:
        assert isinstance(back.gripper_state, float)


def test_observation_without_gripper_state_key_has_none():
    """A client from before the gripper state (no key) still parses, with no state."""
    back = wire.observation_from_wire({"image": _image(), "instruction": "go", "stamp": 1.0})
    assert back.gripper_state is None


@pytest.mark.parametrize("field,value", [
    *[("gripper_state", v) for v in (1.5, -0.1, float("nan"), True, "0.5")],
    *[("tcp_position", v) for v in (np.array([np.nan, 0.0, 0.4]), np.zeros(2), np.zeros(4),
                                    "0.5 0.0 0.4", [0.5, 0.0])],
])
def test_bad_proprioception_is_refused(field, value):
    payload = {"image": _image(), "instruction": "pick up the red cube", "stamp": 1.0,
               field: value}
    data = wire.packb({"type": "infer", "id": 1, "protocol": wire.PROTOCOL_VERSION,
                       "observation": payload})
    message = wire.unpackb(data)
    with pytest.raises(wire.WireError, match=f"observation.{field}"):
        wire.observation_from_wire(message["observation"])


@pytest.mark.parametrize("position", [[0.45, -0.1, 0.3], [0.1 + 0.2, -1e-9, 0.9], None])
def test_infer_request_round_trip_keeps_tcp_position(position):
    obs = Observation(_image(), "pick up the red cube", stamp=3.0, gripper_state=0.5,
                      tcp_position=position)
    message = wire.unpackb(wire.packb(wire.infer_request(1, obs)))
    sent = message["observation"]["tcp_position"]
    back = wire.observation_from_wire(message["observation"])
    assert back.gripper_state == 0.5
    if position is None:
        assert sent is None and back.tcp_position is None
    else:
        assert isinstance(sent, np.ndarray) and sent.dtype == np.float64 and sent.shape == (3,)
        assert back.tcp_position.dtype == np.float64 and back.tcp_position.shape == (3,)
        np.testing.assert_array_equal(back.tcp_position, np.asarray(position))  # bit-exact


def test_observation_without_tcp_position_key_has_none():
    """A client from before the tcp position (no key) still parses, with no position."""
    back = wire.observation_from_wire({"image": _image(), "instruction": "go", "stamp": 1.0})
    assert back.tcp_position is None
    listed = wire.observation_from_wire({"image": _image(), "instruction": "go",
                                         "tcp_position": [0.5, 0.0, 0.4]})
    np.testing.assert_array_equal(listed.tcp_position, [0.5, 0.0, 0.4])


@pytest.mark.parametrize("grasped", [True, False, None])
def test_infer_request_round_trip_keeps_the_grasp_memory(grasped):
    obs = Observation(_image(), "move the cube near the bowl", gripper_state=0.0,
                      grasped=grasped)
    message = wire.unpackb(wire.packb(wire.infer_request(1, obs)))
    assert message["observation"]["grasped"] is grasped
    assert wire.observation_from_wire(message["observation"]).grasped is grasped


def test_observation_with_a_bad_grasp_memory_is_a_wire_error():
    with pytest.raises(wire.WireError, match="observation.grasped: expected None or a bool"):
        wire.observation_from_wire({"image": _image(), "instruction": "go", "grasped": 1})
