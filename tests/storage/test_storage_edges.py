"""Storage at its edges: DSN rewriting, error translation, the pool's own settings, and
how `apply_schema` puts a wrong or contested application role right.

The role tests make throwaway roles (cluster-wide) and drop them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
import pytest_asyncio
from pg import TempDatabase, admin_dsn

from storage import (
    Conflict,
    Forbidden,
    MigrationError,
    NotFound,
    StorageError,
    Unavailable,
    apply_schema,
    create_pool,
)
from storage.dsn import with_database, with_user
from storage.exceptions import translate
from storage.migrate import LOGIN_LOOKUP_ROLE, read_schema

# ── DSNs ────────────────────────────────────────────────────────────────────


def test_with_user_keeps_blank_parameters_and_quotes_everything() -> None:
    dsn = "postgresql://old@db:5432/chat?application_name=&user=old&sslmode=require"
    assert with_user(dsn, "a/b", "p/w") == (
        "postgresql://a%2Fb:p%2Fw@db:5432/chat?application_name=&sslmode=require"
    )


def test_with_user_takes_the_host_after_the_last_at_sign() -> None:
    # An unquoted "@" in the old password must not leak into the host part.
    assert with_user("postgresql://u:p@ss@db/chat", "app", None) == "postgresql://app@db/chat"


def test_with_database_replaces_only_the_database() -> None:
    dsn = "postgresql://u@db/old?dbname=old&application_name=&sslmode=require"
    assert with_database(dsn, "a/b") == (
        "postgresql://u@db/a%2Fb?application_name=&sslmode=require"
    )
    assert with_database("postgresql://u@db/old?sslmode=require", "new") == (
        "postgresql://u@db/new?sslmode=require"
    )


# ── error translation ───────────────────────────────────────────────────────


def test_translated_errors_keep_the_message() -> None:
    cases: list[tuple[BaseException, type[StorageError]]] = [
        (asyncpg.UniqueViolationError("dup key"), Conflict),
        (asyncpg.InsufficientPrivilegeError("denied"), Forbidden),
        (asyncpg.ForeignKeyViolationError("no parent"), NotFound),
        (asyncpg.CheckViolationError("bad row"), StorageError),
        (asyncpg.InterfaceError("pool is closing"), Unavailable),
    ]
    for raw, kind in cases:
        converted = translate(raw)
        assert type(converted) is kind and str(converted) == str(raw), raw
    assert str(Conflict("taken", constraint="users_email_key")) == "taken"


def test_a_client_side_driver_error_is_a_storage_error_with_its_message() -> None:
    converted = translate(asyncpg.exceptions.InternalClientError("codec trouble"))
    assert type(converted) is StorageError and str(converted) == "codec trouble"


def test_an_error_without_text_is_named_by_its_type() -> None:
    converted = translate(asyncpg.CheckViolationError(""))
    assert type(converted) is StorageError and str(converted) == "CheckViolationError"


# ── the pool ────────────────────────────────────────────────────────────────


async def test_a_new_pool_decodes_jsonb_and_names_itself(database: TempDatabase) -> None:
    pool = await create_pool(database.app_dsn, min_size=1, max_size=2)
    try:
        assert pool.get_max_size() == 2
        async with pool.acquire() as con:
            assert await con.fetchval("""SELECT '{"a": [1, 2]}'::jsonb""") == {"a": [1, 2]}
            assert await con.fetchval("SELECT $1::jsonb", {"b": None}) == {"b": None}
            assert await con.fetchval("SHOW application_name") == "scca"
    finally:
        await pool.close()


# ── the application role ────────────────────────────────────────────────────

_ATTRIBUTES = ("rolcanlogin", "rolsuper", "rolbypassrls", "rolcreatedb", "rolcreaterole",
               "rolreplication")


@pytest_asyncio.fixture
async def throwaway_role(database: TempDatabase) -> AsyncIterator[str]:
    """A role name nobody uses; whatever `apply_schema` granted it is dropped after (in
    the maintenance database too, should a broken `apply_schema` have granted there)."""
    role = f"scca_mut_{uuid.uuid4().hex[:10]}"
    yield role
    for dsn in (database.admin_dsn, admin_dsn()):
        con = await asyncpg.connect(dsn)
        try:
            if await con.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await con.execute(f'DROP OWNED BY "{role}"')
        finally:
            await con.close()
    con = await asyncpg.connect(admin_dsn())
    try:
        await con.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await con.close()


async def _attributes(con: asyncpg.Connection, role: str) -> tuple[bool, ...]:
    row = await con.fetchrow(
        f"SELECT {', '.join(_ATTRIBUTES)} FROM pg_roles WHERE rolname = $1", role
    )
    assert row is not None
    return tuple(row.values())


@pytest.mark.parametrize(
    "wrong", ["NOLOGIN", "SUPERUSER", "BYPASSRLS", "CREATEDB", "CREATEROLE", "REPLICATION"]
)
async def test_an_existing_app_role_with_a_wrong_attribute_is_put_right(
    database: TempDatabase, throwaway_role: str, wrong: str
) -> None:
    con = await asyncpg.connect(database.admin_dsn)
    try:
        login = "NOLOGIN" if wrong == "NOLOGIN" else "LOGIN"
        extra = "" if wrong == "NOLOGIN" else wrong
        await con.execute(f'CREATE ROLE "{throwaway_role}" {login} {extra}')
        assert await _attributes(con, throwaway_role) != (True, False, False, False, False, False)
        await apply_schema(database.admin_dsn, app_role=throwaway_role)
        assert await _attributes(con, throwaway_role) == (True, False, False, False, False, False)
    finally:
        await con.close()


async def _blocked_on(con: asyncpg.Connection, statement: str) -> None:
    """Wait until another backend waits on a lock while running `statement...`."""
    for _ in range(500):
        if await con.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND query LIKE $1",
            statement + "%",
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"nobody waited on a lock running {statement!r}")


async def _settle(
    rival: asyncpg.Connection, watcher: asyncpg.Connection, ours: asyncio.Task[int] | None
) -> None:
    """End the rival (releasing its locks), then let our `apply_schema` end too: left
    running after a failure, it would race the role's clean-up."""
    await rival.close()
    await watcher.close()
    if ours is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ours, 30)


