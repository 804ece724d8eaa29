"""The dynamic batching queue, without a model: batch boundaries, routing, isolation."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from rt2_policy.serving.batching import BatchQueue, QueueFull


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20.0))  # a hang fails instead of blocking


def times_ten(items):
    if any(i < 0 for i in items):
        raise ValueError(f"negative item in {items}")
    return [i * 10 for i in items]


async def _queue(**kwargs):
    pool = ThreadPoolExecutor(max_workers=1)
    defaults = {"max_batch_size": 4, "window": 30.0}
    queue = BatchQueue(kwargs.pop("fn", times_ten), pool, **{**defaults, **kwargs})
    queue.start()
    return queue, pool


def test_full_batches_close_without_waiting_for_the_window():
    async def main():
        queue, pool = await _queue(max_batch_size=4, window=30.0)
        results = await asyncio.gather(*(queue.submit(i) for i in range(8)))
        await queue.close()
        pool.shutdown()
        return queue, results

    queue, results = run(main())
    assert [r.value for r in results] == [i * 10 for i in range(8)]  # each gets its own
    assert queue.batch_sizes == [4, 4]
    assert [r.batch_size for r in results] == [4] * 8
    assert all(r.queue_time >= 0 and r.run_time >= 0 for r in results)


def test_window_closes_a_partial_batch_and_max_size_one_never_batches():
    async def main():
        queue, pool = await _queue(max_batch_size=8, window=0.02)
        lone = await queue.submit(5)
        single, pool1 = await _queue(max_batch_size=1, window=0.0)
        many = await asyncio.gather(*(single.submit(i) for i in range(3)))
        for q in (queue, single):
            await q.close()
        pool.shutdown()
        pool1.shutdown()
        return queue, lone, single, many

    queue, lone, single, many = run(main())
    assert lone.value == 50 and queue.batch_sizes == [1]
    assert single.batch_sizes == [1, 1, 1] and [r.value for r in many] == [0, 10, 20]


def test_expected_count_closes_the_window_early():
    # A 30 s window would time the test out; two connected robots close it at two requests.
    async def main():
        queue, pool = await _queue(max_batch_size=8, window=30.0, expected=lambda: 2)
        results = await asyncio.gather(queue.submit(1), queue.submit(2))
        await queue.close()
        pool.shutdown()
        return queue, results

    queue, results = run(main())
    assert queue.batch_sizes == [2] and [r.value for r in results] == [10, 20]


def test_a_failing_item_fails_alone():
    async def main():
        queue, pool = await _queue(max_batch_size=3, window=30.0)
        results = await asyncio.gather(queue.submit(1), queue.submit(-1), queue.submit(2),
                                       return_exceptions=True)
        await queue.close()
        pool.shutdown()
        return queue, results

    queue, results = run(main())
    assert results[0].value == 10 and results[2].value == 20
    assert isinstance(results[1], ValueError)
    assert queue.batch_sizes == [1, 1, 1]  # the batch of 3 failed, then each ran alone


def test_overload_and_cancelled_requests():
    seen = []

    def record(items):
        seen.extend(items)
        return items

    async def main():
        robots = [3]
        queue, pool = await _queue(fn=record, max_batch_size=8, window=30.0, max_pending=2,
                                   expected=lambda: robots[0])
        first = asyncio.ensure_future(queue.submit("stale"))
        second = asyncio.ensure_future(queue.submit("fresh"))
        await asyncio.sleep(0)  # both queued; the worker waits for a third
        with pytest.raises(QueueFull):
            await queue.submit("one too many")
        first.cancel()  # superseded by the robot's newer request
        await asyncio.sleep(0)
        robots[0] = 2
        third = await queue.submit("other robot")
        fresh = await second
        await queue.close()
        pool.shutdown()
        return third, fresh

    third, fresh = run(main())
    assert (third.value, fresh.value) == ("other robot", "fresh")
    assert "stale" not in seen


def test_bad_settings_and_unstarted_queue():
    pool = ThreadPoolExecutor(max_workers=1)
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchQueue(times_ten, pool, max_batch_size=0, window=0.0)
    with pytest.raises(ValueError, match="window"):
        BatchQueue(times_ten, pool, max_batch_size=1, window=-1.0)
    queue = BatchQueue(times_ten, pool, max_batch_size=1, window=0.0)
    with pytest.raises(RuntimeError, match="start"):
        run(queue.submit(1))
    pool.shutdown()
