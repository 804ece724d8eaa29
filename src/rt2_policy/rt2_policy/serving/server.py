"""``rt2-serve``: one VLA served to many robots over a websocket, with dynamic batching.

Wire format: :mod:`rt2_policy.serving.wire` (msgpack + numpy, versioned, never pickle). On
connect the server sends a metadata frame; each ``infer`` request is answered by an ``action``
(with ``server_timing``) or an ``error`` reply carrying the request's ``id``. ``GET /healthz`` on
the same port answers ``200 {"status": "ok", ...}`` without a key (for load balancers and
Kubernetes probes). With an API key configured the websocket upgrade needs
``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``); otherwise it is refused with HTTP 401.

Concurrency: the asyncio event loop only does I/O and the msgpack codec. Model work runs in a
one-thread executor fed by a :class:`~rt2_policy.serving.batching.BatchQueue`: requests from
different robots arriving within ``batch_window_ms`` are decoded as one left-padded batch
(``VLAPolicy.infer_batch``: same constrained decoder, KV cache). A robot that sends a new
request while its previous one is still pending supersedes it: the old one is dropped from the
queue, or its reply is not sent if it is already running (only the newest observation of a robot
is worth computing). The client also drops any reply whose id is not its outstanding request.

Prior art: openpi's ``WebsocketPolicyServer`` (metadata on connect, ``/healthz``,
``server_timing``, error frames), which infers on the event loop and has no batching.

Run: ``rt2-serve --model /path/to/checkpoint`` (``ros2 run rt2_policy serve``, or
``python -m rt2_policy.serving``); ``--help`` lists the flags. Nothing here imports rclpy.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch (2-core stalls otherwise)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from http import HTTPStatus  # noqa: E402
from typing import Any  # noqa: E402

from websockets.asyncio.server import ServerConnection, serve  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.http11 import Request, Response  # noqa: E402

from rt2_policy.contract import Observation, Policy, RobotAction  # noqa: E402
from rt2_policy.serving import wire  # noqa: E402
from rt2_policy.serving.batching import BatchQueue, QueueFull  # noqa: E402
from rt2_policy.serving.config import (  # noqa: E402
    DEFAULT_API_KEY_ENV,
    DEFAULT_PORT,
    ServerConfig,
)

_LOG = logging.getLogger("rt2_policy.serving.server")


def run_policy_batch(policy: Policy, observations: list[Observation]) -> list[RobotAction]:
    """``policy.infer_batch`` when the policy has it, else one ``infer`` per observation."""
    batch_fn = getattr(policy, "infer_batch", None)
    if batch_fn is not None:
        return list(batch_fn(observations))
    return [policy.infer(o) for o in observations]


def policy_metadata(policy: Any) -> dict:
    """The policy's ``metadata`` (a dict, JSON/msgpack-safe) or a minimal one."""
    meta = getattr(policy, "metadata", None)
    meta = meta() if callable(meta) else meta
    return dict(meta) if isinstance(meta, dict) else {"model_id": type(policy).__name__}


