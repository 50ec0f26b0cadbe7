"""The chat service's `Broadcaster` over python-socketio: room emits that reach every
instance through its client manager (Redis when several instances run)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import socketio

from protocol.names import ServerEvent, conversation_room, token_room, user_room
from protocol.socket_events import AiToken
from server.service.metrics import Metrics

__all__ = ["SocketIOBroadcaster"]


def _wire(payload: msgspec.Struct) -> Any:
    return msgspec.to_builtins(payload)


class SocketIOBroadcaster:
    """Room emits through python-socketio (and its Redis manager across instances)."""

    def __init__(self, sio: socketio.AsyncServer, metrics: Metrics) -> None:
        self._sio = sio
        self._metrics = metrics

    async def to_conversation(
        self,
        conversation_id: uuid.UUID,
        event: ServerEvent,
        payload: msgspec.Struct,
        *,
        skip_sid: str | None = None,
    ) -> None:
        self._metrics.event_out(event)
        await self._sio.emit(
            str(event), _wire(payload), room=conversation_room(conversation_id), skip_sid=skip_sid
        )

    async def to_socket(self, sid: str, event: ServerEvent, payload: msgspec.Struct) -> None:
        self._metrics.event_out(event)
        await self._sio.emit(str(event), _wire(payload), to=sid)

    async def to_user(
        self, user_id: uuid.UUID, event: ServerEvent, payload: msgspec.Struct
    ) -> None:
        self._metrics.event_out(event)
        await self._sio.emit(str(event), _wire(payload), room=user_room(user_id))

    async def tokens(self, conversation_id: uuid.UUID, full: AiToken, delta: AiToken) -> None:
        event = str(ServerEvent.AI_TOKEN)
        self._metrics.tokens.inc()
        await self._sio.emit(
            event, _wire(full), room=token_room(conversation_id, with_partial=True)
        )
        await self._sio.emit(
            event, _wire(delta), room=token_room(conversation_id, with_partial=False)
        )
