"""Upgrades in place: a database that an older version filled is upgraded as a server
does at start-up, and then read by today's service.

Version 2 -> now: titles in clear text, messages, sessions. SQL has no keys, so the
upgrade leaves live titles in clear; each user's are sealed, and the clear column
emptied, at that user's first use that holds their data key (here a list, a login).
Every message stays readable and verifiable, byte for byte the same.

Version 3 -> now: every conversation becomes an `ai` conversation with its owner as its
one member, every message gets an id and (for a user's message) its sender, and each
user gets a key pair at their next login, after which they talk to other people.

The old versions' rows are written here with the SQL those versions ran (today's
account code also writes a profile and a key pair, which older databases do not have),
with the same crypto as today's: the server accepts the sessions after the upgrade.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from live_server import test_settings
from pg import BASELINE_SCHEMA, TempDatabase, connected, temporary_database
from service_harness import chat_harness, local_throttle, privacy_service

import crypto
import storage
from server.service import exceptions as errors
from server.service.accounts import Accounts
from server.service.identity import Identity
from server.service.keyring import session_key_context, user_key_context
from server.service.titles import seal_title
from storage.migrate import SCHEMA_PATH, read_schema

BASELINE_2 = BASELINE_SCHEMA.parent / "002_schema.sql"
BASELINE_3 = BASELINE_SCHEMA.parent / "003_schema.sql"
CURRENT_VERSION = read_schema(SCHEMA_PATH).version
PASSWORD = "correct horse battery staple"
CONTENTS = ("Hello, is anyone there?", "Yes: grüße aus Köln 👋", "A long answer, " * 40)
TITLES = ("Trip to Lisbon", "Tax return 2026 🧾")


def _conversation_context(conversation_id: uuid.UUID) -> bytes:
    return b"conversation-key:" + conversation_id.bytes + (1).to_bytes(4, "big")


async def _old_account(
    pool: asyncpg.Pool, secret: bytes, email: str
) -> tuple[uuid.UUID, str, uuid.UUID]:
    """An account and one session as versions 2 and 3 wrote them (no profile, no key
    pair), with today's crypto: returns the user id, the session's access token and the
    session id. The same key hierarchy as `Accounts.register` and `_open_session`: an
    Argon2id hash, a KEK wrapping a random data key, the data key wrapped again for the
    session under the key the server secret derives for it, and a signed token."""
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    salt = crypto.new_salt()
    password_hash, kek = await asyncio.gather(
        asyncio.to_thread(crypto.PasswordHasher().hash, PASSWORD),
        asyncio.to_thread(crypto.derive_kek, PASSWORD, salt),
    )
    data_key = crypto.new_key()
    token, expires_at = crypto.issue_access_token(
        secret, user_id=user_id, session_id=session_id, ttl=timedelta(hours=1)
    )
    session_key = crypto.session_wrapping_key(secret, session_id)
    async with storage.user_tx(pool, user_id) as con:
        await con.execute(
            "INSERT INTO users (id, email, password_hash, kek_salt, wrapped_data_key)"
            " VALUES ($1, $2, $3, $4, $5)",
            user_id,
            email,
            password_hash,
            salt,
            crypto.wrap_key(kek, data_key, context=user_key_context(user_id)),
        )
        await con.execute(
            "INSERT INTO sessions (id, user_id, wrapped_data_key, expires_at, ip, user_agent)"
            " VALUES ($1, $2, $3, $4, NULL, NULL)",
            session_id,
            user_id,
            crypto.wrap_key(session_key, data_key, context=session_key_context(session_id)),
            expires_at,
        )
    return user_id, token, session_id


async def _old_conversation(
    pool: asyncpg.Pool,
    owner: Identity,
    title: str | None,
    *,
    deleted: bool = False,
    sealed: bool = False,
) -> uuid.UUID:
    """A conversation with CONTENTS, written with the SQL of version 2 (or, `sealed`, of
    version 3: the title sealed under the conversation's key, never in clear)."""
    conversation_id, key = uuid.uuid4(), crypto.new_key()
    keys = crypto.derive_conversation_keys(key, conversation_id, 1)
    link: bytes | None = None
    wrapped = crypto.wrap_key(owner.data_key, key, context=_conversation_context(conversation_id))
    async with storage.user_tx(pool, owner.user_id) as con:
        if sealed:
            await con.execute(
                "INSERT INTO conversations (id, user_id, sealed_title, model, wrapped_key)"
                " VALUES ($1, $2, $3, 'scripted:3:0', $4)",
                conversation_id,
                owner.user_id,
                seal_title(keys, conversation_id, 1, title),
                wrapped,
            )
        else:
            await con.execute(
                "INSERT INTO conversations (id, user_id, title, model, wrapped_key)"
                " VALUES ($1, $2, $3, 'scripted:3:0', $4)",
                conversation_id,
                owner.user_id,
                title,
                wrapped,
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
    are written with the SQL of version 2 (`_old_account`)."""
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
            _, token, _ = await _old_account(pool, secret, email)
            # Today's server accepts the session version 2 opened.
            owner = await accounts.authenticate(token)
            tokens[email] = token
            conversations[email] = {
                await _old_conversation(pool, owner, title): title for title in (*TITLES, None)
            }
            await _old_conversation(pool, owner, "deleted, title kept", deleted=True)
            if expired is None:
                _, _, expired = await _old_account(
                    pool, secret, f"old-{uuid.uuid4().hex[:8]}@example.test"
                )
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

        assert await storage.apply_schema(db.admin_dsn) == CURRENT_VERSION

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


Titled = dict[uuid.UUID, str | None]


async def _fill_version_3(
    db: TempDatabase,
) -> tuple[dict[str, tuple[uuid.UUID, str]], dict[str, Titled], set[uuid.UUID]]:
    """Two users as version 3 wrote them: each with two conversations whose titles are
    sealed, one untitled and one soft-deleted, every one with CONTENTS. Returns each
    email's (user id, token), their live conversations with titles, and the deleted ids."""
    pool = await storage.create_pool(db.app_dsn, min_size=1, max_size=2)
    try:
        secret = test_settings(db.app_dsn).secret_key
        accounts = Accounts(pool, secret, token_ttl=timedelta(hours=1), throttle=local_throttle())
        users: dict[str, tuple[uuid.UUID, str]] = {}
        conversations: dict[str, Titled] = {}
        deleted: set[uuid.UUID] = set()
        for name in ("ada", "grace"):
            email = f"{name}-{uuid.uuid4().hex[:8]}@example.test"
            user_id, token, _ = await _old_account(pool, secret, email)
            owner = await accounts.authenticate(token)
            users[email] = (user_id, token)
            conversations[email] = {
                await _old_conversation(pool, owner, title, sealed=True): title
                for title in (*TITLES, None)
            }
            deleted.add(
                await _old_conversation(pool, owner, "deleted", deleted=True, sealed=True)
            )
    finally:
        await pool.close()
    return users, conversations, deleted


async def _key_pair_columns(
    admin: asyncpg.Connection, user_id: uuid.UUID
) -> tuple[bytes | None, bytes | None]:
    row = await admin.fetchrow(
        "SELECT u.wrapped_private_key, p.public_key FROM users u"
        " JOIN profiles p ON p.user_id = u.id WHERE u.id = $1",
        user_id,
    )
    assert row is not None, f"no profile for {user_id}"
    return row["wrapped_private_key"], row["public_key"]


async def test_a_version_3_database_upgrades_to_members_message_ids_and_key_pairs() -> None:
    async with temporary_database(schema_path=BASELINE_3) as db:
        users, conversations, deleted = await _fill_version_3(db)
        (ada, (ada_id, ada_token)), (_, (grace_id, _)) = users.items()
        async with connected(db.admin_dsn) as admin:
            assert await admin.fetchval("SELECT max(version) FROM schema_migrations") == 3
            messages_before = await admin.fetch(
                "SELECT conversation_id, seq, token, link FROM messages ORDER BY 1, 2"
            )
            owners = {
                r["id"]: r["user_id"]
                for r in await admin.fetch("SELECT id, user_id FROM conversations")
            }
        assert len(owners) == 2 * (len(TITLES) + 2)

        assert CURRENT_VERSION >= 4
        assert await storage.apply_schema(db.admin_dsn) == CURRENT_VERSION

        async with connected(db.admin_dsn) as admin, chat_harness(db) as harness:
            # Every conversation, live or deleted: kind 'ai', its owner its one member.
            kinds = await admin.fetch("SELECT id, kind, wrapped_key FROM conversations")
            assert {r["id"]: r["kind"] for r in kinds} == dict.fromkeys(owners, "ai")
            assert all(r["wrapped_key"] is not None for r in kinds)
            members = await admin.fetch(
                "SELECT conversation_id, user_id, role, sealed_key FROM conversation_members"
            )
            assert sorted((r["conversation_id"], r["user_id"], r["role"]) for r in members) == (
                sorted((cid, owner, "admin") for cid, owner in owners.items())
            )
            assert all(r["sealed_key"] is None for r in members)

            # Every message: an id of its own, the owner as sender of the user's
            # messages and none of the model's; tokens and links untouched.
            rows = await admin.fetch(
                "SELECT conversation_id, seq, role, id, sender_id, user_id FROM messages"
            )
            assert len(rows) == len(owners) * len(CONTENTS)
            assert all(r["id"] is not None for r in rows)
            assert len({r["id"] for r in rows}) == len(rows)
            for r in rows:
                expected = r["user_id"] if r["role"] == int(crypto.Role.USER) else None
                assert r["sender_id"] == expected, (r["conversation_id"], r["seq"])
                assert r["user_id"] == owners[r["conversation_id"]]
            assert (
                await admin.fetch(
                    "SELECT conversation_id, seq, token, link FROM messages ORDER BY 1, 2"
                )
                == messages_before
            )

            # No key pair yet: the server makes it at the next login, when it holds the
            # data key. Every account has an (empty) profile.
            for user_id, _ in users.values():
                assert await _key_pair_columns(admin, user_id) == (None, None)

            # Every message readable and verifiable with the sessions of version 3.
            privacy = privacy_service(harness)

            async def everything_reads(identity: Identity, email: str) -> None:
                for conversation_id, title in conversations[email].items():
                    export = await privacy.export_conversation(identity, conversation_id)
                    assert export.report.valid, (email, conversation_id)
                    assert [m.content for m in export.messages] == list(CONTENTS)
                    assert export.conversation.title == title
                    view = await harness.chat.viewport(
                        identity, conversation_id, from_seq=None, to_seq=None
                    )
                    assert view.integrity_valid, (email, conversation_id)
                    assert [m.content for m in view.messages] == list(CONTENTS)
                    assert view.conversation.title == title

            for email, (_, token) in users.items():
                await everything_reads(await harness.accounts.authenticate(token), email)
            listed, _ = await harness.chat.list_conversations(
                await harness.accounts.authenticate(ada_token), limit=10, offset=0
            )
            assert {r.id: r.title for r in listed} == conversations[ada]
            assert not deleted & {r.id for r in listed}

            # Until Ada signs in again, nobody can start a conversation with her.
            newcomer = await harness.person()
            with pytest.raises(errors.KeysMissing):
                await harness.shared.create_direct(newcomer, ada_id)

            # Her login makes her pair: the private half wrapped under her data key, the
            # public half on her profile. Grace has not signed in: still none.
            login = await harness.accounts.login(ada, PASSWORD, ip=None, user_agent=None)
            ada_identity = await harness.accounts.authenticate(login.token)
            wrapped_private, public = await _key_pair_columns(admin, ada_id)
            assert wrapped_private is not None and public is not None
            private = crypto.unwrap_private_key(
                ada_identity.data_key, wrapped_private, user_id=ada_id
            )
            assert crypto.public_key_of(private) == public
            assert await _key_pair_columns(admin, grace_id) == (None, None)
            await everything_reads(ada_identity, ada)

            # Ada now talks to a new user: a direct conversation both read.
            item, created = await harness.shared.create_direct(ada_identity, newcomer.user_id)
            assert created and item.kind == "direct"
            again, created_again = await harness.shared.create_direct(newcomer, ada_id)
            assert again.id == item.id and not created_again
            direct_id = uuid.UUID(item.id)
            await harness.shared.send(ada_identity, direct_id, "Hello from version 3 ✨")
            await harness.shared.send(newcomer, direct_id, "Welcome to version 4")
            for reader in (ada_identity, newcomer):
                page = await harness.shared.messages(reader, direct_id, limit=10)
                assert [(m.sender_id, m.content) for m in page] == [
                    (str(ada_id), "Hello from version 3 ✨"),
                    (str(newcomer.user_id), "Welcome to version 4"),
                ]
                view = await harness.chat.viewport(reader, direct_id, from_seq=None, to_seq=None)
                assert view.integrity_valid
                assert [m.content for m in view.messages] == [
                    "Hello from version 3 ✨",
                    "Welcome to version 4",
                ]
