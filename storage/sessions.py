"""Login sessions: each holds the user's data key wrapped under a server key."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from storage.connection import Connection
from storage.exceptions import convert_errors
from storage.records import SessionRecord

__all__ = [
    "create_session",
    "get_active_session",
    "list_active_sessions",
    "revoke_other_sessions",
    "revoke_session",
    "touch_session",
]

# Revocation also destroys the session's copy of the wrapped data key: a
# revoked row is kept for the record, its key material is not.


@convert_errors()
async def create_session(
    con: Connection,
    *,
    session_id: UUID,
    user_id: UUID,
    wrapped_data_key: bytes,
    expires_at: datetime,
    ip: str | None,
    user_agent: str | None,
) -> SessionRecord:
    """Open a session for ``user_id`` (the transaction's identity)."""
    row = await con.fetchrow(
        "INSERT INTO sessions (id, user_id, wrapped_data_key, expires_at, ip, user_agent)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " RETURNING id, user_id, wrapped_data_key, created_at, expires_at, last_seen_at,"
        " revoked_at, ip, user_agent",
        session_id,
        user_id,
        wrapped_data_key,
        expires_at,
        ip,
        user_agent,
    )
    assert row is not None  # INSERT ... RETURNING yields the row or raises
    return SessionRecord(**row)


@convert_errors()
async def get_active_session(con: Connection, session_id: UUID) -> SessionRecord | None:
    """The session if it exists, is visible, not revoked and not expired."""
    row = await con.fetchrow(
        "SELECT id, user_id, wrapped_data_key, created_at, expires_at, last_seen_at,"
        " revoked_at, ip, user_agent"
        " FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()",
        session_id,
    )
    return None if row is None else SessionRecord(**row)


@convert_errors()
async def touch_session(con: Connection, session_id: UUID) -> None:
    """Record activity on a live session; does nothing for a revoked or missing one."""
    await con.execute(
        "UPDATE sessions SET last_seen_at = now() WHERE id = $1 AND revoked_at IS NULL",
        session_id,
    )


@convert_errors()
async def revoke_session(con: Connection, session_id: UUID) -> bool:
    """Revoke a session (logout). False if it was missing or already revoked."""
    status = await con.execute(
        "UPDATE sessions SET revoked_at = now(), wrapped_data_key = ''::bytea"
        " WHERE id = $1 AND revoked_at IS NULL",
        session_id,
    )
    return status != "UPDATE 0"


@convert_errors()
async def revoke_other_sessions(con: Connection, user_id: UUID, keep: UUID) -> list[UUID]:
    """Revoke every live session of ``user_id`` except ``keep``; return their ids."""
    rows = await con.fetch(
        "UPDATE sessions SET revoked_at = now(), wrapped_data_key = ''::bytea"
        " WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL RETURNING id",
        user_id,
        keep,
    )
    return [row["id"] for row in rows]


@convert_errors()
async def list_active_sessions(con: Connection, user_id: UUID) -> list[SessionRecord]:
    """The live sessions of ``user_id``, newest first."""
    rows = await con.fetch(
        "SELECT id, user_id, wrapped_data_key, created_at, expires_at, last_seen_at,"
        " revoked_at, ip, user_agent"
        " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()"
        " ORDER BY created_at DESC, id",
        user_id,
    )
    return [SessionRecord(**row) for row in rows]
