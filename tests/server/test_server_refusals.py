"""A refused join lets nothing through, whatever shape it took and whatever happens next.

A socket refused a conversation (another user's, one that never existed, one erased or
soft-deleted by its owner) stays connected; the conversation's traffic (`user-joined`,
`message-added` with the plaintext, `typing-start`, `ai-token`, `ai-complete`,
`conversation-truncated`, `needs-regeneration`, `user-left`) then goes on. Each test
waits until a legitimate member has received all of it, then makes one round trip on
the refused socket (a `ping`: its `pong` and ack leave after every frame the server had
already queued for that socket) and asserts the refused socket received nothing but
that `pong`. Where no traffic can reach a conversation at all (an id that never
existed), the server's own room table is read instead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClient, NodeClients
from pg import TempDatabase

from server.appkeys import SIO

NOT_FOUND = {"success": False, "code": "NOT_FOUND", "error": "Conversation not found"}

# Every shape `join-conversation` takes: the seed's bare id, and [ext] the object with an
# optional `lastSeq` (0 asks for a replay of every stored message).
JOIN_SHAPES: dict[str, Callable[[str], Any]] = {
    "bare id": lambda cid: cid,
    "object": lambda cid: {"conversationId": cid},
    "object with lastSeq": lambda cid: {"conversationId": cid, "lastSeq": 0},
}


async def _refused_join(client: NodeClient, payload: Any) -> int:
    """Emit a join that must be refused as NOT_FOUND; the index of the next event."""
    before = len(client.events)
    [ack] = await client.emit("join-conversation", payload)
    assert ack == NOT_FOUND, (payload, ack)
    await client.wait_for("error", lambda d: d["code"] == "NOT_FOUND", after=before)
    return len(client.events)


async def _received_since(client: NodeClient, mark: int) -> list[str]:
    """The names of the events `client` received since `mark`, once the server has
    flushed everything it had queued for this socket (a ping round trip)."""
    assert client.connected.is_set(), client.disconnect_reason
    [ack] = await client.emit("ping")
    assert ack["success"] is True, ack
    await client.wait_for("pong", after=mark)
    return [event.event for event in client.events[mark:]]


def _conversation_rooms(live: LiveServer, client: NodeClient) -> list[str]:
    """The rooms this socket is in on the server, apart from its own (named by its sid)
    and its user's (`user:{id}`, which every socket of a user is in)."""
    assert client.sid is not None
    return sorted(
        r for r in live.app[SIO].rooms(client.sid) if r != client.sid and not r.startswith("user:")
    )


def _leaked(client: NodeClient, *secrets: str) -> list[str]:
    return [e.event for e in client.events if any(s in repr(e.args) for s in secrets)]


async def _owner_traffic(sender: NodeClient, observer: NodeClient, secret: str) -> None:
    """From one tab: a send and its streamed reply, then a destructive edit of that
    message and the regenerated reply; returns once `observer` (another joined tab)
    received every event of it."""
    start = len(observer.events)
    [ack] = await sender.emit("send-message", {"content": f"{secret} first"})
    assert ack["success"] is True, ack
    await observer.wait_for("message-added", lambda d: d["content"] == f"{secret} first")
    first = await observer.wait_for("ai-complete", after=start)
    [ack] = await sender.emit(
        "edit-message", {"sequence": first.data["sequence"] - 1, "newContent": f"{secret} edit"}
    )
    assert ack["success"] is True, ack
    truncated = await observer.wait_for("conversation-truncated", after=start)
    await observer.wait_for("needs-regeneration", after=start)
    at = observer.events.index(truncated)
    await observer.wait_for("ai-complete", after=at)
    names = [e.event for e in observer.events[start:]]
    for event in ("message-added", "typing-start", "ai-token", "ai-complete"):
        assert event in names, names
    assert names.count("ai-complete") == 2, names


