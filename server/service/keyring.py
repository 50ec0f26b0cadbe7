"""Conversation keys: a random key per conversation, wrapped under the user's data key.

Destroying the wrapped key (hard delete) makes every token of that conversation
unreadable, wherever copies of them survive.

A password change replaces the data key and re-wraps every conversation key under the
new one (`rewrap_conversation_keys`). An `Identity` built before that, such as a
socket's, still carries the old data key: `open_keys` then takes the current one from
the session row, and every new key is wrapped under the key `current_identity` reads,
so nothing is ever wrapped under a retired data key.

Lock order. Every transaction that wraps, re-wraps or hands out a key takes its row
locks in this order, skipping any it does not need and never going back, so none of
them can deadlock with another:

1. the account row, `storage.get_user(..., for_update=True)` (FOR NO KEY UPDATE):
   a login (before it opens its session) and a password change (its first statement);
2. session rows: `current_identity(lock=True)` holds the caller's FOR SHARE (creating a
   conversation, rotating its key); a password change re-wraps the caller's and then
   revokes every other one;
3. conversation rows, FOR UPDATE: one (a rotation, a send, a reply) or all of them in
   id order (a password change, `rewrap_conversation_keys`).

Rows added meanwhile (a session, a conversation, an audit entry) take only FOR KEY SHARE
on the account row, which neither FOR NO KEY UPDATE nor a password change's update of
the row (no key column changes) excludes, so a create or a rotation never waits on it.
`storage.touch_session` and the sweeps skip locked rows and never wait.

Account erasure (`PrivacyService.delete_account`) takes the account row first too, then
erases every key and deletes the row: a password change running at the same time
finishes first, or waits and then finds no account.
"""

from __future__ import annotations

import dataclasses
import uuid

import crypto
import storage
from server.service import exceptions as errors

# Shared conversations' keys live there; it asks back for `current_identity` (both
# modules import the other as a module and look names up at call time).
from server.service import member_keys
from server.service.identity import Identity

__all__ = [
    "current_identity",
    "new_wrapped_conversation_key",
    "open_conversation_keys",
    "open_keys",
    "rewrap_conversation_keys",
    "session_key_context",
    "user_key_context",
]

_SESSION_GONE = "Authentication failed: session expired or revoked"


def user_key_context(user_id: uuid.UUID) -> bytes:
    """What the password-wrapped data key is bound to."""
    return b"user-data-key:" + user_id.bytes


def session_key_context(session_id: uuid.UUID) -> bytes:
    """What a session's copy of the data key is bound to."""
    return b"session-data-key:" + session_id.bytes


def _context(conversation_id: uuid.UUID, key_version: int) -> bytes:
    return b"conversation-key:" + conversation_id.bytes + key_version.to_bytes(4, "big")


def new_wrapped_conversation_key(
    identity: Identity, conversation_id: uuid.UUID, key_version: int = 1
) -> bytes:
    """A fresh random conversation key, wrapped for storage under `identity`'s data key
    (take that identity from `current_identity`)."""
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


async def current_identity(
    con: storage.Connection, identity: Identity, *, lock: bool = False
) -> Identity:
    """`identity` with its session's current data key, read from the session row.

    `lock=True` holds the row FOR SHARE until the transaction ends, so a password change
    cannot replace the data key before the caller's new wrapped key is committed: take
    it first whenever a key is about to be wrapped, before any conversation lock (only
    the account row, which such callers never lock, may come before it; see "Lock
    order" above). Unauthorized when the session has ended.
    """
    session = await storage.get_active_session(con, identity.session_id, for_share=lock)
    if session is None or session.user_id != identity.user_id or not identity.session_key:
        raise errors.Unauthorized(_SESSION_GONE)
    try:
        data_key = crypto.unwrap_key(
            identity.session_key,
            session.wrapped_data_key,
            context=session_key_context(identity.session_id),
        )
    except crypto.KeyUnwrapError:
        raise errors.Unauthorized("Authentication failed: session key invalid") from None
    if data_key == identity.data_key:
        return identity
    return dataclasses.replace(identity, data_key=data_key)


async def open_keys(
    con: storage.Connection, identity: Identity, record: storage.ConversationRecord
) -> crypto.ConversationKeys:
    """`open_conversation_keys` for a conversation row, with the session's current data
    key when `identity`'s has been replaced since it was built. Raises KeyUnwrapError
    when neither opens it. A direct or group conversation's key comes from the caller's
    sealed copy (`member_keys`)."""
    if record.wrapped_key is None:
        return await member_keys.open_shared_keys(con, identity, record)
    try:
        return open_conversation_keys(identity, record.id, record.wrapped_key, record.key_version)
    except crypto.KeyUnwrapError:
        if not identity.session_key:
            raise
        current = await current_identity(con, identity)
        if current is identity:
            raise
        return open_conversation_keys(current, record.id, record.wrapped_key, record.key_version)


async def rewrap_conversation_keys(
    con: storage.Connection, user_id: uuid.UUID, old_data_key: bytes, new_data_key: bytes
) -> int:
    """Re-wrap every conversation key of `user_id` (live and soft-deleted), and their
    X25519 private key, from the old data key to the new one; the keys themselves,
    their versions and every message stay as they are. Returns how many conversation
    keys were re-wrapped.

    The rows are locked in id order for the rest of the transaction. A key that does not
    open under the old data key raises KeyUnwrapError: the caller's transaction is then
    rolled back rather than leave a conversation behind under a retired key.
    """
    records = await storage.lock_every_conversation(con)
    rewrapped: list[tuple[uuid.UUID, bytes]] = []
    for record in records:
        if record.user_id != user_id or record.wrapped_key is None:
            # Another's conversation, or a shared one: its key is sealed to the user's
            # public key, which stays; only the private key moves (below).
            continue
        context = _context(record.id, record.key_version)
        key = crypto.unwrap_key(old_data_key, record.wrapped_key, context=context)
        rewrapped.append((record.id, crypto.wrap_key(new_data_key, key, context=context)))
    count = await storage.rewrap_conversation_keys(con, rewrapped)
    await member_keys.rewrap_private_key(con, user_id, old_data_key, new_data_key)
    return count
