"""What a database dump shows of content: nothing. A group's name and description, an
`ai` conversation's title and every message (a group's, a direct one's, an `ai` one's
and its reply) carry a canary string; `pg_dump` of the whole database holds it neither
as text nor as the hex in which it prints bytea columns, yet holds every message row.
"""

from __future__ import annotations

import asyncio
import glob
import re
import secrets
import shutil
import uuid
from pathlib import Path

from pg import connected, temporary_database
from service_harness import ChatHarness, chat_harness

from server.service.identity import Identity

PASSWORD = "correct horse battery"


def _pg_dump_for(server_version_num: int) -> str:
    """The pg_dump of the server's major version (an older one refuses a newer server)."""
    major = server_version_num // 10000
    exact = Path(f"/usr/lib/postgresql/{major}/bin/pg_dump")
    if exact.is_file():
        return str(exact)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump")) or [
        p for p in [shutil.which("pg_dump")] if p
    ]
    assert found, "pg_dump not found: install postgresql-client"
    return found[-1]


async def _pg_dump(dsn: str) -> str:
    async with connected(dsn) as admin:
        version = int(await admin.fetchval("SHOW server_version_num"))
    process = await asyncio.create_subprocess_exec(
        _pg_dump_for(version),
        f"--dbname={dsn}",
        "--no-owner",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode(errors="replace")
    return out.decode("utf-8")


def _copied_rows(dump: str, table: str) -> list[str]:
    """The data lines of `COPY public.<table> ... FROM stdin;` in a plain dump."""
    match = re.search(
        rf"^COPY public\.{table} \([^)]*\) FROM stdin;\n(.*?)^\\\.$", dump, re.M | re.S
    )
    assert match is not None, f"no COPY block for {table}"
    return [line for line in match.group(1).splitlines() if line]


async def _person(harness: ChatHarness) -> Identity:
    login = await harness.accounts.register(
        f"dump-{uuid.uuid4().hex[:12]}@example.com",
        PASSWORD,
        ip="127.0.0.1",
        user_agent="tests",
        name="Dump Tester",
    )
    return await harness.accounts.authenticate(login.token)


async def test_a_dump_holds_every_message_row_and_no_content() -> None:
    canary = f"Canary-{secrets.token_hex(8)}-ünïcødé"
    async with temporary_database() as db, chat_harness(db, SCRIPTED_DELAY_MS="0") as harness:
        chief, member = await _person(harness), await _person(harness)
        group = await harness.shared.create_group(
            chief,
            name=f"Group {canary}",
            description=f"About {canary}",
            category="NEWS",
            member_ids=[member.user_id],
        )
        group_message, _, _ = await harness.shared.send(
            member, uuid.UUID(group.id), f"In the group: {canary}"
        )
        direct, _ = await harness.shared.create_direct(chief, member.user_id)
        direct_message, _, _ = await harness.shared.send(
            chief, uuid.UUID(direct.id), f"Just us: {canary}"
        )
        ai = await harness.chat.create_conversation(chief, title=f"Title {canary}", model=None)
        start = await harness.chat.begin_send(chief, ai.id, f"Dear model: {canary}")
        assert start.generation is not None
        await harness.settled()

        async with connected(db.admin_dsn) as admin:
            stored = await admin.fetch("SELECT id, conversation_id FROM messages")
            sealed_name = await admin.fetchval(
                "SELECT sealed_title FROM conversations WHERE id = $1", uuid.UUID(group.id)
            )
        assert len(stored) == 4  # group, direct, the ai conversation's send and its reply
        dump = await _pg_dump(db.admin_dsn)

    # The dump is of this database, data and all: every message row, and bytea printed
    # as hex (the group's sealed name is there, so a clear one would be too).
    assert dump.startswith("--\n-- PostgreSQL database dump")
    rows = _copied_rows(dump, "messages")
    assert len(rows) == len(stored)
    for message_id in (group_message.id, direct_message.id, *(str(r["id"]) for r in stored)):
        assert message_id in dump
    assert isinstance(sealed_name, bytes) and sealed_name.hex() in dump
    assert len(_copied_rows(dump, "conversations")) == 3
    assert len(_copied_rows(dump, "conversation_members")) == 5

    # ... and not one copy of the canary, in clear or as the bytes of any column.
    for needle in (canary, canary.split("-")[1]):
        assert needle not in dump
        assert needle.lower() not in dump.lower()
        assert needle.encode().hex() not in dump.lower()
