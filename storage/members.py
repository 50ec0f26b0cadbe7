"""Conversation members: who may see a conversation, their role, their sealed key and
their receipt watermarks.

Row-level security shows a member the members of their own conversations only; adding
is an admin's (or, for the first members, the creator's) right, checked by the
database itself (``may_add_members`` in schema.sql).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from storage.connection import Connection
from storage.exceptions import convert_errors

__all__ = [
    "MemberRecord",
    "NewMember",
    "add_members",
    "get_member",
    "list_members",
    "list_members_of",
    "mark_read",
]

_COLUMNS = (
    "conversation_id, user_id, role, sealed_key, key_version, added_by, joined_at,"
    " last_delivered_seq, last_read_seq"
)


@dataclass(frozen=True, slots=True)
class NewMember:
    """A member to add: ``sealed_key`` is the conversation key sealed to their public key
    (None for the owner of an ``ai`` conversation, whose key the conversation row holds)."""

    user_id: UUID
    role: str
    sealed_key: bytes | None


@dataclass(frozen=True, slots=True)
class MemberRecord:
    conversation_id: UUID
    user_id: UUID
    role: str
    sealed_key: bytes | None
    key_version: int
    added_by: UUID | None
    joined_at: datetime
    last_delivered_seq: int
    last_read_seq: int


@convert_errors()
async def add_members(
    con: Connection,
    conversation_id: UUID,
    members: Sequence[NewMember],
    *,
    added_by: UUID,
    key_version: int,
) -> int:
    """Add members in one statement; returns how many. :class:`Conflict` if one is a
    member already, :class:`Forbidden` if the identity may not add members to this
    conversation, :class:`NotFound` if a user does not exist.

    No RETURNING: a new member row is visible only from the next statement on (the
    policy asks member_conversation_ids(), which sees the statement's snapshot)."""
    status = await con.execute(
        "INSERT INTO conversation_members"
        " (conversation_id, user_id, role, sealed_key, key_version, added_by)"
        " SELECT $1, u.user_id, u.role, u.sealed_key, $5, $6"
        " FROM unnest($2::uuid[], $3::text[], $4::bytea[]) AS u(user_id, role, sealed_key)",
        conversation_id,
        [m.user_id for m in members],
        [m.role for m in members],
        [m.sealed_key for m in members],
        key_version,
        added_by,
    )
    return int(status.rsplit(" ", 1)[-1])


@convert_errors()
async def get_member(
    con: Connection, conversation_id: UUID, user_id: UUID
) -> MemberRecord | None:
    """One membership, if the identity may see it (it is a member of that conversation)."""
    row = await con.fetchrow(
        f"SELECT {_COLUMNS} FROM conversation_members"
        " WHERE conversation_id = $1 AND user_id = $2",
        conversation_id,
        user_id,
    )
    return None if row is None else MemberRecord(**row)


@convert_errors()
async def list_members(con: Connection, conversation_id: UUID) -> list[MemberRecord]:
    """The members of one conversation, oldest first."""
    rows = await con.fetch(
        f"SELECT {_COLUMNS} FROM conversation_members WHERE conversation_id = $1"
        " ORDER BY joined_at, user_id",
        conversation_id,
    )
    return [MemberRecord(**row) for row in rows]


@convert_errors()
async def list_members_of(
    con: Connection, conversation_ids: Sequence[UUID]
) -> dict[UUID, list[MemberRecord]]:
    """The members of many conversations, in one query, each list oldest first."""
    rows = await con.fetch(
        f"SELECT {_COLUMNS} FROM conversation_members WHERE conversation_id = ANY($1::uuid[])"
        " ORDER BY conversation_id, joined_at, user_id",
        list(conversation_ids),
    )
    found: dict[UUID, list[MemberRecord]] = {cid: [] for cid in conversation_ids}
    for row in rows:
        found[row["conversation_id"]].append(MemberRecord(**row))
    return found


@convert_errors()
async def mark_read(
    con: Connection, conversation_id: UUID, user_id: UUID, sequence: int
) -> MemberRecord | None:
    """Move the identity's read (and delivered) watermark forward to ``sequence``; never
    back. None if they are not a member."""
    row = await con.fetchrow(
        "UPDATE conversation_members"
        " SET last_read_seq = greatest(last_read_seq, $3),"
        " last_delivered_seq = greatest(last_delivered_seq, $3)"
        " WHERE conversation_id = $1 AND user_id = $2"
        f" RETURNING {_COLUMNS}",
        conversation_id,
        user_id,
        sequence,
    )
    return None if row is None else MemberRecord(**row)
