"""People talking to people over the real socket.io-client, on two instances.

Three users: Ada has a tab on each instance, Grace one on the second, Linus none. Ada
opens a direct conversation with Grace and a group with her; every socket of each
member hears of it through its user room, on whichever instance it is. A message in the
group reaches every member in the room and each member's other tabs; a direct message
reaches the other person's tabs while they look at another conversation. Linus is added
to the group while offline and reads its whole history, decrypted and verified, when he
signs in.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from live_server import LiveServer, live_server, test_settings
from machine_services import redis_url
from node_client import NodeClient, NodeClients
from pg import TempDatabase

PASSWORD = "correct horse battery"


@asynccontextmanager
async def _two_instances(db: TempDatabase) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    shared = {"REDIS_URL": redis_url(), "REDIS_CHANNEL": f"scca-people-{uuid.uuid4().hex[:8]}"}
    async with (
        live_server(test_settings(db.app_dsn, **shared)) as one,
        live_server(test_settings(db.app_dsn, **shared)) as two,
    ):
        yield one, two


async def _person(server: LiveServer, name: str) -> dict[str, Any]:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    status, body = await server.call(
        "POST",
        "/api/auth/register",
        json={"email": email, "password": PASSWORD, "name": name},
    )
    assert status == 201, body
    return {"email": email, "token": body["token"], "id": body["user"]["id"]}


async def _socket(node: NodeClients, server: LiveServer, token: str) -> NodeClient:
    client = await node.connect(server.base_url, token=token)
    assert client.connected.is_set(), client.connect_error
    return client


def _about(conversation_id: str) -> Any:
    return lambda data: isinstance(data, dict) and (
        data.get("conversationId") == conversation_id
        or (data.get("conversation") or {}).get("id") == conversation_id
    )


async def test_three_people_on_two_instances(server_db: TempDatabase, node: NodeClients) -> None:
    async with _two_instances(server_db) as (one, two):
        ada = await _person(one, "Ada")
        grace = await _person(two, "Grace")
        linus = await _person(one, "Linus")
        ada_one = await _socket(node, one, ada["token"])
        ada_two = await _socket(node, two, ada["token"])
        grace_two = await _socket(node, two, grace["token"])

        # A direct conversation: get-or-create, announced to both people's every tab.
        status, body = await one.call(
            "POST", "/api/conversations/direct", token=ada["token"], json={"userId": grace["id"]}
        )
        assert status == 201, body
        direct = body["conversation"]["id"]
        assert body["conversation"]["kind"] == "direct"
        for tab in (ada_one, ada_two, grace_two):
            added = await tab.wait_for("conversation-added", _about(direct))
            names = {p["user"]["name"] for p in added.data["conversation"]["participants"]}
            assert names == {"Ada", "Grace"}
        status, again = await two.call(
            "POST", "/api/conversations/direct", token=grace["token"], json={"userId": ada["id"]}
        )
        assert status == 200 and again["conversation"]["id"] == direct, again

        # A group, named and described; the name is the title everyone sees.
        status, body = await one.call(
            "POST",
            "/api/conversations/group",
            token=ada["token"],
            json={"name": "Allotment", "category": "FOOD_SHARE", "memberIds": [grace["id"]]},
        )
        assert status == 201, body
        group = body["conversation"]["id"]
        roles = {p["userId"]: p["role"] for p in body["conversation"]["participants"]}
        assert roles == {ada["id"]: "admin", grace["id"]: "member"}
        added = await grace_two.wait_for("conversation-added", _about(group))
        assert added.data["conversation"]["title"] == "Allotment"

        # Ada (instance one) and Grace (instance two) in the group's room; Ada's other
        # tab stays out of it.
        for tab, conversation_id in ((ada_one, group), (grace_two, group)):
            [ack] = await tab.emit("join-conversation", conversation_id)
            assert ack["success"] is True, ack
        [sent] = await ada_one.emit("send-message", {"content": "Seeds on Saturday"})
        assert sent["success"] is True and sent["messageCount"] == 1, sent
        seen = await grace_two.wait_for("message-added", _about(group))
        assert seen.data["content"] == "Seeds on Saturday"
        assert seen.data["senderId"] == ada["id"]
        assert seen.data["sender"] == {"id": ada["id"], "name": "Ada", "image": None}
        assert "email" not in str(seen.data)
        # Grace's unread count goes up; Ada's other tab hears of her own message too.
        update = await grace_two.wait_for("conversation-updated", _about(group))
        assert update.data["unreadCount"] == 1
        assert update.data["lastMessage"]["preview"] == "Seeds on Saturday"
        mine = await ada_two.wait_for("conversation-updated", _about(group))
        assert mine.data["unreadCount"] == 0
        assert not [e for e in ada_one.named("message-added") if _about(group)(e.data)]

        # Grace writes in the direct conversation while both look at the group: Ada's
        # tabs on both instances hear of it in their user room.
        status, body = await two.call(
            "POST",
            "/api/messages",
            token=grace["token"],
            json={"conversationId": direct, "content": "Bring the trowel"},
        )
        assert status == 201, body
        for tab in (ada_one, ada_two):
            update = await tab.wait_for("conversation-updated", _about(direct))
            assert update.data["unreadCount"] == 1
            assert update.data["lastMessage"]["senderId"] == grace["id"]

        # Linus has no socket anywhere: Ada adds him all the same.
        status, body = await one.call(
            "POST",
            f"/api/conversations/{group}/participants",
            token=ada["token"],
            json={"userId": linus["id"]},
        )
        assert status == 201, body
        for tab in (ada_one, grace_two):
            member = await tab.wait_for("member-added", _about(group))
            assert member.data["userId"] == linus["id"] and member.data["by"] == ada["id"]
        [sent] = await grace_two.emit("send-message", {"content": "Welcome, Linus"})
        assert sent["success"] is True and sent["messageCount"] == 2, sent

        # His next sign-in, on the other instance: the whole history, decrypted.
        status, login = await two.call(
            "POST", "/api/auth/login", json={"email": linus["email"], "password": PASSWORD}
        )
        assert status == 200, login
        status, page = await two.call(
            "GET", f"/api/messages/{group}?limit=10", token=login["token"]
        )
        assert status == 200, page
        assert [(m["senderId"], m["content"]) for m in page["messages"]] == [
            (ada["id"], "Seeds on Saturday"),
            (grace["id"], "Welcome, Linus"),
        ]
        status, view = await two.call("GET", f"/api/conversations/{group}", token=login["token"])
        assert status == 200, view
        assert view["integrity"]["valid"] is True and view["messageCount"] == 2
        linus_two = await _socket(node, two, login["token"])
        [ack] = await linus_two.emit("join-conversation", group)
        assert ack["success"] is True and ack["messageCount"] == 2, ack
        [sent] = await linus_two.emit("send-message", {"content": "Thanks!"})
        assert sent["success"] is True, sent
        for tab in (ada_one, grace_two):
            heard = await tab.wait_for(
                "message-added", lambda d: isinstance(d, dict) and d.get("content") == "Thanks!"
            )
            assert heard.data["sender"]["name"] == "Linus"

        # Someone outside the group learns nothing of it.
        stranger = await _person(one, "Mallory")
        status, _ = await one.call("GET", f"/api/messages/{group}", token=stranger["token"])
        assert status == 404
        mallory = await _socket(node, two, stranger["token"])
        [ack] = await mallory.emit("join-conversation", group)
        assert ack["success"] is False and ack["code"] == "NOT_FOUND", ack