async def test_losing_the_race_to_create_the_role_is_retried(
    database: TempDatabase, throwaway_role: str
) -> None:
    """Another setup creates the same role while ours is about to: ours gets a unique
    violation, retries, finds the role and carries on."""
    rival = await asyncpg.connect(admin_dsn())
    watcher = await asyncpg.connect(admin_dsn())
    ours: asyncio.Task[int] | None = None
    try:
        transaction = rival.transaction()
        await transaction.start()
        await rival.execute(
            f'CREATE ROLE "{throwaway_role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'
            " NOREPLICATION NOBYPASSRLS"
        )
        ours = asyncio.create_task(apply_schema(database.admin_dsn, app_role=throwaway_role))
        await _blocked_on(watcher, f"CREATE ROLE {throwaway_role} ")
        await transaction.commit()
        assert await ours == (await apply_schema(database.admin_dsn))
    finally:
        await _settle(rival, watcher, ours)


async def test_a_password_change_that_collides_is_retried(
    database: TempDatabase, throwaway_role: str
) -> None:
    """Another setup alters the role at the same moment ("tuple concurrently updated"):
    setting our password is retried, and ours is the one that stays."""
    await apply_schema(database.admin_dsn, app_role=throwaway_role)
    rival = await asyncpg.connect(admin_dsn())
    watcher = await asyncpg.connect(admin_dsn())
    ours: asyncio.Task[int] | None = None
    try:
        transaction = rival.transaction()
        await transaction.start()
        await rival.execute(f"ALTER ROLE \"{throwaway_role}\" PASSWORD 'theirs'")
        ours = asyncio.create_task(
            apply_schema(database.admin_dsn, app_role=throwaway_role, app_password="ours")
        )
        await _blocked_on(watcher, f"ALTER ROLE {throwaway_role} PASSWORD")
        await transaction.commit()
        await ours
        app = await asyncpg.connect(with_user(database.admin_dsn, throwaway_role, "ours"))
        await app.close()
    finally:
        await _settle(rival, watcher, ours)


async def test_the_login_lookup_role_is_put_right_too(database: TempDatabase) -> None:
    """The lookup role is shared by every database of the cluster: it is given a wrong
    attribute only for the moment of one `apply_schema`, which must take it away."""
    con = await asyncpg.connect(database.admin_dsn)
    try:
        await con.execute(f"ALTER ROLE {LOGIN_LOOKUP_ROLE} CREATEDB")
        try:
            await apply_schema(database.admin_dsn)
        finally:
            wrong = await con.fetchval(
                "SELECT rolcreatedb FROM pg_roles WHERE rolname = $1", LOGIN_LOOKUP_ROLE
            )
            await con.execute(f"ALTER ROLE {LOGIN_LOOKUP_ROLE} NOCREATEDB")
        assert wrong is False
        assert await _attributes(con, LOGIN_LOOKUP_ROLE) == (
            False, False, False, False, False, False
        )
    finally:
        await con.close()


async def test_the_app_role_cannot_be_the_lookup_role(database: TempDatabase) -> None:
    message = r"^the application role cannot be 'scca_login_lookup'$"
    with pytest.raises(MigrationError, match=message):
        await apply_schema(database.admin_dsn, app_role=LOGIN_LOOKUP_ROLE)


def test_a_schema_file_needs_its_every_apply_section(tmp_path: Path) -> None:
    path = tmp_path / "schema.sql"
    path.write_text("-- schema-version: 3\nCREATE TABLE t (a int);\n", encoding="utf-8")
    with pytest.raises(MigrationError, match=r"schema\.sql: no '-- @every-apply' line$"):
        read_schema(path)
    path.write_text("-- schema-version: 3\nCREATE TABLE t ();\n-- @every-apply\nSELECT 1;\n",
                    encoding="utf-8")
    schema = read_schema(path)
    assert (schema.version, schema.structure) == (3, "-- schema-version: 3\nCREATE TABLE t ();\n")
    assert schema.every_apply == "-- @every-apply\nSELECT 1;\n"
