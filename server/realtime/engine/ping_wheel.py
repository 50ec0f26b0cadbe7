"""Engine.IO pings for thousands of sockets without a timer or task per socket.

engine.io starts, for every socket, a task that sleeps `ping_interval` and then sends a
PING (~1.2 KiB each while it sleeps); a loop timer per socket still costs ~0.3 KiB. Here
sockets due in the same quarter second share one slot of a wheel, and one task turns the
wheel while anything is due: a list entry per socket. A ping may leave up to a quarter
second late, far inside the client's `pingInterval + pingTimeout` allowance.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py): none
here; `fanout.ChatEngineServer` feeds it the sockets `AsyncSocket.schedule_ping` hands to
`start_background_task(self._send_ping)`, and pings them as `_send_ping` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable

from engineio.async_socket import AsyncSocket

__all__ = ["PingWheel"]

_SLOTS_PER_S = 4


class PingWheel:
    def __init__(self, interval_s: float, ping: Callable[[AsyncSocket], None]) -> None:
        self._interval_s = interval_s
        self._ping = ping
        self._slots: dict[int, list[AsyncSocket]] = {}
        self._task: asyncio.Task[None] | None = None

    def schedule(self, eio_socket: AsyncSocket) -> None:
        """Ping this socket one interval from now."""
        due = math.ceil((time.monotonic() + self._interval_s) * _SLOTS_PER_S)
        self._slots.setdefault(due, []).append(eio_socket)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._turn(), name="pings")

    async def _turn(self) -> None:
        while self._slots:
            await asyncio.sleep(1 / _SLOTS_PER_S)
            now = time.monotonic() * _SLOTS_PER_S
            for due in [slot for slot in self._slots if slot <= now]:
                for eio_socket in self._slots.pop(due):
                    self._ping(eio_socket)

    async def stop(self) -> None:
        """Drop every pending ping (shutdown)."""
        self._slots.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
