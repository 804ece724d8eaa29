"""The policy as a Ray Serve application (one CPU replica, loopback only), through RemotePolicy."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

pytest.importorskip("ray.serve", reason="ray[serve] not installed (optional scale-out engine)")

from rt2_policy.contract import Observation  # noqa: E402
from rt2_policy.serving.client import AuthenticationError, RemotePolicy  # noqa: E402
from rt2_policy.serving.config import ClientConfig  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_serve_deployment_serves_the_same_actions(tiny_vla_dir, tiny_vla_policy):
    import ray

    from rt2_policy.serving import ray_deployment

    observations = [Observation(np.random.default_rng(s).integers(0, 256, (96, 96, 3),
                                                                  dtype=np.uint8),
                                f"pick up the {c} cube") for s, c in enumerate(["red", "blue"])]
    local = [tiny_vla_policy.infer(o) for o in observations]
    # Generous timeouts (a busy 2-core machine starts Ray's workers slowly), yet every wait is
    # bounded and every failure surfaces: a hung robot thread fails the test, it never passes.
    uri = ray_deployment.start_local(str(tiny_vla_dir), port=free_port(), num_cpus=2,
                                     replica_num_cpus=1, api_key="k", num_threads=1,
                                     max_batch_size=2, batch_wait_timeout_s=0.5)
    results: list = [None] * len(observations)
    errors: list = [None] * len(observations)
    try:
        # Every Ray process registered on loopback (Ray would otherwise take the interface IP).
        addresses = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
        assert addresses == {"127.0.0.1"}, addresses
        config = ClientConfig(uri=uri, api_key="k", request_timeout=60.0, connect_timeout=30.0)
        with pytest.raises(AuthenticationError):
            RemotePolicy(ClientConfig(uri=uri, api_key="bad", connect_timeout=30.0),
                         require_connection=True)
        clients = [RemotePolicy(config, require_connection=True) for _ in observations]
        meta = clients[0].metadata
        assert meta["server"]["engine"] == "ray-serve" and meta["image_size"] == 96
        assert clients[0].health()["status"] == "ok"

        def robot(i):
            try:
                results[i] = clients[i].infer(observations[i])
            except Exception as exc:  # noqa: BLE001 - reported by the main thread below
                errors[i] = exc

        threads = [threading.Thread(target=robot, args=(i,), daemon=True)
                   for i in range(len(observations))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)  # > request_timeout: infer itself raises TimeoutError first
        hung = [i for i, t in enumerate(threads) if t.is_alive()]
        for c in clients:
            c.close()
    finally:
        ray_deployment.stop_local()
    assert not hung, f"robot threads {hung} still waiting after 90 s"
    assert errors == [None] * len(observations), errors
    for got, want in zip(results, local, strict=True):
        np.testing.assert_array_equal(got.bins, want.bins)  # @serve.batch == unbatched
