"""Settings of the policy server and its client, as frozen dataclasses (no torch, no rclpy).

Units are in every field's name or doc: seconds unless ``_ms``; sizes in bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Default TCP port of ``rt2-serve`` (openpi uses 8000; 8765 is the websockets examples' port).
DEFAULT_PORT = 8765

#: Environment variable that holds the API key by default (server and client). Keys are never
#: passed on a command line (visible in ``ps``) or as a ROS parameter (readable over DDS).
DEFAULT_API_KEY_ENV = "RT2_API_KEY"

#: 16 MiB: a 1280x720 RGB frame is 2.8 MB; websockets' own default (1 MiB) is too small.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def _positive(name: str, value: float, unit: str, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and math.isfinite(value) and (
        value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite number {bound} {unit}, got {value!r}")


@dataclass(frozen=True)
class ServerConfig:
    """Network and batching settings of :class:`rt2_policy.serving.server.PolicyServer`.

    Attributes:
        host: address to bind; ``127.0.0.1`` (loopback, the default) or ``0.0.0.0`` to serve a
            network (then set ``api_key`` and put TLS in front, e.g. a reverse proxy).
        port: TCP port; 0 picks a free one (tests).
        api_key: shared secret the client must send as ``Authorization: Bearer <key>`` (or
            ``X-API-Key``); empty = no authentication.
        batch_window_ms: after the first request of a batch arrives, wait at most this many
            milliseconds for more (≥ 0). The wait ends early when ``max_batch_size`` requests or
            one request per connected robot are queued, so a lone robot never waits.
        max_batch_size: most observations decoded in one forward pass (≥ 1; 1 = one at a time).
        max_queue: requests waiting beyond this many are refused with an ``overloaded`` error.
        max_message_bytes: largest accepted websocket message, bytes.
        ping_interval: websocket keep-alive ping period, seconds (0 = off); a peer that does not
            answer within ``ping_interval`` is dropped.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str = ""
    batch_window_ms: float = 10.0
    max_batch_size: int = 8
    max_queue: int = 64
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ping_interval: float = 20.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"host: expected an address such as '127.0.0.1', got {self.host!r}")
        if not (isinstance(self.port, int) and 0 <= self.port <= 65535):
            raise ValueError(f"port: expected an integer in [0, 65535], got {self.port!r}")
        if not isinstance(self.api_key, str):
            raise ValueError(f"api_key: expected a string, got {type(self.api_key).__name__}")
        _positive("batch_window_ms", self.batch_window_ms, "ms", allow_zero=True)
        for name in ("max_batch_size", "max_queue", "max_message_bytes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        _positive("ping_interval", self.ping_interval, "s", allow_zero=True)

    @property
    def batch_window(self) -> float:
        """The batching window in seconds."""
        return self.batch_window_ms / 1000.0


@dataclass(frozen=True)
class ClientConfig:
    """Settings of :class:`rt2_policy.serving.client.RemotePolicy`.

    Attributes:
        uri: server address, ``ws://host:port`` (``wss://`` behind a TLS proxy).
        api_key: sent as ``Authorization: Bearer <key>`` when not empty.
        request_timeout: deadline of one request (send → matching reply), seconds (> 0); a
            missed deadline raises ``TimeoutError`` and the late reply is discarded.
        connect_timeout: deadline of one connection attempt (TCP + handshake + metadata frame),
            seconds (> 0).
        reconnect_initial: first back-off delay after a lost connection, seconds (> 0).
        reconnect_max: back-off cap, seconds (≥ ``reconnect_initial``); delays double up to it.
        reconnect_deadline: overall deadline: stop reconnecting after the server has been
            unreachable for this long, seconds (0 = keep trying forever).
        max_message_bytes: largest accepted reply, bytes.
    """

    uri: str = f"ws://127.0.0.1:{DEFAULT_PORT}"
    api_key: str = ""
    request_timeout: float = 0.5
    connect_timeout: float = 2.0
    reconnect_initial: float = 0.05
    reconnect_max: float = 1.0
    reconnect_deadline: float = 0.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def __post_init__(self) -> None:
        parts = urlsplit(self.uri) if isinstance(self.uri, str) else None
        if parts is None or parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"uri: expected ws://host:port or wss://host:port, got {self.uri!r}")
        if not isinstance(self.api_key, str):
            raise ValueError(f"api_key: expected a string, got {type(self.api_key).__name__}")
        _positive("request_timeout", self.request_timeout, "s")
        _positive("connect_timeout", self.connect_timeout, "s")
        _positive("reconnect_initial", self.reconnect_initial, "s")
        _positive("reconnect_max", self.reconnect_max, "s")
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError(f"reconnect_max: expected >= reconnect_initial "
                             f"({self.reconnect_initial} s), got {self.reconnect_max!r}")
        _positive("reconnect_deadline", self.reconnect_deadline, "s", allow_zero=True)
        if not (isinstance(self.max_message_bytes, int) and self.max_message_bytes >= 1):
            raise ValueError(
                f"max_message_bytes: expected an integer >= 1, got {self.max_message_bytes!r}")

    @property
    def health_url(self) -> str:
        """``http(s)://host:port/healthz`` of the same server."""
        parts = urlsplit(self.uri)
        scheme = "https" if parts.scheme == "wss" else "http"
        return f"{scheme}://{parts.netloc}/healthz"
