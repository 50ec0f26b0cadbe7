"""Rate limits per user and action, shared across instances via Redis.

The chat and privacy services count what a user does (`Action`: send, edit, join,
create, rotate a key, export) whatever the transport or dialect it came through, so one
budget covers sockets and REST alike. A Socket.IO event the services do not count is
counted here as "other" by the socket adapter (`check_event`). Over a limit nothing is
done: the answer says RATE_LIMITED with `retryAfter` (a socket stays connected; one that
keeps flooding, many refusals in one window, is disconnected). The per-address budgets
of `EventLimits` (connections, registrations) are spent through `address_limits`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from protocol.names import ClientEvent
from server.service import exceptions as errors
from server.service.ratelimit import RateCounter

__all__ = ["Action", "EventLimiter", "EventLimits"]

_WINDOW_S = 60


class Action(StrEnum):
    """What the services count per user, whichever transport asked."""

    SEND = "send"
    EDIT = "edit"
    JOIN = "join"
    CREATE = "create"
    ROTATE_KEY = "rotate-key"
    EXPORT = "export"
    LOOKUP = "lookup"
    ADD_MEMBER = "add-member"


# Socket.IO events whose service call counts them (as an Action): not counted twice.
_COUNTED_BY_THE_SERVICE = frozenset(
    {ClientEvent.SEND_MESSAGE, ClientEvent.EDIT_MESSAGE, ClientEvent.JOIN_CONVERSATION}
)


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Actions and other events per user per minute; connections per address per minute
    and registrations per address per hour (spent through `address_limits`)."""

    sends: int = 60
    edits: int = 60
    joins: int = 240
    other: int = 1200
    connects_per_ip: int = 600
    flood_refusals: int = 100
    creates: int = 30
    key_rotations: int = 10
    exports: int = 10
    registers_per_ip: int = 20
    lookups: int = 30
    member_adds: int = 60


class EventLimiter:
    def __init__(self, counter: RateCounter, limits: EventLimits) -> None:
        self._counter = counter
        self._limits = limits
        self._by_action: dict[Action, int] = {
            Action.SEND: limits.sends,
            Action.EDIT: limits.edits,
            Action.JOIN: limits.joins,
            Action.CREATE: limits.creates,
            Action.ROTATE_KEY: limits.key_rotations,
            Action.EXPORT: limits.exports,
            Action.LOOKUP: limits.lookups,
            Action.ADD_MEMBER: limits.member_adds,
        }

    async def check(self, user_id: uuid.UUID, action: Action) -> None:
        """Count one `action` of this user; RateLimited past its budget."""
        await self._hit(user_id, action.value, self._by_action[action])

    async def check_event(self, user_id: uuid.UUID, event: str) -> None:
        """Count a Socket.IO event the services do not count themselves, as "other"."""
        if event in _COUNTED_BY_THE_SERVICE:
            return
        await self._hit(user_id, "other", self._limits.other)

    async def _hit(self, user_id: uuid.UUID, kind: str, limit: int) -> None:
        wait = await self._counter.hit(f"ev:{kind}:{user_id}", limit, _WINDOW_S)
        if wait is not None:
            raise errors.RateLimited(wait, f"Too many {kind} events; slow down")

    async def is_flooding(self, sid: str) -> bool:
        """Count one refusal for this socket; True once it should be disconnected."""
        over = await self._counter.hit(f"flood:{sid}", self._limits.flood_refusals, _WINDOW_S)
        return over is not None
