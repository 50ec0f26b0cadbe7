"""`Chained` awaits like the wrapper coroutine it stands for: results, exceptions and
cancellation pass through both stages, and what `then` gets is not kept past its call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.realtime.engine.chained import Chained
from server.realtime.engine.lean_queue import LeanQueue


async def _value(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


def _keep(_arg: object, _result: object) -> None:
    return None


def _double(arg: int, result: int) -> Any:
    return _value(result * arg)


def _fail(_arg: object, result: str) -> Any:
    raise ValueError(result)


async def test_the_first_result_stands_when_then_says_none() -> None:
    assert await Chained(_value("frame"), _keep, None) == "frame"


async def test_the_next_awaitable_gives_the_result() -> None:
    assert await Chained(_value(21), _double, 2) == 42


async def test_a_future_can_come_first_and_anything_yielded_reaches_the_task() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, future.set_result, 5)
    assert await Chained(future, _double, 3) == 15


async def test_exceptions_of_either_stage_reach_the_awaiting_code() -> None:
    async def broken() -> None:
        raise OSError("closed")

    with pytest.raises(OSError, match="closed"):
        await Chained(broken(), _keep, None)
    with pytest.raises(ValueError, match="bad"):
        await Chained(_value("bad"), _fail, None)


async def test_cancellation_reaches_the_awaitable_it_waits_on() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def waiter() -> Any:
        return await Chained(forever(), _keep, None)

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_a_timed_out_wait_for_closes_it_cleanly() -> None:
    queue = LeanQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(Chained(queue.get(), _keep, None), 0.01)
    queue.put_nowait("after")
    assert await asyncio.wait_for(queue.get(), 1) == "after"


def test_a_lean_queue_emptied_and_refilled_stays_in_order() -> None:
    queue = LeanQueue()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert queue.qsize() == 2 and queue.peek() == 1
    assert queue.get_nowait() == 1 and queue.get_nowait() == 2
    assert queue.empty() and queue.qsize() == 0 and queue.peek() is None
    queue.put_nowait(3)
    queue.put_nowait(4)
    assert queue.drop(lambda item: item == 3) == 1
    assert queue.get_nowait() == 4 and queue.empty()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
