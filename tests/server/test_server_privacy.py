"""Privacy operations end to end: export, verify, key rotation, hard delete, erasure, purge.

A server of its own with the privacy routes added ahead of the conversation routes (as
`create_app` is to wire them), on a database of its own that has migration 002.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClients
from pg import BASELINE_SCHEMA, TempDatabase, temporary_database
from polling import eventually
from service_harness import local_throttle

import crypto
import server.app as server_app
import storage
import storage.migrate
from server.appkeys import ACCOUNTS, GENERATIONS, POOL, PRIVACY
from server.service.generations import RunningGeneration
from server.service.identity import Identity
from server.service.keyring import open_conversation_keys
from server.service.privacy import PrivacyService, purge_loop

PURGE_FUNCTION = "purge_deleted_conversations(timestamptz, integer)"
PASSWORD = "correct horse battery"


@pytest_asyncio.fixture(scope="module")
async def server_db() -> AsyncIterator[TempDatabase]:
    """A database of this module's own: purges and account erasure sweep it."""
    async with temporary_database() as db:
        yield db


@asynccontextmanager
async def privacy_server(db: TempDatabase, **env: str) -> AsyncIterator[LiveServer]:
    """A live server; rotation batches of 64 so a few hundred messages take several."""
    async with live_server(test_settings(db.app_dsn, PRIVACY_BATCH_SIZE="64", **env)) as live:
        yield live


@pytest_asyncio.fixture
async def server(server_db: TempDatabase) -> AsyncIterator[LiveServer]:
    async with privacy_server(server_db) as live:
        yield live


# ── helpers ──────────────────────────────────────────────────────────────────


async def identity_of(server: LiveServer, token: str) -> Identity:
    return await server.app[ACCOUNTS].authenticate(token)


async def seed(server: LiveServer, identity: Identity, conversation_id: str, count: int) -> None:
    """Append `count` messages straight through storage and crypto (fast, real tokens)."""
    cid = uuid.UUID(conversation_id)
    async with storage.user_tx(server.app[POOL], identity.user_id) as con:
        record = await storage.get_conversation(con, cid, for_update=True)
        assert record is not None
        keys = open_conversation_keys(identity, cid, record.wrapped_key, record.key_version)
        link = record.merkle_root
        first = record.message_count + 1
        for seq in range(first, first + count):
            role = crypto.Role.USER if seq % 2 else crypto.Role.ASSISTANT
            token = crypto.pack(keys, cid, seq, role, f"message {seq}: {'é' * (seq % 7)} text")
            link = crypto.next_link(keys.integrity, link, token)
            await storage.insert_message(
                con,
                conversation_id=cid,
                user_id=identity.user_id,
                seq=seq,
                role=int(role),
                token=token,
                link=link,
            )
        await storage.set_head(con, cid, message_count=first + count - 1, merkle_root=link)


async def send(server: LiveServer, token: str, conversation_id: str, content: str) -> Any:
    status, body = await server.call(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        token=token,
        json={"content": content, "stream": False},
    )
    assert status == 200, body
    return body


async def stored(admin: asyncpg.Connection, conversation_id: str) -> list[asyncpg.Record]:
    return list(
        await admin.fetch(
            "SELECT seq, token, link FROM messages WHERE conversation_id = $1 ORDER BY seq",
            uuid.UUID(conversation_id),
        )
    )


async def head(admin: asyncpg.Connection, conversation_id: str) -> asyncpg.Record:
    row = await admin.fetchrow(
        "SELECT wrapped_key, key_version, merkle_root, message_count FROM conversations"
        " WHERE id = $1",
        uuid.UUID(conversation_id),
    )
    assert row is not None
    return row


async def verify(server: LiveServer, token: str, conversation_id: str) -> dict[str, Any]:
    status, body = await server.call(
        "POST", f"/api/conversations/{conversation_id}/verify", token=token
    )
    assert status == 200, body
    return dict(body)


