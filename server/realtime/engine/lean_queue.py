"""A smaller queue for engine.io's per-socket packet queue.

`asyncio.Queue` builds four deques up front (items, getters, putters, and the join
event's waiters): about 2.5 KiB for every connected socket, mostly idle. engine.io's
queue is unbounded with one consumer at a time, so putters never wait; this keeps the
items in one deque and creates the rest only when somebody actually waits. The deque
itself (~0.75 KiB: its first block) exists only while something is queued: an idle
socket's queue is empty between pings, and most sockets are idle.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`engineio.AsyncServer.create_queue()` making every socket's queue, and the queue methods
engine.io calls on it (get, get_nowait, put, put_nowait, task_done, join; QueueEmpty).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["LeanQueue"]


class LeanQueue:
    """The subset of `asyncio.Queue` engine.io uses: get, get_nowait, put, put_nowait,
    task_done, join, empty, qsize; and `peek` and `drop` (`engineio_rules`). Unbounded."""

    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")

    def __init__(self) -> None:
        # None while empty (see the module's docstring); never an empty deque for long.
        self._items: deque[Any] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self._unfinished = 0

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        items = self._items
        return len(items) if items is not None else 0

    def put_nowait(self, item: Any) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(item)
        self._unfinished += 1
        self._wake_one()

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def peek(self) -> Any:
        """The next item, left in the queue; None when it is empty."""
        return self._items[0] if self._items else None

    def drop(self, unwanted: Callable[[Any], bool]) -> int:
        """Take out every queued item `unwanted(item)` is true for, as if it had been
        consumed (`task_done`); how many there were."""
        items = self._items
        if not items:
            return 0
        dropped = [item for item in items if unwanted(item)]
        for item in dropped:  # in place: a new deque per call would be a new block
            items.remove(item)
            self.task_done()
        if not items:
            self._items = None
        return len(dropped)

    def get_nowait(self) -> Any:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        return self._take(items)

    def _take(self, items: deque[Any]) -> Any:
        """The first of `items` (the queue's, not empty); the deque is let go once empty."""
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> Any:
        items = self._items
        while not items:
            getter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if getter in self._getters:
                    self._getters.remove(getter)
                elif self._items:
                    # Woken and then cancelled: pass the wake-up on to the next getter.
                    self._wake_one()
                raise
            items = self._items
        return self._take(items)

    def _wake_one(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            for joiner in self._joiners:
                if not joiner.done():
                    joiner.set_result(None)
            self._joiners = None

    async def join(self) -> None:
        if self._unfinished == 0:
            return
        joiner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._joiners is None:
            self._joiners = []
        self._joiners.append(joiner)
        await joiner