class PolicyServer:
    """Serves ``policy`` to many clients; see the module docstring.

    Args:
        policy: implements ``infer`` (and ideally ``infer_batch``, ``answer``, ``metadata``).
            Only the server's one worker thread calls it.
        config: network and batching settings.

    Use :meth:`serve_forever` in an asyncio program, or :class:`ServerThread` from sync code.
    """

    def __init__(self, policy: Policy, config: ServerConfig | None = None) -> None:
        self.policy = policy
        self.config = config or ServerConfig()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rt2-infer")
        self._connections: set[ServerConnection] = set()
        self._queue: BatchQueue | None = None
        self._server = None
        self.port: int | None = None
        self.metadata = policy_metadata(policy)
        self.metadata["server"] = {
            "protocol": wire.PROTOCOL_VERSION,
            "max_batch_size": self.config.max_batch_size,
            "batch_window_ms": self.config.batch_window_ms,
            "auth": bool(self.config.api_key),
        }
        self.requests_served = 0

    # ------------------------------------------------------------------ HTTP side
    def _authorized(self, request: Request) -> bool:
        key = self.config.api_key
        if not key:
            return True
        given = request.headers.get("X-API-Key", "")
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), key.encode())

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            body = {"status": "ok", "protocol": wire.PROTOCOL_VERSION,
                    "connections": len(self._connections),
                    "pending": self._queue.pending if self._queue else 0}
            response = connection.respond(HTTPStatus.OK, json.dumps(body) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if path != "/":
            return connection.respond(HTTPStatus.NOT_FOUND, f"no such path {path!r}; the policy "
                                      "websocket is at / and the health check at /healthz\n")
        if not self._authorized(request):
            _LOG.warning("refused %s: missing or wrong API key", connection.remote_address)
            return connection.respond(HTTPStatus.UNAUTHORIZED,
                                      "missing or wrong API key: send 'Authorization: Bearer "
                                      "<key>'\n")
        return None

    # ------------------------------------------------------------------ websocket side
    async def _handler(self, ws: ServerConnection) -> None:
        self._connections.add(ws)
        tasks: set[asyncio.Task] = set()
        newest: dict[str, asyncio.Task] = {}
        try:
            await ws.send(wire.packb(wire.metadata_message(self.metadata)))
            async for data in ws:
                received = time.perf_counter()
                try:
                    message = wire.unpackb(data)
                except wire.WireError as exc:
                    await ws.send(wire.packb(wire.error_reply(None, "bad_request", str(exc))))
                    continue
                kind = message["type"]
                previous = newest.get(kind) if kind == "infer" else None
                if previous is not None and not previous.done():
                    previous.cancel()  # superseded: the robot wants its newest frame served
                task = asyncio.create_task(self._dispatch(ws, message, received))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if kind == "infer":
                    newest[kind] = task
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(ws)
            for task in tasks:
                task.cancel()

    async def _dispatch(self, ws: ServerConnection, message: dict, received: float) -> None:
        request_id = message.get("id")
        if not isinstance(request_id, int):
            request_id = None
        try:
            reply = await self._reply(message, request_id, received)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error reply
            reply = wire.error_reply(request_id, *self._classify(exc))
        try:
            await ws.send(wire.packb(reply))
        except ConnectionClosed:
            pass

    @staticmethod
    def _classify(exc: Exception) -> tuple[str, str]:
        if isinstance(exc, QueueFull):
            return "overloaded", f"server overloaded: {exc}"
        if isinstance(exc, wire.WireError | ValueError):
            return "bad_request", str(exc)
        if isinstance(exc, RuntimeError):
            return "inference_failed", str(exc)
        _LOG.exception("unexpected server error")
        return "internal", f"{type(exc).__name__}: {exc}"

    async def _reply(self, message: dict, request_id: int | None, received: float) -> dict:
        kind = message["type"]
        protocol = message.get("protocol", wire.PROTOCOL_VERSION)
        if protocol != wire.PROTOCOL_VERSION:
            return wire.error_reply(request_id, "unsupported_protocol",
                                    f"protocol: expected {wire.PROTOCOL_VERSION}, got {protocol!r}")
        if request_id is None:
            raise wire.WireError("id: expected an integer request id")
        if kind == "infer":
            observation = wire.observation_from_wire(message.get("observation"))
            result = await self._queue.submit(observation)
            self.requests_served += 1
            timing = {"queue_ms": result.queue_time * 1e3, "infer_ms": result.run_time * 1e3,
                      "batch_size": result.batch_size,
                      "total_ms": (time.perf_counter() - received) * 1e3}
            return wire.action_reply(request_id, result.value, timing)
        if kind == "answer":
            answer = getattr(self.policy, "answer", None)
            if answer is None:
                return wire.error_reply(request_id, "unsupported",
                                        f"{type(self.policy).__name__} cannot answer questions")
            image = message.get("image")
            question = message.get("question")
            if not isinstance(question, str) or not question.strip():
                raise wire.WireError(f"question: expected a non-empty string, got {question!r}")
            started = time.perf_counter()
            text = await self._queue.run_exclusive(
                answer, image, question, int(message.get("max_new_tokens", 32)))
            return {"type": "answer", "id": request_id, "text": str(text),
                    "server_timing": {"infer_ms": (time.perf_counter() - started) * 1e3,
                                      "total_ms": (time.perf_counter() - received) * 1e3}}
        if kind == "reset":
            await self._queue.run_exclusive(self.policy.reset)
            return {"type": "reset", "id": request_id}
        raise wire.WireError(f"type: expected 'infer', 'answer' or 'reset', got {kind!r}")

    # ------------------------------------------------------------------ running
    async def start(self) -> int:
        """Bind and start serving on the running loop; returns the bound port."""
        self._queue = BatchQueue(
            lambda obs: run_policy_batch(self.policy, obs), self._executor,
            max_batch_size=self.config.max_batch_size, window=self.config.batch_window,
            max_pending=self.config.max_queue, expected=lambda: len(self._connections))
        self._queue.start()
        self._server = await serve(
            self._handler, self.config.host, self.config.port,
            process_request=self._process_request, compression=None,
            max_size=self.config.max_message_bytes,
            ping_interval=self.config.ping_interval or None,
            ping_timeout=self.config.ping_interval or None)
        self.port = self._server.sockets[0].getsockname()[1]
        _LOG.info("serving %s on ws://%s:%d (batch <= %d within %.1f ms, auth %s)",
                  self.metadata.get("model_id", "?"), self.config.host, self.port,
                  self.config.max_batch_size, self.config.batch_window_ms,
                  "on" if self.config.api_key else "off")
        return self.port

    async def stop(self) -> None:
        """Close every connection, stop the batch worker and the listening socket."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._queue is not None:
            await self._queue.close()

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the batches decoded so far."""
        return list(self._queue.batch_sizes) if self._queue else []

    async def serve_forever(self, stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` is set (or forever)."""
        await self.start()
        try:
            await (stop.wait() if stop is not None else asyncio.Future())
        finally:
            await self.stop()

    def shutdown_executor(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class ServerThread:
    """A :class:`PolicyServer` on its own event loop in a daemon thread (tests, benchmarks).

    ``with ServerThread(policy, ServerConfig(port=0)) as server: server.uri`` ...
    :meth:`stop` closes it (connections drop, as when the process dies).
    """

    def __init__(self, policy: Policy, config: ServerConfig | None = None) -> None:
        self.server = PolicyServer(policy, config)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rt2-serve", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                await self.server.start()
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.server.stop()
                # Half-open handshakes and handlers still running: end them on this loop, so
                # nothing is left to be garbage-collected after it closes.
                others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in others:
                    task.cancel()
                await asyncio.gather(*others, return_exceptions=True)

        self._loop.run_until_complete(main())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start and wait until the socket is bound.

        Raises:
            OSError: when the port cannot be bound; TimeoutError when start-up hangs.
        """
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"policy server did not start within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    @property
    def port(self) -> int:
        return int(self.server.port)

    @property
    def uri(self) -> str:
        return f"ws://{self.server.config.host}:{self.port}"

    @property
    def alive(self) -> bool:
        """True while the server's thread runs (from :meth:`start` until :meth:`stop` has
        closed every connection and the event loop)."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and the listening socket, then end the thread, waiting up to
        ``timeout`` seconds for it (:attr:`alive` tells whether it ended)."""
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
        self.server.shutdown_executor()

    def __enter__(self) -> ServerThread:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- command line
def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rt2-serve",
        description="Serve an RT-2-style VLA policy over a websocket (msgpack + numpy) with "
                    "dynamic batching. The API key is read from an environment variable, "
                    "never from the command line.")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="",
                       help="checkpoint directory or cached Hugging Face hub id")
    model.add_argument("--tiny", action="store_true",
                       help="build and serve the offline tiny VLA (random weights; smoke tests)")
    model.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    model.add_argument("--dtype", default=None,
                       help="float32 | bfloat16 | float16 (default: the checkpoint's)")
    model.add_argument("--attn-implementation", default=None,
                       choices=["eager", "sdpa", "flash_attention_2"],
                       help="attention kernel (default: transformers' choice, SDPA)")
    model.add_argument("--cache", default="dynamic", choices=["dynamic", "static"],
                       help="KV cache of the action decode (static = preallocated)")
    model.add_argument("--compile", action="store_true",
                       help="torch.compile the one-token decode step (static cache; the first "
                            "request per batch size compiles; warm-up does it for you)")
    model.add_argument("--terminate-threshold", type=float, default=None,
                       help="probability of terminate the action decode needs to end an "
                            "episode, in (0, 1); default: the checkpoint's own (0.5 = RT-2's "
                            "greedy decode when it stores none)")
    model.add_argument("--num-threads", type=int, default=0,
                       help="torch CPU threads (0 = torch's default)")
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1",
                     help="bind address (default loopback; 0.0.0.0 serves the network)")
    net.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0 = any free)")
    net.add_argument("--api-key-env", default=DEFAULT_API_KEY_ENV,
                     help="environment variable holding the API key; unset or empty = no auth")
    net.add_argument("--max-message-mb", type=float, default=16.0,
                     help="largest accepted message, MiB")
    batch = parser.add_argument_group("batching")
    batch.add_argument("--batch-window-ms", type=float, default=10.0,
                       help="wait this long for more robots' requests before decoding a batch")
    batch.add_argument("--max-batch-size", type=int, default=8,
                       help="most observations per forward pass (1 = no batching)")
    batch.add_argument("--max-queue", type=int, default=64,
                       help="requests allowed to wait; beyond, 'overloaded' errors")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the warm-up inferences (batch sizes 1..max) before serving")
    parser.add_argument("--log-level", default="INFO")
    return parser


def load_policy(args: argparse.Namespace) -> Policy:
    """The VLA named by the command line (imports torch + transformers)."""
    import torch

    from rt2_policy.vla_policy import VLAPolicy

    if args.num_threads < 0:
        raise ValueError(f"--num-threads: expected >= 0, got {args.num_threads}")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    path = args.model
    if args.tiny:
        import tempfile

        from rt2_policy.tiny_model import build_tiny_vla

        path = str(build_tiny_vla(tempfile.mkdtemp(prefix="rt2_tiny_vla_"), seed=0))
    if not path:
        raise ValueError("--model: expected a checkpoint directory or hub id (or --tiny)")
    return VLAPolicy.from_pretrained(path, device=args.device, dtype=args.dtype,
                                     attn_implementation=args.attn_implementation,
                                     cache=args.cache, compile=args.compile,
                                     terminate_threshold=args.terminate_threshold)


def warm_up(policy: Policy, max_batch_size: int, size: int | None = None) -> float:
    """Run one batch of every size up to ``max_batch_size`` (compiles, allocates); seconds."""
    import numpy as np

    side = int(size or getattr(policy, "image_size", None) or 224)
    started = time.perf_counter()
    image = np.zeros((side, side, 3), np.uint8)
    # Proprioception too: models that read it refuse observations without it (others ignore it).
    warm = Observation(image, "warm up the policy server", gripper_state=0.0,
                       tcp_position=(0.3, 0.0, 0.5), grasped=False)
    for n in range(1, max_batch_size + 1):
        run_policy_batch(policy, [warm] * n)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rt2-serve`` / ``serve``."""
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        config = ServerConfig(
            host=args.host, port=args.port, api_key=os.environ.get(args.api_key_env, ""),
            batch_window_ms=args.batch_window_ms, max_batch_size=args.max_batch_size,
            max_queue=args.max_queue, max_message_bytes=int(args.max_message_mb * 2**20))
        started = time.perf_counter()
        policy = load_policy(args)
        _LOG.info("loaded %s in %.1f s", policy_metadata(policy).get("model_id", "?"),
                  time.perf_counter() - started)
        if not args.no_warmup:
            _LOG.info("warm-up (batch sizes 1..%d) took %.1f s", config.max_batch_size,
                      warm_up(policy, config.max_batch_size))
    except (ValueError, OSError) as exc:
        _LOG.error("%s", exc)
        return 2
    server = PolicyServer(policy, config)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await server.start()
        print(f"rt2-serve: listening on ws://{config.host}:{server.port} "
              f"(health: http://{config.host}:{server.port}/healthz)", flush=True)
        try:
            await stop.wait()
        finally:
            await server.stop()

    try:
        asyncio.run(run())
    except OSError as exc:
        _LOG.error("cannot serve on %s:%d: %s", config.host, config.port, exc)
        return 2
    finally:
        server.shutdown_executor()
    return 0


if __name__ == "__main__":
    sys.exit(main())