@pytest.mark.parametrize("shape", list(JOIN_SHAPES))
async def test_an_intruder_refused_a_conversation_receives_none_of_it(
    server: LiveServer, node: NodeClients, shape: str
) -> None:
    owner = await server.register()
    intruder = await server.register()
    conversation_id = await server.create_conversation(owner["token"])
    sender = await node.joined(server.base_url, owner["token"], conversation_id)
    [ack] = await sender.emit("send-message", {"content": "stored before the intruder came"})
    assert ack["success"] is True, ack

    spy = await node.connect(server.base_url, token=intruder["token"])
    assert spy.connected.is_set(), spy.connect_error
    mark = await _refused_join(spy, JOIN_SHAPES[shape](conversation_id))

    # The owner opens another tab (user-joined), then sends, streams, edits, regenerates.
    observer = await node.joined(server.base_url, owner["token"], conversation_id)
    secret = f"owner-only-{uuid.uuid4().hex}"
    await _owner_traffic(sender, observer, secret)

    received = await _received_since(spy, mark)
    leaked = _leaked(spy, secret, "stored before the intruder came")
    assert received == ["pong"], f"refused socket got {received}; with plaintext: {leaked}"
    assert leaked == []
    assert _conversation_rooms(server, spy) == []
    for client in (sender, observer, spy):
        await client.disconnect()


async def test_a_join_refused_while_a_reply_streams_gets_none_of_its_tokens(
    server_db: TempDatabase, node: NodeClients
) -> None:
    # A reply of 60 tokens, 25 ms apart: the refusals land in the middle of it.
    settings = test_settings(server_db.app_dsn, SCRIPTED_TOKENS="60", SCRIPTED_DELAY_MS="25")
    async with live_server(settings) as live:
        owner = await live.register()
        intruder = await live.register()
        conversation_id = await live.create_conversation(owner["token"])
        sender = await node.joined(live.base_url, owner["token"], conversation_id)
        observer = await node.joined(live.base_url, owner["token"], conversation_id)
        spy = await node.connect(live.base_url, token=intruder["token"])
        assert spy.connected.is_set(), spy.connect_error

        send_task = asyncio.ensure_future(sender.emit("send-message", {"content": "streaming"}))
        await observer.wait_for("ai-token")
        marks = []
        for shape in JOIN_SHAPES.values():
            marks.append(await _refused_join(spy, shape(conversation_id)))
        assert observer.named("ai-complete") == [], "the reply ended before the refusals"
        [ack] = await send_task
        assert ack["success"] is True, ack
        complete = await observer.wait_for("ai-complete")
        assert len(observer.named("ai-token")) == 60

        assert await _received_since(spy, marks[0]) == ["error", "error", "pong"]
        assert _leaked(spy, complete.data["content"]) == []
        assert _conversation_rooms(live, spy) == []
        for client in (sender, observer, spy):
            await client.disconnect()


async def test_a_member_refused_another_conversation_stays_only_in_its_own(
    server: LiveServer, node: NodeClients
) -> None:
    owner = await server.register()
    intruder = await server.register()
    conversation_id = await server.create_conversation(owner["token"])
    own_id = await server.create_conversation(intruder["token"])
    sender = await node.joined(server.base_url, owner["token"], conversation_id)
    observer = await node.joined(server.base_url, owner["token"], conversation_id)
    spy = await node.joined(server.base_url, intruder["token"], own_id)
    own_rooms = _conversation_rooms(server, spy)
    assert own_rooms and all(own_id in room for room in own_rooms), own_rooms

    mark = await _refused_join(spy, {"conversationId": conversation_id, "lastSeq": 0})
    secret = f"owner-only-{uuid.uuid4().hex}"
    await _owner_traffic(sender, observer, secret)

    received = await _received_since(spy, mark)
    leaked = _leaked(spy, secret)
    assert received == ["pong"], f"refused socket got {received}; with plaintext: {leaked}"
    assert leaked == []
    assert _conversation_rooms(server, spy) == own_rooms
    # Its messages still go to its own conversation, never to the one it was refused.
    [ack] = await spy.emit("send-message", {"content": "into my own conversation"})
    assert ack["success"] is True and ack["messageCount"] == 2, ack
    status, body = await server.call(
        "GET", f"/api/conversations/{conversation_id}", token=owner["token"]
    )
    assert status == 200 and body["messageCount"] == 2, body
    for client in (sender, observer, spy):
        await client.disconnect()


