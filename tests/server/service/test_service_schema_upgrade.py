"""Version 2 -> 3 in place: a database that version 2 filled (titles in clear text,
messages, sessions) is upgraded as a server does at start-up, and then read by today's
service.

SQL has no keys, so the upgrade leaves live titles in clear; each user's are sealed, and
the clear column emptied, at that user's first use that holds their data key (here a
list, a login). Every message stays readable and verifiable, byte for byte the same.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped,unused-ignore]
from live_server import test_settings
from pg import BASELINE_SCHEMA, TempDatabase, connected, temporary_database
from service_harness import chat_harness, local_throttle, privacy_service

import crypto
import storage
from server.service.accounts import Accounts
from server.service.identity import Identity

BASELINE_2 = BASELINE_SCHEMA.parent / "002_schema.sql"
PASSWORD = "correct horse battery staple"
CONTENTS = ("Hello, is anyone there?", "Yes: grüße aus Köln 👋", "A long answer, " * 40)
TITLES = ("Trip to Lisbon", "Tax return 2026 🧾")


def _conversation_context(conversation_id: uuid.UUID) -> bytes:
    return b"conversation-key:" + conversation_id.bytes + (1).to_bytes(4, "big")


async def _conversation_as_version_2(
    pool: asyncpg.Pool, owner: Identity, title: str | None, *, deleted: bool = False
) -> uuid.UUID:
    """A conversation with CONTENTS, written with the SQL of version 2."""
    conversation_id, key = uuid.uuid4(), crypto.new_key()
    keys = crypto.derive_conversation_keys(key, conversation_id, 1)
    link: bytes | None = None
    async with storage.user_tx(pool, owner.user_id) as con:
        await con.execute(
            "INSERT INTO conversations (id, user_id, title, model, wrapped_key)"
            " VALUES ($1, $2, $3, 'scripted:3:0', $4)",
            conversation_id,
            owner.user_id,
            title,
            crypto.wrap_key(owner.data_key, key, context=_conversation_context(conversation_id)),
        )
        for seq, content in enumerate(CONTENTS, start=1):
            role = crypto.Role.USER if seq % 2 else crypto.Role.ASSISTANT
            token = crypto.pack(keys, conversation_id, seq, role, content)
            link = crypto.next_link(keys.integrity, link, token)
            await con.execute(
                "INSERT INTO messages (conversation_id, user_id, seq, role, token, link)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                conversation_id,
                owner.user_id,
                seq,
                int(role),
                token,
                link,
            )
        await con.execute(
            "UPDATE conversations SET message_count = $2, merkle_root = $3,"
            " deleted_at = CASE WHEN $4 THEN now() END WHERE id = $1",
            conversation_id,
            len(CONTENTS),
            link,
            deleted,
        )
    return conversation_id


async def _fill_version_2(
    db: TempDatabase,
) -> tuple[dict[str, str], dict[str, dict[uuid.UUID, str | None]], uuid.UUID]:
    """Three users, each with two titled conversations, one untitled, one soft-deleted
    (its title kept, as version 1 did), and one expired session. Accounts and sessions
    are the same tables in both versions, so today's account code writes them."""
    pool = await storage.create_pool(db.app_dsn, min_size=1, max_size=2)
    try:
        # The secret the harness's server has: sessions and tokens survive the upgrade.
        secret = test_settings(db.app_dsn).secret_key
        accounts = Accounts(pool, secret, token_ttl=timedelta(hours=1), throttle=local_throttle())
        tokens: dict[str, str] = {}
        conversations: dict[str, dict[uuid.UUID, str | None]] = {}
        expired: uuid.UUID | None = None
        for name in ("ada", "grace", "linus"):
            email = f"{name}-{uuid.uuid4().hex[:8]}@example.test"
            login = await accounts.register(email, PASSWORD, ip=None, user_agent=None)
            owner = await accounts.authenticate(login.token)
            tokens[email] = login.token
            conversations[email] = {
                await _conversation_as_version_2(pool, owner, title): title
                for title in (*TITLES, None)
            }
            await _conversation_as_version_2(pool, owner, "deleted, title kept", deleted=True)
            if expired is None:
                old = await accounts.register(
                    f"old-{uuid.uuid4().hex[:8]}@example.test", PASSWORD, ip=None, user_agent=None
                )
                expired = old.session_id
        assert expired is not None
    finally:
        await pool.close()
    async with connected(db.admin_dsn) as admin:
        await admin.execute(
            "UPDATE sessions SET expires_at = now() - interval '1 minute' WHERE id = $1", expired
        )
    return tokens, conversations, expired


