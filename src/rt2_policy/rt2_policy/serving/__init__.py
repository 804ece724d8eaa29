"""Remote inference for rt2: a websocket policy server with dynamic batching, its client, and a
Ray Serve deployment of the same policy.

* :mod:`~rt2_policy.serving.wire`: message schema and the msgpack + numpy codec (no pickle).
* :mod:`~rt2_policy.serving.config`: :class:`ServerConfig`, :class:`ClientConfig`.
* :mod:`~rt2_policy.serving.batching`: the batching queue (pure asyncio).
* :mod:`~rt2_policy.serving.server`: ``rt2-serve`` (imports torch only to load a model).
* :mod:`~rt2_policy.serving.client`: :class:`RemotePolicy`, importable without torch.
* :mod:`~rt2_policy.serving.ray_deployment`: the same policy on Ray Serve (optional ``ray``).

This package module imports nothing heavy, so ``from rt2_policy.serving.client import
RemotePolicy`` stays torch-free.
"""

from rt2_policy.serving.config import ClientConfig, ServerConfig

__all__ = ["ClientConfig", "ServerConfig"]
