"""``RemotePolicy``: the policy contract (``infer``/``reset``) over the network to ``rt2-serve``.

The node cannot tell it from the local model, except that it fails fast and safely:

* every request has a deadline (``request_timeout``): a missed one raises ``TimeoutError``; the
  control loop then holds the arm (zero twist) and reports the fault;
* every request carries a new, increasing id; a reply whose id is not the one awaited (the late
  answer to a timed-out request) is dropped and counted, never returned, so a stale action is
  never executed;
* a lost connection raises ``ConnectionError`` at once and a background thread reconnects with
  exponential back-off (``reconnect_initial`` doubling up to ``reconnect_max``), giving up after
  ``reconnect_deadline`` (0 = never); ``infer`` never waits for a reconnect, so the control loop
  is never blocked longer than one request deadline;
* a refused API key raises :class:`AuthenticationError` (a ``ConnectionError``).

(``websockets.sync.client.reconnect`` is an iterator that blocks its caller while it retries;
the control loop needs a client that fails at once and heals in the background, hence the small
back-off thread here. ``legacy=True`` keeps ``connect`` returning the connection directly.)

Uses the ``websockets`` sync client (its own I/O thread; ``recv(timeout=)``), msgpack and numpy:
importing this module imports neither torch nor transformers (tested), so a robot computer
needs no ML stack. Nothing here imports rclpy.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
import urllib.request
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from rt2_policy.contract import Observation, RobotAction
from rt2_policy.serving import wire
from rt2_policy.serving.config import ClientConfig

_LOG = logging.getLogger("rt2_policy.serving.client")


class AuthenticationError(ConnectionError):
    """The server refused the API key (HTTP 401, or 403 from a Ray Serve ingress)."""


class RemotePolicy:
    """Client of ``rt2-serve`` implementing :class:`rt2_policy.contract.Policy`.

    Args:
        config: server address, key, deadlines, back-off.
        connect: try to connect now (one attempt within ``connect_timeout``); on failure the
            background reconnect starts and ``infer`` raises ``ConnectionError`` until it succeeds.
        require_connection: with ``connect``, raise instead of reconnecting in the background.
        logger: where drops, losses and reconnects are logged (default: this module's logger);
            anything with ``info``/``warning`` methods (an rclpy logger works).

    Raises:
        ConnectionError / AuthenticationError: only with ``require_connection``.

    Thread safety: ``infer``/``answer``/``reset`` serialise on an internal lock.
    """

    def __init__(self, config: ClientConfig | None = None, *, connect: bool = True,
                 require_connection: bool = False, logger: Any = None) -> None:
        self.config = config or ClientConfig()
        self._log = logger or _LOG
        self._lock = threading.Lock()            # one request at a time
        self._state = threading.Lock()           # guards _conn / _reconnecting / reasons
        self._conn: ClientConnection | None = None
        self._metadata: dict = {}
        self._ids = itertools.count(1)
        self._reconnecting: threading.Thread | None = None
        self._closed = threading.Event()
        self._down_since: float | None = time.monotonic()
        self._down_reason = "not connected yet"
        self._gave_up = False
        self.stats = {"requests": 0, "replies": 0, "timeouts": 0, "discarded_replies": 0,
                      "connection_losses": 0, "reconnects": 0, "errors": 0}
        if connect:
            try:
                self._connect_once()
            except ConnectionError as exc:
                if require_connection:
                    raise
                self._down_reason = str(exc)
                self._log.warning(f"policy server {self.config.uri} unavailable ({exc}); "
                                  "reconnecting in the background")
                self._start_reconnect()

    # ------------------------------------------------------------------ connection
    def _connect_once(self) -> None:
        """One attempt: handshake + metadata frame within ``connect_timeout``.

        Raises:
            AuthenticationError: HTTP 401/403. ConnectionError: anything else.
        """
        cfg = self.config
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else None
        deadline = time.monotonic() + cfg.connect_timeout
        try:
            conn = connect(cfg.uri, additional_headers=headers, open_timeout=cfg.connect_timeout,
                           compression=None, proxy=None, max_size=cfg.max_message_bytes,
                           close_timeout=1.0, ping_interval=None, legacy=True)
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body \
                else ""
            if status in (401, 403):
                raise AuthenticationError(f"server refused the API key (HTTP {status}): {body}") \
                    from exc
            raise ConnectionError(f"server answered HTTP {status}: {body}") from exc
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise ConnectionError(f"cannot connect to {cfg.uri}: {exc}") from exc
        try:
            frame = wire.unpackb(conn.recv(timeout=max(0.01, deadline - time.monotonic())))
        except (TimeoutError, ConnectionClosed, wire.WireError) as exc:
            conn.close()
            raise ConnectionError(f"{cfg.uri}: no metadata frame after connecting: {exc}") \
                from exc
        if frame.get("type") != "metadata" or frame.get("protocol") != wire.PROTOCOL_VERSION:
            conn.close()
            raise ConnectionError(
                f"{cfg.uri}: expected a metadata frame of protocol {wire.PROTOCOL_VERSION}, got "
                f"type {frame.get('type')!r} protocol {frame.get('protocol')!r}")
        with self._state:
            self._conn = conn
            self._metadata = dict(frame.get("metadata") or {})
            self._down_since = None
            self._gave_up = False

    def _lost(self, conn: ClientConnection, reason: str) -> None:
        """Mark ``conn`` dead (if still current) and start reconnecting."""
        with self._state:
            if self._conn is not conn:
                return
            self._conn = None
            self._down_since = time.monotonic()
            self._down_reason = reason
            self.stats["connection_losses"] += 1
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - already broken
            pass
        self._log.warning(f"lost the policy server {self.config.uri}: {reason}; reconnecting")
        self._start_reconnect()

    def _start_reconnect(self) -> None:
        with self._state:
            if self._closed.is_set() or (self._reconnecting and self._reconnecting.is_alive()):
                return
            if self._down_since is None:
                self._down_since = time.monotonic()
            self._reconnecting = threading.Thread(target=self._reconnect_loop,
                                                  name="rt2-remote-reconnect", daemon=True)
            self._reconnecting.start()

    def _reconnect_loop(self) -> None:
        cfg = self.config
        delay = cfg.reconnect_initial
        while not self._closed.is_set():
            down_for = time.monotonic() - (self._down_since or time.monotonic())
            if cfg.reconnect_deadline and down_for >= cfg.reconnect_deadline:
                with self._state:
                    self._gave_up = True
                self._log.warning(f"gave up reconnecting to {cfg.uri} after {down_for:.1f} s")
                return
            try:
                self._connect_once()
            except ConnectionError as exc:
                with self._state:
                    self._down_reason = str(exc)
                # full jitter keeps a fleet of robots from reconnecting in lock-step
                if self._closed.wait(delay * (0.5 + 0.5 * random.random())):
                    return
                delay = min(cfg.reconnect_max, delay * 2.0)
                continue
            self.stats["reconnects"] += 1
            self._log.info(f"reconnected to the policy server {cfg.uri}")
            return

    def connect(self, deadline: float | None = None) -> None:
        """Block until connected, retrying with back-off for up to ``deadline`` seconds
        (default ``connect_timeout``).

        Raises:
            AuthenticationError: the key was refused. ConnectionError: not connected in time.
        """
        end = time.monotonic() + (self.config.connect_timeout if deadline is None else deadline)
        delay = self.config.reconnect_initial
        while True:
            if self.connected:
                return
            try:
                self._connect_once()
                return
            except AuthenticationError:
                raise
            except ConnectionError:
                if time.monotonic() + delay > end:
                    raise
                time.sleep(delay)
                delay = min(self.config.reconnect_max, delay * 2.0)

    @property
    def connected(self) -> bool:
        with self._state:
            return self._conn is not None

    @property
    def metadata(self) -> dict:
        """The server's metadata frame (model id, action space, bounds, image size, batching);
        empty until the first connection."""
        with self._state:
            return dict(self._metadata)

    def health(self, timeout: float | None = None) -> dict:
        """``GET /healthz`` of the server (no key needed).

        Raises:
            ConnectionError: when the server does not answer 200.
        """
        request = urllib.request.Request(self.config.health_url)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
        try:
            with opener.open(request, timeout=timeout or self.config.connect_timeout) as reply:
                return json.loads(reply.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConnectionError(f"{self.config.health_url}: {exc}") from exc

    def close(self) -> None:
        """Stop reconnecting and close the connection."""
        self._closed.set()
        with self._state:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> RemotePolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def _unavailable(self) -> ConnectionError:
        with self._state:
            since = self._down_since
            reason = self._down_reason
            gave_up = self._gave_up
        down = f" for {time.monotonic() - since:.1f} s" if since is not None else ""
        state = "gave up reconnecting" if gave_up else "reconnecting"
        error = AuthenticationError if "refused the API key" in reason else ConnectionError
        return error(f"policy server {self.config.uri} unavailable{down} ({state}): {reason}")

    def _request(self, build, expected: str, timeout: float | None = None) -> tuple[dict, float]:
        """Send one request and wait for its reply; returns (reply, round-trip seconds)."""
        with self._lock:
            with self._state:
                conn = self._conn
            if conn is None:
                raise self._unavailable()
            request_id = next(self._ids)
            message = build(request_id)
            started = time.monotonic()
            deadline = started + (timeout or self.config.request_timeout)
            self.stats["requests"] += 1
            try:
                conn.send(wire.packb(message))
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError
                    data = conn.recv(timeout=remaining)
                    try:
                        reply = wire.unpackb(data)
                    except wire.WireError as exc:
                        self._log.warning(f"dropped a malformed reply: {exc}")
                        continue
                    if reply.get("id") != request_id:
                        self.stats["discarded_replies"] += 1
                        self._log.warning(
                            f"dropped a late reply to request {reply.get('id')} "
                            f"(waiting for {request_id})")
                        continue
                    break
            except TimeoutError:
                self.stats["timeouts"] += 1
                raise TimeoutError(
                    f"policy server {self.config.uri}: no reply to request {request_id} within "
                    f"{(timeout or self.config.request_timeout) * 1e3:.0f} ms") from None
            except (ConnectionClosed, OSError) as exc:
                self._lost(conn, f"{type(exc).__name__}: {exc}")
                raise ConnectionError(
                    f"policy server {self.config.uri}: connection lost: {exc}") from exc
            rtt = time.monotonic() - started
        self.stats["replies"] += 1
        if reply.get("type") == "error":
            self.stats["errors"] += 1
            code, text = reply.get("code", "internal"), reply.get("message", "")
            if code == "bad_request":
                raise ValueError(f"policy server refused the request: {text}")
            raise RuntimeError(f"policy server error ({code}): {text}")
        if reply.get("type") != expected:
            raise RuntimeError(f"policy server: expected a {expected!r} reply, "
                               f"got {reply.get('type')!r}")
        return reply, rtt

    def infer(self, observation: Observation) -> RobotAction:
        """The action for ``observation`` from the server.

        Returns:
            :class:`RobotAction`; ``latency`` is the round trip in seconds; ``extra`` holds
            ``request_id``, ``server_timing`` (ms and batch size) and ``server_latency`` (s).

        Raises:
            ValueError: on a non-Observation or a request the server calls malformed.
            TimeoutError: no reply within ``request_timeout``.
            ConnectionError: no connection (the reconnect runs in the background).
            RuntimeError: the server failed (e.g. non-finite model output, overload).
        """
        if not isinstance(observation, Observation):
            raise ValueError(f"observation: expected rt2_policy.contract.Observation, "
                             f"got {type(observation).__name__}")
        reply, rtt = self._request(lambda i: wire.infer_request(i, observation), "action")
        try:
            action = wire.action_from_wire(reply.get("action"))
        except wire.WireError as exc:
            raise RuntimeError(f"policy server sent a malformed action: {exc}") from exc
        server_latency = action.latency
        action = RobotAction(bins=action.bins, terminate=action.terminate,
                             delta_position=action.delta_position,
                             delta_rotation=action.delta_rotation, gripper=action.gripper,
                             text=action.text, latency=rtt, plan=action.plan)
        action.extra.update(request_id=reply["id"], server_timing=reply.get("server_timing", {}),
                            server_latency=server_latency)
        return action

    def answer(self, image: np.ndarray, question: str, max_new_tokens: int = 32,
               timeout: float | None = None) -> str:
        """Ask the served model a free-form question about ``image`` (``(H, W, 3)`` uint8 RGB).

        ``timeout`` (s) defaults to ``request_timeout``; answers take longer than actions.

        Raises:
            ValueError, TimeoutError, ConnectionError, RuntimeError: as :meth:`infer`.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected an (H, W, 3) uint8 array, got {image.shape} "
                             f"{image.dtype}")
        reply, _ = self._request(
            lambda i: wire.answer_request(i, image, question, max_new_tokens), "answer",
            timeout=timeout)
        return str(reply.get("text", ""))

    def reset(self) -> None:
        """Forward ``reset`` to the served policy; never raises (episode start must not fail)."""
        try:
            self._request(wire.reset_request, "reset")
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            self._log.warning(f"reset not delivered to the policy server: {exc}")
