"""Waiting for a condition with a deadline, instead of sleeping a fixed time and hoping.

    await eventually(lambda: not client.connected, what="the server closing the socket")

`eventually` evaluates `check` (a plain or an async callable) until it returns something
truthy, and returns that value; once `timeout` seconds have passed it fails with an
AssertionError that names what it was waiting for and the last value it saw. A condition
that holds is seen within one `interval`, so the deadline can be generous: only a broken
condition ever waits it out, and a slow machine never fails a test that way.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

__all__ = ["eventually"]

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], *, what: str, timeout: float = ..., interval: float = ...
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T], *, what: str, timeout: float = ..., interval: float = ...
) -> T: ...


async def eventually(
    check: Callable[[], object],
    *,
    what: str,
    timeout: float = 10.0,
    interval: float = 0.05,
) -> object:
    """`check()`'s first truthy result; AssertionError naming `what` after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} (last check: {result!r})"
            )
        await asyncio.sleep(interval)
