"""rt2-serve and RemotePolicy on loopback: round trip, auth, batching, late replies, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from rt2_policy.action_tokenizer import ActionTokenizer
from rt2_policy.contract import Observation
from rt2_policy.scripted_policy import ScriptedPolicy
from rt2_policy.serving.client import AuthenticationError, RemotePolicy
from rt2_policy.serving.config import ClientConfig, ServerConfig
from rt2_policy.serving.server import ServerThread

INSTRUCTIONS = ["pick up the red cube", "open the drawer", "move the blue can to the left",
                "put the small green ball into the big brown bowl"]


def observation(seed: int, instruction: str | None = None) -> Observation:
    image = np.random.default_rng(seed).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    return Observation(image, instruction or INSTRUCTIONS[seed % len(INSTRUCTIONS)])


def client(uri: str, **kwargs) -> RemotePolicy:
    kwargs.setdefault("request_timeout", 30.0)  # a loaded CI machine; deadlines tested apart
    return RemotePolicy(ClientConfig(uri=uri, **kwargs), require_connection=True)


def test_round_trip_metadata_health_and_timing(tiny_vla_policy):
    obs = observation(0)
    local = tiny_vla_policy.infer(obs)
    with ServerThread(tiny_vla_policy, ServerConfig(port=0)) as server:
        with client(server.uri) as remote:
            meta = remote.metadata
            assert meta["model_id"] == tiny_vla_policy.model_id
            assert meta["image_size"] == 96 and meta["action_space"]["num_bins"] == 256
            assert meta["bounds"] == tiny_vla_policy.action_tokenizer.bounds.to_dict()
            assert meta["server"]["protocol"] == 1 and meta["server"]["max_batch_size"] == 8
            assert remote.health()["status"] == "ok"
            action = remote.infer(obs)
            remote.reset()  # forwarded; the VLA has no episode state
            again = remote.infer(obs)
    np.testing.assert_array_equal(action.bins, local.bins)
    np.testing.assert_allclose(action.delta_position, local.delta_position)
    assert action.text == local.text and action.terminate == local.terminate
    timing = action.extra["server_timing"]
    assert set(timing) == {"queue_ms", "infer_ms", "total_ms", "batch_size"}
    assert timing["batch_size"] == 1 and timing["total_ms"] >= timing["infer_ms"] > 0
    assert action.latency >= timing["total_ms"] / 1e3  # round trip includes the server's time
    assert again.extra["request_id"] == action.extra["request_id"] + 2  # reset used an id too
    assert remote.stats["discarded_replies"] == 0


def test_api_key_refused_and_accepted(tiny_vla_policy):
    with ServerThread(tiny_vla_policy, ServerConfig(port=0, api_key="s3cret")) as server:
        for key in ("", "wrong"):
            with pytest.raises(AuthenticationError, match="401"):
                client(server.uri, api_key=key)
        # without require_connection the refusal is what infer reports (the arm holds still)
        lazy = RemotePolicy(ClientConfig(uri=server.uri, api_key="wrong", reconnect_max=0.1))
        with pytest.raises(ConnectionError, match="401"):
            lazy.infer(observation(1))
        lazy.close()
        with client(server.uri, api_key="s3cret") as remote:
            assert remote.metadata["server"]["auth"] is True
            assert remote.infer(observation(1)).bins.shape == (8,)
        # the health check needs no key
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as reply:
            assert reply.status == 200 and json.loads(reply.read())["status"] == "ok"


def test_concurrent_robots_are_batched_and_get_their_own_actions(tiny_vla_policy):
    robots = 4
    observations = [observation(seed) for seed in range(robots)]
    alone = [tiny_vla_policy.infer(o) for o in observations]
    assert len({tuple(a.bins) for a in alone}) > 1  # different inputs, different actions
    # A long window: the batch closes when every connected robot has a request queued.
    config = ServerConfig(port=0, max_batch_size=robots, batch_window_ms=20_000)
    results: dict[int, object] = {}
    with ServerThread(tiny_vla_policy, config) as server:
        clients = [client(server.uri) for _ in range(robots)]
        barrier = threading.Barrier(robots)

        def robot(i: int) -> None:
            barrier.wait()
            results[i] = clients[i].infer(observations[i])

        threads = [threading.Thread(target=robot, args=(i,)) for i in range(robots)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        sizes = server.server.batch_sizes
        for c in clients:
            c.close()
    assert sizes == [robots]
    for i in range(robots):
        assert results[i].extra["server_timing"]["batch_size"] == robots
        np.testing.assert_array_equal(results[i].bins, alone[i].bins)  # batched == unbatched


class SlowFirst:
    """First call slow (returns A), later calls fast (return B)."""

    def __init__(self, slow: float) -> None:
        self.tokenizer = ActionTokenizer()
        self.calls = 0
        self.slow = slow

    def infer(self, observation):
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.slow)
            return self.tokenizer.decode([0, 10, 10, 10, 10, 10, 10, 0])
        return self.tokenizer.decode([0, 200, 200, 200, 200, 200, 200, 255])

    def reset(self):
        pass


def test_late_reply_is_discarded_never_returned():
    policy = SlowFirst(slow=0.6)
    with ServerThread(policy, ServerConfig(port=0)) as server:
        remote = RemotePolicy(ClientConfig(uri=server.uri, request_timeout=0.2),
                              require_connection=True)
        with pytest.raises(TimeoutError, match="no reply to request 1"):
            remote.infer(observation(0))
        # wait until the server has answered request 1 (late): its reply sits in the socket
        deadline = time.monotonic() + 10
        while server.server.requests_served < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        remote.config = ClientConfig(uri=server.uri, request_timeout=10.0)
        action = remote.infer(observation(1))
        remote.close()
    assert action.bins.tolist() == [0, 200, 200, 200, 200, 200, 200, 255]  # request 2's, not 1's
    assert action.extra["request_id"] == 2
    assert remote.stats["discarded_replies"] == 1 and remote.stats["timeouts"] == 1


class Failing(ScriptedPolicy):
    def infer(self, observation):
        if observation.instruction == "explode":
            raise RuntimeError("VLA produced a non-finite action")
        return super().infer(observation)


def test_errors_become_error_replies_and_the_server_survives():
    from websockets.sync.client import connect

    from rt2_policy.serving import wire

    with ServerThread(Failing(["0 1 2 3 4 5 6 7"]), ServerConfig(port=0)) as server:
        with client(server.uri) as remote:
            with pytest.raises(RuntimeError, match="inference_failed.*non-finite"):
                remote.infer(observation(0, "explode"))
            image = np.zeros((8, 8, 3), np.uint8)
            assert remote.answer(image, "what is this?") == server.server.policy.answer(
                image, "what is this?")
            assert remote.infer(observation(0)).bins.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
        raw = connect(server.uri, proxy=None, legacy=True)
        assert wire.unpackb(raw.recv(timeout=5))["type"] == "metadata"
        raw.send(b"\xc1garbage")
        reply = wire.unpackb(raw.recv(timeout=5))
        assert reply["type"] == "error" and reply["code"] == "bad_request"
        raw.send(wire.packb({"type": "infer", "id": 5, "observation": {"image": np.zeros(
            (4, 4), np.uint8), "instruction": "go"}}))
        reply = wire.unpackb(raw.recv(timeout=5))
        assert (reply["id"], reply["code"]) == (5, "bad_request") and "shape" in reply["message"]
        raw.send(wire.packb({"type": "infer", "id": 6, "protocol": 99}))
        assert wire.unpackb(raw.recv(timeout=5))["code"] == "unsupported_protocol"
        raw.close()
    with ServerThread(SlowFirst(slow=0.0), ServerConfig(port=0)) as server:  # no answer()
        with client(server.uri) as remote:
            with pytest.raises(RuntimeError, match="unsupported"):
                remote.answer(np.zeros((8, 8, 3), np.uint8), "what is this?")


def test_lost_server_fails_fast_then_reconnects():
    policy = ScriptedPolicy(["0 1 2 3 4 5 6 7"])
    first = ServerThread(policy, ServerConfig(port=0)).start()
    port = first.port
    remote = RemotePolicy(ClientConfig(uri=first.uri, request_timeout=10.0,
                                       reconnect_initial=0.02, reconnect_max=0.1),
                          require_connection=True)
    assert remote.infer(observation(0)).bins[1] == 1
    first.stop()
    with pytest.raises(ConnectionError):
        remote.infer(observation(0))  # the loss is detected
    sent = remote.stats["requests"]
    with pytest.raises(ConnectionError, match="unavailable"):
        remote.infer(observation(0))  # reported at once: no request is sent and awaited
    assert remote.stats["requests"] == sent
    second = ServerThread(policy, ServerConfig(port=port)).start()
    try:
        deadline = time.monotonic() + 20
        while not remote.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert remote.connected and remote.stats["reconnects"] >= 1
        assert remote.infer(observation(0)).bins[1] == 1
    finally:
        remote.close()
        second.stop()


def test_client_imports_neither_torch_nor_transformers():
    code = ("import sys, rt2_policy.serving.client, rt2_policy.policy_factory; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "assert not bad, bad; print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ))
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr


def test_config_validation():
    with pytest.raises(ValueError, match="uri"):
        ClientConfig(uri="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="request_timeout"):
        ClientConfig(request_timeout=0)
    with pytest.raises(ValueError, match="reconnect_max"):
        ClientConfig(reconnect_initial=2.0, reconnect_max=1.0)
    with pytest.raises(ValueError, match="max_batch_size"):
        ServerConfig(max_batch_size=0)
    with pytest.raises(ValueError, match="batch_window_ms"):
        ServerConfig(batch_window_ms=-1)
    assert ClientConfig(uri="ws://10.0.0.2:9000").health_url == "http://10.0.0.2:9000/healthz"


@pytest.mark.parametrize("argv, expected", [([], 0.5), (["--terminate-threshold", "0.8"], 0.8)])
def test_the_server_decodes_with_the_requested_terminate_threshold(tiny_vla_dir, argv,
                                                                    expected):
    """``rt2-serve --terminate-threshold`` reaches the model's decode (default: the
    checkpoint's, 0.5 for the tiny VLA, which stores none) and its metadata says so."""
    from rt2_policy.serving.server import build_arg_parser, load_policy

    args = build_arg_parser().parse_args(["--model", str(tiny_vla_dir), *argv])
    policy = load_policy(args)
    assert policy.terminate_threshold == expected
    assert policy.metadata["terminate_threshold"] == expected


