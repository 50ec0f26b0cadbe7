"""The audit log: append-only, never message content."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from storage.connection import Connection
from storage.exceptions import convert_errors
from storage.records import AuditRecord

__all__ = ["append_audit", "list_audit"]


@convert_errors()
async def append_audit(
    con: Connection,
    *,
    user_id: UUID | None,
    action: str,
    conversation_id: UUID | None = None,
    details: Mapping[str, object] | None = None,
    ip: str | None = None,
) -> None:
    """Record an event for ``user_id`` (the identity) or for nobody (None).

    ``details`` must be JSON-serialisable and must not contain message content.
    Entries for nobody are write-only for the application.
    """
    await con.execute(
        "INSERT INTO audit_log (user_id, conversation_id, action, details, ip)"
        " VALUES ($1, $2, $3, $4, $5)",
        user_id,
        conversation_id,
        action,
        dict(details or {}),
        ip,
    )


@convert_errors()
async def list_audit(con: Connection, *, limit: int = 100) -> list[AuditRecord]:
    """The identity's most recent audit entries, newest first."""
    rows = await con.fetch(
        "SELECT id, user_id, conversation_id, action, details, ip, created_at"
        " FROM audit_log ORDER BY created_at DESC, id DESC LIMIT $1",
        limit,
    )
    return [AuditRecord(**row) for row in rows]
