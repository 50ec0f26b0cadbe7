"""Conversation keys: a random key per conversation, wrapped under the user's data key.

Destroying the wrapped key (hard delete) makes every token of that conversation
unreadable, wherever copies of them survive.
"""

from __future__ import annotations

import uuid

import crypto
from server.service.identity import Identity

__all__ = ["new_wrapped_conversation_key", "open_conversation_keys"]


def _context(conversation_id: uuid.UUID, key_version: int) -> bytes:
    return b"conversation-key:" + conversation_id.bytes + key_version.to_bytes(4, "big")


def new_wrapped_conversation_key(
    identity: Identity, conversation_id: uuid.UUID, key_version: int = 1
) -> bytes:
    """A fresh random conversation key, wrapped for storage."""
    return crypto.wrap_key(
        identity.data_key, crypto.new_key(), context=_context(conversation_id, key_version)
    )


def open_conversation_keys(
    identity: Identity, conversation_id: uuid.UUID, wrapped_key: bytes, key_version: int
) -> crypto.ConversationKeys:
    """Unwrap a conversation key and derive its encryption and integrity keys."""
    key = crypto.unwrap_key(
        identity.data_key, wrapped_key, context=_context(conversation_id, key_version)
    )
    return crypto.derive_conversation_keys(key, conversation_id, key_version)