async def _clear_titles(admin: asyncpg.Connection, email: str) -> list[str]:
    rows = await admin.fetch(
        "SELECT c.title FROM conversations c JOIN users u ON u.id = c.user_id"
        " WHERE u.email = $1 AND c.title IS NOT NULL ORDER BY c.title",
        email,
    )
    return [row["title"] for row in rows]


async def test_a_version_2_database_upgrades_in_place_and_titles_are_sealed_at_first_use() -> None:
    async with temporary_database(schema_path=BASELINE_2) as db:
        tokens, conversations, expired = await _fill_version_2(db)
        ada, grace, linus = tokens
        async with connected(db.admin_dsn) as admin:
            messages_before = await admin.fetch(
                "SELECT conversation_id, seq, token, link FROM messages ORDER BY 1, 2"
            )

        assert await storage.apply_schema(db.admin_dsn) == 3

        async with connected(db.admin_dsn) as admin, chat_harness(db) as harness:
            # SQL cannot seal: live titles are still clear; deleted ones and expired
            # sessions' keys it could blank, it has.
            for email in tokens:
                assert await _clear_titles(admin, email) == sorted(TITLES)
            assert (
                await admin.fetchval(
                    "SELECT count(*) FROM conversations WHERE deleted_at IS NOT NULL"
                    " AND title IS NOT NULL"
                )
                == 0
            )
            assert (
                await admin.fetchval("SELECT wrapped_data_key FROM sessions WHERE id = $1", expired)
                == b""
            )
            assert await admin.fetchval(
                "SELECT count(*) FROM sessions WHERE wrapped_data_key <> ''"
            ) == len(tokens)

            # Ada's first use: a list, with the session she had before the upgrade.
            ada_identity = await harness.accounts.authenticate(tokens[ada])
            listed, _ = await harness.chat.list_conversations(ada_identity, limit=10, offset=0)
            assert {r.id: r.title for r in listed} == conversations[ada]
            assert await _clear_titles(admin, ada) == []
            assert await _clear_titles(admin, grace) == sorted(TITLES)
            # Grace's first use: a login.
            await harness.accounts.login(grace, PASSWORD, ip=None, user_agent=None)
            assert await _clear_titles(admin, grace) == []
            assert await _clear_titles(admin, linus) == sorted(TITLES)  # not used yet

            sealed = await admin.fetch(
                "SELECT c.sealed_title FROM conversations c JOIN users u ON u.id = c.user_id"
                " WHERE u.email = ANY($1::text[]) AND c.sealed_title IS NOT NULL",
                [ada, grace],
            )
            assert len(sealed) == 2 * len(TITLES)
            assert not any(t.encode()[:8] in r["sealed_title"] for r in sealed for t in TITLES)

            # Every message of every user readable and verifiable; titles read right.
            privacy = privacy_service(harness)
            for email, token in tokens.items():
                identity = await harness.accounts.authenticate(token)
                for conversation_id, title in conversations[email].items():
                    export = await privacy.export_conversation(identity, conversation_id)
                    assert export.report.valid, (email, conversation_id)
                    assert [m.content for m in export.messages] == list(CONTENTS)
                    assert export.conversation.title == title
                    view = await harness.chat.viewport(
                        identity, conversation_id, from_seq=None, to_seq=None
                    )
                    assert view.integrity_valid and view.conversation.title == title
                assert await _clear_titles(admin, email) == []
            assert (
                await admin.fetchval("SELECT count(*) FROM conversations WHERE title IS NOT NULL")
                == 0
            )
            messages_after = await admin.fetch(
                "SELECT conversation_id, seq, token, link FROM messages ORDER BY 1, 2"
            )
            assert messages_after == messages_before
