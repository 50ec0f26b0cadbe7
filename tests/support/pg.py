"""Throwaway PostgreSQL databases for tests and benchmarks.

Import as ``from pg import temporary_database`` with ``tests/support`` on
``sys.path``. Each database gets a random name, the real schema and grants
(via ``storage.migrate.apply_schema``), and is dropped afterwards.
``temporary_database(schema_path=BASELINE_SCHEMA)`` builds one at version 1
instead, as the first release left it, for upgrade tests.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from storage.dsn import with_database
from storage.migrate import SCHEMA_PATH, app_dsn, apply_schema

__all__ = [
    "BASELINE_SCHEMA",
    "DatabaseUnreachable",
    "TempDatabase",
    "admin_dsn",
    "connected",
    "temporary_database",
]

_DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

BASELINE_SCHEMA = SCHEMA_PATH.parent / "migrations" / "baseline" / "001_schema.sql"
"""The frozen version-1 schema: what every upgrade path starts from."""


class DatabaseUnreachable(RuntimeError):
    """PostgreSQL is not running where the tests expect it."""


@dataclass(frozen=True, slots=True)
class TempDatabase:
    """A database created for one test run.

    ``admin_dsn`` connects to it as the cluster administrator (a superuser,
    so row-level security does not apply); ``app_dsn`` connects to it as the
    application role, which row-level security confines.
    """

    name: str
    admin_dsn: str
    app_dsn: str


def admin_dsn() -> str:
    """The cluster's administrator DSN: ``TEST_DATABASE_URL`` or local postgres."""
    return os.environ.get("TEST_DATABASE_URL") or _DEFAULT_ADMIN_DSN


async def _connect_admin(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnreachable(
            f"PostgreSQL not reachable at {dsn} ({exc!s}): start it with "
            "`pg_ctlcluster 15 main start` or set TEST_DATABASE_URL"
        ) from None


@asynccontextmanager
async def connected(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection for a test's inspection or setup (the admin DSN skips RLS)."""
    con = await _connect_admin(dsn)
    try:
        yield con
    finally:
        await con.close()


@asynccontextmanager
async def temporary_database(
    app_role: str = "scca_app", *, schema_path: Path | None = None
) -> AsyncIterator[TempDatabase]:
    """Create ``scca_test_<hex>`` with the schema applied; drop it on exit.

    ``schema_path`` is passed to ``apply_schema`` (default: the repository's
    schema.sql), e.g. :data:`BASELINE_SCHEMA` for a version-1 database.
    """
    cluster_dsn = admin_dsn()
    name = f"scca_test_{secrets.token_hex(6)}"
    admin = await _connect_admin(cluster_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            database_dsn = with_database(cluster_dsn, name)
            await apply_schema(
                database_dsn, app_role=app_role, app_password=None, schema_path=schema_path
            )
            yield TempDatabase(
                name=name,
                admin_dsn=database_dsn,
                app_dsn=app_dsn(database_dsn, app_role=app_role, app_password=None),
            )
        finally:
            # FORCE terminates whatever connections are still open to it.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
