"""Conversations: the head row (count, last chain link, wrapped key, title) per chat.

Titles are written sealed (``sealed_title``); the clear ``title`` column is only read,
and blanked, for rows written before schema version 3 (:func:`list_clear_titles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from storage.connection import Connection
from storage.exceptions import NotFound, convert_errors
from storage.members import NewMember, add_members
from storage.records import CONVERSATION_COLUMNS, IDENTITY_SQL, ConversationRecord

__all__ = [
    "count_conversations",
    "count_created",
    "create_conversation",
    "get_conversation",
    "get_direct_conversation",
    "hard_delete_conversation",
    "list_clear_titles",
    "list_conversations",
    "list_deleted_before",
    "lock_every_conversation",
    "rename_conversation",
    "rewrap_conversation_keys",
    "seal_clear_titles",
    "set_head",
    "set_wrapped_key",
    "soft_delete_conversation",
]

_SELECT_LIVE = (
    f"SELECT {CONVERSATION_COLUMNS}"
    " FROM conversations WHERE id = $1 AND deleted_at IS NULL"
)
_SELECT_LIVE_FOR_UPDATE = (
    f"SELECT {CONVERSATION_COLUMNS}"
    " FROM conversations WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
)


@convert_errors()
async def create_conversation(
    con: Connection,
    *,
    conversation_id: UUID,
    user_id: UUID,
    sealed_title: bytes | None,
    model: str,
    wrapped_key: bytes | None,
    key_version: int = 1,
    kind: str = "ai",
    sealed_description: bytes | None = None,
    category: str | None = None,
    direct_pair: str | None = None,
    members: Sequence[NewMember] = (),
) -> ConversationRecord | None:
    """Create an empty conversation created by ``user_id`` (the transaction's identity)
    with its members (for ``ai``: its owner as admin, when ``members`` is empty).

    None when ``direct_pair`` names a pair that already has a live direct conversation
    (someone created it first: read that one with :func:`get_direct_conversation`).
    The row is inserted without RETURNING: until its members are in, row-level security
    does not show it, not even to its creator.
    """
    insert = (
        "INSERT INTO conversations (id, user_id, sealed_title, model, wrapped_key, key_version,"
        " kind, sealed_description, category, direct_pair)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )
    values = (
        conversation_id,
        user_id,
        sealed_title,
        model,
        wrapped_key,
        key_version,
        kind,
        sealed_description,
        category,
        direct_pair,
    )
    if direct_pair is None:
        await con.execute(insert, *values)
    else:
        # ON CONFLICT would need the other pair's row to pass this identity's SELECT
        # policy before it is a member: a savepoint catches the race instead.
        try:
            async with con.transaction():
                await con.execute(insert, *values)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "conversations_direct_pair_key":
                raise
            return None
    await add_members(
        con,
        conversation_id,
        members or [NewMember(user_id=user_id, role="admin", sealed_key=None)],
        added_by=user_id,
        key_version=key_version,
    )
    row = await con.fetchrow(_SELECT_LIVE, conversation_id)
    assert row is not None  # just inserted, and the identity is now a member
    return ConversationRecord(**row)


@convert_errors()
async def get_direct_conversation(con: Connection, direct_pair: str) -> ConversationRecord | None:
    """The live direct conversation of a pair of people (visible to its two members)."""
    row = await con.fetchrow(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
        " WHERE direct_pair = $1 AND kind = 'direct' AND deleted_at IS NULL",
        direct_pair,
    )
    return None if row is None else ConversationRecord(**row)


@convert_errors()
async def list_conversations(
    con: Connection, *, limit: int, offset: int
) -> list[ConversationRecord]:
    """The live conversations the identity is a member of, most recently updated first
    (reached through the identity's memberships, an index range)."""
    columns = ", ".join("c." + c.strip() for c in CONVERSATION_COLUMNS.split(","))
    rows = await con.fetch(
        f"SELECT {columns} FROM conversation_members AS m"
        " JOIN conversations AS c ON c.id = m.conversation_id"
        f" WHERE m.user_id = {IDENTITY_SQL} AND c.deleted_at IS NULL"
        " ORDER BY c.updated_at DESC, c.id LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    return [ConversationRecord(**row) for row in rows]


@convert_errors()
async def count_conversations(con: Connection) -> int:
    """How many live conversations the identity created (of every kind)."""
    return int(
        await con.fetchval(
            "SELECT count(*) FROM conversations"
            f" WHERE user_id = {IDENTITY_SQL} AND deleted_at IS NULL"
        )
    )


@convert_errors()
async def count_created(con: Connection, *, kind: str) -> int:
    """How many live conversations of `kind` the identity created."""
    return int(
        await con.fetchval(
            "SELECT count(*) FROM conversations"
            f" WHERE user_id = {IDENTITY_SQL} AND kind = $1 AND deleted_at IS NULL",
            kind,
        )
    )


@convert_errors()
async def get_conversation(
    con: Connection, conversation_id: UUID, *, for_update: bool = False
) -> ConversationRecord | None:
    """A live conversation, or None.

    ``for_update=True`` locks the row until the transaction ends: every
    writer that appends to or edits a conversation takes this lock first,
    which is what serialises them.
    """
    row = await con.fetchrow(
        _SELECT_LIVE_FOR_UPDATE if for_update else _SELECT_LIVE, conversation_id
    )
    return None if row is None else ConversationRecord(**row)


@convert_errors()
async def rename_conversation(
    con: Connection, conversation_id: UUID, sealed_title: bytes | None
) -> ConversationRecord | None:
    """Set a live conversation's sealed title (None: no title); drops a clear one left
    from version 2. None if there is no such conversation."""
    row = await con.fetchrow(
        "UPDATE conversations SET sealed_title = $2, title = NULL, updated_at = now()"
        " WHERE id = $1 AND deleted_at IS NULL"
        f" RETURNING {CONVERSATION_COLUMNS}",
        conversation_id,
        sealed_title,
    )
    return None if row is None else ConversationRecord(**row)


@convert_errors()
async def set_head(
    con: Connection, conversation_id: UUID, *, message_count: int, merkle_root: bytes | None
) -> None:
    """Record the new message count and last chain link; bumps ``updated_at``.

    Raises :class:`NotFound` if the conversation is missing or deleted.
    """
    status = await con.execute(
        "UPDATE conversations SET message_count = $2, merkle_root = $3, updated_at = now()"
        " WHERE id = $1 AND deleted_at IS NULL",
        conversation_id,
        message_count,
        merkle_root,
    )
    if status == "UPDATE 0":
        raise NotFound("conversation {conversation_id}")


@convert_errors()
async def soft_delete_conversation(con: Connection, conversation_id: UUID) -> datetime | None:
    """Mark a live conversation deleted and drop its title; return when.

    None if it is missing or already deleted. Messages stay until
    :func:`hard_delete_conversation`.
    """
    deleted_at: datetime | None = await con.fetchval(
        "UPDATE conversations SET deleted_at = now(), title = NULL, sealed_title = NULL"
        " WHERE id = $1 AND deleted_at IS NULL RETURNING deleted_at",
        conversation_id,
    )
    return deleted_at


@convert_errors()
async def hard_delete_conversation(con: Connection, conversation_id: UUID) -> bool:
    """Destroy a conversation, live or soft-deleted, and its messages.

    The wrapped key is first overwritten with zeros in a statement of its
    own, so the row version that is deleted carries no key material.
    (Earlier row versions remain on disk until VACUUM reclaims them.)
    False if the conversation does not exist.
    """
    await con.execute(
        "UPDATE conversations"
        " SET wrapped_key = decode(repeat('00', octet_length(wrapped_key)), 'hex')"
        " WHERE id = $1",
        conversation_id,
    )
    status = await con.execute("DELETE FROM conversations WHERE id = $1", conversation_id)
    return status != "DELETE 0"


@convert_errors()
async def set_wrapped_key(
    con: Connection, conversation_id: UUID, wrapped_key: bytes, key_version: int
) -> None:
    """Replace a conversation's wrapped key (key rotation).

    Raises :class:`NotFound` if the conversation does not exist.
    """
    status = await con.execute(
        "UPDATE conversations SET wrapped_key = $2, key_version = $3 WHERE id = $1",
        conversation_id,
        wrapped_key,
        key_version,
    )
    if status == "UPDATE 0":
        raise NotFound("conversation {conversation_id}")


@convert_errors()
async def list_deleted_before(con: Connection, cutoff: datetime) -> list[UUID]:
    """Ids of the conversations the identity created and soft-deleted before ``cutoff``."""
    rows = await con.fetch(
        "SELECT id FROM conversations"
        f" WHERE user_id = {IDENTITY_SQL} AND deleted_at IS NOT NULL AND deleted_at < $1"
        " ORDER BY deleted_at, id",
        cutoff,
    )
    return [row["id"] for row in rows]


@convert_errors()
async def list_clear_titles(con: Connection) -> list[ConversationRecord]:
    """The identity's conversations that still hold a clear title (written before schema
    version 3), locked for sealing.

    Rows another transaction has locked are skipped (FOR UPDATE SKIP LOCKED): they are
    sealed at a later call, and no reader ever waits here. Cheap when there are none
    (a partial index holds exactly these rows).
    """
    rows = await con.fetch(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
        f" WHERE user_id = {IDENTITY_SQL} AND kind = 'ai' AND title IS NOT NULL"
        " ORDER BY id FOR UPDATE SKIP LOCKED"
    )
    return [ConversationRecord(**row) for row in rows]


@convert_errors()
async def seal_clear_titles(con: Connection, sealed: Sequence[tuple[UUID, bytes]]) -> int:
    """Store ``(conversation id, sealed title)`` pairs and blank those rows' clear title,
    in one statement. A row whose clear title is already gone is left alone. Returns how
    many rows were sealed.

    ``updated_at`` is left alone: sealing a title is not activity in the conversation.
    """
    if not sealed:
        return 0
    ids, titles = zip(*sealed, strict=True)
    status = await con.execute(
        "UPDATE conversations AS c SET sealed_title = u.sealed_title, title = NULL"
        " FROM unnest($1::uuid[], $2::bytea[]) AS u(id, sealed_title)"
        " WHERE c.id = u.id AND c.title IS NOT NULL",
        list(ids),
        list(titles),
    )
    return int(status.rsplit(" ", 1)[-1])


@convert_errors()
async def lock_every_conversation(con: Connection) -> list[ConversationRecord]:
    """Every `ai` conversation of the identity (the ones whose key its data key wraps),
    live and soft-deleted, locked FOR UPDATE in id order (so two lockers never
    deadlock), for re-wrapping their keys."""
    rows = await con.fetch(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
        f" WHERE user_id = {IDENTITY_SQL} AND kind = 'ai' ORDER BY id FOR UPDATE"
    )
    return [ConversationRecord(**row) for row in rows]


@convert_errors()
async def rewrap_conversation_keys(con: Connection, wrapped: Sequence[tuple[UUID, bytes]]) -> int:
    """Replace the wrapped key of many conversations (``(id, wrapped key)`` pairs) in one
    statement; the key version and every message stay as they are.

    Raises :class:`NotFound` unless every listed conversation exists.
    """
    if not wrapped:
        return 0
    ids, keys = zip(*wrapped, strict=True)
    status = await con.execute(
        "UPDATE conversations AS c SET wrapped_key = u.wrapped_key"
        " FROM unnest($1::uuid[], $2::bytea[]) AS u(id, wrapped_key) WHERE c.id = u.id",
        list(ids),
        list(keys),
    )
    changed = int(status.rsplit(" ", 1)[-1])
    if changed != len(wrapped):
        raise NotFound(f"{len(wrapped) - changed} conversations")
    return changed