async def test_a_join_to_a_conversation_that_never_existed_enters_no_room(
    server: LiveServer, node: NodeClients
) -> None:
    owner = await server.register()
    conversation_id = await server.create_conversation(owner["token"])
    sender = await node.joined(server.base_url, owner["token"], conversation_id)
    observer = await node.joined(server.base_url, owner["token"], conversation_id)
    stray = await node.connect(server.base_url, token=owner["token"])
    assert stray.connected.is_set(), stray.connect_error

    missing = str(uuid.uuid4())
    mark = await _refused_join(stray, missing)
    await _refused_join(stray, {"conversationId": missing})
    await _refused_join(stray, {"conversationId": missing, "lastSeq": 0})
    # No traffic can ever reach a conversation that does not exist, so read the server's
    # room table: the refused socket is in no room at all.
    assert _conversation_rooms(server, stray) == []
    rooms = server.app[SIO].manager.rooms["/"]
    assert [r for r in rooms if isinstance(r, str) and missing in r] == []

    # Nor does it get anything of the conversation its owner is busy with.
    await _owner_traffic(sender, observer, f"elsewhere-{uuid.uuid4().hex}")
    assert await _received_since(stray, mark) == ["error", "error", "pong"]
    for client in (sender, observer, stray):
        await client.disconnect()


@pytest.mark.parametrize("hard", [False, True], ids=["soft-deleted", "erased"])
async def test_a_join_to_a_deleted_conversation_receives_none_of_its_traffic(
    server: LiveServer, node: NodeClients, hard: bool
) -> None:
    owner = await server.register()
    intruder = await server.register()
    conversation_id = await server.create_conversation(owner["token"])
    # Two tabs joined before the delete stay in the room; their leaving is traffic.
    leaving = await node.joined(server.base_url, owner["token"], conversation_id)
    observer = await node.joined(server.base_url, owner["token"], conversation_id)
    [ack] = await leaving.emit("send-message", {"content": "before the delete"})
    assert ack["success"] is True, ack

    path = f"/api/conversations/{conversation_id}" + ("?hard=true" if hard else "")
    status, body = await server.call("DELETE", path, token=owner["token"])
    assert status == 200 and body["success"] is True, body

    late_tab = await node.connect(server.base_url, token=owner["token"])
    spy = await node.connect(server.base_url, token=intruder["token"])
    marks: dict[str, int] = {}
    for name, client in (("owner's new tab", late_tab), ("intruder", spy)):
        assert client.connected.is_set(), client.connect_error
        marks[name] = await _refused_join(client, conversation_id)
        for shape in ("object", "object with lastSeq"):
            await _refused_join(client, JOIN_SHAPES[shape](conversation_id))

    # The deleted conversation takes no new messages or edits...
    [ack] = await leaving.emit("send-message", {"content": "after the delete"})
    assert ack["code"] == "NOT_FOUND", ack
    [ack] = await leaving.emit("edit-message", {"sequence": 1, "newContent": "after"})
    assert ack["code"] == "NOT_FOUND", ack
    # ...but a tab that was in it still tells the room it leaves.
    start = len(observer.events)
    [ack] = await leaving.emit("leave-conversation", conversation_id)
    assert ack == {"success": True}
    await observer.wait_for("user-left", after=start)
    await leaving.disconnect()

    for name, client in (("owner's new tab", late_tab), ("intruder", spy)):
        received = await _received_since(client, marks[name])
        assert received == ["error", "error", "pong"], (name, received)
        assert _leaked(client, "before the delete") == [], name
        assert _conversation_rooms(server, client) == [], name
    for client in (observer, late_tab, spy):
        await client.disconnect()
