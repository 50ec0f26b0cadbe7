"""`GET /metrics` in Prometheus text format, from a registry owned by the app (no globals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "metrics_handler"]

_KNOWN_EVENTS = frozenset(
    {
        "join-conversation",
        "leave-conversation",
        "send-message",
        "edit-message",
        "stop-generation",
        "ping",
    }
)


class Metrics:
    """Counters the server updates, and gauges read when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_in = Counter(
            "scca_socket_events_in_total",
            "Socket.IO events received",
            ["event"],
            registry=self.registry,
        )
        self.events_out = Counter(
            "scca_socket_events_out_total",
            "Socket.IO events emitted (per emit, not per recipient)",
            ["event"],
            registry=self.registry,
        )
        self.errors = Counter(
            "scca_errors_total",
            "Errors answered to clients, by code and transport",
            ["code", "transport"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "scca_ai_tokens_streamed_total", "ai-token events streamed", registry=self.registry
        )
        self.generations = Counter(
            "scca_generations_total",
            "Generations by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.database_latency = Gauge(
            "scca_database_latency_seconds",
            "Round trip of SELECT 1 at scrape time",
            registry=self.registry,
        )
        self.redis_latency = Gauge(
            "scca_redis_latency_seconds",
            "Round trip of PING at scrape time (-1: down)",
            registry=self.registry,
        )

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge computed when scraped (connected sockets, running generations...)."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def event_in(self, event: str) -> None:
        self.events_in.labels(event if event in _KNOWN_EVENTS else "other").inc()

    def error(self, code: str, transport: str) -> None:
        self.errors.labels(code, transport).inc()


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
