"""The REST API of the seed's section 8, against a live server and a real database.

Conversations: list, create, read with a viewport, rename, delete; messages: send (JSON
or Server-Sent Events) and the destructive edit. Sockets joined to the same
conversation are the real socket.io-client and must see REST activity live.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from live_server import LiveServer
from node_client import NodeClients
from pg import TempDatabase
from polling import eventually

from server.appkeys import GENERATIONS

WARNING = "Messages after this point have been permanently deleted"
MESSAGE_KEYS = {"sequence", "role", "content", "timestamp", "contentHash", "isDecrypted"}


async def send(server: LiveServer, token: str, conversation_id: str, content: str) -> Any:
    status, body = await server.call(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        token=token,
        json={"content": content, "stream": False},
    )
    assert status == 200, body
    return body


async def detail(server: LiveServer, token: str, conversation_id: str, query: str = "") -> Any:
    status, body = await server.call(
        "GET", f"/api/conversations/{conversation_id}{query}", token=token
    )
    assert status == 200, body
    return body


async def wait_for_count(
    server: LiveServer, token: str, conversation_id: str, count: int, timeout: float = 10
) -> Any:
    """Poll GET until the conversation has `count` messages and all of them are stored."""

    async def stored() -> Any:
        body = await detail(server, token, conversation_id)
        return body if body["messageCount"] == count and len(body["messages"]) == count else None

    return await eventually(
        stored, what=f"{count} messages stored in the conversation", timeout=timeout
    )


async def no_reply_running(server: LiveServer, conversation_id: str) -> None:
    """Until the server runs no generation for the conversation. A reply is written only by
    its running generation, so from then on what is stored is final."""
    generations = server.app[GENERATIONS]
    await eventually(
        lambda: generations.get(uuid.UUID(conversation_id)) is None,
        what="every generation of the conversation to end",
    )


@dataclass
class SseEvent:
    event: str
    data: Any


def parse_sse(lines: list[str]) -> list[SseEvent]:
    """Events of a text/event-stream body (comments and heartbeats dropped)."""
    events: list[SseEvent] = []
    name = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                events.append(SseEvent(name, json.loads("\n".join(data))))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())
    return events


async def stream(
    server: LiveServer, token: str, conversation_id: str, body: dict[str, Any]
) -> tuple[int, dict[str, str], list[SseEvent]]:
    async with server.http.post(
        f"{server.base_url}/api/conversations/{conversation_id}/messages",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        text = await response.text()
        assert "Traceback" not in text and "asyncpg" not in text, text
        return response.status, dict(response.headers), parse_sse(text.split("\n"))


async def stream_and_act(
    server: LiveServer,
    token: str,
    conversation_id: str,
    content: str,
    action: Callable[[], Awaitable[None]],
) -> list[SseEvent]:
    """Stream a send; after the first `token` event, run `action`; return every event."""
    lines: list[str] = []
    acted = False
    async with server.http.post(
        f"{server.base_url}/api/conversations/{conversation_id}/messages",
        json={"content": content},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 200
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            lines.append(line)
            if not acted and line == "" and "event: token" in lines:
                acted = True
                await action()
    assert acted, lines
    return parse_sse(lines)


# ── list ────────────────────────────────────────────────────────────────────


async def test_list_pages_by_updated_at_with_limits(server: LiveServer) -> None:
    account = await server.register()
    token = account["token"]
    created = [await server.create_conversation(token, title=f"c{i}") for i in range(25)]
    newest_first = created[::-1]

    status, page = await server.call("GET", "/api/conversations", token=token)
    assert status == 200, page
    assert page["pagination"] == {"limit": 20, "offset": 0, "hasMore": True}
    assert [c["id"] for c in page["conversations"]] == newest_first[:20]
    first = page["conversations"][0]
    # The seed's fields, then ours for every kind of conversation.
    assert set(first) == {
        "id",
        "title",
        "model",
        "messageCount",
        "createdAt",
        "updatedAt",
        "merkleRoot",
        "kind",
        "participants",
        "lastMessage",
        "unreadCount",
        "description",
        "category",
    }
    assert first["title"] == "c24" and first["messageCount"] == 0 and first["merkleRoot"] is None
    assert first["kind"] == "ai" and first["lastMessage"] is None and first["unreadCount"] == 0
    assert [p["role"] for p in first["participants"]] == ["admin"]

    status, rest = await server.call("GET", "/api/conversations?offset=20", token=token)
    assert status == 200
    assert rest["pagination"] == {"limit": 20, "offset": 20, "hasMore": False}
    assert [c["id"] for c in rest["conversations"]] == newest_first[20:]
    status, exact = await server.call("GET", "/api/conversations?limit=5&offset=20", token=token)
    assert exact["pagination"]["hasMore"] is False and len(exact["conversations"]) == 5
    status, beyond = await server.call("GET", "/api/conversations?offset=500", token=token)
    assert status == 200 and beyond["conversations"] == []
    assert beyond["pagination"]["hasMore"] is False
    status, everything = await server.call("GET", "/api/conversations?limit=100", token=token)
    assert status == 200 and len(everything["conversations"]) == 25

    # a message bumps updatedAt: the oldest conversation moves to the top
    await send(server, token, created[0], "bump")
    status, page = await server.call("GET", "/api/conversations?limit=2", token=token)
    assert [c["id"] for c in page["conversations"]] == [created[0], created[24]]
    top = page["conversations"][0]
    assert top["messageCount"] == 2 and isinstance(top["merkleRoot"], str)
    assert datetime.fromisoformat(top["updatedAt"]) > datetime.fromisoformat(top["createdAt"])

    # another user sees none of them
    stranger = await server.register()
    status, theirs = await server.call("GET", "/api/conversations", token=stranger["token"])
    assert status == 200 and theirs["conversations"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=101", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-1", "offset"),
        ("offset=abc", "offset"),
        ("offset=99999999999999999999", "offset"),
    ],
)
async def test_list_rejects_bad_numbers(server: LiveServer, query: str, field: str) -> None:
    account = await server.register()
    status, body = await server.call("GET", f"/api/conversations?{query}", token=account["token"])
    assert status == 400, body
    assert body["error"].startswith(f"{field}:"), body
    assert body["code"] == "INVALID_PAYLOAD"


async def test_every_route_needs_a_valid_bearer_token(server: LiveServer) -> None:
    some_id = str(uuid.uuid4())
    routes = [
        ("GET", "/api/conversations", None),
        ("POST", "/api/conversations", {}),
        ("GET", f"/api/conversations/{some_id}", None),
        ("PATCH", f"/api/conversations/{some_id}", {"title": "x"}),
        ("DELETE", f"/api/conversations/{some_id}", None),
        ("POST", f"/api/conversations/{some_id}/messages", {"content": "x"}),
        ("PATCH", f"/api/conversations/{some_id}/edit", {"sequence": 1, "newContent": "x"}),
    ]
    for method, path, body in routes:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nonsense"}):
            status, response = await server.call(method, path, json=body, headers=headers)
            assert status == 401, (method, path, headers, response)
            assert response["code"] == "UNAUTHORIZED"


# ── create ──────────────────────────────────────────────────────────────────


async def test_create_conversation(server: LiveServer) -> None:
    token = (await server.register())["token"]
    status, body = await server.call(
        "POST",
        "/api/conversations",
        token=token,
        json={"title": "My chat", "model": "scripted:5"},
    )
    assert status == 201, body
    assert set(body) == {"id", "title", "model", "messageCount", "createdAt"}
    assert body["title"] == "My chat" and body["model"] == "scripted:5"
    assert body["messageCount"] == 0
    uuid.UUID(body["id"])
    datetime.fromisoformat(body["createdAt"])

    status, empty = await server.call("POST", "/api/conversations", token=token)
    assert status == 201, empty
    assert empty["title"] is None and empty["model"] == "scripted"
    status, braces = await server.call("POST", "/api/conversations", token=token, json={})
    assert status == 201 and braces["model"] == "scripted"
    status, longest = await server.call(
        "POST", "/api/conversations", token=token, json={"title": "t" * 200}
    )
    assert status == 201 and longest["title"] == "t" * 200

    for payload, field in [
        ({"title": "t" * 201}, "title"),
        ({"title": 5}, "title"),
        ({"model": "llama3"}, "model"),
        ({"model": "x" * 101}, "model"),
        ({"model": ["scripted"]}, "model"),
    ]:
        status, error = await server.call("POST", "/api/conversations", token=token, json=payload)
        assert status == 400, (payload, error)
        assert error["error"].startswith(f"{field}:"), (payload, error)
    for raw in (b"{oops", b"[]", b"null"):
        status, error = await server.call(
            "POST",
            "/api/conversations",
            token=token,
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert status == 400, (raw, error)
    status, listed = await server.call("GET", "/api/conversations", token=token)
    assert len(listed["conversations"]) == 4


# ── read ────────────────────────────────────────────────────────────────────


async def test_read_with_viewport_and_integrity(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token, title="viewport")
    first = await send(server, token, conversation_id, "first question")
    assert first == {"response": first["response"], "messageCount": 2, "sequence": 2}
    assert first["response"]
    second = await send(server, token, conversation_id, "second question")
    assert second["messageCount"] == 4 and second["sequence"] == 4

    body = await detail(server, token, conversation_id)
    assert body["id"] == conversation_id and body["title"] == "viewport"
    assert body["messageCount"] == 4 and body["model"] == "scripted"
    assert body["viewport"] == {"from": 1, "to": 4}
    assert body["integrity"] == {"valid": True, "lastValidSequence": 4}
    assert isinstance(body["merkleRoot"], str) and len(bytes.fromhex(body["merkleRoot"])) == 32
    messages = body["messages"]
    assert [m["sequence"] for m in messages] == [1, 2, 3, 4]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in messages] == [
        "first question",
        first["response"],
        "second question",
        second["response"],
    ]
    for message in messages:
        assert set(message) == MESSAGE_KEYS, message
        assert message["isDecrypted"] is True
        assert isinstance(message["contentHash"], str) and message["contentHash"]
        assert datetime.fromisoformat(message["timestamp"]).tzinfo is not None
    assert len({m["contentHash"] for m in messages}) == 4

    window = await detail(server, token, conversation_id, "?from=2&to=3")
    assert window["viewport"] == {"from": 2, "to": 3}
    assert [m["sequence"] for m in window["messages"]] == [2, 3]
    assert window["integrity"] == {"valid": True, "lastValidSequence": 4}
    tail = await detail(server, token, conversation_id, "?from=3")
    assert [m["sequence"] for m in tail["messages"]] == [3, 4]
    head = await detail(server, token, conversation_id, "?to=1")
    assert [m["sequence"] for m in head["messages"]] == [1]
    clipped = await detail(server, token, conversation_id, "?from=1&to=999")
    assert clipped["viewport"] == {"from": 1, "to": 4}

    for query, field in [
        ("?from=abc", "from"),
        ("?to=abc", "to"),
        ("?from=0", "from"),
        ("?to=-1", "to"),
        ("?from=3&to=2", "from"),
        ("?from=99999999999", "from"),
    ]:
        status, error = await server.call(
            "GET", f"/api/conversations/{conversation_id}{query}", token=token
        )
        assert status == 400, (query, error)
        assert error["error"].startswith(f"{field}:"), (query, error)


async def test_read_of_a_missing_or_foreign_conversation_is_one_404(server: LiveServer) -> None:
    owner = (await server.register())["token"]
    intruder = (await server.register())["token"]
    conversation_id = await server.create_conversation(owner, title="private")
    await send(server, owner, conversation_id, "secret")
    random_id = str(uuid.uuid4())

    for method, suffix, payload in [
        ("GET", "", None),
        ("PATCH", "", {"title": "mine now"}),
        ("DELETE", "", None),
        ("POST", "/messages", {"content": "hi", "stream": False}),
        ("POST", "/messages", {"content": "hi"}),
        ("PATCH", "/edit", {"sequence": 1, "newContent": "changed"}),
    ]:
        answers = []
        for target in (conversation_id, random_id):
            status, body = await server.call(
                method,
                f"/api/conversations/{target}{suffix}",
                token=intruder,
                json=payload,
            )
            answers.append((status, body))
        assert answers[0] == answers[1], (method, suffix, answers)
        assert answers[0][0] == 404
        assert answers[0][1] == {"error": "Conversation not found", "code": "NOT_FOUND"}

    for bad_id in ("not-a-uuid", "123", "ffffffff-ffff-ffff-ffff-fffffffffffff"):
        status, body = await server.call("GET", f"/api/conversations/{bad_id}", token=owner)
        assert status == 404, (bad_id, body)
        assert body == {"error": "Conversation not found", "code": "NOT_FOUND"}
    # the owner still has everything, untouched
    body = await detail(server, owner, conversation_id)
    assert body["title"] == "private" and body["messageCount"] == 2


@pytest.mark.parametrize("damage", ["flip-last-byte", "flip-first-byte", "truncate"])
async def test_read_survives_a_tampered_message(
    server: LiveServer, server_db: TempDatabase, damage: str
) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    reply = await send(server, token, conversation_id, "will be tampered with")

    con = await asyncpg.connect(server_db.admin_dsn)
    try:
        stored: bytes = await con.fetchval(
            "SELECT token FROM messages WHERE conversation_id = $1 AND seq = 1",
            uuid.UUID(conversation_id),
        )
        if damage == "flip-last-byte":
            tampered = stored[:-1] + bytes([stored[-1] ^ 0x01])
        elif damage == "flip-first-byte":
            tampered = bytes([stored[0] ^ 0x80]) + stored[1:]
        else:
            tampered = stored[:3]
        await con.execute(
            "UPDATE messages SET token = $2 WHERE conversation_id = $1 AND seq = 1",
            uuid.UUID(conversation_id),
            tampered,
        )
    finally:
        await con.close()

    body = await detail(server, token, conversation_id)
    assert body["integrity"] == {"valid": False, "lastValidSequence": 0}
    broken, intact = body["messages"]
    assert broken["sequence"] == 1 and broken["isDecrypted"] is False
    assert isinstance(broken["error"], str) and broken["error"]
    assert "content" not in broken
    assert intact["isDecrypted"] is True and intact["content"] == reply["response"]
    # the list still works too
    status, listed = await server.call("GET", "/api/conversations", token=token)
    assert status == 200 and listed["conversations"][0]["id"] == conversation_id


# ── rename and delete ───────────────────────────────────────────────────────


async def test_rename(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token, title="old")
    status, renamed = await server.call(
        "PATCH",
        f"/api/conversations/{conversation_id}",
        token=token,
        json={"title": "new name"},
    )
    assert status == 200, renamed
    assert renamed["id"] == conversation_id and renamed["title"] == "new name"
    assert (await detail(server, token, conversation_id))["title"] == "new name"
    status, cleared = await server.call(
        "PATCH",
        f"/api/conversations/{conversation_id}",
        token=token,
        json={"title": None},
    )
    assert status == 200 and cleared["title"] is None
    for payload in ({}, {"title": "t" * 201}, {"title": 7}):
        status, error = await server.call(
            "PATCH",
            f"/api/conversations/{conversation_id}",
            token=token,
            json=payload,
        )
        assert status == 400, (payload, error)
        assert error["error"].startswith("title:"), error
    status, _ = await server.call("PATCH", f"/api/conversations/{conversation_id}", token=token)
    assert status == 400


async def test_delete_hides_the_conversation_everywhere(
    server: LiveServer, node: NodeClients
) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token, title="doomed")
    keep = await server.create_conversation(token, title="kept")
    await send(server, token, conversation_id, "soon gone")

    status, deleted = await server.call(
        "DELETE", f"/api/conversations/{conversation_id}", token=token
    )
    assert status == 200, deleted
    assert set(deleted) == {"success", "deletedAt"} and deleted["success"] is True
    assert datetime.fromisoformat(deleted["deletedAt"]).tzinfo is not None

    status, body = await server.call("GET", f"/api/conversations/{conversation_id}", token=token)
    assert status == 404 and body["code"] == "NOT_FOUND"
    status, listed = await server.call("GET", "/api/conversations", token=token)
    assert [c["id"] for c in listed["conversations"]] == [keep]
    for method, suffix, payload in [
        ("DELETE", "", None),
        ("PATCH", "", {"title": "back"}),
        ("POST", "/messages", {"content": "hello?", "stream": False}),
        ("PATCH", "/edit", {"sequence": 1, "newContent": "x"}),
    ]:
        status, body = await server.call(
            method,
            f"/api/conversations/{conversation_id}{suffix}",
            token=token,
            json=payload,
        )
        assert status == 404, (method, suffix, body)

    client = await node.connect(server.base_url, token=token)
    [ack] = await client.emit("join-conversation", conversation_id)
    assert ack == {"success": False, "code": "NOT_FOUND", "error": "Conversation not found"}
    await server.close_socket(client)


# ── send ────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "content"),
        ({"content": ""}, "content"),
        ({"content": "   \n\t"}, "content"),
        ({"content": 5}, "content"),
        ({"content": "x" * 100_001}, "content"),
        ({"content": "hi", "stream": "yes"}, "stream"),
        ({"content": "hi", "clientMsgId": "has spaces"}, "clientMsgId"),
    ],
)
async def test_send_rejects_bad_bodies(server: LiveServer, payload: Any, field: str) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    status, body = await server.call(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        token=token,
        json=payload,
    )
    assert status == 400, body
    assert body["error"].startswith(f"{field}:"), body
    assert (await detail(server, token, conversation_id))["messageCount"] == 0


async def test_send_streams_server_sent_events_to_the_client_and_the_room(
    server: LiveServer, node: NodeClients
) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    tab = await node.joined(server.base_url, token, conversation_id)

    status, headers, events = await stream(server, token, conversation_id, {"content": "hello"})
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    names = [e.event for e in events]
    assert names[0] == "start" and names[-1] == "complete", names
    assert set(names[1:-1]) == {"token"}, names
    assert events[0].data == {"sequence": 2, "userSequence": 1}
    tokens = [e.data for e in events[1:-1]]
    assert len(tokens) == 12  # SCRIPTED_TOKENS of the test server
    partial = ""
    for item in tokens:
        assert set(item) == {"token", "partial"}
        partial += item["token"]
        assert item["partial"] == partial
    complete = events[-1].data
    assert complete == {"messageCount": 2, "response": partial}

    added = await tab.wait_for("message-added")
    assert added.data["sequence"] == 1 and added.data["role"] == "user"
    assert added.data["content"] == "hello"
    await tab.wait_for("typing-start")
    done = await tab.wait_for("ai-complete")
    assert done.data["sequence"] == 2 and done.data["content"] == partial
    assert done.data["messageCount"] == 2
    live = [e.data for e in tab.named("ai-token")]
    assert [t["token"] for t in live] == [t["token"] for t in tokens]
    assert all(t["sequence"] == 2 for t in live)
    stored = await detail(server, token, conversation_id)
    assert [m["content"] for m in stored["messages"]] == ["hello", partial]
    await server.close_socket(tab)


async def test_send_stream_reports_a_failed_reply_as_an_error_event(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token, model="scripted-fail:2")
    status, _, events = await stream(server, token, conversation_id, {"content": "fail please"})
    assert status == 200
    assert [e.event for e in events] == ["start", "token", "token", "error"]
    error = events[-1].data
    assert isinstance(error["message"], str) and error["message"]
    assert error["code"].startswith("AI_"), error
    status, body = await server.call(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        token=token,
        json={"content": "again", "stream": False},
    )
    assert status == 502, body
    assert body["code"].startswith("AI_")


async def test_a_client_leaving_mid_stream_does_not_cancel_the_reply(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token, model="scripted:30:20")
    seen: list[str] = []
    async with server.http.post(
        f"{server.base_url}/api/conversations/{conversation_id}/messages",
        json={"content": "long answer please"},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 200
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            seen.append(line)
            if line == "" and any(s == "event: token" for s in seen):
                break
        response.close()
    first_token = next(e for e in parse_sse(seen) if e.event == "token").data
    midway = await detail(server, token, conversation_id)
    assert midway["messageCount"] == 1, "the stream was not cut in the middle"

    body = await wait_for_count(server, token, conversation_id, 2)
    reply = body["messages"][1]
    assert reply["role"] == "assistant" and reply["isDecrypted"] is True
    assert reply["content"].startswith(first_token["partial"])
    assert len(reply["content"].split()) == 30
    assert body["integrity"] == {"valid": True, "lastValidSequence": 2}


async def test_a_second_send_while_one_streams_is_busy(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token, model="scripted:30:20")
    answers: list[tuple[int, Any]] = []

    async def second_send() -> None:
        answers.append(
            await server.call(
                "POST",
                f"/api/conversations/{conversation_id}/messages",
                token=token,
                json={"content": "me too", "stream": False},
            )
        )

    events = await stream_and_act(server, token, conversation_id, "first", second_send)
    [(status, body)] = answers
    assert status == 409 and body["code"] == "BUSY", body
    assert [e.event for e in events if e.event != "token"] == ["start", "complete"]
    stored = await wait_for_count(server, token, conversation_id, 2)
    assert stored["messages"][0]["content"] == "first"


async def test_a_repeated_client_msg_id_is_stored_and_answered_once(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    body = {"content": "only once", "stream": False, "clientMsgId": "msg-1"}
    path = f"/api/conversations/{conversation_id}/messages"
    status, first = await server.call("POST", path, token=token, json=body)
    assert status == 200, first
    status, again = await server.call("POST", path, token=token, json=body)
    assert status == 200 and again == first
    status, _, events = await stream(server, token, conversation_id, {**body, "stream": True})
    assert status == 200
    assert events[-1].event == "complete"
    assert events[-1].data["response"] == first["response"]
    stored = await detail(server, token, conversation_id)
    assert stored["messageCount"] == 2
    assert [m["content"] for m in stored["messages"]] == ["only once", first["response"]]


async def test_an_edit_during_a_stream_cancels_it_for_good(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token, model="scripted:30:20")
    await send(server, token, conversation_id, "first question")
    edits: list[tuple[int, Any]] = []

    async def edit() -> None:
        edits.append(
            await server.call(
                "PATCH",
                f"/api/conversations/{conversation_id}/edit",
                token=token,
                json={"sequence": 1, "newContent": "rewritten question"},
            )
        )

    events = await stream_and_act(server, token, conversation_id, "long answer", edit)
    [(status, body)] = edits
    assert status == 200, body
    # the user message of the stream (3) and the assistant reply (2) are gone; 4 never lands
    assert body["deletedCount"] == 2 and body["newMessageCount"] == 1
    assert events[0].data == {"sequence": 4, "userSequence": 3}
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "CANCELLED"
    stored = await wait_for_count(server, token, conversation_id, 2)
    assert stored["messages"][0]["content"] == "rewritten question"
    await no_reply_running(server, conversation_id)  # the cancelled one cannot land later
    stored = await detail(server, token, conversation_id)
    assert stored["messageCount"] == 2 and len(stored["messages"]) == 2
    assert stored["integrity"] == {"valid": True, "lastValidSequence": 2}


async def test_a_delete_during_a_stream_cancels_it(
    server: LiveServer, server_db: TempDatabase
) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token, model="scripted:30:20")
    deletes: list[tuple[int, Any]] = []

    async def delete() -> None:
        deletes.append(
            await server.call("DELETE", f"/api/conversations/{conversation_id}", token=token)
        )

    events = await stream_and_act(server, token, conversation_id, "talk for a while", delete)
    assert deletes[0][0] == 200, deletes
    assert events[-1].event == "error" and events[-1].data["code"] == "CANCELLED"
    await no_reply_running(server, conversation_id)  # the cancelled one cannot land later
    con = await asyncpg.connect(server_db.admin_dsn)
    try:
        sequences = await con.fetch(
            "SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq",
            uuid.UUID(conversation_id),
        )
    finally:
        await con.close()
    assert [r["seq"] for r in sequences] == [1]


# ── edit ────────────────────────────────────────────────────────────────────


async def test_edit_truncates_and_regenerates(server: LiveServer, node: NodeClients) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    await send(server, token, conversation_id, "original question")
    await send(server, token, conversation_id, "follow-up")
    tab = await node.joined(server.base_url, token, conversation_id)
    mark = len(tab.events)

    status, body = await server.call(
        "PATCH",
        f"/api/conversations/{conversation_id}/edit",
        token=token,
        json={"sequence": 1, "newContent": "better question"},
    )
    assert status == 200, body
    assert body == {
        "success": True,
        "editedSequence": 1,
        "deletedCount": 3,
        "spaceReclaimedBytes": body["spaceReclaimedBytes"],
        "newMessageCount": 1,
        "needsRegenerationFrom": 2,
        "warning": WARNING,
    }
    assert body["spaceReclaimedBytes"] > 0

    truncated = await tab.wait_for("conversation-truncated", after=mark)
    assert truncated.data["editedSequence"] == 1 and truncated.data["deletedCount"] == 3
    assert truncated.data["newMessageCount"] == 1 and truncated.data["warning"] == WARNING
    regen = await tab.wait_for("needs-regeneration", after=mark)
    assert regen.data == {"fromSequence": 2, "reason": "edit", "editedSequence": 1}
    done = await tab.wait_for("ai-complete", lambda d: d["sequence"] == 2, after=mark)

    stored = await wait_for_count(server, token, conversation_id, 2)
    assert [m["content"] for m in stored["messages"]] == ["better question", done.data["content"]]
    assert stored["integrity"] == {"valid": True, "lastValidSequence": 2}

    # editing the assistant's reply keeps the role and regenerates nothing
    status, body = await server.call(
        "PATCH",
        f"/api/conversations/{conversation_id}/edit",
        token=token,
        json={"sequence": 2, "newContent": "a hand-written answer"},
    )
    assert status == 200, body
    assert body["deletedCount"] == 0 and body["newMessageCount"] == 2
    assert body["spaceReclaimedBytes"] == 0
    stored = await detail(server, token, conversation_id)
    assert [(m["role"], m["content"]) for m in stored["messages"]] == [
        ("user", "better question"),
        ("assistant", "a hand-written answer"),
    ]
    assert stored["integrity"] == {"valid": True, "lastValidSequence": 2}
    await server.close_socket(tab)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "sequence"),
        ({"sequence": 1}, "newContent"),
        ({"sequence": 0, "newContent": "x"}, "sequence"),
        ({"sequence": "1", "newContent": "x"}, "sequence"),
        ({"sequence": 1.5, "newContent": "x"}, "sequence"),
        ({"sequence": 10**40, "newContent": "x"}, "sequence"),
        ({"sequence": 1, "newContent": ""}, "newContent"),
        ({"sequence": 1, "newContent": "x" * 100_001}, "newContent"),
    ],
)
async def test_edit_rejects_bad_bodies(server: LiveServer, payload: Any, field: str) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    await send(server, token, conversation_id, "keep me")
    status, body = await server.call(
        "PATCH",
        f"/api/conversations/{conversation_id}/edit",
        token=token,
        json=payload,
    )
    assert status == 400, body
    assert body["code"] == "INVALID_PAYLOAD"
    assert field in body["error"], body
    assert (await detail(server, token, conversation_id))["messageCount"] == 2


async def test_edit_beyond_the_last_message_fails(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    await send(server, token, conversation_id, "only one exchange")
    for sequence in (3, 99):
        status, body = await server.call(
            "PATCH",
            f"/api/conversations/{conversation_id}/edit",
            token=token,
            json={"sequence": sequence, "newContent": "nothing to edit"},
        )
        assert status == 400, body
        assert body["code"] == "EDIT_FAILED"
        assert "sequence" in body["error"]
    stored = await detail(server, token, conversation_id)
    assert stored["messageCount"] == 2
    assert stored["integrity"] == {"valid": True, "lastValidSequence": 2}


async def test_edit_rejects_whitespace_only_content(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    await send(server, token, conversation_id, "keep me")
    status, body = await server.call(
        "PATCH",
        f"/api/conversations/{conversation_id}/edit",
        token=token,
        json={"sequence": 1, "newContent": "   "},
    )
    assert status == 400, body
    assert body["error"].startswith("newContent:")


async def test_a_refused_whitespace_edit_changes_nothing(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    before = await send(server, token, conversation_id, "keep me")
    status, body = await server.call(
        "PATCH",
        f"/api/conversations/{conversation_id}/edit",
        token=token,
        json={"sequence": 1, "newContent": " \n "},
    )
    assert status >= 400, body
    stored = await detail(server, token, conversation_id)
    assert [m["content"] for m in stored["messages"]] == ["keep me", before["response"]]
    assert stored["integrity"] == {"valid": True, "lastValidSequence": 2}


# ── errors everywhere ───────────────────────────────────────────────────────


async def test_unknown_routes_and_methods_answer_json(server: LiveServer) -> None:
    token = (await server.register())["token"]
    status, body = await server.call("GET", "/api/nothing-here", token=token)
    assert status == 404, body
    status, body = await server.call("PUT", "/api/conversations", token=token, json={})
    assert status == 405, body
    status, body = await server.call("GET", "/api/health")
    assert status == 200 and body["status"] == "ok"


async def test_a_body_that_is_not_utf8_is_a_400(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    for method, path in [
        ("POST", "/api/conversations"),
        ("PATCH", f"/api/conversations/{conversation_id}"),
        ("POST", f"/api/conversations/{conversation_id}/messages"),
        ("PATCH", f"/api/conversations/{conversation_id}/edit"),
    ]:
        status, body = await server.call(
            method,
            path,
            token=token,
            data=b'{"title": "\xff", "content": "\xc3\x28", "newContent": "\xff"}',
            headers={"Content-Type": "application/json"},
        )
        assert status == 400, (method, path, body)


async def test_an_oversized_body_is_refused_without_internals(server: LiveServer) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    huge = json.dumps({"content": "x" * 1_100_000, "stream": False}).encode()
    status, body = await server.call(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        token=token,
        data=huge,
        headers={"Content-Type": "application/json"},
    )
    assert status in (413, 422), body
    assert body["code"] == "LIMIT_EXCEEDED"
    assert (await detail(server, token, conversation_id))["messageCount"] == 0


@pytest.mark.parametrize(
    ("method", "suffix", "payload"),
    [
        ("POST", "", {"title": "a\u0000b"}),
        ("POST", "", {"model": "scripted\u0000"}),
        ("PATCH", "/{id}", {"title": "nul\u0000title"}),
    ],
    ids=["create-title", "create-model", "rename-title"],
)
async def test_a_nul_character_in_a_text_field_is_a_400(
    server: LiveServer, method: str, suffix: str, payload: dict[str, str]
) -> None:
    token = (await server.register())["token"]
    conversation_id = await server.create_conversation(token)
    status, body = await server.call(
        method,
        "/api/conversations" + suffix.format(id=conversation_id),
        token=token,
        json=payload,
    )
    assert status == 400, body
