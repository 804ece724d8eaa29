"""Dynamic batching of requests from several robots, pure asyncio (no model, no network).

A :class:`BatchQueue` collects submitted items and hands them to ``run_batch`` (e.g.
``VLAPolicy.infer_batch``) in a worker thread, so inference never blocks the event loop. A batch
starts with the oldest waiting item and closes when

* ``max_batch_size`` items are waiting, or
* ``expected()`` items are waiting (the server passes the number of connected robots: each robot
  has one request in flight, so once every robot is in, waiting longer gains nothing), or
* ``window`` seconds have passed since the oldest item arrived.

Requests that arrive while a batch runs wait for the next one. This is the scheme of Ray Serve's
``@serve.batch`` (``max_batch_size``, ``batch_wait_timeout_s``) and of Triton's dynamic batcher
(``max_queue_delay_microseconds``), plus the early close. If a batch fails, each of its items is
run alone, so that one bad observation fails only its own request.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class QueueFull(RuntimeError):
    """More than ``max_pending`` items are waiting (the server answers ``overloaded``)."""


@dataclass(frozen=True)
class BatchResult(Generic[R]):
    """One item's result and how it was produced.

    Attributes:
        value: what ``run_batch`` returned for this item.
        queue_time: seconds from submit to the start of its batch.
        run_time: seconds ``run_batch`` took for the whole batch.
        batch_size: number of items in that batch.
    """

    value: R
    queue_time: float
    run_time: float
    batch_size: int


@dataclass
class _Pending:
    item: Any
    future: asyncio.Future
    enqueued: float


class BatchQueue(Generic[T, R]):
    """Collects items into batches for ``run_batch``; see the module docstring.

    Args:
        run_batch: called with a list of 1..``max_batch_size`` items in ``executor``; returns one
            result per item, in order. Exceptions fail the batch (items are then retried alone).
        executor: where ``run_batch`` runs (a one-thread pool serialises model access).
        max_batch_size: most items per batch (≥ 1).
        window: seconds to wait for more items after the oldest one arrived (≥ 0).
        max_pending: items allowed to wait; beyond, :meth:`submit` raises :class:`QueueFull`.
        expected: optional callable giving how many items are worth waiting for (e.g. the
            number of connected clients); the window closes early once that many are queued.

    Raises:
        ValueError: on a bad size or window.
    """

    def __init__(self, run_batch: Callable[[list[T]], Sequence[R]], executor: Executor, *,
                 max_batch_size: int, window: float, max_pending: int = 1024,
                 expected: Callable[[], int] | None = None) -> None:
        if not (isinstance(max_batch_size, int) and max_batch_size >= 1):
            raise ValueError(f"max_batch_size: expected an integer >= 1, got {max_batch_size!r}")
        if not (isinstance(window, int | float) and window >= 0):
            raise ValueError(f"window: expected a number >= 0 s, got {window!r}")
        if not (isinstance(max_pending, int) and max_pending >= 1):
            raise ValueError(f"max_pending: expected an integer >= 1, got {max_pending!r}")
        self._run_batch = run_batch
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.window = float(window)
        self.max_pending = max_pending
        self._expected = expected
        self._pending: collections.deque[_Pending] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        #: sizes of the batches run so far (for tests and stats)
        self.batch_sizes: list[int] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker task on the running event loop."""
        if self._worker is None:
            self._arrived = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self) -> None:
        """Stop the worker; waiting items fail with ``CancelledError``."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        while self._pending:
            pending = self._pending.popleft()
            if not pending.future.done():
                pending.future.cancel()

    @property
    def pending(self) -> int:
        """Items waiting for a batch."""
        return len(self._pending)

    # ------------------------------------------------------------------ API
    async def submit(self, item: T) -> BatchResult[R]:
        """Queue ``item`` and wait for its result.

        Raises:
            QueueFull: when ``max_pending`` items already wait.
            Exception: whatever ``run_batch`` raised for this item alone.
            RuntimeError: when the queue is not started.
        """
        if self._worker is None or self._arrived is None:
            raise RuntimeError("BatchQueue: call start() before submit()")
        if len(self._pending) >= self.max_pending:  # drop superseded/abandoned ones first
            self._pending = collections.deque(p for p in self._pending if not p.future.done())
        if len(self._pending) >= self.max_pending:
            raise QueueFull(f"{len(self._pending)} requests waiting (max_queue {self.max_pending})")
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(item, future, time.perf_counter()))
        self._arrived.set()
        return await future

    async def run_exclusive(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the batch executor (serialised with batches if it has 1 thread)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ------------------------------------------------------------------ worker
    def _target(self) -> int:
        if self._expected is None:
            return self.max_batch_size
        return max(1, min(self.max_batch_size, int(self._expected())))

    async def _next_batch(self) -> list[_Pending]:
        assert self._arrived is not None
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = self._pending[0].enqueued + self.window
        while len(self._pending) < self._target():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        count = min(len(self._pending), self.max_batch_size)
        return [self._pending.popleft() for _ in range(count)]

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [p for p in await self._next_batch() if not p.future.done()]
            if not batch:  # every requester gave up (superseded or disconnected)
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(
                    self._executor, self._run_batch, [p.item for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch: expected {len(batch)} results, "
                                       f"got {len(results)}")
            except Exception as exc:  # noqa: BLE001 - isolate the failing item(s)
                if len(batch) == 1:
                    self._finish(batch[0], exc, started, time.perf_counter() - started, 1)
                    self.batch_sizes.append(1)
                    continue
                for pending in batch:
                    await self._run_alone(loop, pending)
                continue
            run_time = time.perf_counter() - started
            self.batch_sizes.append(len(batch))
            for pending, result in zip(batch, results, strict=True):
                self._finish(pending, result, started, run_time, len(batch))

    async def _run_alone(self, loop: asyncio.AbstractEventLoop, pending: _Pending) -> None:
        if pending.future.done():
            return
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self._run_batch, [pending.item])
            outcome: Any = results[0]
        except Exception as exc:  # noqa: BLE001 - delivered to the requester
            outcome = exc
        self.batch_sizes.append(1)
        self._finish(pending, outcome, started, time.perf_counter() - started, 1)

    @staticmethod
    def _finish(pending: _Pending, outcome: Any, started: float, run_time: float,
                size: int) -> None:
        if pending.future.done():
            return
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(
                BatchResult(outcome, started - pending.enqueued, run_time, size))
