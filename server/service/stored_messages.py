"""Stored messages, decrypted for readers: one decoding, shared by chat and privacy."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import crypto
import storage
from server.service.timefmt import iso

__all__ = ["UNREADABLE", "DecodedMessage", "decode_message"]

_LOG = logging.getLogger(__name__)
_ROLE_NAMES = {int(r): r.name.lower() for r in crypto.Role}
UNREADABLE = "Message could not be decrypted"


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """A stored message, decrypted; `error` set (and content None) when it cannot be."""

    sequence: int
    role: str
    content: str | None
    timestamp: str
    content_hash: str | None
    stopped: bool
    client_msg_id: str | None
    error: str | None = None


def decode_message(keys: crypto.ConversationKeys, record: storage.MessageRecord) -> DecodedMessage:
    """Decrypt one stored message; a token that fails comes back with `error`, not raised."""
    try:
        message = crypto.unpack(
            keys, record.conversation_id, record.token, expected_sequence=record.seq
        )
    except crypto.InvalidToken:
        _LOG.warning(
            "message failed to decrypt conversation=%s seq=%d",
            record.conversation_id,
            record.seq,
        )
        return DecodedMessage(
            sequence=record.seq,
            role=_ROLE_NAMES.get(record.role, "unknown"),
            content=None,
            timestamp=iso(record.created_at),
            content_hash=None,
            stopped=record.stopped,
            client_msg_id=record.client_msg_id,
            error=UNREADABLE,
        )
    return DecodedMessage(
        sequence=record.seq,
        role=message.role.name.lower(),
        content=message.content,
        timestamp=iso(message.timestamp),
        content_hash=message.content_hash,
        stopped=record.stopped,
        client_msg_id=record.client_msg_id,
    )
