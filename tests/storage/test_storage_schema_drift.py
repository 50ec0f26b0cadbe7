"""schema.sql and the migrations describe the same database.

A database built from schema.sql and one built from each frozen baseline
(versions 1, 2 and 3), then upgraded by ``apply_schema`` through the
migrations/NNN_*.sql that follow it (as a server does at start-up), must have
identical catalogs: tables, columns, constraints, indexes, row-level security,
policies, functions, grants, triggers, sequences and the schema version. Any
difference is named.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest_asyncio
from pg import BASELINE_SCHEMA, temporary_database
from schema_catalog import Catalog, differences, read_catalog, report

from storage import apply_schema
from storage.migrate import SCHEMA_PATH, read_schema

CURRENT = read_schema(SCHEMA_PATH).version
BASELINE_2 = BASELINE_SCHEMA.parent / "002_schema.sql"
BASELINE_3 = BASELINE_SCHEMA.parent / "003_schema.sql"
# git's id of schema.sql at commit 836fdd2, the last version 1 (what 002 was written against).
BASELINE_BLOB = "0f86a16d68e166f363a849eef68c7a3ac91de2a4"
# ... and at commit 81c1bce, the last version 2 (what 003 was written against).
BASELINE_2_BLOB = "cc3b3469be378b3888798a558872222558e6b5e1"
# ... and at commit f59f450, the last version 3 (what 004 was written against).
BASELINE_3_BLOB = "acdf8623289e48a760b179b3735d4f066807c3f1"
HEADER_END = "-- ======================== end of the frozen-baseline header"


@pytest_asyncio.fixture(scope="module")
async def fresh() -> Catalog:
    async with temporary_database() as db:
        return await read_catalog(db.admin_dsn)


@pytest_asyncio.fixture(scope="module")
async def upgraded() -> Catalog:
    async with temporary_database(schema_path=BASELINE_SCHEMA) as db:
        assert (await read_catalog(db.admin_dsn))["schema version"] == {
            "schema_migrations": {"version": 1}
        }
        assert await apply_schema(db.admin_dsn) == CURRENT
        return await read_catalog(db.admin_dsn)


@pytest_asyncio.fixture(scope="module")
async def upgraded_from_2() -> Catalog:
    async with temporary_database(schema_path=BASELINE_2) as db:
        assert (await read_catalog(db.admin_dsn))["schema version"] == {
            "schema_migrations": {"version": 2}
        }
        assert await apply_schema(db.admin_dsn) == CURRENT
        return await read_catalog(db.admin_dsn)


@pytest_asyncio.fixture(scope="module")
async def upgraded_from_3() -> Catalog:
    async with temporary_database(schema_path=BASELINE_3) as db:
        assert (await read_catalog(db.admin_dsn))["schema version"] == {
            "schema_migrations": {"version": 3}
        }
        assert await apply_schema(db.admin_dsn) == CURRENT
        return await read_catalog(db.admin_dsn)


def _released_blob(baseline: Path) -> str:
    """git's blob id of a baseline less its frozen-baseline header."""
    lines = baseline.read_bytes().decode("utf-8").splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if line.startswith(HEADER_END))
    assert all(line.startswith("--") for line in lines[1:end])
    body = "".join(lines[:1] + lines[end + 1 :]).encode("utf-8")
    return hashlib.sha1(b"blob %d\0" % len(body) + body, usedforsecurity=False).hexdigest()


def test_baseline_is_version_1_as_released() -> None:
    """The baseline, less its header, is byte for byte the version-1 schema.sql in git."""
    assert read_schema(BASELINE_SCHEMA).version == 1
    assert _released_blob(BASELINE_SCHEMA) == BASELINE_BLOB, (
        "migrations/baseline/001_schema.sql is frozen: never edit it"
    )


def test_baseline_2_is_version_2_as_released() -> None:
    assert read_schema(BASELINE_2).version == 2
    assert _released_blob(BASELINE_2) == BASELINE_2_BLOB, (
        "migrations/baseline/002_schema.sql is frozen: never edit it"
    )


def test_baseline_3_is_version_3_as_released() -> None:
    assert read_schema(BASELINE_3).version == 3
    assert _released_blob(BASELINE_3) == BASELINE_3_BLOB, (
        "migrations/baseline/003_schema.sql is frozen: never edit it"
    )


