"""The ping wheel: every scheduled socket is pinged once, never before its interval is up.

How late a ping leaves (the wheel's precision) is a figure of `bench/pings.py`, not an
assertion here: on a busy machine the event loop itself runs late.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from polling import eventually

from server.realtime.engine.ping_wheel import PingWheel

# Far beyond the wheel's own rounding (a millisecond) and any event loop's lag: only a
# wheel that stopped turning, or lost a socket, is this late. (How exact it is, is
# bench/pings.py's figure; the conformance tests hold it to the protocol's allowance.)
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


async def test_a_watched_ping_expires_its_timeout_after_the_ping_and_only_then() -> None:
    """`ping` returning True asks for `expire` `timeout_s` after that ping; False does not."""
    interval, timeout = 0.2, 0.3
    pinged: dict[int, float] = {}
    expired: list[tuple[Any, float]] = []

    def ping(sock: Any) -> bool:
        pinged[id(sock)] = time.monotonic()
        return sock in watched

    wheel = PingWheel(
        interval, ping, timeout_s=timeout, expire=lambda s: expired.append((s, time.monotonic()))
    )
    watched = [object() for _ in range(5)]
    unwatched = [object() for _ in range(5)]
    for sock in [*watched, *unwatched]:
        wheel.schedule(sock)  # type: ignore[arg-type]
    try:
        await eventually(
            lambda: len(expired) >= len(watched),
            what="every watched ping to expire",
            timeout=interval + timeout + GENEROUS_LATENESS_S,
        )
        # The unwatched ones were pinged in the same turns: had the wheel called `expire`
        # for them, it would have by now.
        await eventually(lambda: len(pinged) == 10, what="every socket to be pinged")
    finally:
        await wheel.stop()
    assert sorted(id(s) for s, _ in expired) == sorted(id(s) for s in watched)
    for sock, at in expired:
        assert at - pinged[id(sock)] >= timeout  # never early


async def test_sockets_are_pinged_in_the_order_they_were_scheduled() -> None:
    order: list[Any] = []
    wheel = PingWheel(0.05, order.append)
    sockets = [object() for _ in range(20)]
    try:
        for sock in sockets:
            wheel.schedule(sock)  # type: ignore[arg-type]
            await asyncio.sleep(0)  # each in a loop turn of its own: several due times
        await eventually(lambda: len(order) == len(sockets), what="every ping")
    finally:
        await wheel.stop()
    assert order == sockets


async def test_stop_drops_pending_expiries() -> None:
    expired: list[Any] = []
    wheel = PingWheel(0.01, lambda s: True, timeout_s=0.3, expire=expired.append)
    pinged: list[Any] = []

    def ping(sock: Any) -> bool:
        pinged.append(sock)
        return True

    control = PingWheel(0.01, ping, timeout_s=0.3 + 1.0, expire=pinged.append)
    wheel.schedule(object())  # type: ignore[arg-type]
    control.schedule(object())  # type: ignore[arg-type]
    try:
        await eventually(lambda: len(pinged) == 1, what="the control's ping")
        await wheel.stop()  # its socket has been pinged by now too, and is watched
        await eventually(lambda: len(pinged) == 2, what="the control's expiry, a second later")
    finally:
        await control.stop()
    assert expired == []
