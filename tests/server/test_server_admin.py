"""`python -m server.admin` run as a subprocess, configured from the environment."""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio
from live_server import TEST_SECRET, LiveServer
from pg import TempDatabase, temporary_database
from pg import admin_dsn as cluster_dsn

from server import admin as admin_cli
from storage.dsn import with_database
from storage.migrate import SCHEMA_PATH, read_schema

ROOT = Path(__file__).resolve().parents[2]
PURGE_FUNCTION = "purge_deleted_conversations(timestamptz, integer)"
PASSWORD = "correct horse battery"
TABLES = (
    "users",
    "sessions",
    "conversations",
    "messages",
    "generation_locks",
    "audit_log",
    "conversation_members",
    "profiles",
)


@pytest_asyncio.fixture(scope="module")
async def server_db() -> AsyncIterator[TempDatabase]:
    """A database of this module's own: the admin command purges and reports on it."""
    async with temporary_database() as db:
        yield db


async def run_admin(
    *args: str, env: dict[str, str], stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Run the admin command; returns (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.admin",
        *args,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "WARNING", **env},
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def run_inline(
    *args: str, env: dict[str, str], stdin: str = ""
) -> tuple[int, str, str]:
    """The same command in this process (on a thread: it runs its own event loop)."""
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(
        admin_cli.main, list(args), env, stdin=io.StringIO(stdin), out=out, err=err
    )
    return code, out.getvalue(), err.getvalue()


def env_for(db: TempDatabase, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": db.admin_dsn, "SECRET_KEY": TEST_SECRET, **extra}


async def send(server: LiveServer, token: str, conversation_id: str, content: str) -> Any:
    status, body = await server.call(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        token=token,
        json={"content": content, "stream": False},
    )
    assert status == 200, body
    return body


# ── storage-report ───────────────────────────────────────────────────────────


async def test_storage_report_lists_bytes_and_counts(
    server: LiveServer, server_db: TempDatabase, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    cid = await server.create_conversation(account["token"])
    await send(server, account["token"], cid, "something to count")
    code, out, err = await run_admin("storage-report", env=env_for(server_db))
    assert code == 0, err
    lines = out.splitlines()
    line = re.compile(
        r"table (\w+): (\d+) bytes = heap (\d+) \+ toast (\d+) \+ indexes (\d+); (\d+) rows"
    )
    tables = {m.group(1): [int(g) for g in m.groups()[1:]] for m in map(line.fullmatch, lines) if m}
    assert set(tables) == set(TABLES), out
    for name, (total, heap, toast, indexes, rows) in tables.items():
        assert total == heap + toast + indexes, name
        assert rows == await admin.fetchval(f"SELECT count(*) FROM {name}"), name
    assert tables["messages"][0] > 0 and tables["messages"][4] >= 2
    messages = await admin.fetchval("SELECT count(*) FROM messages")
    longest = await admin.fetchval("SELECT max(message_count) FROM conversations")
    [summary] = [x for x in lines if x.startswith("conversations: ")]
    assert f"messages: {messages};" in summary
    assert f"longest conversation: {longest} messages" in summary
    assert any(x.startswith("total: ") for x in lines)


async def test_storage_report_on_a_role_under_row_security_says_so(
    server_db: TempDatabase,
) -> None:
    code, out, err = await run_inline(
        "storage-report", env=env_for(server_db, DATABASE_URL=server_db.app_dsn)
    )
    assert code == 0, err
    assert "estimates only" in out
    assert re.search(r"table messages: \d+ bytes .*\(estimate\)", out)


async def test_usage_and_configuration_errors_exit_2(server_db: TempDatabase) -> None:
    code, out, err = await run_admin("storage-report", env={"SECRET_KEY": TEST_SECRET})
    assert (code, out) == (2, "") and "DATABASE_URL" in err
    code, _, err = await run_inline("storage-report", env=env_for(server_db, SECRET_KEY="short"))
    assert code == 2 and "SECRET_KEY" in err
    code, _, _ = await run_inline(env=env_for(server_db))
    assert code == 2
    code, _, _ = await run_inline("purge", "--retention-days", "soon", env=env_for(server_db))
    assert code == 2
    code, _, err = await run_inline(
        "purge", env=env_for(server_db, PURGE_RETENTION_DAYS="a month")
    )
    assert code == 2 and "PURGE_RETENTION_DAYS" in err


# ── purge ────────────────────────────────────────────────────────────────────


async def test_purge_honours_the_retention(
    server: LiveServer, server_db: TempDatabase, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    token = account["token"]
    old, recent, live = [await server.create_conversation(token) for _ in range(3)]
    for cid in (old, recent, live):
        await send(server, token, cid, "to be purged, perhaps")
    for cid in (old, recent):
        status, _ = await server.call("DELETE", f"/api/conversations/{cid}", token=token)
        assert status == 200
    now = datetime.now(UTC)
    for cid, days in [(old, 40), (recent, 5)]:
        await admin.execute(
            "UPDATE conversations SET deleted_at = $2 WHERE id = $1",
            uuid.UUID(cid),
            now - timedelta(days=days),
        )

    async def exists(cid: str) -> bool:
        return bool(
            await admin.fetchval(
                "SELECT count(*) FROM conversations WHERE id = $1", uuid.UUID(cid)
            )
        )

    code, out, err = await run_admin("purge", env=env_for(server_db))
    assert code == 0, err
    match = re.fullmatch(
        r"purged (\d+) conversation\(s\) soft-deleted before \S+Z \(retention 30 days\)\n", out
    )
    assert match and int(match.group(1)) >= 1, out
    assert not await exists(old) and await exists(recent) and await exists(live)
    code, out, err = await run_inline("purge", "--retention-days", "3", env=env_for(server_db))
    assert code == 0 and "(retention 3 days)" in out, err
    assert not await exists(recent) and await exists(live)


# ── verify ───────────────────────────────────────────────────────────────────


async def test_verify_with_the_password_checks_everything(
    server: LiveServer, server_db: TempDatabase, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    email, token = account["user"]["email"], account["token"]
    first = await server.create_conversation(token)
    second = await server.create_conversation(token)
    await send(server, token, first, "one")
    await send(server, token, second, "two")
    await send(server, token, second, "three")
    code, out, err = await run_admin(
        "verify", "--user-email", email, "--password-stdin",
        env=env_for(server_db), stdin=f"{PASSWORD}\n".encode(),
    )  # fmt: skip
    assert code == 0, err
    assert f"conversation {first}: ok, 2 messages" in out
    assert f"conversation {second}: ok, 4 messages" in out
    assert out.splitlines()[-1] == f"user {email}: 2 conversation(s), 2 verified, 0 failed"
    # The check logged in as the user, visibly, and logged out again.
    row = await admin.fetchrow(
        "SELECT revoked_at, wrapped_data_key FROM sessions WHERE user_id = $1"
        " AND user_agent = 'server.admin verify'",
        uuid.UUID(account["user"]["id"]),
    )
    assert row is not None and row["revoked_at"] is not None and row["wrapped_data_key"] == b""

    token_row = await admin.fetchrow(
        "SELECT token FROM messages WHERE conversation_id = $1 AND seq = 3", uuid.UUID(second)
    )
    damaged = bytes(token_row["token"])
    damaged = damaged[:20] + bytes([damaged[20] ^ 0xFF]) + damaged[21:]
    await admin.execute(
        "UPDATE messages SET token = $2 WHERE conversation_id = $1 AND seq = 3",
        uuid.UUID(second),
        damaged,
    )
    code, out, err = await run_inline(
        "verify", "--user-email", email, "--password", PASSWORD, env=env_for(server_db)
    )
    assert code == 1, err
    assert f"conversation {first}: ok" in out
    assert f"conversation {second}: FAILED: chain breaks at message 3" in out
    assert "undecryptable: 3" in out
    assert out.splitlines()[-1].endswith("1 verified, 1 failed")

    code, out, err = await run_inline(
        "verify", "--user-email", email, "--password", "not the password", env=env_for(server_db)
    )
    assert code == 2 and "wrong email or password" in err and out == ""
    code, _, err = await run_inline(
        "verify", "--user-email", "nobody@example.com", "--password", PASSWORD,
        env=env_for(server_db),
    )  # fmt: skip
    assert code == 2 and "wrong email or password" in err


async def test_verify_without_the_password_says_what_it_cannot_check(
    server: LiveServer, server_db: TempDatabase, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    email, token = account["user"]["email"], account["token"]
    cid = await server.create_conversation(token)
    await send(server, token, cid, "hello")
    await send(server, token, cid, "again")
    code, out, err = await run_admin("verify", "--user-email", email, env=env_for(server_db))
    assert code == 0, err  # no terminal and no password given: structure only
    assert f"conversation {cid}: structure intact, 4 messages" in out
    assert "unverifiable without the user's password" in out.splitlines()[-1]

    await admin.execute(
        "DELETE FROM messages WHERE conversation_id = $1 AND seq = 2", uuid.UUID(cid)
    )
    code, out, err = await run_inline("verify", "--user-email", email, env=env_for(server_db))
    assert code == 1, err
    assert f"conversation {cid}: structure BROKEN: 3 stored of 4" in out
    code, _, err = await run_inline(
        "verify", "--user-email", "nobody@example.com", env=env_for(server_db)
    )
    assert code == 2 and "no user" in err


# ── apply-schema ─────────────────────────────────────────────────────────────


async def test_apply_schema_builds_an_empty_database() -> None:
    cluster = await asyncpg.connect(cluster_dsn())
    name = f"scca_test_{secrets.token_hex(6)}"
    await cluster.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        env = {"DATABASE_URL": with_database(cluster_dsn(), name), "SECRET_KEY": TEST_SECRET}
        version = read_schema(SCHEMA_PATH).version
        for run in (run_admin, run_inline):  # and again: applying is idempotent
            code, out, err = await run("apply-schema", env=env)
            assert code == 0, err
            assert out == f"schema at version {version}\n"
        con = await asyncpg.connect(env["DATABASE_URL"])
        try:
            present = await con.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename = ANY($1::text[])",
                list(TABLES),
            )
        finally:
            await con.close()
        assert present == len(TABLES)
    finally:
        await cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await cluster.close()
