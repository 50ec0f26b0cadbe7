"""Every storage error class is reachable, and no asyncpg exception escapes."""

from __future__ import annotations

import uuid

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from pg import TempDatabase
from storage_helpers import new_conversation, new_user

from storage import (
    Conflict,
    Forbidden,
    NotFound,
    StorageError,
    Unavailable,
    convert_errors,
    create_pool,
    get_conversation,
    insert_message,
    user_tx,
)
from storage.dsn import with_user


def _foreign_errors() -> list[tuple[BaseException, type[StorageError]]]:
    return [
        (asyncpg.UniqueViolationError("duplicate key"), Conflict),
        (asyncpg.InsufficientPrivilegeError("permission denied"), Forbidden),
        (asyncpg.ForeignKeyViolationError("no such parent"), NotFound),
        (asyncpg.TooManyConnectionsError("too many"), Unavailable),
        (asyncpg.AdminShutdownError("terminating connection"), Unavailable),
        (asyncpg.CannotConnectNowError("starting up"), Unavailable),
        (asyncpg.ConnectionDoesNotExistError("closed mid-operation"), Unavailable),
        (asyncpg.InterfaceError("pool is closed"), Unavailable),
        (asyncpg.InterfaceError("connection is closed"), Unavailable),
        (ConnectionRefusedError(111, "refused"), Unavailable),
        (TimeoutError(), Unavailable),
        (asyncpg.CheckViolationError("check"), StorageError),
        (asyncpg.SerializationError("retry"), StorageError),
        (asyncpg.DataError("invalid input for query argument"), StorageError),
        (asyncpg.InterfaceError("another operation is in progress"), StorageError),
        (asyncpg.exceptions.OutdatedSchemaCacheError("stale"), StorageError),
    ]


@pytest.mark.parametrize(("raised", "expected"), _foreign_errors())
async def test_each_foreign_error_becomes_its_storage_error(
    raised: BaseException, expected: type[StorageError]
) -> None:
    with pytest.raises(StorageError) as by_block, convert_errors():
        raise raised
    assert type(by_block.value) is expected
    assert by_block.value.__cause__ is raised

    @convert_errors()
    async def failing() -> None:
        raise raised

    with pytest.raises(StorageError) as by_decorator:
        await failing()
    assert type(by_decorator.value) is expected


async def test_unrelated_errors_pass_through() -> None:
    with pytest.raises(KeyError), convert_errors():
        raise KeyError("not ours to convert")


async def test_conflict_carries_the_constraint_name() -> None:
    error = asyncpg.UniqueViolationError("duplicate key")
    error.constraint_name = "users_email_key"
    with pytest.raises(Conflict) as caught, convert_errors():
        raise error
    assert caught.value.constraint == "users_email_key"


async def test_unreachable_server_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        await create_pool("postgresql://scca_app@127.0.0.1:1/nothing", min_size=1)


async def test_closed_pool_is_unavailable(database: TempDatabase) -> None:
    closed = await create_pool(database.app_dsn, min_size=1, max_size=1)
    await closed.close()
    with pytest.raises(Unavailable):
        async with user_tx(closed, uuid.uuid4()):
            pass


async def test_connection_killed_mid_transaction_is_unavailable(
    database: TempDatabase, admin: asyncpg.Connection
) -> None:
    single = await create_pool(database.app_dsn, min_size=1, max_size=1)
    try:
        with pytest.raises(Unavailable):
            async with user_tx(single, uuid.uuid4()) as con:
                pid = await con.fetchval("SELECT pg_backend_pid()")
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                await get_conversation(con, uuid.uuid4())
        # The pool replaces the dead connection.
        async with user_tx(single, None) as con:
            assert await con.fetchval("SELECT 1") == 1
    finally:
        await single.close()


async def test_too_many_connections_is_unavailable(
    database: TempDatabase, admin: asyncpg.Connection
) -> None:
    await admin.execute(f'ALTER DATABASE "{database.name}" CONNECTION LIMIT 0')
    try:
        with pytest.raises(Unavailable, match="too many connections"):
            await create_pool(database.app_dsn, min_size=1, max_size=1)
    finally:
        await admin.execute(f'ALTER DATABASE "{database.name}" CONNECTION LIMIT -1')


async def test_wrong_password_is_a_storage_error(database: TempDatabase) -> None:
    """Authentication failures are not outages: plain StorageError, not Unavailable."""
    nobody = with_user(database.app_dsn, "no_such_role_" + uuid.uuid4().hex[:8], "pw")
    with pytest.raises(StorageError) as caught:
        await create_pool(nobody, min_size=1)
    assert not isinstance(caught.value, Unavailable)


async def test_bad_argument_is_a_storage_error(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    with pytest.raises(StorageError) as caught:
        async with user_tx(pool, user.id) as con:
            await insert_message(
                con,
                conversation_id=conversation.id,
                user_id=user.id,
                seq=1,
                role="assistant",  # type: ignore[arg-type]
                token=b"t",
                link=b"l",
            )
    assert not isinstance(caught.value, asyncpg.PostgresError | asyncpg.InterfaceError)
