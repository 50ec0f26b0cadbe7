"""The server's Prometheus counters and gauges, in a registry owned by the app (no globals).

Event labels come from the protocol's enums (`ClientEvent`, `ServerEvent`), so an event
label can only be a name the protocol defines; `GET /metrics` (`server.rest.metrics`)
renders the registry.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from protocol.names import ClientEvent, ServerEvent

__all__ = ["BACKEND_PROBE_MAX_AGE_S", "Metrics", "Probe"]

_OTHER_EVENT = "other"
_PROBE_TIMEOUT_S = 2.0
#: How long a measured database or Redis round trip is reported before it is measured
#: again: scrapes come every 15-60 s, so a scraper sees a fresh figure each time, and a
#: flood of scrapes costs one `SELECT 1` per period, not one per scrape.
BACKEND_PROBE_MAX_AGE_S = 5.0

#: A round trip to a backend (`SELECT 1`, Redis `PING`): a coroutine function, or a
#: function returning an awaitable.
Probe = Callable[[], object]


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
        self.commit_retries = Counter(
            "scca_reply_commit_retries_total",
            "Reply commits retried because the database was unavailable",
            registry=self.registry,
        )
        self.replies_taken_over = Counter(
            "scca_replies_taken_over_total",
            "Replies of a dead (or stalled) instance taken over and ended with REPLY_LOST",
            registry=self.registry,
        )
        self.pubsub_gaps = Counter(
            "scca_pubsub_missed_windows_total",
            "Times the Redis pub/sub listener was subscribed again after a gap, and this"
            " instance's sockets were brought back in step",
            registry=self.registry,
        )
        self.sockets_resynced = Counter(
            "scca_sockets_resynced_total",
            "Sockets sent their conversation's state and missed messages after a gap",
            registry=self.registry,
        )
        self.sealed_rejected = Counter(
            "scca_sealed_rejected_total",
            "Pub/sub messages and resume mirrors dropped: forged (do not open with an"
            " accepted secret), stale (sealed too long ago), replayed (seen before) or"
            " incomplete (a mirror's chunks do not add up)",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.address_limited_total = Counter(
            "scca_address_limited_total",
            "Refused by a per-address limit: Engine.IO handshakes, Socket.IO connects,"
            " registrations",
            ["limit"],
            registry=self.registry,
        )
        self.frames_refused = Counter(
            "scca_undecodable_frames_total",
            "Client frames that could not be decoded, by reason; each closed its connection",
            ["reason"],
            registry=self.registry,
        )
        self.database_latency = Gauge(
            "scca_database_latency_seconds",
            "Round trip of SELECT 1, measured at scrape time at most every"
            f" {BACKEND_PROBE_MAX_AGE_S:g} s (-1: down)",
            registry=self.registry,
        )
        self.redis_latency = Gauge(
            "scca_redis_latency_seconds",
            "Round trip of PING, measured at scrape time at most every"
            f" {BACKEND_PROBE_MAX_AGE_S:g} s (-1: down)",
            registry=self.registry,
        )
        self._backends_measured_at: float | None = None
        self._measuring = asyncio.Lock()

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge computed when scraped (connected sockets, running generations...)."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def event_in(self, event: str) -> None:
        """A client's event, by name; names the protocol does not define count as "other"
        (a client chooses them: they must not grow the label set)."""
        known = event in ClientEvent.__members__.values()
        self.events_in.labels(event if known else _OTHER_EVENT).inc()

    def event_out(self, event: ServerEvent) -> None:
        self.events_out.labels(event.value).inc()

    def sealed_rejected_on(self, channel: str) -> Callable[[str], None]:
        """What a sealed channel or mirror calls with the reason it dropped something."""
        return lambda reason: self.sealed_rejected.labels(channel, reason).inc()

    def address_limited(self, limit: str) -> None:
        """A handshake, connect or registration refused by its per-address budget."""
        self.address_limited_total.labels(limit).inc()

    def frame_refused(self, reason: str) -> None:
        """An undecodable client frame (the engine's `FrameFault` value)."""
        self.frames_refused.labels(reason).inc()

    async def measure_backends(
        self, database: Probe, redis: Probe | None, *, max_age_s: float = BACKEND_PROBE_MAX_AGE_S
    ) -> None:
        """Set the database and Redis latency gauges, unless they were measured less than
        `max_age_s` ago. Scrapes that arrive together share one measurement."""
        async with self._measuring:
            now = time.monotonic()
            measured = self._backends_measured_at
            if measured is not None and now - measured < max_age_s:
                return
            self.database_latency.set(await _round_trip(database))
            if redis is not None:
                self.redis_latency.set(await _round_trip(redis))
            self._backends_measured_at = time.monotonic()

    def error(self, code: str, transport: str) -> None:
        """An error answered to a client; `transport` is "socket" or "rest"."""
        self.errors.labels(code, transport).inc()


async def _round_trip(probe: Probe) -> float:
    """Seconds one probe took, or -1 when it failed or took over two seconds."""
    start = time.perf_counter()
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            result = probe()
            if inspect.isawaitable(result):
                await result
    except Exception:  # down (or too slow to count as up): the gauge says -1
        return -1.0
    return time.perf_counter() - start
