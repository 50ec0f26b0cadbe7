"""SQL of the privacy operations: consistent reads, bulk re-keying, erasure, purge, report.

Like every storage module, each function takes a connection from
:func:`storage.pool.user_tx` and row-level security scopes it to that identity; the
exceptions are :func:`purge_deleted_conversations`, which goes through the one narrow
``SECURITY DEFINER`` function of ``migrations/002_purge.sql``, and
:func:`table_storage` / :func:`row_counts`, meant for the administrator's connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from storage.connection import Connection
from storage.exceptions import NotFound, convert_errors
from storage.records import CONVERSATION_COLUMNS, IDENTITY_SQL, ConversationRecord

__all__ = [
    "REPORTED_TABLES",
    "TableStorage",
    "bypasses_row_security",
    "erase_user_keys",
    "get_conversation_for_share",
    "hand_over_conversations",
    "list_conversation_ids",
    "list_generating_conversations",
    "purge_deleted_conversations",
    "replace_tokens",
    "row_counts",
    "set_conversation_key",
    "table_storage",
]

REPORTED_TABLES = (
    "users",
    "sessions",
    "conversations",
    "messages",
    "generation_locks",
    "audit_log",
    "conversation_members",
    "profiles",
)
"""The application's tables, in the order the storage report lists them."""

_SELECT_FOR_SHARE = (
    f"SELECT {CONVERSATION_COLUMNS}"
    " FROM conversations WHERE id = $1 AND deleted_at IS NULL FOR SHARE"
)


@dataclass(frozen=True, slots=True)
class TableStorage:
    """Bytes one table takes on disk: heap (with free-space and visibility maps), TOAST
    (with its index), its indexes, and the total of the three."""

    name: str
    heap_bytes: int
    toast_bytes: int
    index_bytes: int
    total_bytes: int
    estimated_rows: int


@convert_errors()
async def get_conversation_for_share(
    con: Connection, conversation_id: UUID
) -> ConversationRecord | None:
    """A live conversation, row-locked FOR SHARE until the transaction ends.

    Writers (send, edit, key rotation) lock the row FOR UPDATE first, so the messages
    read in the same transaction belong to exactly this head and key version. Readers
    do not block each other.
    """
    row = await con.fetchrow(_SELECT_FOR_SHARE, conversation_id)
    return None if row is None else ConversationRecord(**row)


@convert_errors()
async def replace_tokens(
    con: Connection, conversation_id: UUID, updates: Sequence[tuple[int, bytes, bytes]]
) -> int:
    """Overwrite ``(seq, token, link)`` for many messages in one statement.

    Raises :class:`NotFound` unless every listed message exists.
    """
    if not updates:
        return 0
    seqs, tokens, links = zip(*updates, strict=True)
    status = await con.execute(
        "UPDATE messages AS m SET token = u.token, link = u.link"
        " FROM unnest($2::integer[], $3::bytea[], $4::bytea[]) AS u(seq, token, link)"
        " WHERE m.conversation_id = $1 AND m.seq = u.seq",
        conversation_id,
        list(seqs),
        list(tokens),
        list(links),
    )
    changed = int(status.rsplit(" ", 1)[-1])
    if changed != len(updates):
        raise NotFound(f"{len(updates) - changed} messages of conversation {conversation_id}")
    return changed


@convert_errors()
async def set_conversation_key(
    con: Connection,
    conversation_id: UUID,
    *,
    wrapped_key: bytes,
    key_version: int,
    merkle_root: bytes | None,
    sealed_title: bytes | None,
) -> None:
    """Install a rotated key, the chain head recomputed under it and the title sealed
    under it (a clear title left from version 2 is dropped: it is sealed now).

    ``updated_at`` is left alone: rotating a key is not activity in the conversation.
    Raises :class:`NotFound` if the live conversation does not exist.
    """
    status = await con.execute(
        "UPDATE conversations SET wrapped_key = $2, key_version = $3, merkle_root = $4,"
        " sealed_title = $5, title = NULL"
        " WHERE id = $1 AND deleted_at IS NULL",
        conversation_id,
        wrapped_key,
        key_version,
        merkle_root,
        sealed_title,
    )
    if status == "UPDATE 0":
        raise NotFound(f"conversation {conversation_id}")


@convert_errors()
async def list_conversation_ids(con: Connection) -> list[UUID]:
    """Ids of every conversation the identity is a member of, live and soft-deleted."""
    rows = await con.fetch(
        "SELECT c.id FROM conversation_members AS m"
        " JOIN conversations AS c ON c.id = m.conversation_id"
        f" WHERE m.user_id = {IDENTITY_SQL} ORDER BY c.created_at, c.id"
    )
    return [row["id"] for row in rows]


@convert_errors()
async def list_generating_conversations(con: Connection) -> list[UUID]:
    """Conversations of the identity with a generation lease, live or expired."""
    rows = await con.fetch("SELECT conversation_id FROM generation_locks ORDER BY 1")
    return [row["conversation_id"] for row in rows]


@convert_errors()
async def hand_over_conversations(con: Connection) -> int:
    """Pass the direct and group conversations the identity created, and others are in,
    to another member (schema.sql, ``hand_over_conversations``): erasing the account
    then takes nobody else's conversation with it. Returns how many passed."""
    return int(await con.fetchval("SELECT hand_over_conversations()"))


