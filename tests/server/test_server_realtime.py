"""Realtime chat through the real socket.io-client: tabs, authorization, bad input, privacy."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import asyncpg
import pytest
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClients
from pg import TempDatabase


async def test_two_tabs_see_the_same_timeline(server: LiveServer, node: NodeClients) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"])
    tab1 = await node.joined(server.base_url, account["token"], conversation_id)
    tab2 = await node.joined(
        server.base_url, account["token"], conversation_id, transports=["polling"]
    )
    joined = await tab1.wait_for("user-joined")
    assert joined.data["userId"] == account["user"]["id"]

    [ack] = await tab1.emit("send-message", {"content": "from tab one", "clientMsgId": "m-1"})
    assert ack["success"] is True
    added = await tab2.wait_for("message-added")
    assert added.data["content"] == "from tab one"
    assert added.data["sequence"] == 1 and added.data["role"] == "user"
    assert added.data["clientMsgId"] == "m-1"
    await tab2.wait_for("typing-start")
    complete2 = await tab2.wait_for("ai-complete")
    complete1 = await tab1.wait_for("ai-complete")
    assert complete1.data["content"] == complete2.data["content"]
    assert [e.data for e in tab1.named("ai-token")] == [e.data for e in tab2.named("ai-token")]
    assert not tab1.named("message-added"), "the sender must not get its own message back"
    await tab1.disconnect()
    left = await tab2.wait_for("user-left")
    assert left.data["userId"] == account["user"]["id"]
    assert left.data["reason"]
    await tab2.disconnect()


async def test_join_with_last_seq_replays_missed_messages(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"])
    tab = await node.joined(server.base_url, account["token"], conversation_id)
    for text in ("one", "two"):
        [ack] = await tab.emit("send-message", {"content": text})
        assert ack["success"] is True
    await tab.disconnect()

    late = await node.connect(server.base_url, token=account["token"])
    [ack] = await late.emit("join-conversation", {"conversationId": conversation_id, "lastSeq": 1})
    assert ack["success"] is True and ack["messageCount"] == 4
    replayed = [e.data for e in late.named("message-added")]
    assert [m["sequence"] for m in replayed] == [2, 3, 4]
    assert replayed[1]["content"] == "two" and replayed[1]["role"] == "user"
    assert replayed[0]["role"] == "assistant"
    await late.disconnect()


async def test_another_user_cannot_touch_a_conversation(
    server: LiveServer, node: NodeClients, server_db: TempDatabase
) -> None:
    owner = await server.register()
    intruder = await server.register()
    conversation_id = await server.create_conversation(owner["token"])
    tab = await node.joined(server.base_url, owner["token"], conversation_id)
    [ack] = await tab.emit("send-message", {"content": "secret plans"})
    assert ack["success"] is True

    other = await node.connect(server.base_url, token=intruder["token"])
    [ack] = await other.emit("join-conversation", conversation_id)
    assert ack == {"success": False, "code": "NOT_FOUND", "error": "Conversation not found"}
    error = await other.wait_for("error")
    assert error.data == {"code": "NOT_FOUND", "message": "Conversation not found"}
    # never joined, so send and edit have no conversation to act on
    [ack] = await other.emit("send-message", {"content": "hijack"})
    assert ack["code"] == "NO_CONVERSATION"
    [ack] = await other.emit("edit-message", {"sequence": 1, "newContent": "hijack"})
    assert ack["code"] == "NO_CONVERSATION"
    # the same id that does not exist at all looks exactly the same
    [missing] = await other.emit("join-conversation", str(uuid.uuid4()))
    assert missing == {"success": False, "code": "NOT_FOUND", "error": "Conversation not found"}
    for method, path, body in [
        ("GET", f"/api/conversations/{conversation_id}", None),
        ("PATCH", f"/api/conversations/{conversation_id}/edit", {"sequence": 1, "newContent": "x"}),
        (
            "POST",
            f"/api/conversations/{conversation_id}/messages",
            {"content": "x", "stream": False},
        ),
        ("DELETE", f"/api/conversations/{conversation_id}", None),
    ]:
        status, response = await server.call(method, path, token=intruder["token"], json=body)
        assert status == 404, (method, path, response)
    con = await asyncpg.connect(server_db.admin_dsn)
    try:
        count = await con.fetchval(
            "SELECT message_count FROM conversations WHERE id = $1", uuid.UUID(conversation_id)
        )
        assert count == 2
    finally:
        await con.close()
    # Room traffic the intruder would see had any refused join let it in: a member's send,
    # followed to its last event by the member's own tab.
    [ack] = await tab.emit("send-message", {"content": "more secret plans"})
    assert ack["success"] is True and ack["sequence"] == 4, ack
    await tab.wait_for("ai-complete", lambda d: d["sequence"] == 4)
    assert other.named("ai-token") == [] and other.named("message-added") == []
    assert other.named("ai-complete") == []
    await tab.disconnect()
    await other.disconnect()


MALFORMED: list[Any] = [
    None,
    42,
    "text",
    [],
    [1, 2],
    {},
    {"content": None},
    {"content": 5},
    {"content": ""},
    {"content": "   "},
    {"content": "x" * 100_001},
    {"content": ["nested"]},
    {"sequence": "1", "newContent": "x"},
    {"sequence": 0, "newContent": "x"},
    {"sequence": 10**40, "newContent": "x"},
    {"sequence": True, "newContent": "x"},
    {"conversationId": 123},
    {"conversationId": "not-a-uuid"},
    {"a": {"b": {"c": {"d": [[[[[]]]]]}}}},
]


async def test_malformed_payloads_get_a_coded_ack_and_the_server_stays_up(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"])
    client = await node.joined(server.base_url, account["token"], conversation_id)
    for event in ("join-conversation", "send-message", "edit-message", "leave-conversation"):
        for payload in MALFORMED:
            [ack] = await client.emit(event, payload)
            assert ack["success"] is False, (event, payload, ack)
            assert ack["code"] in ("INVALID_PAYLOAD", "NOT_FOUND"), (event, payload, ack)
            assert isinstance(ack["error"], str) and ack["error"]
    # extra arguments, no arguments, an unknown event, and an event without an ack
    [ack] = await client.emit("send-message")
    assert ack["code"] == "INVALID_PAYLOAD"
    [ack] = await client.emit("edit-message", {"sequence": 1, "newContent": "x"}, "extra", 3)
    assert ack["success"] is False and ack["code"] == "EDIT_FAILED"  # no message 1 yet
    [ack] = await client.emit("no-such-event", {"x": 1})
    assert ack["code"] == "UNKNOWN_EVENT"
    mark = len(client.events)
    await client.emit_no_ack("send-message", {"content": 7})
    error = await client.wait_for("error", after=mark)
    assert error.data["code"] == "INVALID_PAYLOAD"
    assert "content" in error.data["message"]
    # the connection still works
    [ack] = await client.emit("send-message", {"content": "still here?"})
    assert ack["success"] is True
    [pong] = await client.emit("ping")
    assert isinstance(pong["timestamp"], int)
    await client.wait_for("pong")
    await client.disconnect()


async def test_database_holds_only_ciphertext(
    server: LiveServer, node: NodeClients, server_db: TempDatabase
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"], title="t")
    client = await node.joined(server.base_url, account["token"], conversation_id)
    secret = f"my-very-private-thought-{uuid.uuid4().hex}"
    [ack] = await client.emit("send-message", {"content": secret * 3})
    assert ack["success"] is True
    reply = (await client.wait_for("ai-complete")).data["content"]
    await client.disconnect()
    dump = await asyncio.to_thread(
        subprocess.run,
        ["pg_dump", "--data-only", server_db.admin_dsn],
        capture_output=True,
        check=True,
    )
    assert secret.encode() not in dump.stdout
    assert reply.encode() not in dump.stdout
    assert b"correct horse battery" not in dump.stdout


async def test_logout_disconnects_that_sessions_sockets_only(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register(email=f"two-sessions-{uuid.uuid4().hex[:8]}@example.com")
    status, second = await server.call(
        "POST",
        "/api/auth/login",
        json={"email": account["user"]["email"], "password": "correct horse battery"},
    )
    assert status == 200
    first_socket = await node.connect(server.base_url, token=account["token"])
    second_socket = await node.connect(server.base_url, token=second["token"])
    status, _ = await server.call("POST", "/api/auth/logout", token=account["token"])
    assert status == 204
    await asyncio.wait_for(first_socket.closed.wait(), 5)
    assert first_socket.disconnect_reason == "io server disconnect"
    assert second_socket.connected.is_set()
    [pong] = await second_socket.emit("ping")
    assert "timestamp" in pong
    refused = await node.connect(server.base_url, token=account["token"])
    assert refused.connect_error is not None
    assert refused.connect_error.startswith("Authentication failed")
    status, _ = await server.call("GET", "/api/auth/me", token=account["token"])
    assert status == 401
    await second_socket.disconnect()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_query_token_is_accepted(
    server: LiveServer, node: NodeClients, transports: list[str]
) -> None:
    account = await server.register()
    client = await node.connect(
        server.base_url, query={"token": account["token"]}, transports=transports
    )
    assert client.connected.is_set(), client.connect_error
    await client.disconnect()


QUERY_TOKENS_OFF = (
    "Authentication failed: tokens in the query string are not accepted; "
    "send the token as auth.token"
)


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_with_query_tokens_off_the_auth_payload_and_cookie_still_connect(
    server_db: TempDatabase, node: NodeClients, transports: list[str]
) -> None:
    """ALLOW_QUERY_TOKENS=false (production): a token in the URL is refused, even beside
    a good one in the auth payload, so a client that leaks it into URLs is told so."""
    settings = test_settings(server_db.app_dsn, ALLOW_QUERY_TOKENS="false")
    async with live_server(settings) as live:
        account = await live.register()
        token = account["token"]
        for auth in (None, token):
            refused = await node.connect(
                live.base_url, token=auth, query={"token": token}, transports=transports
            )
            assert not refused.connected.is_set()
            assert refused.connect_error == QUERY_TOKENS_OFF, refused.connect_error
        by_auth = await node.connect(live.base_url, token=token, transports=transports)
        by_cookie = await node.connect(
            live.base_url,
            extra_headers={"cookie": f"scca_session={token}", "origin": "http://localhost:3000"},
            transports=transports,
        )
        for client in (by_auth, by_cookie):
            assert client.connected.is_set(), client.connect_error
            [pong] = await client.emit("ping")
            assert "timestamp" in pong
            await client.disconnect()


async def test_state_flags_a_conversation_whose_root_does_not_match(
    server: LiveServer, node: NodeClients, server_db: TempDatabase
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"])
    tab = await node.joined(server.base_url, account["token"], conversation_id)
    assert tab.named("state")[0].data["integrityValid"] is True
    [ack] = await tab.emit("send-message", {"content": "to be tampered with"})
    con = await asyncpg.connect(server_db.admin_dsn)
    try:
        await con.execute(
            "UPDATE conversations SET merkle_root = $2 WHERE id = $1",
            uuid.UUID(conversation_id),
            bytes(32),
        )
    finally:
        await con.close()
    [ack] = await tab.emit("join-conversation", conversation_id)
    assert ack["integrityValid"] is False
    await tab.disconnect()