class Recording(ScriptedPolicy):
    """Replays one action and keeps every observation the server hands it."""

    def __init__(self) -> None:
        super().__init__(["0 128 128 128 128 128 128 0"])
        self.seen: list[Observation] = []

    def infer(self, observation):
        self.seen.append(observation)
        return super().infer(observation)


def test_make_policy_remote_tracks_the_grasp_memory_on_the_robot_side():
    """A remote client from make_policy fills Observation.grasped from the gripper states since
    its reset() and sends it; the served model receives it (the server keeps no episode
    state for it)."""
    from rt2_policy.grasp_memory import GraspMemory
    from rt2_policy.policy_factory import make_policy

    served = Recording()
    image = observation(0).image
    with ServerThread(served, ServerConfig(port=0)) as server:
        remote = make_policy("remote", server_uri=server.uri, request_timeout=30.0,
                             connect_timeout=10.0)
        try:
            assert isinstance(remote, GraspMemory)
            for state in (0.0, 0.5, 0.5, 0.5, 0.0):
                remote.infer(Observation(image, "move the cube near the bowl",
                                         gripper_state=state))
            remote.reset()
            remote.infer(Observation(image, "move the cube near the bowl", gripper_state=0.0))
            remote.infer(Observation(image, "move the cube near the bowl"))
        finally:
            remote.close()
    assert [o.grasped for o in served.seen] == [False, False, False, True, True, False, None]
