"""LeanQueue behaves like asyncio.Queue where engine.io relies on it."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from server.realtime.engine.lean_queue import LeanQueue


async def test_fifo_and_nowait() -> None:
    queue = LeanQueue()
    assert queue.empty()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    for item in range(3):
        await queue.put(item)
    assert queue.qsize() == 3
    assert [await queue.get(), queue.get_nowait(), await queue.get()] == [0, 1, 2]


async def test_a_waiting_get_is_woken_by_put() -> None:
    queue = LeanQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("packet")
    assert await asyncio.wait_for(waiter, 1) == "packet"


async def test_a_timed_out_get_leaves_no_waiter_and_loses_nothing() -> None:
    queue = LeanQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    queue.put_nowait("after")
    assert await asyncio.wait_for(queue.get(), 1) == "after"


async def test_a_woken_then_cancelled_getter_passes_the_item_on() -> None:
    queue = LeanQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("only")
    first.cancel()
    assert await asyncio.wait_for(second, 1) == "only"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_join_waits_for_task_done() -> None:
    queue = LeanQueue()
    await queue.join()  # nothing unfinished
    queue.put_nowait(1)
    joiner = asyncio.create_task(queue.join())
    await asyncio.sleep(0)
    assert not joiner.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joiner, 1)
    with pytest.raises(ValueError):
        queue.task_done()


def test_it_is_smaller_than_asyncio_queue() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        lean = [LeanQueue() for _ in range(1000)]
        middle = tracemalloc.take_snapshot()
        stock = [asyncio.Queue[object]() for _ in range(1000)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    lean_bytes = sum(s.size_diff for s in middle.compare_to(before, "filename"))
    stock_bytes = sum(s.size_diff for s in after.compare_to(middle, "filename"))
    assert len(lean) == len(stock)
    assert lean_bytes < stock_bytes / 2, (lean_bytes, stock_bytes)
