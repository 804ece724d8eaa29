"""The rt2 policy as a Ray Serve application: replicas, ``@serve.batch``, the same wire protocol.

Two deployments (Ray Serve's model-composition pattern):

* ``VLAModel`` holds one :class:`~rt2_policy.vla_policy.VLAPolicy` per replica (a GPU each on a
  cluster: ``num_gpus=1``); ``infer`` is a ``@serve.batch`` method, so requests routed to a
  replica within ``batch_wait_timeout_s`` are decoded as one left-padded batch of at most
  ``max_batch_size``. Ray routes requests across replicas (power-of-two-choices) and can
  autoscale them; no home-made cluster manager.
* ``PolicyIngress`` speaks :mod:`rt2_policy.serving.wire` on a websocket at ``/`` (FastAPI
  ingress; ``GET /healthz`` too), checks the API key, and forwards each observation to
  ``VLAModel`` through a ``DeploymentHandle``. So :class:`~rt2_policy.serving.client.RemotePolicy`
  and the policy node's ``backend: remote`` work unchanged against Ray Serve. Inside the cluster
  Ray serialises with its own (pickle-based) codec between trusted processes; the untrusted
  network side is msgpack only.

(No ``from __future__ import annotations`` here: FastAPI must see the real ``WebSocket``
annotation, or it closes every websocket with 1008.)

One machine (what the tests run: one CPU replica, no dashboard, no usage stats; every Ray process
registers with node IP 127.0.0.1 and Serve's single proxy binds 127.0.0.1, see
:func:`start_local`; Ray Serve 2.60 still opens each replica's inter-deployment gRPC server on
``[::]:0``, hard-coded in ``ray/serve/_private/replica.py``: firewall the host if that matters)::

    python -m rt2_policy.serving.ray_deployment --model /path/to/ckpt --port 8000

A GPU cluster (``ray start --head`` on the head node, ``ray start --address=...`` on GPU nodes,
then on the head)::

    serve run rt2_policy.serving.ray_deployment:app_builder \\
        model_path=/shared/ckpt num_replicas=4 num_gpus=1 dtype=bfloat16 \\
        attn_implementation=flash_attention_2 compile=true max_batch_size=16

``ray`` (``ray[serve]``) is optional: importing this module without it raises ImportError with
the install hint; nothing else in rt2 needs it.
"""


import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phone-home from any process we start

import argparse  # noqa: E402
import asyncio  # noqa: E402
import hmac  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

try:
    from fastapi import FastAPI, WebSocket, WebSocketDisconnect
    from ray import serve
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "rt2_policy.serving.ray_deployment needs Ray Serve: pip install 'ray[serve]==2.60.0'"
    ) from exc

from rt2_policy.contract import Observation, RobotAction  # noqa: E402
from rt2_policy.serving import wire  # noqa: E402
from rt2_policy.serving.config import DEFAULT_API_KEY_ENV  # noqa: E402


@serve.deployment(name="VLAModel", ray_actor_options={"num_cpus": 1})
class VLAModel:
    """One VLA per replica with batched ``infer``.

    Args:
        model_path: checkpoint directory (on every node) or cached hub id.
        device, dtype, attn_implementation, cache, compile: as ``VLAPolicy.from_pretrained``.
        num_threads: torch CPU threads (0 = default).
        max_batch_size: ``@serve.batch`` batch cap (≥ 1).
        batch_wait_timeout_s: ``@serve.batch`` window, seconds.
    """

    def __init__(self, model_path: str, device: str = "cpu", dtype: str | None = None,
                 attn_implementation: str | None = None, cache: str = "dynamic",
                 compile: bool = False, num_threads: int = 0, max_batch_size: int = 8,
                 batch_wait_timeout_s: float = 0.005) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import torch

        from rt2_policy.vla_policy import VLAPolicy

        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.policy = VLAPolicy.from_pretrained(
            model_path, device=device, dtype=dtype, attn_implementation=attn_implementation,
            cache=cache, compile=compile)
        self.infer.set_max_batch_size(int(max_batch_size))
        self.infer.set_batch_wait_timeout_s(float(batch_wait_timeout_s))
        self.batch_sizes: list[int] = []

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def infer(self, observations: list[Observation]) -> list[RobotAction]:
        """One batch; runs in a thread so the replica's event loop keeps collecting requests."""
        self.batch_sizes.append(len(observations))
        return await asyncio.to_thread(self.policy.infer_batch, observations)

    async def answer(self, image: Any, question: str, max_new_tokens: int) -> str:
        return await asyncio.to_thread(self.policy.answer, image, question, max_new_tokens)

    def metadata(self) -> dict:
        return self.policy.metadata

    def stats(self) -> dict:
        return {"batch_sizes": list(self.batch_sizes)}


