"""Generation leases: at most one running AI generation per conversation.

A lease is a row with an owner (an id the running generation picks) and an
expiry. It is shared by all server instances through the database, and a
crashed instance's lease simply runs out. Expiry is judged by the clock at
the time of each statement, not at the start of the transaction.
"""

from __future__ import annotations

from uuid import UUID

from storage.connection import Connection
from storage.exceptions import convert_errors
from storage.records import GenerationRecord

__all__ = [
    "acquire_generation",
    "cancel_generation",
    "extend_generation",
    "get_generation",
    "holds_generation",
    "owns_generation",
    "release_generation",
]


@convert_errors()
async def acquire_generation(
    con: Connection,
    *,
    conversation_id: UUID,
    user_id: UUID,
    owner: UUID,
    sequence: int,
    ttl_seconds: float,
) -> bool:
    """Take the conversation's lease for ``owner``; False if someone holds a live one.

    An expired lease is taken over.
    """
    taken = await con.fetchval(
        "INSERT INTO generation_locks"
        " (conversation_id, user_id, owner, sequence, started_at, expires_at)"
        " VALUES ($1, $2, $3, $4, clock_timestamp(),"
        "         clock_timestamp() + make_interval(secs => $5))"
        " ON CONFLICT (conversation_id) DO UPDATE"
        " SET user_id = EXCLUDED.user_id, owner = EXCLUDED.owner,"
        "     sequence = EXCLUDED.sequence, started_at = EXCLUDED.started_at,"
        "     expires_at = EXCLUDED.expires_at"
        " WHERE generation_locks.expires_at <= clock_timestamp()"
        " RETURNING true",
        conversation_id,
        user_id,
        owner,
        sequence,
        ttl_seconds,
    )
    return taken is True


@convert_errors()
async def extend_generation(
    con: Connection, conversation_id: UUID, owner: UUID, ttl_seconds: float
) -> bool:
    """Push ``owner``'s lease expiry to now + ttl; False if the lease is not its.

    A lease that ran out but was not taken over by anyone is still ``owner``'s
    and can be extended.
    """
    status = await con.execute(
        "UPDATE generation_locks"
        " SET expires_at = clock_timestamp() + make_interval(secs => $3)"
        " WHERE conversation_id = $1 AND owner = $2",
        conversation_id,
        owner,
        ttl_seconds,
    )
    return status != "UPDATE 0"


@convert_errors()
async def release_generation(con: Connection, conversation_id: UUID, owner: UUID) -> bool:
    """End ``owner``'s lease; False if the lease is not (or no longer) its."""
    status = await con.execute(
        "DELETE FROM generation_locks WHERE conversation_id = $1 AND owner = $2",
        conversation_id,
        owner,
    )
    return status != "DELETE 0"


@convert_errors()
async def holds_generation(con: Connection, conversation_id: UUID, owner: UUID) -> bool:
    """Whether ``owner`` holds a live (unexpired) lease on the conversation."""
    held = await con.fetchval(
        "SELECT EXISTS (SELECT 1 FROM generation_locks WHERE conversation_id = $1"
        " AND owner = $2 AND expires_at > clock_timestamp())",
        conversation_id,
        owner,
    )
    return held is True


@convert_errors()
async def owns_generation(con: Connection, conversation_id: UUID, owner: UUID) -> bool:
    """Whether the conversation's lease is still ``owner``'s, expired or not.

    The fence of a reply's commit: an edit or delete removes the lease, a takeover
    releases it, and a new generation can only take an expired lease by replacing its
    owner; a lease that merely ran out while nobody wanted it (the database was away)
    still lets its owner commit.
    """
    owned = await con.fetchval(
        "SELECT EXISTS (SELECT 1 FROM generation_locks WHERE conversation_id = $1"
        " AND owner = $2)",
        conversation_id,
        owner,
    )
    return owned is True


@convert_errors()
async def cancel_generation(con: Connection, conversation_id: UUID) -> GenerationRecord | None:
    """Remove the conversation's lease whoever holds it; return it if it was live.

    The running generation notices through :func:`holds_generation` or a
    failed :func:`extend_generation` / :func:`release_generation`.
    """
    row = await con.fetchrow(
        "WITH gone AS (DELETE FROM generation_locks WHERE conversation_id = $1"
        " RETURNING conversation_id, user_id, owner, sequence, started_at, expires_at)"
        " SELECT conversation_id, user_id, owner, sequence, started_at, expires_at"
        " FROM gone WHERE expires_at > clock_timestamp()",
        conversation_id,
    )
    return None if row is None else GenerationRecord(**row)


@convert_errors()
async def get_generation(con: Connection, conversation_id: UUID) -> GenerationRecord | None:
    """The conversation's live lease, or None."""
    row = await con.fetchrow(
        "SELECT conversation_id, user_id, owner, sequence, started_at, expires_at"
        " FROM generation_locks"
        " WHERE conversation_id = $1 AND expires_at > clock_timestamp()",
        conversation_id,
    )
    return None if row is None else GenerationRecord(**row)
