"""Messages: one row per message, keyed by (conversation_id, seq).

Appending is one INSERT and a destructive edit is one ranged DELETE plus an
UPDATE, so neither costs more on a long conversation than on a short one.
Callers serialise writers to one conversation by locking its row first
(``get_conversation(..., for_update=True)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from storage.connection import Connection
from storage.exceptions import NotFound, convert_errors
from storage.records import MessageRecord

_COLUMNS = (
    "conversation_id, seq, role, token, link, created_at, client_msg_id, stopped, id, sender_id"
)

__all__ = [
    "count_messages",
    "delete_after",
    "find_by_client_msg_id",
    "get_message",
    "insert_message",
    "last_messages",
    "list_messages",
    "list_messages_before",
    "replace_message",
    "update_token",
]


@convert_errors()
async def insert_message(
    con: Connection,
    *,
    conversation_id: UUID,
    user_id: UUID,
    seq: int,
    role: int,
    token: bytes,
    link: bytes,
    client_msg_id: str | None = None,
    stopped: bool = False,
    sender_id: UUID | None = None,
) -> MessageRecord:
    """Store message ``seq`` of a conversation created by ``user_id``, written by
    ``sender_id`` (None for the model's messages). The message gets a new random id.

    Raises :class:`Conflict` if ``seq`` or ``client_msg_id`` is already used
    in the conversation (``.constraint`` says which), :class:`NotFound` if
    ``user_id`` does not own such a conversation. Like any database error, a
    conflict aborts the transaction: to make a retried send idempotent, call
    :func:`find_by_client_msg_id` first, under the conversation's row lock.
    """
    row = await con.fetchrow(
        "INSERT INTO messages"
        " (conversation_id, user_id, seq, role, token, link, client_msg_id, stopped, sender_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        f" RETURNING {_COLUMNS}",
        conversation_id,
        user_id,
        seq,
        role,
        token,
        link,
        client_msg_id,
        stopped,
        sender_id,
    )
    assert row is not None  # INSERT ... RETURNING yields the row or raises
    return MessageRecord(**row)


@convert_errors()
async def list_messages(
    con: Connection,
    conversation_id: UUID,
    *,
    from_seq: int = 1,
    to_seq: int | None = None,
    limit: int | None = None,
) -> list[MessageRecord]:
    """Messages with ``from_seq <= seq <= to_seq`` (no upper bound if None), in order."""
    rows = await con.fetch(
        f"SELECT {_COLUMNS}"
        " FROM messages"
        " WHERE conversation_id = $1 AND seq >= $2 AND ($3::integer IS NULL OR seq <= $3)"
        " ORDER BY seq LIMIT $4",
        conversation_id,
        from_seq,
        to_seq,
        limit,
    )
    return [MessageRecord(**row) for row in rows]


@convert_errors()
async def get_message(con: Connection, conversation_id: UUID, seq: int) -> MessageRecord | None:
    """Message ``seq`` of the conversation, or None."""
    row = await con.fetchrow(
        f"SELECT {_COLUMNS}"
        " FROM messages WHERE conversation_id = $1 AND seq = $2",
        conversation_id,
        seq,
    )
    return None if row is None else MessageRecord(**row)


@convert_errors()
async def find_by_client_msg_id(
    con: Connection, conversation_id: UUID, client_msg_id: str
) -> MessageRecord | None:
    """The message a client tagged with ``client_msg_id`` (for idempotent retries)."""
    row = await con.fetchrow(
        f"SELECT {_COLUMNS}"
        " FROM messages WHERE conversation_id = $1 AND client_msg_id = $2",
        conversation_id,
        client_msg_id,
    )
    return None if row is None else MessageRecord(**row)


@convert_errors()
async def delete_after(con: Connection, conversation_id: UUID, seq: int) -> tuple[int, int]:
    """Delete every message after ``seq``; return (count, bytes of token+link freed)."""
    row = await con.fetchrow(
        "WITH gone AS (DELETE FROM messages WHERE conversation_id = $1 AND seq > $2"
        " RETURNING octet_length(token) + octet_length(link) AS size)"
        " SELECT count(*) AS n, coalesce(sum(size), 0) AS size FROM gone",
        conversation_id,
        seq,
    )
    assert row is not None  # an aggregate always yields one row
    return int(row["n"]), int(row["size"])


@convert_errors()
async def replace_message(
    con: Connection, conversation_id: UUID, seq: int, *, token: bytes, link: bytes
) -> None:
    """Overwrite message ``seq``'s token and link. Raises :class:`NotFound` if missing."""
    status = await con.execute(
        "UPDATE messages SET token = $3, link = $4 WHERE conversation_id = $1 AND seq = $2",
        conversation_id,
        seq,
        token,
        link,
    )
    if status == "UPDATE 0":
        raise NotFound("message {seq} of conversation {conversation_id}")


update_token = replace_message
"""Re-encrypted token and recomputed link for key rotation; same as replace_message."""


@convert_errors()
async def count_messages(con: Connection, conversation_id: UUID) -> int:
    """How many messages the conversation has."""
    return int(
        await con.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1", conversation_id
        )
    )


@convert_errors()
async def list_messages_before(
    con: Connection, conversation_id: UUID, *, before_seq: int | None, limit: int, offset: int = 0
) -> list[MessageRecord]:
    """The newest ``limit`` messages below ``before_seq`` (all if None), skipping the
    ``offset`` newest of those, returned oldest first (a chat window paging backwards)."""
    rows = await con.fetch(
        f"SELECT {_COLUMNS} FROM messages"
        " WHERE conversation_id = $1 AND ($2::integer IS NULL OR seq < $2)"
        " ORDER BY seq DESC LIMIT $3 OFFSET $4",
        conversation_id,
        before_seq,
        limit,
        offset,
    )
    return [MessageRecord(**row) for row in reversed(rows)]


@convert_errors()
async def last_messages(
    con: Connection, conversation_ids: Sequence[UUID]
) -> dict[UUID, MessageRecord]:
    """The last message of each conversation that has one (one index probe each)."""
    rows = await con.fetch(
        f"SELECT {', '.join('m.' + c.strip() for c in _COLUMNS.split(','))}"
        " FROM unnest($1::uuid[]) AS c(id)"
        " CROSS JOIN LATERAL (SELECT * FROM messages AS x WHERE x.conversation_id = c.id"
        " ORDER BY x.seq DESC LIMIT 1) AS m",
        list(conversation_ids),
    )
    return {row["conversation_id"]: MessageRecord(**row) for row in rows}