app = FastAPI(title="rt2 policy (Ray Serve)")


@serve.deployment(name="PolicyIngress", ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class PolicyIngress:
    """Websocket front end speaking :mod:`rt2_policy.serving.wire`; see the module docstring."""

    def __init__(self, model: Any, api_key: str = "", max_batch_size: int = 8,
                 batch_wait_timeout_s: float = 0.005) -> None:
        self.model = model
        self.api_key = api_key
        self._server_meta = {"protocol": wire.PROTOCOL_VERSION, "max_batch_size": max_batch_size,
                             "batch_window_ms": batch_wait_timeout_s * 1e3,
                             "auth": bool(api_key), "engine": "ray-serve"}

    @app.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok", "protocol": wire.PROTOCOL_VERSION, "engine": "ray-serve"}

    def _authorized(self, websocket: WebSocket) -> bool:
        if not self.api_key:
            return True
        given = websocket.headers.get("x-api-key", "")
        auth = websocket.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    @app.websocket("/")
    async def policy(self, websocket: WebSocket) -> None:
        if not self._authorized(websocket):
            await websocket.close(code=1008, reason="missing or wrong API key")  # HTTP 403
            return
        await websocket.accept()
        metadata = dict(await self.model.metadata.remote())
        metadata["server"] = self._server_meta
        await websocket.send_bytes(wire.packb(wire.metadata_message(metadata)))
        try:
            while True:
                data = await websocket.receive_bytes()
                received = time.perf_counter()
                request_id = None
                try:
                    message = wire.unpackb(data)
                    request_id = message.get("id")
                    reply = await self._reply(message, request_id, received)
                except (wire.WireError, ValueError) as exc:
                    reply = wire.error_reply(request_id, "bad_request", str(exc))
                except RuntimeError as exc:
                    reply = wire.error_reply(request_id, "inference_failed", str(exc))
                except Exception as exc:  # noqa: BLE001 - always answer with an error frame
                    reply = wire.error_reply(request_id, "internal", f"{type(exc).__name__}: {exc}")
                await websocket.send_bytes(wire.packb(reply))
        except WebSocketDisconnect:
            return

    async def _reply(self, message: dict, request_id: Any, received: float) -> dict:
        if not isinstance(request_id, int):
            raise wire.WireError("id: expected an integer request id")
        if message.get("protocol", wire.PROTOCOL_VERSION) != wire.PROTOCOL_VERSION:
            return wire.error_reply(request_id, "unsupported_protocol",
                                    f"protocol: expected {wire.PROTOCOL_VERSION}")
        kind = message["type"]
        if kind == "infer":
            observation = wire.observation_from_wire(message.get("observation"))
            started = time.perf_counter()
            action = await self.model.infer.remote(observation)
            timing = {"infer_ms": (time.perf_counter() - started) * 1e3,
                      "total_ms": (time.perf_counter() - received) * 1e3}
            return wire.action_reply(request_id, action, timing)
        if kind == "answer":
            text = await self.model.answer.remote(message.get("image"), message.get("question"),
                                                  int(message.get("max_new_tokens", 32)))
            return {"type": "answer", "id": request_id, "text": str(text), "server_timing": {}}
        if kind == "reset":
            return {"type": "reset", "id": request_id}  # the VLA has no per-episode state
        raise wire.WireError(f"type: expected 'infer', 'answer' or 'reset', got {kind!r}")


def build_app(model_path: str, *, num_replicas: int = 1, num_cpus: float = 1.0,
              num_gpus: float = 0.0, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.005,
              api_key: str = "", **policy_kwargs: Any):
    """The Serve application: ``PolicyIngress`` → ``VLAModel`` (``num_replicas`` replicas).

    Args:
        model_path: checkpoint reachable from every node.
        num_replicas: model replicas (one GPU each with ``num_gpus=1``).
        num_cpus, num_gpus: resources of one model replica.
        max_batch_size, batch_wait_timeout_s: ``@serve.batch`` settings.
        api_key: required key ("" = none).
        policy_kwargs: ``device``, ``dtype``, ``attn_implementation``, ``cache``, ``compile``,
            ``num_threads`` for ``VLAPolicy.from_pretrained``.
    """
    model = VLAModel.options(
        num_replicas=int(num_replicas),
        max_ongoing_requests=max(2 * int(max_batch_size), 16),
        ray_actor_options={"num_cpus": float(num_cpus), "num_gpus": float(num_gpus)},
    ).bind(model_path, max_batch_size=int(max_batch_size),
           batch_wait_timeout_s=float(batch_wait_timeout_s), **policy_kwargs)
    return PolicyIngress.bind(model, api_key=api_key, max_batch_size=int(max_batch_size),
                              batch_wait_timeout_s=float(batch_wait_timeout_s))


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


def app_builder(args: dict[str, str]):
    """``serve run rt2_policy.serving.ray_deployment:app_builder key=value ...`` (see module doc).

    Keys: ``model_path`` (required), ``num_replicas``, ``num_cpus``, ``num_gpus``,
    ``max_batch_size``, ``batch_wait_timeout_s``, ``device``, ``dtype``, ``attn_implementation``,
    ``cache``, ``compile``, ``num_threads``, ``api_key_env`` (default ``RT2_API_KEY``).
    """
    if not args.get("model_path"):
        raise ValueError("model_path: expected a checkpoint path, got none")
    device = args.get("device") or ("cuda" if float(args.get("num_gpus", 0)) > 0 else "cpu")
    return build_app(
        args["model_path"], num_replicas=int(args.get("num_replicas", 1)),
        num_cpus=float(args.get("num_cpus", 1)), num_gpus=float(args.get("num_gpus", 0)),
        max_batch_size=int(args.get("max_batch_size", 8)),
        batch_wait_timeout_s=float(args.get("batch_wait_timeout_s", 0.005)),
        api_key=os.environ.get(args.get("api_key_env", DEFAULT_API_KEY_ENV), ""),
        device=device, dtype=args.get("dtype"), attn_implementation=args.get("attn_implementation"),
        cache=args.get("cache", "dynamic"), compile=_flag(args.get("compile", False)),
        num_threads=int(args.get("num_threads", 0)))


#: Seconds Serve's controller waits for a starting proxy before it kills and restarts it.
#: Ray's default (5 s) is shorter than a proxy worker's start on a loaded 2-core machine.
PROXY_READY_CHECK_TIMEOUT_S = 45.0


def _loopback_only_ray() -> None:
    """Make the Ray started next use node IP 127.0.0.1 for every process it starts.

    Ray on Linux turns ``_node_ip_address="127.0.0.1"`` (and ``--node-ip-address``) into the
    machine's routable address (``ray._private.services.resolve_ip_for_localhost``), so GCS,
    raylets, workers and Serve's proxy would register and listen on the network interface.
    Single-node Ray (its macOS/Windows mode, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps
    loopback: set for the processes Ray spawns (environment) and for this process, whose
    ``ray_constants`` may already have been read at ``import ray``.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time by services.get_node_ip_address


def start_local(model_path: str, *, port: int = 8000, num_cpus: int = 2,
                replica_num_cpus: float = 1.0,
                proxy_ready_timeout_s: float = PROXY_READY_CHECK_TIMEOUT_S,
                **app_kwargs: Any) -> str:
    """Start a single-node Ray on loopback and deploy; returns the ``ws://`` URI.

    Every Ray process (GCS, raylet, workers, Serve's controller, proxy and replicas) runs with
    node IP 127.0.0.1; Serve runs one proxy (``proxy_location="HeadOnly"``) whose HTTP server
    binds 127.0.0.1:``port``. No dashboard, usage stats off. Ray's workers normally run at
    ``nice`` 15, so on a busy machine they starve (the proxy then misses its readiness check
    and is killed: ``ActorDiedError ... killed by ray.kill``); here they run at the caller's
    priority (``worker_niceness=0``), the inference path of a robot is no background job.
    Stop with :func:`stop_local`.

    Args:
        model_path: checkpoint directory.
        port: HTTP/websocket port on 127.0.0.1 (1..65535).
        num_cpus: CPUs Ray may schedule.
        replica_num_cpus: CPUs reserved by one model replica.
        proxy_ready_timeout_s: how long Serve's controller waits for its proxy to start, s.
        app_kwargs: :func:`build_app` keyword arguments.

    Raises:
        ValueError: on a port outside 1..65535.
        RuntimeError: if Ray came up on another address than 127.0.0.1 (then it is shut down).
        TimeoutError: if Serve's proxy is not up within Serve's 60 s.
    """
    import ray

    if not 0 < int(port) < 65536:
        raise ValueError(f"port: expected 1..65535, got {port}")
    _loopback_only_ray()
    # Read by Serve's controller process when it starts (it inherits this environment).
    os.environ["RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"] = str(float(proxy_ready_timeout_s))
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
             _node_ip_address="127.0.0.1", _system_config={"worker_niceness": 0},
             log_to_driver=False, configure_logging=False, ignore_reinit_error=True)
    node_ip = ray.util.get_node_ip_address()
    if node_ip != "127.0.0.1":
        ray.shutdown()
        raise RuntimeError(f"Ray node IP: expected 127.0.0.1 (loopback only), got {node_ip}")
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": int(port)})
    serve.run(build_app(model_path, num_cpus=replica_num_cpus, **app_kwargs), name="rt2",
              route_prefix="/")
    return f"ws://127.0.0.1:{int(port)}"


def stop_local() -> None:
    """Shut down Serve and the local Ray started by :func:`start_local`."""
    import ray

    serve.shutdown()
    ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rt2-serve-ray", description="Serve the rt2 policy with Ray Serve on this machine.")
    parser.add_argument("--model", required=True, help="checkpoint directory")
    parser.add_argument("--port", type=int, default=8000, help="Serve HTTP/websocket port")
    parser.add_argument("--replicas", type=int, default=1, help="model replicas")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs Ray may use")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-wait-timeout-s", type=float, default=0.005)
    parser.add_argument("--api-key-env", default=DEFAULT_API_KEY_ENV)
    args = parser.parse_args(argv)
    uri = start_local(args.model, port=args.port, num_cpus=args.num_cpus,
                      num_replicas=args.replicas, max_batch_size=args.max_batch_size,
                      batch_wait_timeout_s=args.batch_wait_timeout_s,
                      api_key=os.environ.get(args.api_key_env, ""), num_threads=1)
    print(f"rt2 Ray Serve app listening on {uri} (health: "
          f"{uri.replace('ws://', 'http://')}/healthz); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop_local()
    return 0


if __name__ == "__main__":
    sys.exit(main())