@asynccontextmanager
async def deleted_key_probe(admin: asyncpg.Connection, table: str, column: str) -> Any:
    """Record what each deleted row of `table` held in `column` (a trigger run as owner)."""
    name = f"probe_{table}"
    await admin.execute(
        f"CREATE TABLE {name} (value bytea);"
        f"CREATE FUNCTION {name}_capture() RETURNS trigger LANGUAGE plpgsql"
        " SECURITY DEFINER SET search_path = public AS"
        f" $$ BEGIN INSERT INTO {name} VALUES (OLD.{column}); RETURN OLD; END $$;"
        f"CREATE TRIGGER {name} BEFORE DELETE ON {table}"
        f" FOR EACH ROW EXECUTE FUNCTION {name}_capture();"
    )

    async def captured() -> list[bytes]:
        return [bytes(r["value"]) for r in await admin.fetch(f"SELECT value FROM {name}")]

    try:
        yield captured
    finally:
        await admin.execute(
            f"DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}_capture(); DROP TABLE {name};"
        )


# ── export ───────────────────────────────────────────────────────────────────


async def test_export_equals_the_viewport_message_for_message(server: LiveServer) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token, title="Plans")
    await send(server, token, cid, "first question")
    await seed(server, await identity_of(server, token), cid, 60)
    await send(server, token, cid, "last question")

    status, view = await server.call("GET", f"/api/conversations/{cid}?from=1&to=64", token=token)
    assert status == 200 and len(view["messages"]) == 64
    status, exported = await server.call("GET", f"/api/conversations/{cid}/export", token=token)
    assert status == 200, exported
    conversation = exported["conversation"]
    assert exported["formatVersion"] == 1 and exported["exportedAt"].endswith("Z")
    assert conversation["messages"] == view["messages"]
    assert (
        conversation["integrity"]
        == view["integrity"]
        == {
            "valid": True,
            "lastValidSequence": 64,
        }
    )
    for field in ("id", "title", "model", "messageCount", "merkleRoot"):
        assert conversation[field] == view[field], field
    assert conversation["keyVersion"] == 1
    assert conversation["messages"][0]["content"] == "first question"
    assert conversation["messages"][62]["content"] == "last question"


