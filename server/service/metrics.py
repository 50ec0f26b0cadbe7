"""The server's Prometheus counters and gauges, in a registry owned by the app (no globals).

Event labels come from the protocol's enums (`ClientEvent`, `ServerEvent`), so an event
label can only be a name the protocol defines; `GET /metrics` (`server.rest.metrics`)
renders the registry.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from protocol.names import ClientEvent, ServerEvent

__all__ = ["Metrics"]

_OTHER_EVENT = "other"


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
        """A client's event, by name; names the protocol does not define count as "other"
        (a client chooses them: they must not grow the label set)."""
        known = event in ClientEvent.__members__.values()
        self.events_in.labels(event if known else _OTHER_EVENT).inc()

    def event_out(self, event: ServerEvent) -> None:
        self.events_out.labels(event.value).inc()

    def sealed_rejected_on(self, channel: str) -> Callable[[str], None]:
        """What a sealed channel or mirror calls with the reason it dropped something."""
        return lambda reason: self.sealed_rejected.labels(channel, reason).inc()

    def error(self, code: str, transport: str) -> None:
        """An error answered to a client; `transport` is "socket" or "rest"."""
        self.errors.labels(code, transport).inc()