async def test_upgraded_baseline_equals_schema_sql(fresh: Catalog, upgraded: Catalog) -> None:
    assert fresh["schema version"] == {"schema_migrations": {"version": CURRENT}}
    # Enough of each kind to show the catalog was read at all.
    for kind in ("relation", "column", "constraint", "index", "policy", "function", "grant"):
        assert fresh[kind], kind
    found = differences(fresh, upgraded, "schema.sql", "upgraded baseline")
    assert not found, report(found)


async def test_upgraded_version_2_equals_schema_sql(
    fresh: Catalog, upgraded_from_2: Catalog
) -> None:
    found = differences(fresh, upgraded_from_2, "schema.sql", "upgraded version 2")
    assert not found, report(found)


async def test_upgraded_version_3_equals_schema_sql(
    fresh: Catalog, upgraded_from_3: Catalog
) -> None:
    found = differences(fresh, upgraded_from_3, "schema.sql", "upgraded version 3")
    assert not found, report(found)


async def test_the_comparison_names_every_kind_of_difference(fresh: Catalog) -> None:
    """A database changed in one object of each kind differs in exactly those objects."""
    async with temporary_database() as db:
        con = await asyncpg.connect(db.admin_dsn)
        try:
            admin = await con.fetchval("SELECT current_user")
            await con.execute(
                """
                ALTER TABLE messages ADD COLUMN extra text;
                ALTER TABLE sessions ALTER COLUMN ip SET NOT NULL;
                ALTER TABLE audit_log ALTER COLUMN details SET DEFAULT '{"x": 1}';
                ALTER TABLE conversations DROP CONSTRAINT conversations_message_count_check;
                DROP INDEX audit_log_user_created_idx;
                ALTER TABLE audit_log NO FORCE ROW LEVEL SECURITY;
                ALTER POLICY messages_member_read ON messages USING (true);
                ALTER FUNCTION find_user_for_login(text) SECURITY INVOKER;
                ALTER FUNCTION purge_deleted_conversations(timestamptz, integer)
                    RESET search_path;
                REVOKE UPDATE (deleted_at) ON conversations FROM scca_app;
                GRANT TRUNCATE ON messages TO scca_app;
                CREATE FUNCTION probe() RETURNS trigger LANGUAGE plpgsql
                    AS $$ BEGIN RETURN NEW; END $$;
                REVOKE ALL ON FUNCTION probe() FROM PUBLIC;
                CREATE TRIGGER probe BEFORE INSERT ON messages
                    FOR EACH ROW EXECUTE FUNCTION probe();
                ALTER SEQUENCE audit_log_id_seq INCREMENT BY 2;
                INSERT INTO schema_migrations (version) VALUES (99);
                """
            )
        finally:
            await con.close()
        changed = await read_catalog(db.admin_dsn)
    found = differences(fresh, changed, "schema.sql", "changed")
    assert {(d.kind, d.key) for d in found} == {
        ("column", "messages.extra"),
        ("column", "sessions.ip"),
        ("column", "audit_log.details"),
        ("constraint", "conversations.conversations_message_count_check"),
        ("index", "audit_log_user_created_idx"),
        ("row-level security", "audit_log"),
        ("policy", "messages.messages_member_read"),
        ("function", "find_user_for_login(text)"),
        ("function", "purge_deleted_conversations(timestamp with time zone,integer)"),
        ("function", "probe()"),
        ("grant", f"function probe() to {admin}: EXECUTE"),
        ("grant", "column conversations.deleted_at to scca_app: UPDATE"),
        ("grant", "table messages to scca_app: TRUNCATE"),
        ("trigger", "messages.probe"),
        ("sequence", "audit_log_id_seq"),
        ("schema version", "schema_migrations"),
    }, report(found)
    text = report(found)
    for expected in (
        "column messages.extra: only in changed",
        "column sessions.ip: not_null is False in schema.sql but True in changed",
        "row-level security audit_log: forced is True in schema.sql but False in changed",
        "policy messages.messages_member_read: qual is",
        "function find_user_for_login(text): security_definer is True",
        "sequence audit_log_id_seq: increment is 1 in schema.sql but 2 in changed",
        f"schema version schema_migrations: version is {CURRENT} in schema.sql but 99 in changed",
    ):
        assert expected in text, text
