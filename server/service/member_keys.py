"""Keys of shared conversations: each user's X25519 pair, and conversation keys sealed to
every member.

A user's private key is stored wrapped under their data key (so, like everything else,
it opens only with their password or a live session); the public half is on their
profile. A direct or group conversation has one random key; each member's row holds it
sealed to that member's public key (`crypto.seal_to_member`), so an admin's session can
add a member who is offline. Integrity keys stay one per conversation: they derive from
the same conversation key.

Users registered before schema version 4 get their pair at their next login
(`ensure_key_pair`); until then, adding them fails with KEYS_MISSING.
"""

from __future__ import annotations

import uuid

import crypto
import storage
from server.service import exceptions as errors

# keyring dispatches to this module and this module asks keyring for the session's
# current data key: both import the other as a module and look names up at call time.
from server.service import keyring
from server.service.identity import Identity

__all__ = [
    "ensure_key_pair",
    "member_key_context",
    "open_shared_key",
    "open_shared_keys",
    "rewrap_private_key",
    "seal_for_member",
]


def member_key_context(
    conversation_id: uuid.UUID, key_version: int, member_id: uuid.UUID
) -> bytes:
    """What a member's sealed copy of a conversation key is bound to: the conversation,
    its key version and the member (a copy moved to another row does not open)."""
    return (
        b"conversation-key:"
        + conversation_id.bytes
        + key_version.to_bytes(4, "big")
        + member_id.bytes
    )


async def ensure_key_pair(con: storage.Connection, user_id: uuid.UUID, data_key: bytes) -> bool:
    """Give the user an X25519 pair if they have none yet; True if one was made."""
    if await storage.get_wrapped_private_key(con, user_id) is not None:
        return False
    pair = crypto.new_member_key_pair()
    await storage.set_key_pair(
        con,
        user_id,
        public_key=pair.public_key,
        wrapped_private_key=crypto.wrap_private_key(data_key, pair.private_key, user_id=user_id),
    )
    return True


async def rewrap_private_key(
    con: storage.Connection, user_id: uuid.UUID, old_data_key: bytes, new_data_key: bytes
) -> bool:
    """Move the private key from the retired data key to the new one (a password change);
    the pair itself, and every key sealed to it, stay as they are. False if the user
    has no pair yet."""
    wrapped = await storage.get_wrapped_private_key(con, user_id)
    if wrapped is None:
        return False
    private = crypto.unwrap_private_key(old_data_key, wrapped, user_id=user_id)
    await storage.set_key_pair(
        con,
        user_id,
        public_key=crypto.public_key_of(private),
        wrapped_private_key=crypto.wrap_private_key(new_data_key, private, user_id=user_id),
    )
    return True


async def _private_key(con: storage.Connection, identity: Identity) -> bytes:
    wrapped = await storage.get_wrapped_private_key(con, identity.user_id)
    if wrapped is None:
        raise errors.KeysMissing("Your keys are not set up yet; sign in again")
    try:
        return crypto.unwrap_private_key(identity.data_key, wrapped, user_id=identity.user_id)
    except crypto.KeyUnwrapError:
        # The identity predates a password change: the session row has the current key.
        current = await keyring.current_identity(con, identity)
        if current is identity:
            raise
        return crypto.unwrap_private_key(current.data_key, wrapped, user_id=identity.user_id)


async def open_shared_key(
    con: storage.Connection, identity: Identity, record: storage.ConversationRecord
) -> bytes:
    """The raw key of a direct or group conversation, from the caller's sealed copy.
    NotFound when the caller is not a member."""
    member = await storage.get_member(con, record.id, identity.user_id)
    if member is None or member.sealed_key is None:
        raise errors.NotFound()
    private = await _private_key(con, identity)
    return crypto.open_from_member(
        private,
        member.sealed_key,
        context=member_key_context(record.id, member.key_version, identity.user_id),
    )


async def open_shared_keys(
    con: storage.Connection, identity: Identity, record: storage.ConversationRecord
) -> crypto.ConversationKeys:
    """`open_shared_key`, derived into encryption and integrity keys."""
    key = await open_shared_key(con, identity, record)
    return crypto.derive_conversation_keys(key, record.id, record.key_version)


def seal_for_member(
    key: bytes,
    conversation_id: uuid.UUID,
    key_version: int,
    member_id: uuid.UUID,
    public_key: bytes,
) -> bytes:
    """A conversation key sealed to one member's public key."""
    return crypto.seal_to_member(
        public_key, key, context=member_key_context(conversation_id, key_version, member_id)
    )
