"""Rate limits on Socket.IO events and connections, shared across instances via Redis.

Over a limit the event is not processed and its ack says RATE_LIMITED with
`retryAfter`; the socket stays connected. A socket that keeps flooding (many refusals in
one window) is disconnected.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from protocol.names import ClientEvent
from server.service import exceptions as errors
from server.service.ratelimit import RateCounter

__all__ = ["EventLimiter", "EventLimits"]

_WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Events per user per minute, by kind; connections per IP per minute."""

    sends: int = 60
    edits: int = 60
    joins: int = 240
    other: int = 1200
    connects_per_ip: int = 600
    flood_refusals: int = 100


class EventLimiter:
    def __init__(self, counter: RateCounter, limits: EventLimits) -> None:
        self._counter = counter
        self._limits = limits
        self._by_event: dict[str, tuple[str, int]] = {
            ClientEvent.SEND_MESSAGE: ("send", limits.sends),
            ClientEvent.EDIT_MESSAGE: ("edit", limits.edits),
            ClientEvent.JOIN_CONVERSATION: ("join", limits.joins),
        }

    async def check_event(self, user_id: uuid.UUID, event: str) -> None:
        """Raise RateLimited when this user sent too many events of this kind."""
        kind, limit = self._by_event.get(event, ("other", self._limits.other))
        wait = await self._counter.hit(f"ev:{kind}:{user_id}", limit, _WINDOW_S)
        if wait is not None:
            raise errors.RateLimited(wait, f"Too many {kind} events; slow down")

    async def check_connect(self, ip: str | None) -> None:
        if not ip:
            return
        wait = await self._counter.hit(f"conn:{ip}", self._limits.connects_per_ip, _WINDOW_S)
        if wait is not None:
            raise errors.RateLimited(wait, "Too many connections from this address")

    async def is_flooding(self, sid: str) -> bool:
        """Count one refusal for this socket; True once it should be disconnected."""
        over = await self._counter.hit(f"flood:{sid}", self._limits.flood_refusals, _WINDOW_S)
        return over is not None
