"""Generation lifecycle: one at a time, idempotent, stoppable, cancellable, resumable."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import asyncpg
from live_server import LiveServer
from node_client import NodeClients, resumed_text
from pg import TempDatabase

from server.appkeys import CHAT


async def _messages(server: LiveServer, token: str, conversation_id: str) -> dict[str, Any]:
    status, body = await server.call("GET", f"/api/conversations/{conversation_id}", token=token)
    assert status == 200, body
    return dict(body)


async def test_second_send_while_generating_is_busy_and_stores_nothing(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"], model="scripted:30:10")
    tab1 = await node.joined(server.base_url, account["token"], conversation_id)
    tab2 = await node.joined(server.base_url, account["token"], conversation_id)
    results = await asyncio.gather(
        tab1.emit("send-message", {"content": "first"}),
        tab2.emit("send-message", {"content": "second"}),
    )
    acks = sorted((r[0] for r in results), key=lambda a: a["success"])
    assert acks[0] == {
        "success": False,
        "code": "BUSY",
        "error": "A reply is already being generated in this conversation",
    }
    assert acks[1]["success"] is True and acks[1]["messageCount"] == 2
    body = await _messages(server, account["token"], conversation_id)
    assert body["messageCount"] == 2
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    busy_tab = tab1 if results[0][0]["success"] is False else tab2
    error = await busy_tab.wait_for("error", lambda d: d["code"] == "BUSY")
    assert error.data["message"]


async def test_retry_with_the_same_client_msg_id_stores_once(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"])
    tab = await node.joined(server.base_url, account["token"], conversation_id)
    payload = {"content": "only once please", "clientMsgId": "retry-1"}
    [first] = await tab.emit("send-message", payload)
    [again] = await tab.emit("send-message", payload)
    assert first["success"] is True and first["messageCount"] == 2
    assert again["success"] is True and again["messageCount"] == 2
    assert again.get("duplicate") is True
    body = await _messages(server, account["token"], conversation_id)
    assert body["messageCount"] == 2
    assert len(tab.named("ai-complete")) == 1


async def test_retry_while_the_first_is_still_streaming_acks_like_the_first(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"], model="scripted:20:10")
    tab = await node.joined(server.base_url, account["token"], conversation_id)
    payload = {"content": "lost ack", "clientMsgId": "retry-2"}
    first_task = asyncio.create_task(tab.emit("send-message", payload))
    await tab.wait_for("ai-token")
    [again] = await tab.emit("send-message", payload)
    [first] = await first_task
    assert first["messageCount"] == again["messageCount"] == 2
    assert (await _messages(server, account["token"], conversation_id))["messageCount"] == 2


async def test_stop_generation_keeps_the_partial_reply_marked_stopped(
    server: LiveServer, node: NodeClients, server_db: TempDatabase
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"], model="scripted:200:15")
    tab = await node.joined(server.base_url, account["token"], conversation_id)
    send = asyncio.create_task(tab.emit("send-message", {"content": "tell me a long story"}))
    await tab.wait_for("ai-token", lambda d: d["tokenIndex"] >= 5)
    [stop_ack] = await tab.emit("stop-generation")
    assert stop_ack == {"success": True, "stopped": True}
    [ack] = await send
    assert ack["success"] is True and ack["stopped"] is True and ack["messageCount"] == 2
    complete = await tab.wait_for("ai-complete")
    assert complete.data["stopped"] is True
    tokens = tab.named("ai-token")
    assert 5 <= len(tokens) < 200
    assert complete.data["content"] == tokens[-1].data["partial"]
    body = await _messages(server, account["token"], conversation_id)
    assert body["messages"][1]["content"] == complete.data["content"]
    assert body["messages"][1]["stopped"] is True
    [idle] = await tab.emit("stop-generation")
    assert idle == {"success": True, "stopped": False}


async def test_provider_failure_keeps_the_user_message_and_tells_the_room(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"], model="scripted-fail:3")
    tab = await node.joined(server.base_url, account["token"], conversation_id)
    other = await node.joined(server.base_url, account["token"], conversation_id)
    [ack] = await tab.emit("send-message", {"content": "this will fail"})
    assert ack["success"] is False and ack["code"] == "AI_ERROR"
    failure = await other.wait_for("ai-error")
    assert failure.data["sequence"] == 2 and failure.data["code"] == "AI_ERROR"
    error = await tab.wait_for("error")
    assert error.data["code"] == "SEND_FAILED"
    body = await _messages(server, account["token"], conversation_id)
    assert body["messageCount"] == 1
    assert [m["content"] for m in body["messages"]] == ["this will fail"]
    assert body["integrity"]["valid"] is True


async def test_join_mid_stream_resumes_without_gap(server: LiveServer, node: NodeClients) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"], model="scripted:60:10")
    first = await node.joined(server.base_url, account["token"], conversation_id)
    send = asyncio.create_task(first.emit("send-message", {"content": "stream please"}))
    await first.wait_for("ai-token", lambda d: d["tokenIndex"] >= 10)
    late = await node.joined(server.base_url, account["token"], conversation_id)
    deltas = await node.joined(
        server.base_url, account["token"], conversation_id, auth={"partial": False}
    )
    [ack] = await send
    assert ack["success"] is True
    final = (await first.wait_for("ai-complete")).data["content"]
    await late.wait_for("ai-complete")
    await deltas.wait_for("ai-complete")
    state = late.named("state")[0].data
    assert state["generating"]["sequence"] == 2
    assert state["generating"]["tokenIndex"] >= 10
    assert resumed_text(late, 2) == final
    assert resumed_text(deltas, 2) == final
    assert all("partial" not in e.data for e in deltas.named("ai-token"))


async def test_edit_during_generation_never_leaks_the_cancelled_reply(
    server: LiveServer, node: NodeClients, server_db: TempDatabase
) -> None:
    """The race of the design: edit message 1 at random moments of the stream."""
    account = await server.register()
    rng = random.Random(1234)
    for round_ in range(8):
        conversation_id = await server.create_conversation(account["token"], model="scripted:40:5")
        tab = await node.joined(server.base_url, account["token"], conversation_id)
        watcher = await node.joined(server.base_url, account["token"], conversation_id)
        send = asyncio.create_task(tab.emit("send-message", {"content": f"original {round_}"}))
        await tab.wait_for("ai-token") if round_ % 2 else await tab.wait_for("state")
        await asyncio.sleep(rng.uniform(0, 0.15))
        [edit_ack] = await tab.emit(
            "edit-message", {"sequence": 1, "newContent": f"edited {round_}"}
        )
        await send
        if edit_ack["success"] is False:  # the user message was not stored yet
            assert edit_ack["code"] == "EDIT_FAILED"
            await tab.disconnect()
            await watcher.disconnect()
            continue
        truncated = await watcher.wait_for("conversation-truncated")
        cut = watcher.events.index(truncated)
        done = await watcher.wait_for("ai-complete", lambda d: True, after=cut)
        final = done.data["content"]
        after = [e.data for e in watcher.events[cut:] if e.event == "ai-token"]
        assert after, "the regenerated reply streamed"
        for token in after:
            assert final.startswith(token["partial"]), "a cancelled token arrived after the cut"
        body = await _messages(server, account["token"], conversation_id)
        assert [m["content"] for m in body["messages"]] == [f"edited {round_}", final]
        assert body["integrity"] == {"valid": True, "lastValidSequence": 2}
        con = await asyncpg.connect(server_db.admin_dsn)
        try:
            rows = await con.fetch(
                "SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq",
                uuid.UUID(conversation_id),
            )
            locks = await con.fetchval(
                "SELECT count(*) FROM generation_locks WHERE conversation_id = $1",
                uuid.UUID(conversation_id),
            )
        finally:
            await con.close()
        assert [r["seq"] for r in rows] == [1, 2]
        assert locks == 0
        await tab.disconnect()
        await watcher.disconnect()


async def test_while_shutting_down_new_sends_are_refused_as_unavailable(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"])
    tab = await node.joined(server.base_url, account["token"], conversation_id)
    server.app[CHAT].close()
    [ack] = await tab.emit("send-message", {"content": "too late"})
    assert ack["success"] is False and ack["code"] == "UNAVAILABLE", ack
    status, body = await server.call(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        token=account["token"],
        json={"content": "too late", "stream": False},
    )
    assert status == 503 and body["code"] == "UNAVAILABLE"
    assert (await _messages(server, account["token"], conversation_id))["messageCount"] == 0
