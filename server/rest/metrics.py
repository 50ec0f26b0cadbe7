"""`GET /metrics` in Prometheus text format, with the database and Redis round trips
measured at scrape time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from server.service.metrics import Metrics

__all__ = ["metrics_handler"]


async def _timed(probe: Callable[[], object]) -> float:
    start = time.perf_counter()
    async with asyncio.timeout(2):
        result = probe()
        if asyncio.iscoroutine(result):
            await result
    return time.perf_counter() - start


def metrics_handler(
    metrics: Metrics,
    database_probe: Callable[[], object],
    redis_probe: Callable[[], object] | None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_: web.Request) -> web.Response:
        try:
            metrics.database_latency.set(await _timed(database_probe))
        except Exception:  # down: the gauge says so
            metrics.database_latency.set(-1)
        if redis_probe is not None:
            try:
                metrics.redis_latency.set(await _timed(redis_probe))
            except Exception:  # down: the gauge says so
                metrics.redis_latency.set(-1)
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle
