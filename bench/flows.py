"""What one load-test client does, and what it measured (shared by both drivers).

A client signs in over REST (register, or log in if the address is taken), creates a
conversation, connects a socket with `auth.token`, joins, then runs rounds: send a
message and read the whole reply to `ai-complete`; optionally edit message 1 and wait
for `conversation-truncated` and the regenerated reply.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FlowConfig", "FlowStats"]


@dataclass(frozen=True, slots=True)
class FlowConfig:
    url: str
    path: str = "/api/socket"
    model: str = "scripted:40:15"
    rounds: int = 5
    duration_s: float = 60.0
    edit: bool = True
    think_ms: float = 0.0
    start_spread_ms: float = 0.0
    step_timeout_s: float = 30.0
    transports: tuple[str, ...] = ("websocket",)
    content: str = "Tell me something about load tests"
    edit_content: str = "Tell me something else"
    run_id: str = "bench"

    def to_node(self, users: list[dict[str, str]]) -> dict[str, Any]:
        """The `flows` command for bench/node/worker.mjs."""
        return {
            "url": self.url,
            "path": self.path,
            "model": self.model,
            "rounds": self.rounds,
            "durationMs": self.duration_s * 1000,
            "edit": self.edit,
            "thinkMs": self.think_ms,
            "startSpreadMs": self.start_spread_ms,
            "stepTimeoutMs": self.step_timeout_s * 1000,
            "transports": list(self.transports),
            "content": self.content,
            "editContent": self.edit_content,
            "runId": self.run_id,
            "users": users,
        }


@dataclass
class FlowStats:
    """Latencies in ms (send -> first ai-token, send -> ai-complete, edit -> truncated)."""

    first_token: list[float] = field(default_factory=list)
    complete: list[float] = field(default_factory=list)
    truncate: list[float] = field(default_factory=list)
    rounds: int = 0
    events: int = 0
    tokens: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    setup_errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: FlowStats) -> None:
        self.first_token += other.first_token
        self.complete += other.complete
        self.truncate += other.truncate
        self.rounds += other.rounds
        self.events += other.events
        self.tokens += other.tokens
        self.errors.update(other.errors)
        self.setup_errors.update(other.setup_errors)

    @classmethod
    def from_node(cls, report: dict[str, Any]) -> FlowStats:
        """From a worker's `flows` report."""
        return cls(
            first_token=[float(x) for x in report["firstToken"]],
            complete=[float(x) for x in report["complete"]],
            truncate=[float(x) for x in report["truncate"]],
            rounds=int(report["rounds"]),
            events=int(report["events"]),
            tokens=int(report["tokens"]),
            errors=Counter({str(k): int(v) for k, v in report["errors"].items()}),
            setup_errors=Counter({str(k): int(v) for k, v in report["setupErrors"].items()}),
        )
