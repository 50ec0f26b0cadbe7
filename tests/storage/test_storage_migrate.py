"""Applying and migrating the schema; the roles it creates; DSN rewriting."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from pg import BASELINE_SCHEMA, TempDatabase, admin_dsn, temporary_database

import crypto
import storage
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


PASSWORD = "correct horse battery staple"
CONTENTS = (
    "Hello, is anyone there?",
    "Yes: grüße aus Köln, 東京からこんにちは 👋",
    "A long and repetitive answer, " * 40,
    "thanks",
)


def _user_key_context(user_id: uuid.UUID) -> bytes:
    return b"user-data-key:" + user_id.bytes


def _conversation_key_context(conversation_id: uuid.UUID, key_version: int) -> bytes:
    return b"conversation-key:" + conversation_id.bytes + key_version.to_bytes(4, "big")


async def _append(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    keys: crypto.ConversationKeys,
    content: str,
) -> None:
    """Append the way the chat service does: lock, pack, chain, insert, move the head."""
    async with storage.user_tx(pool, user_id) as con:
        head = await storage.get_conversation(con, conversation_id, for_update=True)
        assert head is not None
        seq = head.message_count + 1
        role = crypto.Role.USER if seq % 2 else crypto.Role.ASSISTANT
        token = crypto.pack(keys, conversation_id, seq, role, content)
        link = crypto.next_link(keys.integrity, head.merkle_root, token)
        await storage.insert_message(
            con,
            conversation_id=conversation_id,
            user_id=user_id,
            seq=seq,
            role=role,
            token=token,
            link=link,
            client_msg_id=f"client-{seq}",
        )
        await storage.set_head(con, conversation_id, message_count=seq, merkle_root=link)


async def _append_as_version_1(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    keys: crypto.ConversationKeys,
    content: str,
) -> None:
    """`_append` in the SQL version 1 ran (today's storage code reads columns it lacks)."""
    async with storage.user_tx(pool, user_id) as con:
        head = await con.fetchrow(
            "SELECT message_count, merkle_root FROM conversations WHERE id = $1 FOR UPDATE",
            conversation_id,
        )
        seq = head["message_count"] + 1
        role = crypto.Role.USER if seq % 2 else crypto.Role.ASSISTANT
        token = crypto.pack(keys, conversation_id, seq, role, content)
        link = crypto.next_link(keys.integrity, head["merkle_root"], token)
        await con.execute(
            "INSERT INTO messages (conversation_id, user_id, seq, role, token, link, client_msg_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            conversation_id,
            user_id,
            seq,
            int(role),
            token,
            link,
            f"client-{seq}",
        )
        await con.execute(
            "UPDATE conversations SET message_count = $2, merkle_root = $3, updated_at = now()"
            " WHERE id = $1",
            conversation_id,
            seq,
            link,
        )


async def _fill_version_1(pool: asyncpg.Pool) -> dict[str, list[uuid.UUID]]:
    """Two accounts with two conversations each, one of them soft-deleted, written with the
    SQL of version 1 (titles in clear text)."""
    accounts: dict[str, list[uuid.UUID]] = {}
    for email in ("ada@example.test", "grace@example.test"):
        user_id, salt, data_key = uuid.uuid4(), crypto.new_salt(), crypto.new_key()
        wrapped = crypto.wrap_key(
            crypto.derive_kek(PASSWORD, salt), data_key, context=_user_key_context(user_id)
        )
        async with storage.user_tx(pool, user_id) as con:
            await storage.insert_user(
                con,
                user_id=user_id,
                email=email,
                password_hash="$argon2id$v=19$unused",
                kek_salt=salt,
                wrapped_data_key=wrapped,
            )
        accounts[email] = []
        for _ in range(2):
            conversation_id, key = uuid.uuid4(), crypto.new_key()
            async with storage.user_tx(pool, user_id) as con:
                await con.execute(
                    "INSERT INTO conversations (id, user_id, title, model, wrapped_key)"
                    " VALUES ($1, $2, 'v1', 'gpt-4o', $3)",
                    conversation_id,
                    user_id,
                    crypto.wrap_key(
                        data_key, key, context=_conversation_key_context(conversation_id, 1)
                    ),
                )
            keys = crypto.derive_conversation_keys(key, conversation_id, 1)
            for content in CONTENTS:
                await _append_as_version_1(pool, user_id, conversation_id, keys, content)
            accounts[email].append(conversation_id)
        async with storage.user_tx(pool, user_id) as con:
            await con.execute(
                "UPDATE conversations SET deleted_at = now(), title = NULL WHERE id = $1",
                accounts[email][1],
            )
    return accounts


async def _open(
    pool: asyncpg.Pool, email: str, conversation_id: uuid.UUID
) -> tuple[uuid.UUID, crypto.ConversationKeys, list[str]]:
    """Log in as ``email``, open the conversation, check its chain, return its texts."""
    async with storage.anonymous_tx(pool) as con:
        user = await storage.find_user_for_login(con, email)
    assert user is not None
    data_key = crypto.unwrap_key(
        crypto.derive_kek(PASSWORD, user.kek_salt),
        user.wrapped_data_key,
        context=_user_key_context(user.id),
    )
    async with storage.user_tx(pool, user.id) as con:
        head = await storage.get_conversation(con, conversation_id)
        assert head is not None
        messages = await storage.list_messages(con, conversation_id)
    key = crypto.unwrap_key(
        data_key,
        head.wrapped_key,
        context=_conversation_key_context(conversation_id, head.key_version),
    )
    keys = crypto.derive_conversation_keys(key, conversation_id, head.key_version)
    tokens, links = [m.token for m in messages], [m.link for m in messages]
    assert crypto.verify_chain(keys.integrity, tokens, links) is None
    assert head.message_count == len(messages) and head.merkle_root == links[-1]
    texts = [
        crypto.unpack(keys, conversation_id, m.token, expected_sequence=m.seq).content
        for m in messages
    ]
    return user.id, keys, texts


async def test_a_version_1_database_with_messages_upgrades_in_place() -> None:
    async with temporary_database(schema_path=BASELINE_SCHEMA) as db:
        assert await versions(db.admin_dsn) == [1]
        pool = await storage.create_pool(db.app_dsn, min_size=1, max_size=2)
        try:
            accounts = await _fill_version_1(pool)
        finally:
            await pool.close()  # the old servers stop; the new one upgrades at start

        assert await apply_schema(db.admin_dsn) == CURRENT
        assert await versions(db.admin_dsn) == list(range(1, CURRENT + 1))

        pool = await storage.create_pool(db.app_dsn, min_size=1, max_size=2)
        try:
            for email, (live, deleted) in accounts.items():
                user_id, keys, texts = await _open(pool, email, live)
                assert texts == list(CONTENTS)
                async with storage.user_tx(pool, user_id) as con:
                    head = await storage.get_conversation(con, live)
                # SQL cannot seal a title: the service does, at the owner's next use.
                assert head is not None and (head.title, head.sealed_title) == ("v1", None)
                # Writing goes on where version 1 stopped, on the same chain.
                await _append(pool, user_id, live, keys, "written after the upgrade")
                assert (await _open(pool, email, live))[2] == [
                    *CONTENTS,
                    "written after the upgrade",
                ]
                async with storage.user_tx(pool, user_id) as con:
                    assert await storage.get_conversation(con, deleted) is None
                    assert len(await storage.list_messages(con, deleted)) == len(CONTENTS)
            # Version 2's purge reaches the conversations version 1 soft-deleted, and only those.
            async with storage.anonymous_tx(pool) as con:
                cutoff = datetime.now(UTC) + timedelta(minutes=1)
                assert await storage.purge_deleted_conversations(con, cutoff, 10) == 2
            for email, (live, deleted) in accounts.items():
                user_id = (await _open(pool, email, live))[0]
                async with storage.user_tx(pool, user_id) as con:
                    assert await storage.list_messages(con, deleted) == []
                    assert len(await storage.list_messages(con, live)) == len(CONTENTS) + 1
        finally:
            await pool.close()


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
    """Naming the connecting administrator as the app role is refused. The administrator
    here is a superuser made for this test: were the refusal ever broken (a mutation
    test does exactly that), the role stripped of its powers is a throwaway one, never
    the cluster's own administrator."""
    role = f"scca_test_admin_{uuid.uuid4().hex[:8]}"
    cluster = await asyncpg.connect(admin_dsn())
    try:
        await cluster.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
        with pytest.raises(MigrationError):
            await apply_schema(with_user(database.admin_dsn, role, None), app_role=role)
        assert await cluster.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = $1", role)
    finally:
        await cluster.execute(f'DROP ROLE IF EXISTS "{role}"')
        await cluster.close()


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