async def test_markdown_export_is_a_readable_document(server: LiveServer) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token, title="Recipe ideas")
    reply = await send(server, token, cid, "What goes with **basil**?")
    async with server.http.get(
        f"{server.base_url}/api/conversations/{cid}/export?format=markdown",
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
        assert f'filename="conversation-{cid}.md"' in response.headers["Content-Disposition"]
        text = await response.text()
    assert text.startswith("# Recipe ideas\n")
    assert "- Integrity: verified" in text
    assert "## 1. User · " in text and "## 2. Assistant · " in text
    assert "What goes with **basil**?" in text and reply["response"] in text
    status, body = await server.call(
        "GET", f"/api/conversations/{cid}/export?format=xml", token=token
    )
    assert status == 400 and body["code"] == "INVALID_PAYLOAD"


async def test_account_export_holds_every_live_conversation(server: LiveServer) -> None:
    account = await server.register()
    token = account["token"]
    first = await server.create_conversation(token, title="one")
    second = await server.create_conversation(token, title="two")
    gone = await server.create_conversation(token, title="deleted")
    await send(server, token, first, "hello one")
    await send(server, token, second, "hello two")
    status, _ = await server.call("DELETE", f"/api/conversations/{gone}", token=token)
    assert status == 200
    status, body = await server.call("GET", "/api/account/export", token=token)
    assert status == 200, body
    assert body["user"]["id"] == account["user"]["id"]
    assert body["user"]["email"] == account["user"]["email"]
    by_id = {c["id"]: c for c in body["conversations"]}
    assert set(by_id) == {first, second}
    assert by_id[first]["messages"][0]["content"] == "hello one"
    assert by_id[second]["messages"][0]["content"] == "hello two"
    assert all(c["integrity"]["valid"] for c in body["conversations"])


async def test_another_users_conversation_is_not_found(server: LiveServer) -> None:
    owner = await server.register()
    intruder = await server.register()
    cid = await server.create_conversation(owner["token"])
    await send(server, owner["token"], cid, "mine")
    for method, path in [
        ("GET", f"/api/conversations/{cid}/export"),
        ("GET", f"/api/conversations/{cid}/export?format=markdown"),
        ("POST", f"/api/conversations/{cid}/verify"),
        ("POST", f"/api/conversations/{cid}/rotate-key"),
        ("DELETE", f"/api/conversations/{cid}?hard=true"),
        ("GET", f"/api/conversations/{uuid.uuid4()}/export"),
        ("POST", "/api/conversations/not-a-uuid/verify"),
    ]:
        status, body = await server.call(method, path, token=intruder["token"])
        assert (status, body["code"]) == (404, "NOT_FOUND"), (method, path, body)
        status, _ = await server.call(method, path)
        assert status == 401, (method, path)
    assert (await verify(server, owner["token"], cid))["valid"] is True


# ── verify ───────────────────────────────────────────────────────────────────


async def test_verify_finds_a_flipped_token_byte_at_its_sequence(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token)
    await seed(server, await identity_of(server, token), cid, 10)
    assert await verify(server, token, cid) == {
        "valid": True,
        "messageCount": 10,
        "firstBadSequence": None,
        "rootMatches": True,
        "undecryptable": [],
    }
    original = (await stored(admin, cid))[3]["token"]
    flipped = original[:-1] + bytes([original[-1] ^ 0x01])
    await admin.execute(
        "UPDATE messages SET token = $3 WHERE conversation_id = $1 AND seq = $2",
        uuid.UUID(cid),
        4,
        flipped,
    )
    assert await verify(server, token, cid) == {
        "valid": False,
        "messageCount": 10,
        "firstBadSequence": 4,
        "rootMatches": False,
        "undecryptable": [4],
    }
    status, exported = await server.call("GET", f"/api/conversations/{cid}/export", token=token)
    assert status == 200
    assert exported["conversation"]["integrity"] == {"valid": False, "lastValidSequence": 3}
    assert exported["conversation"]["messages"][3] == {
        "sequence": 4,
        "isDecrypted": False,
        "error": "Message could not be decrypted",
    }


async def test_verify_finds_a_flipped_link_and_a_missing_message(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token)
    await seed(server, await identity_of(server, token), cid, 10)
    link = (await stored(admin, cid))[6]["link"]
    await admin.execute(
        "UPDATE messages SET link = $3 WHERE conversation_id = $1 AND seq = $2",
        uuid.UUID(cid),
        7,
        bytes([link[0] ^ 0x80]) + link[1:],
    )
    report = await verify(server, token, cid)
    assert report == {
        "valid": False,
        "messageCount": 10,
        "firstBadSequence": 7,
        # the chain recomputed from the (intact) tokens still ends at the stored head
        "rootMatches": True,
        "undecryptable": [],
    }
    await admin.execute(
        "UPDATE messages SET link = $3 WHERE conversation_id = $1 AND seq = $2",
        uuid.UUID(cid),
        7,
        link,
    )
    await admin.execute(
        "DELETE FROM messages WHERE conversation_id = $1 AND seq = 5", uuid.UUID(cid)
    )
    report = await verify(server, token, cid)
    assert report["firstBadSequence"] == 5 and report["rootMatches"] is False
    assert report["valid"] is False and report["undecryptable"] == []


# ── key rotation ─────────────────────────────────────────────────────────────


async def test_rotation_reencrypts_everything_and_keeps_it_readable(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token)
    await send(server, token, cid, "before the rotation")
    await seed(server, await identity_of(server, token), cid, 150)
    status, before = await server.call("GET", f"/api/conversations/{cid}/export", token=token)
    assert status == 200
    rows_before, head_before = await stored(admin, cid), await head(admin, cid)

    status, body = await server.call("POST", f"/api/conversations/{cid}/rotate-key", token=token)
    assert status == 200, body
    assert body == {"keyVersion": 2, "reencrypted": 152}

    rows_after, head_after = await stored(admin, cid), await head(admin, cid)
    assert head_after["key_version"] == 2 and head_after["message_count"] == 152
    assert head_after["wrapped_key"] != head_before["wrapped_key"]
    assert [r["seq"] for r in rows_after] == [r["seq"] for r in rows_before]
    assert all(a["token"] != b["token"] for a, b in zip(rows_after, rows_before, strict=True))
    assert all(a["link"] != b["link"] for a, b in zip(rows_after, rows_before, strict=True))
    assert head_after["merkle_root"] == rows_after[-1]["link"]
    assert (await verify(server, token, cid))["valid"] is True
    status, after = await server.call("GET", f"/api/conversations/{cid}/export", token=token)
    assert status == 200
    assert after["conversation"]["messages"] == before["conversation"]["messages"]

    await send(server, token, cid, "after the rotation")
    status, body = await server.call("POST", f"/api/conversations/{cid}/rotate-key", token=token)
    assert (status, body) == (200, {"keyVersion": 3, "reencrypted": 154})
    status, view = await server.call(
        "GET", f"/api/conversations/{cid}?from=153&to=154", token=token
    )
    assert status == 200 and view["integrity"]["valid"] is True
    assert view["messages"][0]["content"] == "after the rotation"


async def test_rotation_refuses_a_damaged_chain_and_changes_nothing(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token)
    await seed(server, await identity_of(server, token), cid, 80)
    link = (await stored(admin, cid))[69]["link"]
    await admin.execute(
        "UPDATE messages SET link = $2 WHERE conversation_id = $1 AND seq = 70",
        uuid.UUID(cid),
        bytes(32),
    )
    rows_before, head_before = await stored(admin, cid), await head(admin, cid)
    status, body = await server.call("POST", f"/api/conversations/{cid}/rotate-key", token=token)
    assert status == 409 and body["code"] == "CONFLICT"
    assert "message 70" in body["error"]
    assert await stored(admin, cid) == rows_before and await head(admin, cid) == head_before
    assert link != bytes(32)


async def test_rotation_is_busy_while_a_reply_is_generated(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token, model="scripted:40:20")
    sending = asyncio.create_task(send(server, token, cid, "take your time"))

    async def generating() -> bool:
        return bool(
            await admin.fetchval(
                "SELECT count(*) FROM generation_locks WHERE conversation_id = $1",
                uuid.UUID(cid),
            )
        )

    await eventually(generating, what="a generation lock of the running reply")
    status, body = await server.call("POST", f"/api/conversations/{cid}/rotate-key", token=token)
    assert (status, body["code"]) == (409, "BUSY")
    reply = await sending
    status, body = await server.call("POST", f"/api/conversations/{cid}/rotate-key", token=token)
    assert (status, body) == (200, {"keyVersion": 2, "reencrypted": 2})
    status, view = await server.call("GET", f"/api/conversations/{cid}", token=token)
    assert view["messages"][1]["content"] == reply["response"]


async def test_a_send_during_a_rotation_waits_and_is_not_lost(
    server: LiveServer, admin: asyncpg.Connection, server_db: TempDatabase
) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token, model="scripted:5:1")
    identity = await identity_of(server, token)
    await seed(server, identity, cid, 300)
    # One message per batch: the rotation takes long enough to be caught in the act.
    slow = PrivacyService(
        server.app[POOL],
        server.app[server_app.TRACKER],
        throttle=local_throttle(),
        batch_size=1,
    )
    rotation = asyncio.create_task(slow.rotate_key(identity, uuid.UUID(cid)))

    async def backends(condition: str) -> bool:
        return bool(
            await admin.fetchval(
                f"SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND {condition}",
                server_db.name,
            )
        )

    # Polled every 5 ms: the rotation is caught in the act, not after it.
    await eventually(
        lambda: backends("query LIKE 'UPDATE messages AS m SET token%'"),
        what="the rotation re-encrypting messages",
        interval=0.005,
    )
    sending = asyncio.create_task(send(server, token, cid, "sent mid-rotation"))
    await eventually(
        lambda: backends("wait_event_type = 'Lock'"),
        what="the send waiting on the rotation's lock",
        interval=0.005,
    )
    assert not sending.done()
    result = await rotation
    reply = await sending
    assert (result.key_version, result.reencrypted) == (2, 300)
    assert reply["sequence"] == 302 and reply["messageCount"] == 302
    report = await verify(server, token, cid)
    assert report["valid"] is True and report["messageCount"] == 302
    status, view = await server.call(
        "GET", f"/api/conversations/{cid}?from=299&to=302", token=token
    )
    assert status == 200
    assert [m["content"] for m in view["messages"][2:]] == ["sent mid-rotation", reply["response"]]