@convert_errors()
async def erase_user_keys(con: Connection, user_id: UUID) -> list[UUID]:
    """Overwrite every key an account holds, before the account is deleted.

    Zeroes each conversation's wrapped key, the password-wrapped data key and the
    wrapped X25519 private key, and
    blanks and revokes every session's wrapped copy of the data key, each in a
    statement of its own, so the row versions that the delete then removes hold no key
    material. Returns the ids of the sessions that were still live.
    """
    await con.execute(
        "UPDATE conversations"
        " SET wrapped_key = decode(repeat('00', octet_length(wrapped_key)), 'hex')"
        " WHERE user_id = $1",
        user_id,
    )
    # Both parts see the same snapshot: `live` is the state before the update.
    rows = await con.fetch(
        "WITH live AS (SELECT id FROM sessions"
        "   WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()),"
        " blanked AS (UPDATE sessions SET wrapped_data_key = ''::bytea,"
        "   revoked_at = coalesce(revoked_at, now()) WHERE user_id = $1)"
        " SELECT id FROM live ORDER BY id",
        user_id,
    )
    await con.execute(
        "UPDATE users"
        " SET wrapped_data_key = decode(repeat('00', octet_length(wrapped_data_key)), 'hex'),"
        " wrapped_private_key ="
        " decode(repeat('00', octet_length(wrapped_private_key)), 'hex')"
        " WHERE id = $1",
        user_id,
    )
    return [row["id"] for row in rows]


@convert_errors()
async def purge_deleted_conversations(con: Connection, cutoff: datetime, limit: int) -> int:
    """Destroy up to ``limit`` conversations of any user soft-deleted before ``cutoff``.

    Runs ``purge_deleted_conversations(timestamptz, integer)``, a ``SECURITY DEFINER``
    function owned by ``scca_purge``, whose policies reach soft-deleted conversations
    only: it zeroes their wrapped keys, deletes them (messages and leases cascade) and
    writes one ``purge`` audit entry each. Rows locked by someone else are skipped and
    picked up by the next call. Returns how many were destroyed.
    """
    purged = await con.fetchval("SELECT purge_deleted_conversations($1, $2)", cutoff, limit)
    return int(purged)


@convert_errors()
async def bypasses_row_security(con: Connection) -> bool:
    """Whether this connection's role sees every row (superuser or BYPASSRLS)."""
    value = await con.fetchval(
        "SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user"
    )
    return value is True


@convert_errors()
async def table_storage(con: Connection) -> list[TableStorage]:
    """Disk usage of each application table (see :data:`REPORTED_TABLES`), largest first.

    Needs no privilege on the tables; ``estimated_rows`` is the planner's estimate.
    """
    rows = await con.fetch(
        "SELECT c.relname AS name,"
        " pg_table_size(c.oid) AS table_bytes,"
        " CASE WHEN c.reltoastrelid = 0 THEN 0"
        "      ELSE pg_total_relation_size(c.reltoastrelid) END AS toast_bytes,"
        " pg_indexes_size(c.oid) AS index_bytes,"
        " pg_total_relation_size(c.oid) AS total_bytes,"
        " greatest(coalesce(s.n_live_tup, 0), c.reltuples::bigint, 0) AS estimated_rows"
        " FROM pg_catalog.pg_class AS c"
        " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_catalog.pg_stat_user_tables AS s ON s.relid = c.oid"
        " WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY($1::text[])"
        " ORDER BY total_bytes DESC, name",
        list(REPORTED_TABLES),
    )
    return [
        TableStorage(
            name=row["name"],
            heap_bytes=int(row["table_bytes"]) - int(row["toast_bytes"]),
            toast_bytes=int(row["toast_bytes"]),
            index_bytes=int(row["index_bytes"]),
            total_bytes=int(row["total_bytes"]),
            estimated_rows=int(row["estimated_rows"]),
        )
        for row in rows
    ]


@convert_errors()
async def row_counts(con: Connection) -> dict[str, int]:
    """Exact row counts of the application tables and of live / soft-deleted conversations.

    Exact only on a connection that bypasses row-level security
    (:func:`bypasses_row_security`); elsewhere it counts the identity's rows.
    """
    row = await con.fetchrow(
        "SELECT"
        " (SELECT count(*) FROM users) AS users,"
        " (SELECT count(*) FROM sessions) AS sessions,"
        " (SELECT count(*) FROM conversations) AS conversations,"
        " (SELECT count(*) FROM conversations WHERE deleted_at IS NOT NULL)"
        "   AS deleted_conversations,"
        " (SELECT count(*) FROM messages) AS messages,"
        " (SELECT coalesce(max(message_count), 0) FROM conversations) AS longest_conversation,"
        " (SELECT count(*) FROM generation_locks) AS generation_locks,"
        " (SELECT count(*) FROM audit_log) AS audit_log,"
        " (SELECT count(*) FROM conversation_members) AS conversation_members,"
        " (SELECT count(*) FROM profiles) AS profiles"
    )
    assert row is not None  # a SELECT without FROM yields one row
    return {key: int(value) for key, value in row.items()}
