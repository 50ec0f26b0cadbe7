"""The REST routes of people and shared conversations [ext] (seed 004's routes), against
a live server and a real database: profiles and lookup, direct and group conversations,
members, people's messages under `/api/messages`, and the seed's routes beside them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import msgspec
import pytest
from live_server import LiveServer

from protocol import rest
from server.service.shared_chat import GROUP_CATEGORIES

PASSWORD = "correct horse battery"
ITEM_KEYS = {
    # today's summary fields ...
    "id", "title", "model", "messageCount", "createdAt", "updatedAt", "merkleRoot",
    # ... and the shared conversation's
    "kind", "participants", "lastMessage", "unreadCount", "description", "category",
}  # fmt: skip
MESSAGE_KEYS = {
    "id", "conversationId", "sequence", "senderId", "sender", "role", "content", "timestamp",
    "clientMsgId",
}  # fmt: skip


@dataclass
class Person:
    id: str
    token: str
    email: str
    name: str | None
    image: str | None

    @property
    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "image": self.image}


async def person(server: LiveServer, name: str | None, image: str | None = None) -> Person:
    email = f"person-{uuid.uuid4().hex[:12]}@example.com"
    body: dict[str, Any] = {"email": email, "password": PASSWORD}
    if name is not None:
        body["name"] = name
    if image is not None:
        body["image"] = image
    status, answer = await server.call("POST", "/api/auth/register", json=body)
    assert status == 201, answer
    assert set(answer["user"]) == {"id", "email"}  # the user object as before
    return Person(answer["user"]["id"], answer["token"], email, name, image)


async def ok(
    server: LiveServer, method: str, path: str, who: Person, body: Any = None, status: int = 200
) -> Any:
    got, answer = await server.call(method, path, token=who.token, json=body)
    assert got == status, (method, path, got, answer)
    return answer


async def refused(
    server: LiveServer, method: str, path: str, who: Person, body: Any, status: int, code: str
) -> dict[str, Any]:
    got, answer = await server.call(method, path, token=who.token, json=body)
    assert (got, answer["code"]) == (status, code), (method, path, body, got, answer)
    return dict(answer)


async def direct(server: LiveServer, who: Person, other: Person, status: int) -> dict[str, Any]:
    body = await ok(
        server, "POST", "/api/conversations/direct", who, {"userId": other.id}, status
    )
    return dict(body["conversation"])


async def group(
    server: LiveServer, admin: Person, members: list[Person], **fields: Any
) -> dict[str, Any]:
    body = {"name": "Group", "memberIds": [m.id for m in members], **fields}
    answer = await ok(server, "POST", "/api/conversations/group", admin, body, 201)
    return dict(answer["conversation"])


async def post(
    server: LiveServer, who: Person, conversation_id: str, content: str, **extra: Any
) -> dict[str, Any]:
    body = {"conversationId": conversation_id, "content": content, **extra}
    return dict(await ok(server, "POST", "/api/messages", who, body, 201))


async def page(server: LiveServer, who: Person, conversation_id: str, query: str = "") -> Any:
    return await ok(server, "GET", f"/api/messages/{conversation_id}{query}", who)


async def listed(server: LiveServer, who: Person) -> dict[str, dict[str, Any]]:
    answer = await ok(server, "GET", "/api/conversations?limit=100", who)
    return {c["id"]: c for c in answer["conversations"]}


def roles(conversation: dict[str, Any]) -> dict[str, str]:
    return {p["userId"]: p["role"] for p in conversation["participants"]}


# ── profiles and lookup ─────────────────────────────────────────────────────


async def test_register_takes_a_profile_that_others_read(server: LiveServer) -> None:
    ada = await person(server, "Ada", "https://example.com/ada.png")
    bob = await person(server, None)
    assert await ok(server, "GET", "/api/profile", ada) == ada.public
    assert await ok(server, "GET", "/api/profile", bob) == bob.public  # no name, no image
    # someone else reads the same {id, name, image}, and never an email
    assert await ok(server, "GET", f"/api/users/{ada.id}", bob) == ada.public
    await refused(server, "GET", f"/api/users/{uuid.uuid4()}", bob, None, 404, "NOT_FOUND")
    await refused(server, "GET", "/api/users/not-a-uuid", bob, None, 404, "NOT_FOUND")

    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"image": "ftp://example.com/a.png"}, "image"),
        ({"image": "not a url"}, "image"),
    ]
    for body, field in bad:
        email = f"bad-{uuid.uuid4().hex[:10]}@example.com"
        status, answer = await server.call(
            "POST", "/api/auth/register", json={"email": email, "password": PASSWORD, **body}
        )
        assert status == 400 and answer["error"].startswith(f"{field}:"), (body, answer)


async def test_patch_profile_changes_what_it_names(server: LiveServer) -> None:
    ada = await person(server, "Ada", "https://example.com/ada.png")
    path = "/api/profile"
    renamed = await ok(server, "PATCH", path, ada, {"name": "  Ada L.  "})
    assert renamed == {"id": ada.id, "name": "Ada L.", "image": "https://example.com/ada.png"}
    cleared = await ok(server, "PATCH", path, ada, {"image": None})
    assert cleared == {"id": ada.id, "name": "Ada L.", "image": None}
    assert await ok(server, "PATCH", path, ada, {}) == cleared
    both = await ok(server, "PATCH", path, ada, {"name": None, "image": "http://x.example/i"})
    assert both == {"id": ada.id, "name": None, "image": "http://x.example/i"}
    assert await ok(server, "GET", path, ada) == both
    for body in ({"name": ""}, {"name": "a\x00b"}, {"image": "javascript:alert(1)"},
                 {"image": 3}, {"name": ["x"]}):  # fmt: skip
        await refused(server, "PATCH", path, ada, body, 400, "INVALID_PAYLOAD")
    status, answer = await server.call(
        "PATCH", path, token=ada.token, data=b"", headers={"Content-Type": "application/json"}
    )
    assert status == 400, answer
    assert await ok(server, "GET", path, ada) == both  # nothing refused changed anything


async def test_lookup_by_email_answers_one_404_for_nobody(server: LiveServer) -> None:
    ada = await person(server, "Ada")
    bob = await person(server, "Bob", "https://example.com/bob.png")
    found = await ok(server, "POST", "/api/users/lookup", ada, {"email": bob.email})
    assert found == {"user": bob.public}
    shouting = await ok(server, "POST", "/api/users/lookup", ada, {"email": bob.email.upper()})
    assert shouting == found

    unknown = await refused(
        server, "POST", "/api/users/lookup", ada, {"email": "nobody@example.com"}, 404,
        "NOT_FOUND",
    )  # fmt: skip
    for email in ("not-an-email", "", "a" * 300 + "@example.com", "nul\x00@example.com"):
        malformed = await refused(
            server, "POST", "/api/users/lookup", ada, {"email": email}, 404, "NOT_FOUND"
        )
        assert malformed == unknown, email
    for body in ({}, {"email": 5}, {"email": None}, {"email": [bob.email]}):
        await refused(server, "POST", "/api/users/lookup", ada, body, 400, "INVALID_PAYLOAD")


# ── direct conversations ────────────────────────────────────────────────────


async def test_direct_is_get_or_create_from_either_side(server: LiveServer) -> None:
    ada = await person(server, "Ada")
    bob = await person(server, "Bob", "https://example.com/bob.png")
    created = await direct(server, ada, bob, 201)
    assert set(created) == ITEM_KEYS
    assert created["kind"] == "direct" and created["messageCount"] == 0
    assert created["lastMessage"] is None and created["unreadCount"] == 0
    assert created["description"] is None and created["category"] is None
    assert roles(created) == {ada.id: "member", bob.id: "member"}
    users = {p["userId"]: p["user"] for p in created["participants"]}
    assert users == {ada.id: ada.public, bob.id: bob.public}
    for participant in created["participants"]:
        datetime.fromisoformat(participant["joinedAt"])

    again = await direct(server, ada, bob, 200)
    theirs = await direct(server, bob, ada, 200)
    assert again["id"] == theirs["id"] == created["id"]
    assert roles(theirs) == roles(created)

    await refused(server, "POST", "/api/conversations/direct", ada, {"userId": ada.id}, 400,
                  "INVALID_PAYLOAD")  # fmt: skip
    await refused(server, "POST", "/api/conversations/direct", ada, {"userId": str(uuid.uuid4())},
                  404, "NOT_FOUND")  # fmt: skip
    for body in ({}, {"userId": "nope"}, {"userId": 7}, {"userId": None}):
        await refused(server, "POST", "/api/conversations/direct", ada, body, 400,
                      "INVALID_PAYLOAD")  # fmt: skip
    # one conversation, in both lists
    assert created["id"] in await listed(server, ada)
    assert created["id"] in await listed(server, bob)


# ── groups and members ──────────────────────────────────────────────────────


async def test_group_create_makes_the_creator_admin(server: LiveServer) -> None:
    ada, bob, cy = [await person(server, n) for n in ("Ada", "Bob", "Cy")]
    made = await group(server, ada, [bob, cy, ada, bob], name="  Bakers  ",
                       description="Bread and more", category="RECIPES")  # fmt: skip
    assert set(made) == ITEM_KEYS
    assert made["kind"] == "group" and made["title"] == "Bakers"
    assert made["description"] == "Bread and more" and made["category"] == "RECIPES"
    assert roles(made) == {ada.id: "admin", bob.id: "member", cy.id: "member"}
    plain = await group(server, ada, [bob])
    assert plain["category"] == "GENERAL" and plain["description"] is None
    alone = await group(server, ada, [], name="Notes")
    assert roles(alone) == {ada.id: "admin"}
    # each member sees it, with the same roles
    seen = (await listed(server, cy))[made["id"]]
    assert roles(seen) == roles(made) and seen["title"] == "Bakers"

    base: dict[str, Any] = {"name": "G", "memberIds": [bob.id]}
    for body, field in [
        ({**base, "category": "GARDENING"}, "category"),
        ({**base, "category": "recipes"}, "category"),
        ({**base, "name": "n" * 101}, "name"),
        ({**base, "name": ""}, "name"),
        ({**base, "name": "   "}, "name"),
        ({**base, "description": "d" * 1001}, "description"),
        ({"name": "G"}, "memberIds"),
        ({**base, "memberIds": ["x"]}, "memberIds"),
        ({**base, "memberIds": bob.id}, "memberIds"),
    ]:
        answer = await refused(server, "POST", "/api/conversations/group", ada, body, 400,
                               "INVALID_PAYLOAD")  # fmt: skip
        assert answer["error"].startswith(field), (body, answer)
    await refused(server, "POST", "/api/conversations/group", ada,
                  {**base, "memberIds": [bob.id, str(uuid.uuid4())]}, 404, "NOT_FOUND")  # fmt: skip


def test_the_documented_categories_are_the_services() -> None:
    _, schemas = msgspec.json.schema_components([rest.GroupRequest])
    category = schemas["GroupRequest"]["properties"]["category"]
    documented = next(t["enum"] for t in category["anyOf"] if "enum" in t)
    assert tuple(documented) == GROUP_CATEGORIES


async def test_only_a_groups_admin_adds_members(server: LiveServer) -> None:
    ada, bob, cy, dee = [await person(server, n) for n in ("Ada", "Bob", "Cy", "Dee")]
    made = await group(server, ada, [bob])
    path = f"/api/conversations/{made['id']}/participants"
    await refused(server, "POST", path, bob, {"userId": cy.id}, 403, "FORBIDDEN")
    assert cy.id not in roles((await listed(server, ada))[made["id"]])
    assert made["id"] not in await listed(server, cy)

    added = await ok(server, "POST", path, ada, {"userId": cy.id}, 201)
    assert added == {"conversationId": made["id"], "userId": cy.id, "role": "member",
                     "by": ada.id}  # fmt: skip
    assert roles((await listed(server, cy))[made["id"]]) == {
        ada.id: "admin", bob.id: "member", cy.id: "member",
    }  # fmt: skip
    await refused(server, "POST", path, ada, {"userId": cy.id}, 409, "CONFLICT")
    await refused(server, "POST", path, ada, {"userId": str(uuid.uuid4())}, 404, "NOT_FOUND")
    for body in ({}, {"userId": "x"}, {"userId": None}):
        await refused(server, "POST", path, ada, body, 400, "INVALID_PAYLOAD")
    # a stranger is told nothing about the group
    await refused(server, "POST", path, dee, {"userId": dee.id}, 404, "NOT_FOUND")
    await refused(server, "POST", "/api/conversations/nope/participants", ada,
                  {"userId": dee.id}, 404, "NOT_FOUND")  # fmt: skip

    pair = await direct(server, ada, bob, 201)
    await refused(server, "POST", f"/api/conversations/{pair['id']}/participants", ada,
                  {"userId": cy.id}, 409, "NOT_SUPPORTED")  # fmt: skip
    mine = await server.create_conversation(ada.token)
    await refused(server, "POST", f"/api/conversations/{mine}/participants", ada,
                  {"userId": cy.id}, 409, "NOT_SUPPORTED")  # fmt: skip


# ── people's messages ───────────────────────────────────────────────────────


async def test_send_and_read_pages_by_offset_before_and_after(server: LiveServer) -> None:
    ada = await person(server, "Ada", "https://example.com/ada.png")
    bob = await person(server, "Bob")
    cid = (await group(server, ada, [bob]))["id"]
    sent = []
    for i in range(1, 6):
        author = ada if i % 2 else bob
        answer = await post(server, author, cid, f"message {i}", clientMsgId=f"m-{i}")
        assert set(answer) == {"message", "messageCount"} and answer["messageCount"] == i
        message = answer["message"]
        assert set(message) == MESSAGE_KEYS, message
        assert message["conversationId"] == cid and message["sequence"] == i
        assert message["senderId"] == author.id and message["sender"] == author.public
        assert message["role"] == "user" and message["content"] == f"message {i}"
        assert message["clientMsgId"] == f"m-{i}"
        datetime.fromisoformat(message["timestamp"])
        sent.append(message)

    again = {"conversationId": cid, "content": "again?", "clientMsgId": "m-3"}
    repeat = await ok(server, "POST", "/api/messages", ada, again)
    assert repeat == {"message": sent[2], "messageCount": 5, "duplicate": True}

    def seqs(answer: Any) -> list[int]:
        return [m["sequence"] for m in answer["messages"]]

    everything = await page(server, bob, cid)
    assert everything["messages"] == sent
    assert everything["pagination"] == {"limit": 50, "offset": 0, "hasMore": False}
    for query, expected, more in [
        ("?limit=2", [4, 5], True),
        ("?limit=2&offset=2", [2, 3], True),
        ("?limit=2&offset=3", [1, 2], False),
        ("?limit=2&offset=4", [1], False),
        ("?offset=5", [], False),
        ("?limit=5", [1, 2, 3, 4, 5], False),
        ("?before=3", [1, 2], False),
        ("?before=5&limit=2", [3, 4], True),
        ("?before=1", [], False),
        ("?before=99", [1, 2, 3, 4, 5], False),
    ]:
        answer = await page(server, bob, cid, query)
        assert seqs(answer) == expected, query
        assert answer["pagination"]["hasMore"] is more, (query, answer["pagination"])
    for query, expected in [
        ("?after=0", [1, 2, 3, 4, 5]),
        ("?after=2", [3, 4, 5]),
        ("?after=1&limit=2", [2, 3]),
        ("?after=5", []),
    ]:
        answer = await page(server, bob, cid, query)
        assert seqs(answer) == expected, query
        assert "hasMore" not in answer["pagination"], query  # not known paging forward

    for query, field in [
        ("?before=3&after=1", "before"),
        ("?before=3&offset=1", "offset"),
        ("?after=1&offset=0", "offset"),
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=abc", "limit"),
        ("?offset=-1", "offset"),
        ("?before=0", "before"),
        ("?before=x", "before"),
        ("?after=-1", "after"),
    ]:
        answer = await refused(server, "GET", f"/api/messages/{cid}{query}", bob, None, 400,
                               "INVALID_PAYLOAD")  # fmt: skip
        assert answer["error"].startswith(f"{field}:"), (query, answer)

    for body, field in [
        ({"conversationId": cid, "content": ""}, "content"),
        ({"conversationId": cid, "content": "   "}, "content"),
        ({"conversationId": cid}, "content"),
        ({"content": "hi"}, "conversationId"),
        ({"conversationId": "nope", "content": "hi"}, "conversationId"),
        ({"conversationId": cid, "content": "hi", "clientMsgId": "no spaces"}, "clientMsgId"),
        ({"conversationId": cid, "content": "hi", "clientMsgId": "x\n"}, "clientMsgId"),
    ]:
        answer = await refused(server, "POST", "/api/messages", ada, body, 400,
                               "INVALID_PAYLOAD")  # fmt: skip
        assert answer["error"].startswith(field), (body, answer)
    assert seqs(await page(server, ada, cid)) == [1, 2, 3, 4, 5]  # nothing refused was stored


async def test_the_list_shows_kinds_members_last_message_and_unread(server: LiveServer) -> None:
    ada = await person(server, "Ada", "https://example.com/ada.png")
    bob, cy = await person(server, "Bob"), await person(server, "Cy")
    ai = await server.create_conversation(ada.token, title="Mine")
    pair = (await direct(server, ada, bob, 201))["id"]
    crew = (await group(server, ada, [bob, cy], name="Crew", category="NEWS"))["id"]

    items = await listed(server, ada)
    assert {items[c]["kind"] for c in (ai, pair, crew)} == {"ai", "direct", "group"}
    for item in items.values():
        assert set(item) == ITEM_KEYS, item
    assert items[ai]["title"] == "Mine" and items[ai]["unreadCount"] == 0
    assert items[ai]["description"] is None and items[ai]["category"] is None
    for participant in items[crew]["participants"]:
        assert set(participant) == {"userId", "role", "joinedAt", "user"}
        assert set(participant["user"]) == {"id", "name", "image"}
    ada_seen = next(p["user"] for p in items[crew]["participants"] if p["userId"] == ada.id)
    assert ada_seen == ada.public

    first = (await post(server, ada, crew, "hello crew"))["message"]
    second = (await post(server, ada, crew, "x" * 150))["message"]
    bob_items = await listed(server, bob)
    last = bob_items[crew]["lastMessage"]
    # (its timestamp is the row's, the message's is the one sealed in it: not compared)
    assert datetime.fromisoformat(last.pop("timestamp")).tzinfo is not None
    assert last == {"id": second["id"], "sequence": 2, "senderId": ada.id,
                    "preview": "x" * 100}  # fmt: skip
    assert bob_items[crew]["unreadCount"] == 2 and bob_items[crew]["messageCount"] == 2
    assert next(iter(bob_items)) == crew  # the most recent first
    assert (await listed(server, ada))[crew]["unreadCount"] == 0  # one's own are read
    assert (await listed(server, cy))[crew]["unreadCount"] == 2

    # reading a page marks what it shows read: an older page first, then the newest
    older = await page(server, bob, crew, "?limit=1&offset=1")
    assert [m["id"] for m in older["messages"]] == [first["id"]]
    assert (await listed(server, bob))[crew]["unreadCount"] == 1
    assert [m["id"] for m in (await page(server, bob, crew))["messages"]] == [
        first["id"], second["id"],
    ]  # fmt: skip
    assert (await listed(server, bob))[crew]["unreadCount"] == 0
    assert (await listed(server, cy))[crew]["unreadCount"] == 2
    # a send marks everything up to it read for its author, and is unread for the others
    await post(server, cy, crew, "me too")
    assert (await listed(server, cy))[crew]["unreadCount"] == 0
    assert (await listed(server, bob))[crew]["unreadCount"] == 1

    # the direct conversation counts separately
    await post(server, bob, pair, "psst")
    ada_items = await listed(server, ada)
    assert ada_items[pair]["unreadCount"] == 1 and ada_items[crew]["unreadCount"] == 1
    assert ada_items[pair]["lastMessage"]["preview"] == "psst"

    # the seed's read shows the same, around its viewport
    read = await ok(server, "GET", f"/api/conversations/{crew}", bob)
    assert read["kind"] == "group" and read["title"] == "Crew" and read["category"] == "NEWS"
    assert read["integrity"] == {"valid": True, "lastValidSequence": 3}
    assert [m["content"] for m in read["messages"]] == ["hello crew", "x" * 150, "me too"]
    assert roles(read) == roles(items[crew]) and read["unreadCount"] == 1
    assert read["lastMessage"]["preview"] == "me too" and read["description"] is None


async def test_a_non_member_gets_404_on_every_route_of_the_conversation(
    server: LiveServer,
) -> None:
    ada, bob, eve = [await person(server, n) for n in ("Ada", "Bob", "Eve")]
    crew = (await group(server, ada, [bob]))["id"]
    pair = (await direct(server, ada, bob, 201))["id"]
    ai = await server.create_conversation(ada.token)
    for cid in (crew, pair, ai):
        if cid != ai:
            await post(server, ada, cid, "secret")
        for method, path, body in [
            ("GET", f"/api/conversations/{cid}", None),
            ("PATCH", f"/api/conversations/{cid}", {"title": "mine now"}),
            ("POST", f"/api/conversations/{cid}/messages", {"content": "hi", "stream": False}),
            ("POST", f"/api/conversations/{cid}/messages", {"content": "hi"}),
            ("PATCH", f"/api/conversations/{cid}/edit", {"sequence": 1, "newContent": "x"}),
            ("POST", f"/api/conversations/{cid}/participants", {"userId": eve.id}),
            ("GET", f"/api/messages/{cid}", None),
            ("GET", f"/api/messages/{cid}?after=0", None),
            ("POST", "/api/messages", {"conversationId": cid, "content": "hi"}),
            ("GET", f"/api/conversations/{cid}/export", None),
            ("POST", f"/api/conversations/{cid}/verify", None),
            ("DELETE", f"/api/conversations/{cid}", None),
        ]:
            await refused(server, method, path, eve, body, 404, "NOT_FOUND")
        assert cid not in await listed(server, eve)
    # and the members' conversations are as they were
    assert (await page(server, bob, crew))["messages"][0]["content"] == "secret"
    assert (await listed(server, ada))[pair]["messageCount"] == 1


async def test_the_seed_routes_on_an_ai_conversation_answer_as_before(server: LiveServer) -> None:
    ada, bob = await person(server, "Ada"), await person(server, "Bob")
    ai = await server.create_conversation(ada.token, title="Ask")
    reply = await ok(server, "POST", f"/api/conversations/{ai}/messages", ada,
                     {"content": "question", "stream": False})  # fmt: skip
    assert set(reply) == {"response", "messageCount", "sequence"}
    assert reply["messageCount"] == 2 and reply["sequence"] == 2 and reply["response"]
    read = await ok(server, "GET", f"/api/conversations/{ai}", ada)
    assert read["viewport"] == {"from": 1, "to": 2} and read["title"] == "Ask"
    assert [m["role"] for m in read["messages"]] == ["user", "assistant"]
    assert read["kind"] == "ai" and read["unreadCount"] == 0
    assert read["lastMessage"]["sequence"] == 2 and read["lastMessage"]["senderId"] is None
    assert read["lastMessage"]["preview"] == reply["response"][:100]
    # people's messages are not an ai conversation's
    await refused(server, "POST", "/api/messages", ada, {"conversationId": ai, "content": "hi"},
                  409, "NOT_SUPPORTED")  # fmt: skip
    # its messages read through /api/messages too
    messages = (await page(server, ada, ai))["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "question"), ("assistant", reply["response"]),
    ]  # fmt: skip

    # the seed's AI send, on a direct or group conversation: refused, nothing stored
    crew = (await group(server, ada, [bob]))["id"]
    pair = (await direct(server, ada, bob, 201))["id"]
    for cid in (crew, pair):
        for stream in (False, True):
            body = {"content": "hi", "stream": stream}
            answer = await refused(server, "POST", f"/api/conversations/{cid}/messages", ada,
                                   body, 409, "NOT_SUPPORTED")  # fmt: skip
            assert "/api/messages" in answer["error"]
        assert (await page(server, bob, cid))["messages"] == []
        await refused(server, "PATCH", f"/api/conversations/{cid}/edit", ada,
                      {"sequence": 1, "newContent": "x"}, 409, "NOT_SUPPORTED")  # fmt: skip


async def test_every_new_route_needs_authentication(server: LiveServer) -> None:
    some = str(uuid.uuid4())
    for method, path, body in [
        ("GET", "/api/profile", None),
        ("PATCH", "/api/profile", {"name": "x"}),
        ("GET", f"/api/users/{some}", None),
        ("POST", "/api/users/lookup", {"email": "a@example.com"}),
        ("POST", "/api/conversations/direct", {"userId": some}),
        ("POST", "/api/conversations/group", {"name": "g", "memberIds": []}),
        ("POST", f"/api/conversations/{some}/participants", {"userId": some}),
        ("GET", f"/api/messages/{some}", None),
        ("POST", "/api/messages", {"conversationId": some, "content": "x"}),
    ]:
        for headers in ({}, {"Authorization": "Bearer nonsense"}):
            status, answer = await server.call(method, path, json=body, headers=headers)
            assert (status, answer["code"]) == (401, "UNAUTHORIZED"), (method, path, answer)


async def test_a_browser_changes_only_with_its_csrf_token(server: LiveServer) -> None:
    bob = await person(server, "Bob")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=server.base_url, cookie_jar=jar) as tab:
        email = f"tab-{uuid.uuid4().hex[:10]}@example.com"
        async with tab.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Tab"}
        ) as r:
            assert r.status == 201
            csrf = (await r.json())["csrfToken"]
        async with tab.get("/api/profile") as r:  # a read needs only the cookie
            assert r.status == 200 and (await r.json())["name"] == "Tab"
        for method, path, body in [
            ("PATCH", "/api/profile", {"name": "Tab 2"}),
            ("POST", "/api/users/lookup", {"email": bob.email}),
            ("POST", "/api/conversations/direct", {"userId": bob.id}),
            ("POST", "/api/conversations/group", {"name": "g", "memberIds": [bob.id]}),
        ]:
            async with tab.request(method, path, json=body) as r:
                assert r.status == 403, (method, path, await r.text())
                assert (await r.json())["code"] == "FORBIDDEN"
            async with tab.request(method, path, json=body, headers={"X-CSRF-Token": csrf}) as r:
                assert r.status in (200, 201), (method, path, await r.text())


@pytest.mark.parametrize("content", ["a\x00b", "é" * 10])
async def test_a_message_round_trips_any_text(server: LiveServer, content: str) -> None:
    ada, bob = await person(server, "Ada"), await person(server, "Bob")
    cid = (await direct(server, ada, bob, 201))["id"]
    sent = (await post(server, ada, cid, content))["message"]
    assert sent["content"] == content
    assert (await page(server, bob, cid))["messages"] == [sent]
