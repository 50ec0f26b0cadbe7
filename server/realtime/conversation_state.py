"""What a socket is sent to be in step with a conversation: its `state`, and the stored
messages it has not seen as `message-added`. Shared by joins and by the resync after a
pub/sub gap (`server.realtime.resync`)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any, Protocol

import msgspec
from msgspec import UNSET

from protocol.names import ServerEvent
from protocol.socket_events import MessageAdded
from server.service.chat import ChatService
from server.service.identity import Identity
from server.service.timefmt import now_iso
from storage import ConversationRecord

__all__ = ["Emit", "replay_messages", "state_fields"]

class Emit(Protocol):
    """A namespace's `emit`, as it is called here: one event to one socket."""

    def __call__(self, event: str, data: Any, *, to: str) -> Awaitable[None]: ...


async def state_fields(
    chat: ChatService, record: ConversationRecord, root_ok: bool
) -> dict[str, Any]:
    """The `state` of a conversation, read after the socket is in its rooms: every
    token is in `generating` or reaches the socket afterwards (possibly both: clients
    drop tokenIndex <= generating.tokenIndex)."""
    generating = await chat.generating_state(record.id, record.message_count)
    fields: dict[str, Any] = {
        "conversation_id": str(record.id),
        "title": record.title,
        "message_count": record.message_count,
        "merkle_root": record.merkle_root.hex() if record.merkle_root else None,
        "joined_at": now_iso(),
        "integrity_valid": root_ok,
    }
    if generating is not None:
        fields["generating"] = generating
    return fields


async def replay_messages(
    emit: Emit,
    chat: ChatService,
    sid: str,
    identity: Identity,
    conversation_id: uuid.UUID,
    after_seq: int,
) -> None:
    """Every stored message after `after_seq`, as `message-added`, to one socket."""
    for message in await chat.replay(identity, conversation_id, after_seq):
        added = MessageAdded(
            sequence=message.sequence,
            role=message.role,
            content=message.content if message.content is not None else "",
            timestamp=message.timestamp,
            client_msg_id=message.client_msg_id or UNSET,
        )
        await emit(str(ServerEvent.MESSAGE_ADDED), msgspec.to_builtins(added), to=sid)
