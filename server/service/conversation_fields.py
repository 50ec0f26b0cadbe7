"""Short fields a person writes about a conversation, sealed under its keys.

A title (a group's name), a group's description; reactions later. They are content (DESIGN
"Trust boundary"), so the database holds them only as AES-256-GCM ciphertext under the
conversation's encryption key, bound to the conversation, its key version and the
field's purpose: a sealed title copied into another conversation, left behind by a key
rotation or offered as another field does not open. A new field is a new `Purpose`.
"""

from __future__ import annotations

import enum
import uuid

import crypto

__all__ = ["Purpose", "open_field", "seal_field"]


class Purpose(enum.StrEnum):
    """What a sealed field is; part of what it is bound to."""

    TITLE = "title"
    DESCRIPTION = "description"


def _context(purpose: Purpose, conversation_id: uuid.UUID, key_version: int) -> bytes:
    # The purpose ends in NUL so that the fixed-size fields after it cannot be read
    # as part of a longer purpose.
    return (
        b"conversation-field:"
        + purpose.value.encode()
        + b"\x00"
        + conversation_id.bytes
        + key_version.to_bytes(4, "big")
    )


def seal_field(
    keys: crypto.ConversationKeys,
    conversation_id: uuid.UUID,
    key_version: int,
    purpose: Purpose,
    text: str,
) -> bytes:
    """`text` sealed for storage under the conversation's keys of `key_version`."""
    return crypto.seal_field(
        keys, text.encode("utf-8"), context=_context(purpose, conversation_id, key_version)
    )


def open_field(
    keys: crypto.ConversationKeys,
    conversation_id: uuid.UUID,
    key_version: int,
    purpose: Purpose,
    sealed: bytes,
) -> str:
    """Reverse `seal_field`; raises crypto.InvalidToken when it does not open (another
    key, conversation, version or purpose, or damage)."""
    plaintext = crypto.open_field(
        keys, sealed, context=_context(purpose, conversation_id, key_version)
    )
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        # Authenticated yet not UTF-8: it was never sealed by `seal_field`.
        raise crypto.InvalidToken("sealed field is not text") from None
