"""The ping wheel: every scheduled socket is pinged once, never before its interval is up.

How late a ping leaves (the wheel's precision) is a figure of `bench/pings.py`, not an
assertion here: on a busy machine the event loop itself runs late.
"""

from __future__ import annotations

import time
from typing import Any

from polling import eventually

from server.realtime.engine.ping_wheel import PingWheel

# Far beyond the wheel's own rounding (two quarter-second slots at most): only a wheel
# that stopped turning, or lost a socket, is this late. Pings sent that late would still
# be inside the client's allowance (pingInterval + pingTimeout, 25 + 20 s by default).
GENEROUS_LATENESS_S = 10.0


async def test_each_socket_is_pinged_once_never_before_its_interval() -> None:
    interval = 0.5
    pinged: list[tuple[Any, float]] = []
    wheel = PingWheel(interval, lambda s: pinged.append((s, time.monotonic())))
    start = time.monotonic()
    sockets = [object() for _ in range(50)]
    for sock in sockets:
        wheel.schedule(sock)  # type: ignore[arg-type]
    try:
        await eventually(
            lambda: len(pinged) >= len(sockets),
            what=f"all {len(sockets)} sockets to be pinged",
            timeout=interval + GENEROUS_LATENESS_S,
        )
    finally:
        await wheel.stop()
    assert sorted(id(s) for s, _ in pinged) == sorted(id(s) for s in sockets)
    for _, at in pinged:
        assert at - start >= interval  # never early: exact, whatever the machine's load


async def test_stop_drops_pending_pings() -> None:
    stopped_pings: list[Any] = []
    stopped = PingWheel(0.3, stopped_pings.append)
    stopped.schedule(object())  # type: ignore[arg-type]
    await stopped.stop()
    # A wheel that keeps running, its socket due a second after the stopped one's: once
    # it has pinged, the dropped ping's time is long past. (A correct wheel passes however
    # late the control pings; the margin only keeps a broken one from slipping through.)
    control_pings: list[Any] = []
    control = PingWheel(0.3 + 1.0, control_pings.append)
    control.schedule(object())  # type: ignore[arg-type]
    try:
        await eventually(lambda: control_pings, what="the running wheel's ping")
    finally:
        await control.stop()
    assert stopped_pings == []
