"""The ping wheel: every scheduled socket is pinged about one interval later, once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from server.realtime.engine.ping_wheel import PingWheel


async def test_each_socket_is_pinged_once_about_one_interval_later() -> None:
    pinged: list[tuple[Any, float]] = []
    wheel = PingWheel(0.5, lambda s: pinged.append((s, time.monotonic())))
    start = time.monotonic()
    sockets = [object() for _ in range(50)]
    for sock in sockets:
        wheel.schedule(sock)  # type: ignore[arg-type]
    await asyncio.sleep(1.5)
    assert sorted(id(s) for s, _ in pinged) == sorted(id(s) for s in sockets)
    for _, at in pinged:
        assert 0.5 <= at - start <= 0.5 + 0.25 + 0.5  # one slot late at most, plus slack
    await wheel.stop()


async def test_stop_drops_pending_pings() -> None:
    pinged: list[Any] = []
    wheel = PingWheel(0.3, pinged.append)
    wheel.schedule(object())  # type: ignore[arg-type]
    await wheel.stop()
    await asyncio.sleep(0.5)
    assert pinged == []
