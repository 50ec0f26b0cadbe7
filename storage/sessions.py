"""Login sessions: each holds the user's data key wrapped under a server key."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from storage.connection import Connection
from storage.exceptions import convert_errors
from storage.records import SessionRecord

__all__ = [
    "blank_expired_session_keys",
    "create_session",
    "get_active_session",
    "list_active_sessions",
    "revoke_other_sessions",
    "revoke_session",
    "rewrap_session_key",
    "touch_session",
]

# Revocation and expiry destroy the session's copy of the wrapped data key: a
# revoked or expired row is kept for the record, its key material is not. Every
# read below that can return a key asks for a live row (not revoked, not expired),
# so an expired row's key is never handed out even before the sweep blanks it.

_SELECT_LIVE = (
    "SELECT id, user_id, wrapped_data_key, created_at, expires_at, last_seen_at,"
    " revoked_at, ip, user_agent"
    " FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()"
)
_SELECT_LIVE_FOR_SHARE = _SELECT_LIVE + " FOR SHARE"


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
async def get_active_session(
    con: Connection, session_id: UUID, *, for_share: bool = False
) -> SessionRecord | None:
    """The session if it exists, is visible, not revoked and not expired.

    ``for_share=True`` locks the row until the transaction ends, so its wrapped key
    cannot change meanwhile (a password change re-wraps it).
    """
    row = await con.fetchrow(_SELECT_LIVE_FOR_SHARE if for_share else _SELECT_LIVE, session_id)
    return None if row is None else SessionRecord(**row)


@convert_errors()
async def touch_session(con: Connection, session_id: UUID) -> bool:
    """Record activity on a live session, best effort; True if it was recorded.

    Does nothing for a revoked, expired or missing session, and nothing for one whose
    row someone else holds right now: never waits. (A key rotation holds its session
    row FOR SHARE for its whole run, and a password change holds it too; a socket
    connecting on that session must not wait for them.)
    """
    status = await con.execute(
        "UPDATE sessions SET last_seen_at = now()"
        " WHERE id = (SELECT id FROM sessions"
        "   WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()"
        "   FOR NO KEY UPDATE SKIP LOCKED)",
        session_id,
    )
    return status != "UPDATE 0"


@convert_errors()
async def rewrap_session_key(con: Connection, session_id: UUID, wrapped_data_key: bytes) -> bool:
    """Replace a live session's wrapped data key (the data key was rotated). False if the
    session is missing, revoked or expired."""
    status = await con.execute(
        "UPDATE sessions SET wrapped_data_key = $2"
        " WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()",
        session_id,
        wrapped_data_key,
    )
    return status != "UPDATE 0"


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


@convert_errors()
async def blank_expired_session_keys(con: Connection, limit: int) -> int:
    """Blank the wrapped data key of up to ``limit`` expired sessions of any user.

    Runs ``blank_expired_session_keys(integer)``, a ``SECURITY DEFINER`` function owned
    by ``scca_session_sweep``, whose policy reaches expired sessions only and lets it
    write nothing but an empty key. Rows locked by someone else are skipped and picked
    up by the next call. Returns how many keys were blanked.
    """
    blanked = await con.fetchval("SELECT blank_expired_session_keys($1)", limit)
    return int(blanked)