async def test_sends_and_rotations_interleaved_lose_nothing(server_db: TempDatabase) -> None:
    # Forty rotations in a burst: far past the default budget of RATE_KEY_ROTATIONS_PER_MIN.
    settings = test_settings(server_db.app_dsn, RATE_KEY_ROTATIONS_PER_MIN="1000")
    async with live_server(settings) as server:
        await _interleave_sends_and_rotations(server)


async def _interleave_sends_and_rotations(server: LiveServer) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token, model="scripted:5:1")
    await seed(server, await identity_of(server, token), cid, 300)
    rotated: list[int] = []

    async def sender() -> list[str]:
        replies = []
        for n in range(8):
            replies.append((await send(server, token, cid, f"interleaved {n}"))["response"])
        return replies

    async def rotator() -> None:
        for _ in range(40):
            status, body = await server.call(
                "POST", f"/api/conversations/{cid}/rotate-key", token=token
            )
            assert status in (200, 409), body
            if status == 200:
                rotated.append(body["keyVersion"])
            else:
                assert body["code"] == "BUSY"
            await asyncio.sleep(0.002)

    replies, _ = await asyncio.gather(sender(), rotator())
    assert rotated and rotated == list(range(2, 2 + len(rotated)))
    report = await verify(server, token, cid)
    assert report == {
        "valid": True,
        "messageCount": 316,
        "firstBadSequence": None,
        "rootMatches": True,
        "undecryptable": [],
    }
    status, view = await server.call(
        "GET", f"/api/conversations/{cid}?from=301&to=316", token=token
    )
    assert status == 200
    contents = [m["content"] for m in view["messages"]]
    assert contents[0::2] == [f"interleaved {n}" for n in range(8)]
    assert contents[1::2] == replies


