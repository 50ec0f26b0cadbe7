"""What the chat service knows of delivery: a `Broadcaster` of server events.

The service never imports a transport; `server.realtime.broadcaster` implements this
over python-socketio (and its Redis manager across instances), and the service's unit
tests record what would have been sent with a list.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import msgspec

from protocol.names import ServerEvent
from protocol.socket_events import AiToken

__all__ = ["Broadcaster"]


class Broadcaster(Protocol):
    async def to_conversation(
        self,
        conversation_id: uuid.UUID,
        event: ServerEvent,
        payload: msgspec.Struct,
        *,
        skip_sid: str | None = None,
    ) -> None:
        """Every socket in the conversation's room, on every instance, but `skip_sid`."""
        ...

    async def to_socket(self, sid: str, event: ServerEvent, payload: msgspec.Struct) -> None:
        """One socket, wherever it is connected."""
        ...

    async def to_user(
        self, user_id: uuid.UUID, event: ServerEvent, payload: msgspec.Struct
    ) -> None:
        """Every socket of one user (their `user:{id}` room), on every instance."""
        ...

    async def tokens(self, conversation_id: uuid.UUID, full: AiToken, delta: AiToken) -> None:
        """One `ai-token`: `full` (with `partial`) to sockets that asked for it, `delta`
        to those that asked for deltas only."""
        ...
