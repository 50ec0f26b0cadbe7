"""Row-level security: on the application's own connection, users are walled off."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
import pytest_asyncio
from pg import TempDatabase
from storage_helpers import append, new_conversation, new_user

from storage import (
    Connection,
    Forbidden,
    NotFound,
    StorageError,
    UserRecord,
    acquire_generation,
    append_audit,
    create_conversation,
    create_pool,
    create_session,
    get_generation,
    insert_message,
    insert_user,
    list_conversations,
    user_tx,
)

# table -> column that names the row's owner
OWNED_TABLES = {
    "users": "id",
    "sessions": "user_id",
    "conversations": "user_id",
    "messages": "user_id",
    "generation_locks": "user_id",
    "audit_log": "user_id",
}
# a harmless assignment the app role is allowed to make on each table
TOUCH = {
    "users": "updated_at = now()",
    "sessions": "last_seen_at = now()",
    "conversations": "updated_at = now()",
    "messages": "token = token",
    "generation_locks": "expires_at = expires_at",
}


@dataclass(frozen=True)
class Tenant:
    user: UserRecord
    conversation_id: uuid.UUID


async def populate(pool: asyncpg.Pool) -> Tenant:
    """A user with a row in every table."""
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    for n in range(3):
        await append(pool, user, conversation.id, os.urandom(40), role=n % 2)
    async with user_tx(pool, user.id) as con:
        await create_session(
            con,
            session_id=uuid.uuid4(),
            user_id=user.id,
            wrapped_data_key=os.urandom(60),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            ip="127.0.0.1",
            user_agent="pytest",
        )
        assert await acquire_generation(
            con,
            conversation_id=conversation.id,
            user_id=user.id,
            owner=uuid.uuid4(),
            sequence=4,
            ttl_seconds=600,
        )
        await append_audit(con, user_id=user.id, action="login", details={"ok": True})
    return Tenant(user, conversation.id)


@pytest_asyncio.fixture(scope="module")
async def tenants(pool: asyncpg.Pool) -> tuple[Tenant, Tenant]:
    return await populate(pool), await populate(pool)


@pytest_asyncio.fixture
async def raw(database: TempDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A bare connection as the application role, outside any pool or helper."""
    con = await asyncpg.connect(database.app_dsn)
    yield con
    await con.close()