# ── hard delete ──────────────────────────────────────────────────────────────


async def test_hard_delete_leaves_nothing_that_can_read_old_tokens(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    token = account["token"]
    cid = await server.create_conversation(token, title="to be erased")
    keep = await server.create_conversation(token, title="kept")
    await send(server, token, cid, "erase me")
    await seed(server, await identity_of(server, token), cid, 20)
    await send(server, token, keep, "keep me")
    copied = [bytes(r["token"]) for r in await stored(admin, cid)]
    old_wrapped = bytes((await head(admin, cid))["wrapped_key"])

    async with deleted_key_probe(admin, "conversations", "wrapped_key") as captured:
        status, body = await server.call(
            "DELETE", f"/api/conversations/{cid}?hard=true", token=token
        )
        assert status == 200, body
        assert body["success"] is True and body["hard"] is True and body["deletedAt"]
        assert await captured() == [bytes(len(old_wrapped))]

    assert (
        await admin.fetchval("SELECT count(*) FROM conversations WHERE id = $1", uuid.UUID(cid))
        == 0
    )
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1", uuid.UUID(cid)
        )
        == 0
    )
    for table, column in [
        ("conversations", "wrapped_key"),
        ("users", "wrapped_data_key"),
        ("sessions", "wrapped_data_key"),
    ]:
        assert (
            await admin.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", old_wrapped)
            == 0
        ), table
    [entry] = await admin.fetch(
        "SELECT action, details FROM audit_log WHERE conversation_id = $1 AND action = $2",
        uuid.UUID(cid),
        "hard_delete",
    )
    assert "erase me" not in str(entry["details"])
    status, _ = await server.call("GET", f"/api/conversations/{cid}", token=token)
    assert status == 404

    # A fresh login gets the user's data key back; nothing left opens the copied tokens.
    status, login = await server.call(
        "POST",
        "/api/auth/login",
        json={"email": account["user"]["email"], "password": PASSWORD},
    )
    assert status == 200
    identity = await identity_of(server, login["token"])
    deleted = uuid.UUID(cid)
    candidates: list[crypto.ConversationKeys] = [
        crypto.derive_conversation_keys(identity.data_key, deleted, 1),
        crypto.derive_conversation_keys(server.settings.secret_key, deleted, 1),
    ]
    for row in await admin.fetch("SELECT id, wrapped_key, key_version FROM conversations"):
        for version in (row["key_version"], 1, 2):
            with contextlib.suppress(crypto.KeyUnwrapError):
                open_conversation_keys(identity, deleted, row["wrapped_key"], version)
                raise AssertionError("a remaining wrapped key opens for the deleted conversation")
        with contextlib.suppress(crypto.KeyUnwrapError):
            candidates.append(
                open_conversation_keys(identity, row["id"], row["wrapped_key"], row["key_version"])
            )
    assert len(candidates) >= 3  # the kept conversation's key did unwrap
    for keys in candidates:
        for blob in copied:
            with pytest.raises(crypto.InvalidToken):
                crypto.unpack(keys, deleted, blob)
    status, view = await server.call("GET", f"/api/conversations/{keep}", token=login["token"])
    assert status == 200 and view["messages"][0]["content"] == "keep me"


