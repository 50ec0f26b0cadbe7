"""Engine.IO pings for thousands of sockets on time, without a timer or task per socket.

engine.io starts, for every socket, a task that sleeps `ping_interval` and then sends a
PING (~1.2 KiB each while it sleeps); a loop timer per socket still costs ~0.3 KiB. Every
socket of a server waits the same interval, so the order in which sockets are scheduled
is the order in which they fall due: the wheel keeps them in a FIFO and one loop timer
(`call_at`) for the earliest, and pings each at its due time (plus whatever the event
loop adds). Sockets due within a thousandth of the interval of each other share one
entry, due when the last of them is: a ping is never early, and late by rounding at most
a thousandth of the interval (0.3 ms at the protocol suites' 0.3 s, 25 ms at our 25 s).
Memory: a list slot per socket, and an entry (~100 bytes) per thousandth of an interval
that has any socket due; measured (tracemalloc) at 400 schedules a second, as 10,000
sockets at 25 s make: 9.6 bytes a socket (the quarter-second wheel: 11.6).

The previous wheel rounded up to quarter-second slots: up to 500 ms late, which is more
than a whole `pingTimeout` of 200 ms (the protocol suites' setting) and killed sessions
with sub-second intervals.

A second FIFO, fed the same way, watches pings that go unanswered: `ping(socket)` says
whether to watch that one, and `expire(socket)` is called `timeout_s` after the ping.
The engine watches long-polling sessions only, which engine.io would otherwise close
anywhere up to a whole `pingTimeout` late (its sweep); a websocket's own read timeout
closes it on time.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py): none
here; `fanout.ChatEngineServer` feeds it the sockets `AsyncSocket.schedule_ping` hands to
`start_background_task(self._send_ping)`, and pings them as `_send_ping` would.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from engineio.async_socket import AsyncSocket

__all__ = ["PingWheel"]

# Sockets due within this fraction of the interval of each other share an entry (and its
# due time, the last of theirs).
_BATCH_FRACTION = 0.001


class _Fifo:
    """Sockets in the order they fall due: entries `[due, socket, socket, ...]`."""

    __slots__ = ("batch_s", "entries")

    def __init__(self, batch_s: float) -> None:
        self.batch_s = batch_s
        self.entries: deque[list[Any]] = deque()

    def push(self, due: float, eio_socket: AsyncSocket) -> None:
        entries = self.entries
        if entries:
            last = entries[-1]
            if due - last[0] < self.batch_s:
                last[0] = max(last[0], due)
                last.append(eio_socket)
                return
        entries.append([due, eio_socket])

    def first_due(self) -> float:
        return self.entries[0][0] if self.entries else math.inf

    def pop_due(self, now: float) -> list[AsyncSocket]:
        due: list[AsyncSocket] = []
        entries = self.entries
        while entries and entries[0][0] <= now:
            due.extend(entries.popleft()[1:])
        return due


class PingWheel:
    def __init__(
        self,
        interval_s: float,
        ping: Callable[[AsyncSocket], bool | None],
        *,
        timeout_s: float = 0.0,
        expire: Callable[[AsyncSocket], None] | None = None,
    ) -> None:
        """`ping(socket)` once `interval_s` has passed since `schedule(socket)`; when it
        returns True (and `expire` is given), `expire(socket)` `timeout_s` after that."""
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._ping = ping
        self._expire = expire
        self._pings = _Fifo(interval_s * _BATCH_FRACTION)
        self._watched = _Fifo(timeout_s * _BATCH_FRACTION)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def schedule(self, eio_socket: AsyncSocket) -> None:
        """Ping this socket one interval from now."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self._interval_s
        self._pings.push(due, eio_socket)
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer, for whichever FIFO falls due first."""
        at = min(self._pings.first_due(), self._watched.first_due())
        if at == self._timer_at or at == math.inf:
            return
        if self._timer is not None:
            if self._timer_at < at:
                return  # it fires first and re-arms for this one
            self._timer.cancel()
        self._timer = loop.call_at(at, self._turn)
        self._timer_at = at

    def _turn(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        loop = asyncio.get_running_loop()
        now = loop.time()
        expire = self._expire
        try:
            for eio_socket in self._pings.pop_due(now):
                if self._ping(eio_socket) and expire is not None:
                    # From the ping itself: pinging many sockets in one turn takes time.
                    self._watched.push(loop.time() + self._timeout_s, eio_socket)
            if expire is not None:
                for eio_socket in self._watched.pop_due(now):
                    expire(eio_socket)
        finally:
            self._arm(loop)

    async def stop(self) -> None:
        """Drop every pending ping and watch (shutdown)."""
        self._pings.entries.clear()
        self._watched.entries.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf
