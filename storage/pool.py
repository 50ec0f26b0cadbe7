"""The connection pool and the row-level-security scoped transaction."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from uuid import UUID

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from storage.connection import Connection
from storage.exceptions import convert_errors

__all__ = ["anonymous_tx", "create_pool", "user_tx"]

# The only statement in the code base that sets the RLS identity. The third
# argument (is_local = true) scopes it to the transaction: it vanishes at
# COMMIT or ROLLBACK, so a pooled connection never carries it to the next user.
_SET_IDENTITY = "SELECT set_config('app.current_user_id', $1, true)"


async def _init_connection(con: asyncpg.Connection) -> None:
    await con.set_type_codec(
        "jsonb",
        encoder=json.dumps,
        decoder=json.loads,
        schema="pg_catalog",
    )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open an ``asyncpg.Pool`` on ``dsn`` (the application role's DSN).

    jsonb columns are exchanged as Python objects. Raises
    :class:`~storage.exceptions.Unavailable` if the database cannot be reached.
    """
    with convert_errors():
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            server_settings={"application_name": "scca"},
        )


@asynccontextmanager
async def user_tx(pool: asyncpg.Pool, user_id: UUID | None) -> AsyncIterator[Connection]:
    """Acquire a connection, begin a transaction acting as ``user_id``, yield it.

    Row-level security then shows and accepts only that user's rows.
    ``None`` means nobody: the transaction sees no user-owned row at all.
    The transaction commits when the block ends normally and rolls back if
    it raises. Database errors leave as :class:`~storage.exceptions.StorageError`.
    """
    identity = "" if user_id is None else str(user_id)
    with convert_errors():
        async with pool.acquire() as con, con.transaction():
            await con.execute(_SET_IDENTITY, identity)
            yield con


def anonymous_tx(pool: asyncpg.Pool) -> AbstractAsyncContextManager[Connection]:
    """A transaction with no identity, for login-time lookups by email."""
    return user_tx(pool, None)
