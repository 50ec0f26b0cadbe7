"""What the schema promises, read back from the catalogs of a real database."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest

from storage.migrate import LOGIN_LOOKUP_ROLE

APP_ROLE = "scca_app"
TABLES = {
    "users",
    "sessions",
    "conversations",
    "messages",
    "generation_locks",
    "audit_log",
    "schema_migrations",
    "conversation_members",
    "profiles",
}


async def test_every_table_enables_and_forces_row_level_security(
    admin: asyncpg.Connection,
) -> None:
    rows = await admin.fetch(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
    )
    assert {row["relname"] for row in rows} == TABLES
    for row in rows:
        assert row["relrowsecurity"], row["relname"]
        assert row["relforcerowsecurity"], row["relname"]


async def test_every_user_table_has_a_policy_on_its_owner(admin: asyncpg.Connection) -> None:
    rows = await admin.fetch("SELECT tablename, qual FROM pg_policies WHERE schemaname = 'public'")
    by_table: dict[str, list[str]] = {}
    for row in rows:
        by_table.setdefault(row["tablename"], []).append(row["qual"] or "")
    assert set(by_table) == TABLES
    # The identity directly, or through the membership function that reads it.
    for table in TABLES - {"schema_migrations"}:
        assert any(
            "app.current_user_id" in qual or "member_conversation_ids()" in qual
            for qual in by_table[table]
        ), table
    membership = await admin.fetchval(
        "SELECT prosrc FROM pg_proc WHERE proname = 'member_conversation_ids'"
    )
    assert "app.current_user_id" in membership


async def test_app_role_is_powerless_and_owns_nothing(admin: asyncpg.Connection) -> None:
    role = await admin.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin"
        " FROM pg_roles WHERE rolname = $1",
        APP_ROLE,
    )
    assert role is not None
    assert dict(role) == {
        "rolsuper": False,
        "rolbypassrls": False,
        "rolcreaterole": False,
        "rolcreatedb": False,
        "rolcanlogin": True,
    }
    owned = await admin.fetchval(
        "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles"
        " WHERE rolname = $1)",
        APP_ROLE,
    )
    assert owned == 0
    owned_functions = await admin.fetchval(
        "SELECT count(*) FROM pg_proc WHERE proowner = (SELECT oid FROM pg_roles"
        " WHERE rolname = $1)",
        APP_ROLE,
    )
    assert owned_functions == 0
    assert not await admin.fetchval(
        "SELECT pg_has_role($1, $2, 'MEMBER')", APP_ROLE, LOGIN_LOOKUP_ROLE
    )


async def test_lookup_role_cannot_log_in_or_bypass_security(admin: asyncpg.Connection) -> None:
    role = await admin.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1",
        LOGIN_LOOKUP_ROLE,
    )
    assert role is not None
    assert tuple(role.values()) == (False, False, False)


async def test_login_function_is_a_narrow_security_definer(admin: asyncpg.Connection) -> None:
    fn = await admin.fetchrow(
        "SELECT p.prosecdef, p.proconfig, r.rolname AS owner,"
        " has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,"
        " has_function_privilege($1, p.oid, 'EXECUTE') AS app_exec"
        " FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner"
        " WHERE p.proname = 'find_user_for_login'",
        APP_ROLE,
    )
    assert fn is not None
    assert fn["prosecdef"] is True
    assert fn["owner"] == LOGIN_LOOKUP_ROLE
    assert fn["proconfig"] == ["search_path=pg_catalog, public, pg_temp"]
    assert fn["public_exec"] is False
    assert fn["app_exec"] is True


@pytest.mark.parametrize(
    ("table", "privilege", "granted"),
    [
        ("schema_migrations", "SELECT", False),
        ("audit_log", "UPDATE", False),
        ("audit_log", "DELETE", False),
        ("audit_log", "INSERT", True),
        ("messages", "INSERT", True),
        ("messages", "TRUNCATE", False),
        ("users", "TRUNCATE", False),
        ("sessions", "DELETE", False),
    ],
)
async def test_app_role_grants(
    admin: asyncpg.Connection, table: str, privilege: str, granted: bool
) -> None:
    assert (
        await admin.fetchval("SELECT has_table_privilege($1, $2, $3)", APP_ROLE, table, privilege)
        is granted
    )


@pytest.mark.parametrize(
    ("table", "column", "granted"),
    [
        ("users", "id", False),
        ("users", "email", False),
        ("messages", "user_id", False),
        ("messages", "seq", False),
        ("messages", "token", True),
        ("conversations", "user_id", False),
        ("conversations", "merkle_root", True),
        ("sessions", "user_id", False),
    ],
)
async def test_app_role_may_not_move_rows_between_owners(
    admin: asyncpg.Connection, table: str, column: str, granted: bool
) -> None:
    assert (
        await admin.fetchval(
            "SELECT has_column_privilege($1, $2, $3, 'UPDATE')", APP_ROLE, table, column
        )
        is granted
    )


async def test_message_tokens_are_never_compressed(admin: asyncpg.Connection) -> None:
    storage = await admin.fetchval(
        "SELECT attstorage::text FROM pg_attribute"
        " WHERE attrelid = 'messages'::regclass AND attname = 'token'"
    )
    assert storage == "e"
