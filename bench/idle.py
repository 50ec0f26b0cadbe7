"""Memory per idle websocket connection: server RSS with N idle sockets minus without.

Sockets belong to several users (the server caps sockets per user) and stay connected,
authenticated and silent; a warm-up batch is connected and closed first so one-time
allocations of the first connections are not charged to the measured ones.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench import procstat, rest
from bench.nodeworkers import NodeWorker, WorkerError, split

__all__ = ["idle_memory"]


async def _connect(
    pool: Sequence[NodeWorker], group: str, url: str, path: str, tokens: list[str], count: int
) -> tuple[int, dict[str, int], float]:
    shares = [(w, n) for w, n in zip(pool, split(count, len(pool)), strict=True) if n > 0]
    reports = await asyncio.gather(
        *(
            w.ask(
                "connect",
                "ready",
                300,
                group=group,
                url=url,
                path=path,
                tokens=tokens,
                count=n,
                parallel=50,
            )
            for w, n in shares
        )
    )
    errors: dict[str, int] = {}
    for report in reports:
        for code, n in report["errors"].items():
            errors[code] = errors.get(code, 0) + int(n)
    seconds = max(float(r["seconds"]) for r in reports)
    return sum(int(r["connected"]) for r in reports), errors, seconds


async def _close(pool: Sequence[NodeWorker], group: str) -> None:
    await asyncio.gather(*(w.ask("close", "closed", 60, group=group) for w in pool))


async def idle_memory(
    pool: Sequence[NodeWorker],
    http: aiohttp.ClientSession,
    *,
    url: str,
    path: str,
    server_pid: int,
    sockets: int,
    per_user: int = 500,
    settle_s: float = 2.0,
) -> dict[str, Any]:
    """`idle_kib_per_socket` and the figures behind it."""
    users = math.ceil(sockets / per_user)
    accounts = [await rest.register(http, url, rest.new_email("idle", i)) for i in range(users)]
    tokens = [a.token for a in accounts]
    await _connect(pool, "idle-warm", url, path, tokens, min(50, sockets))
    await _close(pool, "idle-warm")
    await asyncio.sleep(settle_s)
    before = procstat.sample(server_pid)
    connected, errors, seconds = await _connect(pool, "idle", url, path, tokens, sockets)
    try:
        if connected != sockets:
            raise WorkerError(f"idle: {connected}/{sockets} connected {errors}")
        await asyncio.sleep(settle_s)
        after = procstat.sample(server_pid)
    finally:
        await _close(pool, "idle")
    return {
        "idle_sockets": connected,
        "idle_connect_s": round(seconds, 2),
        "idle_rss_before_mib": round(before.rss_kib / 1024, 1),
        "idle_rss_after_mib": round(after.rss_kib / 1024, 1),
        "idle_kib_per_socket": round((after.rss_kib - before.rss_kib) / connected, 2),
    }