async def test_hard_delete_of_soft_deleted_and_the_soft_path_still_works(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    token = account["token"]
    soft = await server.create_conversation(token)
    status, body = await server.call("DELETE", f"/api/conversations/{soft}", token=token)
    assert status == 200 and set(body) == {"success", "deletedAt"}
    assert (
        await admin.fetchval("SELECT count(*) FROM conversations WHERE id = $1", uuid.UUID(soft))
        == 1
    )
    status, body = await server.call("DELETE", f"/api/conversations/{soft}?hard=true", token=token)
    assert status == 200 and body["hard"] is True
    assert (
        await admin.fetchval("SELECT count(*) FROM conversations WHERE id = $1", uuid.UUID(soft))
        == 0
    )
    details = await admin.fetchval(
        "SELECT details FROM audit_log WHERE conversation_id = $1 AND action = 'hard_delete'",
        uuid.UUID(soft),
    )
    assert '"wasSoftDeleted": true' in details
    status, body = await server.call("DELETE", f"/api/conversations/{soft}?hard=true", token=token)
    assert status == 404
    other = await server.create_conversation(token)
    status, body = await server.call(
        "DELETE", f"/api/conversations/{other}?hard=maybe", token=token
    )
    assert status == 400 and body["code"] == "INVALID_PAYLOAD"
    status, body = await server.call(
        "DELETE", f"/api/conversations/{other}?hard=false", token=token
    )
    assert status == 200 and "hard" not in body


async def test_hard_delete_cancels_a_running_reply(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    account = await server.register()
    token = account["token"]
    whole_reply = 1000  # 20 s at 20 ms a token: nothing here waits for all of it
    cid = await server.create_conversation(token, model=f"scripted:{whole_reply}:20")

    async def post() -> tuple[int, Any]:
        return await server.call(
            "POST",
            f"/api/conversations/{cid}/messages",
            token=token,
            json={"content": "long story please", "stream": False},
        )

    sending = asyncio.create_task(post())

    def streaming() -> RunningGeneration | None:
        generation = server.app[GENERATIONS].get(uuid.UUID(cid))
        return generation if generation is not None and generation.token_index > 0 else None

    generation = await eventually(streaming, what="the reply to start streaming")
    status, _ = await server.call("DELETE", f"/api/conversations/{cid}?hard=true", token=token)
    assert status == 200
    status, body = await asyncio.wait_for(sending, 60)
    assert (status, body.get("code")) == (409, "CANCELLED"), (status, body)
    assert generation.token_index < whole_reply, "cut short, not run to its end"
    locks = await admin.fetchval(
        "SELECT count(*) FROM generation_locks WHERE conversation_id = $1", uuid.UUID(cid)
    )
    assert locks == 0


# ── account deletion ─────────────────────────────────────────────────────────


async def test_account_delete_erases_everything_and_ends_every_session(
    server: LiveServer, admin: asyncpg.Connection, node: NodeClients
) -> None:
    account = await server.register()
    bystander = await server.register()
    token = account["token"]
    user_id = uuid.UUID(account["user"]["id"])
    email = account["user"]["email"]
    first = await server.create_conversation(token)
    second = await server.create_conversation(token)
    await send(server, token, first, "my secret diary")
    await seed(server, await identity_of(server, token), second, 5)
    status, _ = await server.call("DELETE", f"/api/conversations/{second}", token=token)
    assert status == 200
    status, other_session = await server.call(
        "POST", "/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert status == 200
    other_cid = await server.create_conversation(bystander["token"])
    await send(server, bystander["token"], other_cid, "not yours")
    socket = await node.connect(server.base_url, token=other_session["token"])
    assert socket.connected.is_set(), socket.connect_error
    [ack] = await socket.emit("join-conversation", first)
    assert ack["success"] is True

    status, body = await server.call(
        "DELETE", "/api/account", token=token, json={"password": "wrong password"}
    )
    assert (status, body["code"]) == (400, "INVALID_PAYLOAD")
    status, body = await server.call("DELETE", "/api/account", token=token, json={})
    assert status == 400
    assert await admin.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id) == 1

    async with (
        deleted_key_probe(admin, "users", "wrapped_data_key") as users_probe,
        deleted_key_probe(admin, "conversations", "wrapped_key") as conversations_probe,
    ):
        status, body = await server.call(
            "DELETE", "/api/account", token=token, json={"password": PASSWORD}
        )
        assert status == 204, body
        [user_key] = await users_probe()
        assert user_key == bytes(len(user_key))
        keys = await conversations_probe()
        assert len(keys) == 2 and all(k == bytes(len(k)) for k in keys)

    await asyncio.wait_for(socket.closed.wait(), 5)
    assert socket.disconnect_reason == "io server disconnect"
    for session_token in (token, other_session["token"]):
        status, _ = await server.call("GET", "/api/auth/me", token=session_token)
        assert status == 401
    status, _ = await server.call(
        "POST", "/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert status == 401
    for table, column in [
        ("users", "id"),
        ("sessions", "user_id"),
        ("conversations", "user_id"),
        ("messages", "user_id"),
        ("generation_locks", "user_id"),
        ("audit_log", "user_id"),
    ]:
        assert (
            await admin.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", user_id) == 0
        ), table
    entries = await admin.fetch(
        "SELECT user_id, details, ip FROM audit_log WHERE action = 'account_deleted'"
    )
    assert any(
        e["user_id"] is None and e["ip"] is None and '"conversations": 2' in e["details"]
        for e in entries
    )
    everything = await admin.fetchval("SELECT string_agg(details::text, ' ') FROM audit_log")
    assert email not in everything and str(user_id) not in everything
    status, view = await server.call(
        "GET", f"/api/conversations/{other_cid}", token=bystander["token"]
    )
    assert status == 200 and view["messages"][0]["content"] == "not yours"


# ── purge ────────────────────────────────────────────────────────────────────


async def test_purge_destroys_old_soft_deleted_conversations_only(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    alice, bob = await server.register(), await server.register()
    old_a = await server.create_conversation(alice["token"])
    old_b = await server.create_conversation(bob["token"])
    recent = await server.create_conversation(alice["token"])
    live = await server.create_conversation(bob["token"])
    for cid, owner in [(old_a, alice), (old_b, bob), (recent, alice), (live, bob)]:
        await send(server, owner["token"], cid, "content")
    for cid, owner in [(old_a, alice), (old_b, bob), (recent, alice)]:
        status, _ = await server.call("DELETE", f"/api/conversations/{cid}", token=owner["token"])
        assert status == 200
    now = datetime.now(UTC)
    for cid, age in [(old_a, 31), (old_b, 45), (recent, 29)]:
        await admin.execute(
            "UPDATE conversations SET deleted_at = $2 WHERE id = $1",
            uuid.UUID(cid),
            now - timedelta(days=age),
        )

    async with deleted_key_probe(admin, "conversations", "wrapped_key") as captured:
        purged = await server.app[PRIVACY].purge(timedelta(days=30))
        assert purged >= 2
        assert all(k == bytes(len(k)) for k in await captured())

    async def exists(cid: str) -> bool:
        return bool(
            await admin.fetchval("SELECT count(*) FROM conversations WHERE id = $1", uuid.UUID(cid))
        )

    assert not await exists(old_a) and not await exists(old_b)
    assert await exists(recent) and await exists(live)
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = ANY($1::uuid[])",
            [uuid.UUID(old_a), uuid.UUID(old_b)],
        )
        == 0
    )
    rows = await admin.fetch(
        "SELECT user_id, conversation_id FROM audit_log WHERE action = 'purge'"
        " AND conversation_id = ANY($1::uuid[])",
        [uuid.UUID(old_a), uuid.UUID(old_b)],
    )
    assert {(str(r["user_id"]), str(r["conversation_id"])) for r in rows} == {
        (alice["user"]["id"], old_a),
        (bob["user"]["id"], old_b),
    }
    # Even a cutoff in the future reaches only what is already soft-deleted.
    assert await server.app[PRIVACY].purge(timedelta(days=-1)) >= 1
    assert not await exists(recent) and await exists(live)


async def test_purge_function_is_the_app_roles_only_way_across_users(
    server: LiveServer, server_db: TempDatabase
) -> None:
    user = await server.register()
    cid = await server.create_conversation(user["token"])
    await send(server, user["token"], cid, "still here")
    con = await asyncpg.connect(server_db.app_dsn)
    try:
        assert await con.fetchval("SELECT count(*) FROM conversations") == 0
        purged = await con.fetchval(
            f"SELECT {PURGE_FUNCTION.split('(')[0]}($1, 100)", datetime.now(UTC) + timedelta(days=1)
        )
        assert purged >= 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await con.execute("SET ROLE scca_purge")
    finally:
        await con.close()
    status, view = await server.call("GET", f"/api/conversations/{cid}", token=user["token"])
    assert status == 200 and view["messages"][0]["content"] == "still here"


async def test_purge_loop_runs_periodically(server: LiveServer, admin: asyncpg.Connection) -> None:
    user = await server.register()
    cid = await server.create_conversation(user["token"])
    status, _ = await server.call("DELETE", f"/api/conversations/{cid}", token=user["token"])
    assert status == 200

    class CountedPurges(PrivacyService):
        runs = 0

        async def purge(self, retention: timedelta, *, now: datetime | None = None) -> int:
            purged = await super().purge(retention, now=now)
            self.runs += 1
            return purged

    service = CountedPurges(
        server.app[POOL], server.app[server_app.TRACKER], throttle=local_throttle()
    )
    task = asyncio.create_task(purge_loop(service, 0.05, timedelta(days=30)))
    try:
        # It runs again and again, and a conversation deleted just now survives each run.
        await eventually(lambda: service.runs >= 3, what="three runs of the purge loop")
        assert (
            await admin.fetchval("SELECT count(*) FROM conversations WHERE id = $1", uuid.UUID(cid))
            == 1
        )
        await admin.execute(
            "UPDATE conversations SET deleted_at = now() - interval '31 days' WHERE id = $1",
            uuid.UUID(cid),
        )

        async def gone() -> bool:
            return not await admin.fetchval(
                "SELECT count(*) FROM conversations WHERE id = $1", uuid.UUID(cid)
            )

        await eventually(gone, what="the purge loop to erase a conversation deleted 31 days ago")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ── migration 002 ────────────────────────────────────────────────────────────

async def test_migration_002_brings_a_version_1_database_forward() -> None:
    """From the frozen version-1 baseline through migrations/ (what a server does at
    start-up), and from nothing: both end with the purge function, granted as designed.
    (tests/storage/test_storage_schema_drift.py compares the two catalogs in full.)"""
    async with (
        temporary_database(schema_path=BASELINE_SCHEMA) as old,
        temporary_database() as fresh,
    ):
        for db in (old, old):  # migrate, then re-apply
            await storage.apply_schema(db.admin_dsn)
        for db in (old, fresh):
            con = await asyncpg.connect(db.admin_dsn)
            try:
                assert await con.fetchval("SELECT max(version) FROM schema_migrations") >= 2
                assert await con.fetchval(
                    "SELECT has_function_privilege('scca_app', $1, 'EXECUTE')", PURGE_FUNCTION
                )
                assert not await con.fetchval(
                    "SELECT has_function_privilege('public', $1, 'EXECUTE')", PURGE_FUNCTION
                )
                owner = await con.fetchval(
                    "SELECT pg_get_userbyid(proowner) FROM pg_proc"
                    " WHERE oid = to_regprocedure($1)",
                    PURGE_FUNCTION,
                )
                assert owner == "scca_purge"
            finally:
                await con.close()
