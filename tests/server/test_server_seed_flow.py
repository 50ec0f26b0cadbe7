"""The seed's client flow, end to end, with the real socket.io-client."""

from __future__ import annotations

from typing import Any

import pytest
from live_server import LiveServer
from node_client import NodeClients

TRANSPORTS = [["websocket"], ["polling"], ["polling", "websocket"]]


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: "+".join(t))
async def test_seed_flow(server: LiveServer, node: NodeClients, transports: list[str]) -> None:
    account = await server.register()
    token = account["token"]
    conversation_id = await server.create_conversation(token, title="First chat")
    client = await node.connect(server.base_url, token=token, transports=transports)
    assert client.connected.is_set(), client.connect_error

    [ack] = await client.emit("join-conversation", conversation_id)
    assert ack["success"] is True
    assert ack["conversationId"] == conversation_id
    assert ack["messageCount"] == 0
    state = await client.wait_for("state")
    assert state.data["title"] == "First chat"

    [ack] = await client.emit("send-message", {"content": "Hello there"})
    assert ack == {"success": True, "messageCount": 2, "sequence": 2}
    tokens = [e.data for e in client.named("ai-token")]
    assert tokens, "no ai-token received"
    assert [t["tokenIndex"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert all(t["sequence"] == 2 for t in tokens)
    assert tokens[-1]["partial"] == "".join(t["token"] for t in tokens)
    complete = await client.wait_for("ai-complete")
    assert complete.data["content"] == tokens[-1]["partial"]
    assert complete.data["messageCount"] == 2

    status, body = await server.call("GET", f"/api/conversations/{conversation_id}", token=token)
    assert status == 200
    assert [m["content"] for m in body["messages"]] == ["Hello there", complete.data["content"]]
    assert body["integrity"] == {"valid": True, "lastValidSequence": 2}

    mark = len(client.events)
    [ack] = await client.emit("edit-message", {"sequence": 1, "newContent": "Hello again"})
    assert ack == {"success": True, "deletedCount": 1, "newMessageCount": 1}
    truncated = await client.wait_for("conversation-truncated", after=mark)
    assert truncated.data["editedSequence"] == 1
    assert truncated.data["warning"] == "Messages after this point have been permanently deleted"
    regen = await client.wait_for("needs-regeneration", after=mark)
    assert regen.data == {"fromSequence": 2, "reason": "edit", "editedSequence": 1}
    done = await client.wait_for("ai-complete", after=mark)
    assert done.data["sequence"] == 2
    regenerated: list[dict[str, Any]] = [
        e.data for e in client.events[mark:] if e.event == "ai-token"
    ]
    assert regenerated and regenerated[-1]["partial"] == done.data["content"]

    status, body = await server.call("GET", f"/api/conversations/{conversation_id}", token=token)
    assert [m["content"] for m in body["messages"]] == ["Hello again", done.data["content"]]
    assert body["integrity"]["valid"] is True
    await client.disconnect()


async def test_connect_without_token_is_refused(server: LiveServer, node: NodeClients) -> None:
    client = await node.connect(server.base_url)
    assert client.connect_error == "Authentication token required"


async def test_connect_with_garbage_token_is_refused(server: LiveServer, node: NodeClients) -> None:
    client = await node.connect(server.base_url, token="garbage")
    assert client.connect_error is not None
    assert client.connect_error.startswith("Authentication failed: ")
