"""Applying and migrating the schema; the roles it creates; DSN rewriting."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from pg import TempDatabase, admin_dsn, temporary_database

from storage import MigrationError, StorageError, app_dsn, apply_schema
from storage.dsn import with_user
from storage.migrate import SCHEMA_PATH, pending_migrations, read_schema

CURRENT = read_schema(SCHEMA_PATH).version


async def versions(dsn: str) -> list[int]:
    con = await asyncpg.connect(dsn)
    try:
        return [r[0] for r in await con.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await con.close()


def schema_at(tmp_path: Path, version: int, migrations: dict[str, str]) -> Path:
    """A copy of schema.sql claiming ``version``, with the given migration files."""
    text = SCHEMA_PATH.read_text(encoding="utf-8").split("\n", 1)[1]
    path = tmp_path / "schema.sql"
    path.write_text(f"-- schema-version: {version}\n{text}", encoding="utf-8")
    (tmp_path / "migrations").mkdir()
    for name, sql in migrations.items():
        (tmp_path / "migrations" / name).write_text(sql, encoding="utf-8")
    return path


async def test_applying_again_changes_nothing(database: TempDatabase) -> None:
    assert await apply_schema(database.admin_dsn) == CURRENT
    results = await asyncio.gather(*(apply_schema(database.admin_dsn) for _ in range(3)))
    assert results == [CURRENT] * 3
    assert await versions(database.admin_dsn) == [CURRENT]


async def test_app_role_connects_as_itself_and_works(database: TempDatabase) -> None:
    con = await asyncpg.connect(database.app_dsn)
    try:
        assert await con.fetchval("SELECT current_user") == "scca_app"
        assert await con.fetchval("SELECT count(*) FROM conversations") == 0
    finally:
        await con.close()


async def test_pending_migrations_run_in_order(tmp_path: Path) -> None:
    path = schema_at(
        tmp_path,
        CURRENT + 2,
        {
            f"{CURRENT + 2:03d}_second.sql": "ALTER TABLE migration_probe ADD COLUMN b int;",
            f"{CURRENT + 1:03d}_first.sql": "CREATE TABLE migration_probe (a int);",
            "README.txt": "not a migration",
        },
    )
    async with temporary_database() as db:
        assert await apply_schema(db.admin_dsn, schema_path=path) == CURRENT + 2
        assert await apply_schema(db.admin_dsn, schema_path=path) == CURRENT + 2
        assert await versions(db.admin_dsn) == [CURRENT, CURRENT + 1, CURRENT + 2]
        con = await asyncpg.connect(db.admin_dsn)
        try:
            columns = await con.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'migration_probe'::regclass"
                " AND attnum > 0 ORDER BY attnum"
            )
        finally:
            await con.close()
        assert [c[0] for c in columns] == ["a", "b"]
        with pytest.raises(MigrationError, match="newer"):
            await apply_schema(db.admin_dsn)


async def test_failed_or_missing_migration_leaves_the_database_as_it_was(
    tmp_path: Path,
) -> None:
    broken = schema_at(
        tmp_path,
        CURRENT + 1,
        {f"{CURRENT + 1:03d}_broken.sql": "CREATE TABLE half_done (a int); SELECT 1/0;"},
    )
    async with temporary_database() as db:
        with pytest.raises(StorageError, match="division by zero"):
            await apply_schema(db.admin_dsn, schema_path=broken)
        assert await versions(db.admin_dsn) == [CURRENT]
        (tmp_path / "migrations" / f"{CURRENT + 1:03d}_broken.sql").unlink()
        with pytest.raises(MigrationError, match="exactly one"):
            await apply_schema(db.admin_dsn, schema_path=broken)
        assert await versions(db.admin_dsn) == [CURRENT]


def test_pending_migrations_rejects_duplicates(tmp_path: Path) -> None:
    for name in ("002_a.sql", "002_b.sql", "003_c.sql"):
        (tmp_path / name).write_text("SELECT 1;", encoding="utf-8")
    assert pending_migrations(tmp_path, 2, 3) == [(3, tmp_path / "003_c.sql")]
    assert pending_migrations(tmp_path, 3, 3) == []
    with pytest.raises(MigrationError):
        pending_migrations(tmp_path, 1, 3)


def test_schema_file_must_declare_its_version(tmp_path: Path) -> None:
    path = tmp_path / "schema.sql"
    path.write_text("CREATE TABLE t (a int);\n-- @every-apply\n", encoding="utf-8")
    with pytest.raises(MigrationError, match="schema-version"):
        read_schema(path)


async def test_new_roles_are_created_once_under_concurrency_and_get_a_password() -> None:
    role = f"scca_app_{uuid.uuid4().hex[:10]}"
    try:
        async with temporary_database() as first, temporary_database() as second:
            # Two databases set up for one brand-new role at the same moment.
            results = await asyncio.gather(
                apply_schema(first.admin_dsn, app_role=role, app_password="s3cret 'quoted'"),
                apply_schema(second.admin_dsn, app_role=role, app_password="s3cret 'quoted'"),
            )
            assert list(results) == [CURRENT, CURRENT]
            con = await asyncpg.connect(first.admin_dsn)
            try:
                stored = await con.fetchval(
                    "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role
                )
            finally:
                await con.close()
            assert stored is not None and stored.startswith("SCRAM-SHA-256$")
            app = await asyncpg.connect(with_user(second.admin_dsn, role, None))
            try:
                assert await app.fetchval("SELECT current_user") == role
            finally:
                await app.close()
    finally:
        con = await asyncpg.connect(admin_dsn())
        try:
            await con.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await con.close()


async def test_admin_cannot_be_the_app_role(database: TempDatabase) -> None:
    with pytest.raises(MigrationError):
        await apply_schema(database.admin_dsn, app_role="postgres")


@pytest.mark.parametrize(
    ("given", "password", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/chat",
            None,
            "postgresql://scca_app@127.0.0.1:5432/chat",
        ),
        (
            "postgresql://postgres:pw@db.internal/chat?sslmode=require",
            "p@ss:w/rd",
            "postgresql://scca_app:p%40ss%3Aw%2Frd@db.internal/chat?sslmode=require",
        ),
        (
            "postgresql://postgres:@/postgres?host=/tmp/pg-socket",
            None,
            "postgresql://scca_app@/postgres?host=/tmp/pg-socket",
        ),
        (
            "postgresql:///chat?host=/run/pg&user=postgres&password=x",
            "y",
            "postgresql://scca_app:y@/chat?host=%2Frun%2Fpg",
        ),
    ],
)
def test_app_dsn_replaces_only_the_credentials(
    given: str, password: str | None, expected: str
) -> None:
    assert app_dsn(given, app_role="scca_app", app_password=password) == expected