async def act_as(con: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await con.execute("SELECT set_config('app.current_user_id', $1, true)", str(user_id))


async def owner_counts(admin: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, int]:
    return {
        table: await admin.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", user_id)
        for table, column in OWNED_TABLES.items()
    }


async def test_raw_sql_cannot_read_or_change_another_users_rows(
    raw: asyncpg.Connection, admin: asyncpg.Connection, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    before = await owner_counts(admin, b.user.id)
    assert all(count > 0 for count in before.values()), before
    async with raw.transaction():
        await act_as(raw, a.user.id)
        for table, column in OWNED_TABLES.items():
            owners = {r[0] for r in await raw.fetch(f"SELECT {column} FROM {table}")}
            assert owners == {a.user.id}, table
            seen = await raw.fetchval(
                f"SELECT count(*) FROM {table} WHERE {column} = $1", b.user.id
            )
            assert seen == 0, table
        for table, assignment in TOUCH.items():
            column = OWNED_TABLES[table]
            status = await raw.execute(
                f"UPDATE {table} SET {assignment} WHERE {column} = $1", b.user.id
            )
            assert status == "UPDATE 0", table
        for table in ("users", "conversations", "messages", "generation_locks"):
            column = OWNED_TABLES[table]
            status = await raw.execute(f"DELETE FROM {table} WHERE {column} = $1", b.user.id)
            assert status == "DELETE 0", table
    assert await owner_counts(admin, b.user.id) == before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'x' WHERE user_id = $1",
        "DELETE FROM audit_log WHERE user_id = $1",
        "DELETE FROM sessions WHERE user_id = $1",
        "UPDATE conversations SET user_id = $1",
        "UPDATE messages SET user_id = $1",
        "SELECT count(*) FROM schema_migrations WHERE $1::uuid IS NOT NULL",
    ],
)
async def test_raw_sql_lacks_privileges_it_does_not_need(
    raw: asyncpg.Connection, tenants: tuple[Tenant, Tenant], statement: str
) -> None:
    a, b = tenants
    async with raw.transaction():
        await act_as(raw, a.user.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await raw.execute(statement, b.user.id)


async def test_raw_sql_cannot_insert_rows_owned_by_another_user(
    raw: asyncpg.Connection, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    inserts = [
        (
            "INSERT INTO users (id, email, password_hash, kek_salt, wrapped_data_key)"
            " VALUES ($1, 'x@example.test', 'h', '\\x00', '\\x00')",
            (uuid.uuid4(),),
        ),
        (
            "INSERT INTO sessions (id, user_id, wrapped_data_key, expires_at)"
            " VALUES ($1, $2, '\\x00', now() + interval '1 hour')",
            (uuid.uuid4(), b.user.id),
        ),
        (
            "INSERT INTO conversations (id, user_id, model, wrapped_key)"
            " VALUES ($1, $2, 'm', '\\x00')",
            (uuid.uuid4(), b.user.id),
        ),
        (
            "INSERT INTO messages (conversation_id, user_id, seq, role, token, link)"
            " VALUES ($1, $2, 99, 0, '\\x00', '\\x00')",
            (b.conversation_id, b.user.id),
        ),
        (
            "INSERT INTO generation_locks (conversation_id, user_id, owner, sequence, expires_at)"
            " VALUES ($1, $2, $3, 1, now())",
            (b.conversation_id, b.user.id, uuid.uuid4()),
        ),
        (
            "INSERT INTO audit_log (user_id, action) VALUES ($1, 'forged')",
            (b.user.id,),
        ),
    ]
    for statement, args in inserts:
        async with raw.transaction():
            await act_as(raw, a.user.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await raw.execute(statement, *args)


async def test_storage_functions_refuse_writes_for_another_user(
    pool: asyncpg.Pool, admin: asyncpg.Connection, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    before = await owner_counts(admin, b.user.id)
    attempts: list[Callable[[Connection], Awaitable[object]]] = [
        lambda con: insert_user(
            con,
            user_id=uuid.uuid4(),
            email=f"{uuid.uuid4().hex}@example.test",
            password_hash="h",
            kek_salt=b"s",
            wrapped_data_key=b"k",
        ),
        lambda con: create_session(
            con,
            session_id=uuid.uuid4(),
            user_id=b.user.id,
            wrapped_data_key=b"k",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            ip=None,
            user_agent=None,
        ),
        lambda con: create_conversation(
            con,
            conversation_id=uuid.uuid4(),
            user_id=b.user.id,
            sealed_title=None,
            model="m",
            wrapped_key=b"k",
        ),
        lambda con: insert_message(
            con,
            conversation_id=b.conversation_id,
            user_id=b.user.id,
            seq=50,
            role=0,
            token=b"t",
            link=b"l",
        ),
        lambda con: append_audit(con, user_id=b.user.id, action="forged"),
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden):
            async with user_tx(pool, a.user.id) as con:
                await attempt(con)
    assert await owner_counts(admin, b.user.id) == before


async def test_rows_cannot_be_attached_to_another_users_conversation(
    pool: asyncpg.Pool, admin: asyncpg.Connection, tenants: tuple[Tenant, Tenant]
) -> None:
    """Owning the row is not enough: it must hang off a conversation one is a member of
    (refused by the membership policy, or by the foreign key to the creator)."""
    a, b = tenants
    with pytest.raises((Forbidden, NotFound)):
        async with user_tx(pool, a.user.id) as con:
            await insert_message(
                con,
                conversation_id=b.conversation_id,
                user_id=a.user.id,
                seq=50,
                role=0,
                token=b"t",
                link=b"l",
            )
    with pytest.raises((Forbidden, NotFound)):
        async with user_tx(pool, a.user.id) as con:
            await acquire_generation(
                con,
                conversation_id=b.conversation_id,
                user_id=a.user.id,
                owner=uuid.uuid4(),
                sequence=1,
                ttl_seconds=60,
            )
    async with user_tx(pool, b.user.id) as con:
        lease = await get_generation(con, b.conversation_id)
    assert lease is not None and lease.user_id == b.user.id
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1 AND user_id = $2",
            b.conversation_id,
            a.user.id,
        )
        == 0
    )


async def test_no_identity_sees_nothing_and_identity_ends_with_the_transaction(
    raw: asyncpg.Connection, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants

    async def visible() -> int:
        return sum([await raw.fetchval(f"SELECT count(*) FROM {table}") for table in OWNED_TABLES])

    assert await visible() == 0
    await raw.execute("SELECT set_config('app.current_user_id', '', false)")
    assert await visible() == 0
    async with raw.transaction():
        await act_as(raw, a.user.id)
        assert await visible() > 0
    assert await visible() == 0
    with pytest.raises(RuntimeError):
        async with raw.transaction():
            await act_as(raw, a.user.id)
            raise RuntimeError("abort")
    assert await visible() == 0


async def test_login_lookup_sees_exactly_one_user_without_identity(
    raw: asyncpg.Connection, tenants: tuple[Tenant, Tenant]
) -> None:
    _, b = tenants
    rows = await raw.fetch("SELECT id FROM find_user_for_login($1)", b.user.email.upper())
    assert [row["id"] for row in rows] == [b.user.id]
    assert await raw.fetch("SELECT id FROM find_user_for_login('%')") == []
    assert await raw.fetchval("SELECT count(*) FROM users") == 0


async def test_pooled_connection_never_inherits_an_identity(
    database: TempDatabase, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    single = await create_pool(database.app_dsn, min_size=1, max_size=1)
    try:
        async with user_tx(single, a.user.id) as con:
            assert await con.fetchval("SELECT count(*) FROM conversations") == 1
        async with single.acquire() as con:
            assert await con.fetchval("SELECT count(*) FROM conversations") == 0
        with pytest.raises(RuntimeError):
            async with user_tx(single, a.user.id):
                raise RuntimeError("handler failed")
        async with single.acquire() as con:
            assert await con.fetchval("SELECT count(*) FROM conversations") == 0
            # Even a session-wide setting made by stray code dies on release.
            await con.execute("SELECT set_config('app.current_user_id', $1, false)", str(a.user.id))
        async with single.acquire() as con:
            assert await con.fetchval("SELECT count(*) FROM conversations") == 0
        async with user_tx(single, b.user.id) as con:
            owners = {r["user_id"] for r in await con.fetch("SELECT user_id FROM conversations")}
        assert owners == {b.user.id}
    finally:
        await single.close()


async def test_interleaved_users_on_a_small_pool_never_see_each_other(
    database: TempDatabase, tenants: tuple[Tenant, Tenant]
) -> None:
    small = await create_pool(database.app_dsn, min_size=5, max_size=5)

    async def look(user_id: uuid.UUID) -> set[uuid.UUID]:
        seen: set[uuid.UUID] = set()
        async with user_tx(small, user_id) as con:
            for table, column in OWNED_TABLES.items():
                seen |= {r[column] for r in await con.fetch(f"SELECT {column} FROM {table}")}
                await asyncio.sleep(0)
            seen |= {c.user_id for c in await list_conversations(con, limit=10, offset=0)}
        return seen

    try:
        users = [t.user.id for t in tenants]
        results = await asyncio.gather(*(look(users[i % 2]) for i in range(200)))
    finally:
        await small.close()
    for i, seen in enumerate(results):
        assert seen == {users[i % 2]}


async def test_no_identity_through_the_pool_sees_nothing(
    pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant]
) -> None:
    async with user_tx(pool, None) as con:
        assert await list_conversations(con, limit=10, offset=0) == []
        with pytest.raises(StorageError):
            await create_conversation(
                con,
                conversation_id=uuid.uuid4(),
                user_id=tenants[0].user.id,
                sealed_title=None,
                model="m",
                wrapped_key=b"k",
            )
