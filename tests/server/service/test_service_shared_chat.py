"""Direct and group conversations at the service level (`SharedChat` and the parts of
`ChatService` and `PrivacyService` that meet them), on the real database and crypto.

Each test makes its own people, so they share the session's database; the recording
broadcaster shows what each send and add would have told whom.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from pg import TempDatabase
from service_harness import ChatHarness, Recorded, chat_harness, privacy_service

from protocol.names import ServerEvent
from protocol.shared import ConversationItem, PublicUser
from protocol.socket_events import (
    ConversationAdded,
    ConversationUpdated,
    MemberAdded,
    MessageAdded,
)
from server.service import exceptions as errors
from server.service.identity import Identity

PASSWORD = "correct horse battery"
NEW_PASSWORD = "another horse, another battery"


async def person(harness: ChatHarness, name: str | None = None) -> tuple[str, Identity]:
    """A new account (with a key pair, as registration makes it) and its session."""
    email = f"shared-{uuid.uuid4().hex[:12]}@example.com"
    login = await harness.accounts.register(
        email, PASSWORD, ip="127.0.0.1", user_agent="tests", name=name
    )
    return email, await harness.accounts.authenticate(login.token)


async def people(harness: ChatHarness, count: int) -> list[Identity]:
    return [(await person(harness))[1] for _ in range(count)]


async def group(
    harness: ChatHarness, admin: Identity, *members: Identity, name: str = "Neighbours"
) -> uuid.UUID:
    item = await harness.shared.create_group(
        admin,
        name=name,
        description=None,
        category=None,
        member_ids=[m.user_id for m in members],
    )
    return uuid.UUID(item.id)


async def contents(
    harness: ChatHarness, reader: Identity, conversation_id: uuid.UUID
) -> list[tuple[str | None, str | None]]:
    """(sender id, content) of every message, as `reader` reads them (which marks them
    read)."""
    page = await harness.shared.messages(reader, conversation_id, limit=100)
    return [(m.sender_id, m.content) for m in page]


def deliveries(harness: ChatHarness, event: ServerEvent) -> list[Recorded]:
    return [r for r in harness.broadcast.sent if r.event == event]


def participants(item: ConversationItem) -> dict[str, str]:
    return {p.user_id: p.role for p in item.participants}


# ── direct conversations ────────────────────────────────────────────────────


async def test_a_direct_conversation_is_one_per_pair_whoever_asks(harness: ChatHarness) -> None:
    _, ada = await person(harness, "Ada")
    _, bob = await person(harness, "Bob")

    first, created = await harness.shared.create_direct(ada, bob.user_id)
    assert created and first.kind == "direct"
    assert participants(first) == {str(ada.user_id): "member", str(bob.user_id): "member"}
    assert {p.user.name for p in first.participants} == {"Ada", "Bob"}
    again, created_again = await harness.shared.create_direct(bob, ada.user_id)
    assert again.id == first.id and not created_again
    same, created_same = await harness.shared.create_direct(ada, bob.user_id)
    assert same.id == first.id and not created_same

    # Both heard of it once, when it was made.
    added = deliveries(harness, ServerEvent.CONVERSATION_ADDED)
    assert sorted(str(r.user_id) for r in added) == sorted([str(ada.user_id), str(bob.user_id)])
    assert all(
        isinstance(r.payload, ConversationAdded) and r.payload.conversation.id == first.id
        for r in added
    )

    with pytest.raises(errors.InvalidInput):
        await harness.shared.create_direct(ada, ada.user_id)
    with pytest.raises(errors.NotFound):
        await harness.shared.create_direct(ada, uuid.uuid4())


async def test_concurrent_creates_from_both_sides_make_one_conversation(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    pairs = [tuple(await people(harness, 2)) for _ in range(6)]
    results = await asyncio.gather(
        *(harness.shared.create_direct(a, b.user_id) for a, b in pairs),
        *(harness.shared.create_direct(b, a.user_id) for a, b in pairs),
    )
    for index, (a, b) in enumerate(pairs):
        (one, one_created), (other, other_created) = results[index], results[index + len(pairs)]
        assert one.id == other.id
        assert [one_created, other_created].count(True) == 1
        rows = await admin.fetch(
            "SELECT id FROM conversations WHERE kind = 'direct' AND direct_pair = $1",
            ":".join(sorted((str(a.user_id), str(b.user_id)))),
        )
        assert [str(r["id"]) for r in rows] == [one.id]
        members = await admin.fetch(
            "SELECT user_id, sealed_key FROM conversation_members WHERE conversation_id = $1",
            uuid.UUID(one.id),
        )
        assert {r["user_id"] for r in members} == {a.user_id, b.user_id}
        assert all(r["sealed_key"] for r in members)
        # Both read what either writes.
        await harness.shared.send(a, uuid.UUID(one.id), "raced and won")
        assert await contents(harness, b, uuid.UUID(one.id)) == [(str(a.user_id), "raced and won")]


# ── groups: roles and limits ────────────────────────────────────────────────


async def test_the_creator_is_admin_and_only_admins_add_members(harness: ChatHarness) -> None:
    chief, member, newcomer, stranger = await people(harness, 4)
    item = await harness.shared.create_group(
        chief,
        name="  Allotment  ",
        description="Seeds and tools",
        category="FOOD_SHARE",
        member_ids=[member.user_id, member.user_id, chief.user_id],
    )
    gid = uuid.UUID(item.id)
    assert item.kind == "group" and item.title == "Allotment"
    assert (item.description, item.category) == ("Seeds and tools", "FOOD_SHARE")
    assert participants(item) == {str(chief.user_id): "admin", str(member.user_id): "member"}
    await harness.shared.send(chief, gid, "Welcome")

    with pytest.raises(errors.Forbidden):
        await harness.shared.add_member(member, gid, newcomer.user_id)
    harness.broadcast.sent.clear()
    added = await harness.shared.add_member(chief, gid, newcomer.user_id)
    assert added == MemberAdded(
        conversation_id=str(gid),
        user_id=str(newcomer.user_id),
        role="member",
        by=str(chief.user_id),
    )
    room = deliveries(harness, ServerEvent.MEMBER_ADDED)
    assert [(r.conversation_id, r.payload) for r in room] == [(gid, added)]
    told = deliveries(harness, ServerEvent.CONVERSATION_ADDED)
    assert [r.user_id for r in told] == [newcomer.user_id]
    assert isinstance(told[0].payload, ConversationAdded)
    assert told[0].payload.conversation.id == str(gid)
    assert told[0].payload.conversation.unread_count == 1

    with pytest.raises(errors.Conflict):
        await harness.shared.add_member(chief, gid, newcomer.user_id)
    with pytest.raises(errors.Conflict):
        await harness.shared.add_member(chief, gid, member.user_id)
    with pytest.raises(errors.Forbidden):
        await harness.shared.add_member(newcomer, gid, stranger.user_id)
    with pytest.raises(errors.NotFound):
        await harness.shared.add_member(chief, gid, uuid.uuid4())

    seen = await harness.shared.get(newcomer, gid)
    assert participants(seen) == {
        str(chief.user_id): "admin",
        str(member.user_id): "member",
        str(newcomer.user_id): "member",
    }
    assert await contents(harness, newcomer, gid) == [(str(chief.user_id), "Welcome")]

    direct, _ = await harness.shared.create_direct(chief, member.user_id)
    with pytest.raises(errors.NotSupported):
        await harness.shared.add_member(chief, uuid.UUID(direct.id), newcomer.user_id)


async def test_members_per_group_and_groups_per_user_are_limited(
    server_db: TempDatabase,
) -> None:
    async with chat_harness(
        server_db, SCRIPTED_DELAY_MS="0", MAX_GROUP_MEMBERS="3", MAX_GROUPS_PER_USER="2"
    ) as harness:
        chief, a, b, c = await people(harness, 4)
        with pytest.raises(errors.LimitExceeded):
            await group(harness, chief, a, b, c)
        full = await group(harness, chief, a, b)
        with pytest.raises(errors.LimitExceeded):
            await harness.shared.add_member(chief, full, c.user_id)

        second = await group(harness, chief, name="Second")
        with pytest.raises(errors.LimitExceeded):
            await group(harness, chief, name="Third")
        # Being added spends nobody's quota (else anyone could use up another's): `a`,
        # in the chief's group, still creates two of their own, not a third.
        await group(harness, a, name="A's")
        await group(harness, a, name="A's second")
        with pytest.raises(errors.LimitExceeded):
            await group(harness, a, name="A's third")
        # A deleted group no longer counts.
        await harness.chat.delete(chief, second)
        await group(harness, chief, name="Third, after a delete")


# ── keys ────────────────────────────────────────────────────────────────────


async def test_someone_without_a_key_pair_is_added_after_their_next_login(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    chief, member = await people(harness, 2)
    email, _late = await person(harness)
    late_id = _late.user_id
    # An account from before version 4: no key pair.
    await admin.execute("UPDATE users SET wrapped_private_key = NULL WHERE id = $1", late_id)
    await admin.execute("UPDATE profiles SET public_key = NULL WHERE user_id = $1", late_id)
    gid = await group(harness, chief, member)
    await harness.shared.send(member, gid, "before they came")
    count_created = "SELECT count(*) FROM conversations WHERE user_id = $1"
    before = await admin.fetchval(count_created, chief.user_id)

    with pytest.raises(errors.KeysMissing):
        await harness.shared.add_member(chief, gid, late_id)
    with pytest.raises(errors.KeysMissing):
        await group(harness, chief, member, _late, name="With the late one")
    with pytest.raises(errors.KeysMissing):
        await harness.shared.create_direct(chief, late_id)
    assert await admin.fetchval(count_created, chief.user_id) == before
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM conversation_members WHERE user_id = $1", late_id
        )
        == 0
    )

    login = await harness.accounts.login(email, PASSWORD, ip=None, user_agent=None)
    late = await harness.accounts.authenticate(login.token)
    await harness.shared.add_member(chief, gid, late_id)
    assert await contents(harness, late, gid) == [(str(member.user_id), "before they came")]
    direct, created = await harness.shared.create_direct(chief, late_id)
    assert created
    await harness.shared.send(late, uuid.UUID(direct.id), "hello")
    assert await contents(harness, chief, uuid.UUID(direct.id)) == [(str(late_id), "hello")]


async def test_a_member_added_while_offline_reads_the_whole_history_at_next_login(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    chief, member = await people(harness, 2)
    email, away = await person(harness)
    await harness.accounts.logout(away, ip=None)
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
            away.user_id,
        )
        == 0
    )
    gid = await group(harness, chief, member)
    history = [
        (chief, "First: the plan"),
        (member, "Second: grüße 👋"),
        (chief, "Third: " + "long " * 200),
    ]
    for sender, text in history:
        await harness.shared.send(sender, gid, text)
    await harness.shared.add_member(chief, gid, away.user_id)
    await harness.shared.send(member, gid, "Fourth, after the add")
    expected = [(str(s.user_id), t) for s, t in history] + [
        (str(member.user_id), "Fourth, after the add")
    ]

    login = await harness.accounts.login(email, PASSWORD, ip=None, user_agent=None)
    back = await harness.accounts.authenticate(login.token)
    listed, _ = await harness.shared.list_conversations(back, limit=50, offset=0)
    mine = {item.id: item for item in listed}
    assert mine[str(gid)].unread_count == len(expected)
    assert mine[str(gid)].title == "Neighbours"
    assert await contents(harness, back, gid) == expected
    view = await harness.chat.viewport(back, gid, from_seq=None, to_seq=None)
    assert view.integrity_valid
    assert [m.content for m in view.messages] == [t for _, t in expected]
    listed, _ = await harness.shared.list_conversations(back, limit=50, offset=0)
    assert {item.id: item.unread_count for item in listed}[str(gid)] == 0


async def test_a_password_change_keeps_shared_conversations_readable(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    chief = (await person(harness))[1]
    email, mover = await person(harness)
    gid = await group(harness, chief, mover)
    direct, _ = await harness.shared.create_direct(mover, chief.user_id)
    did = uuid.UUID(direct.id)
    ai = await harness.conversation(mover)
    await harness.shared.send(chief, gid, "in the group")
    await harness.shared.send(chief, did, "just us")
    before = await admin.fetchrow(
        "SELECT u.wrapped_private_key, p.public_key FROM users u"
        " JOIN profiles p ON p.user_id = u.id WHERE u.id = $1",
        mover.user_id,
    )

    await harness.accounts.change_password(mover, PASSWORD, NEW_PASSWORD, ip=None)

    after = await admin.fetchrow(
        "SELECT u.wrapped_private_key, p.public_key FROM users u"
        " JOIN profiles p ON p.user_id = u.id WHERE u.id = $1",
        mover.user_id,
    )
    assert after["public_key"] == before["public_key"]  # every sealed copy still opens
    assert after["wrapped_private_key"] != before["wrapped_private_key"]
    # The identity built before the change (a socket's) carries the retired data key.
    fresh = await harness.accounts.authenticate(
        (await harness.accounts.login(email, NEW_PASSWORD, ip=None, user_agent=None)).token
    )
    for reader in (mover, fresh):
        assert await contents(harness, reader, gid) == [(str(chief.user_id), "in the group")]
        assert await contents(harness, reader, did) == [(str(chief.user_id), "just us")]
        view = await harness.chat.viewport(reader, ai, from_seq=None, to_seq=None)
        assert view.integrity_valid
    await harness.shared.send(fresh, gid, "after the change")
    assert (await contents(harness, chief, gid))[-1] == (str(mover.user_id), "after the change")


# ── sending ─────────────────────────────────────────────────────────────────


async def test_a_send_tells_the_room_and_each_member_their_unread_count(
    harness: ChatHarness,
) -> None:
    _, a = await person(harness, "Ada")
    b, c = await people(harness, 2)
    gid = await group(harness, a, b, c)

    def unread_counts() -> dict[uuid.UUID | None, int]:
        found = {}
        for r in deliveries(harness, ServerEvent.CONVERSATION_UPDATED):
            assert isinstance(r.payload, ConversationUpdated)
            assert r.payload.conversation_id == str(gid)
            found[r.user_id] = r.payload.unread_count
        return found

    harness.broadcast.sent.clear()
    message, count, duplicate = await harness.shared.send(a, gid, "one", origin_sid="sid-a")
    assert (count, duplicate, message.sequence) == (1, False, 1)
    room = deliveries(harness, ServerEvent.MESSAGE_ADDED)
    assert len(room) == 1 and room[0].conversation_id == gid and room[0].sid == "sid-a"
    payload = room[0].payload
    assert isinstance(payload, MessageAdded)
    assert (payload.sequence, payload.role, payload.content) == (1, "user", "one")
    assert payload.conversation_id == str(gid) and payload.id == message.id
    assert payload.sender_id == str(a.user_id)
    assert isinstance(payload.sender, PublicUser) and payload.sender.id == str(a.user_id)
    assert payload.sender.name == "Ada"
    assert unread_counts() == {a.user_id: 0, b.user_id: 1, c.user_id: 1}
    updated = deliveries(harness, ServerEvent.CONVERSATION_UPDATED)[0].payload
    assert isinstance(updated, ConversationUpdated)
    assert updated.last_message.id == message.id and updated.last_message.preview == "one"

    harness.broadcast.sent.clear()
    await harness.shared.send(b, gid, "two")
    assert unread_counts() == {a.user_id: 1, b.user_id: 0, c.user_id: 2}

    assert [t for _, t in await contents(harness, c, gid)] == ["one", "two"]  # marks read
    harness.broadcast.sent.clear()
    await harness.shared.send(a, gid, "three")
    assert unread_counts() == {a.user_id: 0, b.user_id: 1, c.user_id: 1}


async def test_a_repeated_client_msg_id_stores_the_message_once(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    a, b = await people(harness, 2)
    gid = await group(harness, a, b)
    first, count, duplicate = await harness.shared.send(a, gid, "once", client_msg_id="msg-0001")
    assert not duplicate and count == 1
    harness.broadcast.sent.clear()
    again, count_again, duplicate_again = await harness.shared.send(
        a, gid, "once", client_msg_id="msg-0001"
    )
    assert duplicate_again and count_again == 1
    assert (again.id, again.sequence, again.content) == (first.id, 1, "once")
    assert deliveries(harness, ServerEvent.MESSAGE_ADDED) == []
    assert (
        await admin.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", gid) == 1
    )


async def test_a_client_msg_id_is_not_answered_with_another_members_message(
    harness: ChatHarness,
) -> None:
    """`clientMsgId` makes one sender's retry idempotent. Another member who sends with
    the same id (it is broadcast with the message, so anyone in the room knows it) must
    not be told their message was stored when it was someone else's."""
    a, b = await people(harness, 2)
    gid = await group(harness, a, b)
    await harness.shared.send(a, gid, "mine", client_msg_id="msg-shared")
    try:
        message, _, duplicate = await harness.shared.send(
            b, gid, "theirs", client_msg_id="msg-shared"
        )
    except errors.Conflict:
        return  # refused: fine
    assert (duplicate, message.sender_id, message.content) == (False, str(b.user_id), "theirs")


async def test_chat_begin_send_on_a_group_is_a_persons_message_without_a_reply(
    harness: ChatHarness,
) -> None:
    a, b = await people(harness, 2)
    gid = await group(harness, a, b)
    start = await harness.chat.begin_send(a, gid, "through chat", client_msg_id="chat-0001")
    assert start.generation is None and not start.duplicate
    assert (start.user_sequence, start.sequence, start.message_count) == (1, 1, 1)
    assert harness.generations.all() == []
    assert await contents(harness, b, gid) == [(str(a.user_id), "through chat")]
    repeat = await harness.chat.begin_send(a, gid, "through chat", client_msg_id="chat-0001")
    assert repeat.duplicate and repeat.generation is None and repeat.message_count == 1
    assert deliveries(harness, ServerEvent.AI_TOKEN) == []


async def test_what_groups_do_not_offer(harness: ChatHarness) -> None:
    chief, member = await people(harness, 2)
    gid = await group(harness, chief, member)
    await harness.shared.send(chief, gid, "keep me")
    with pytest.raises(errors.NotSupported):
        await harness.chat.edit(chief, gid, 1, "rewritten")
    with pytest.raises(errors.NotSupported):
        await privacy_service(harness).rotate_key(chief, gid)
    ai = await harness.conversation(chief)
    with pytest.raises(errors.NotSupported):
        await harness.shared.send(chief, ai, "people's send to an ai conversation")

    with pytest.raises(errors.Forbidden):
        await harness.chat.delete(member, gid)
    assert (await harness.shared.get(member, gid)).id == str(gid)
    direct, _ = await harness.shared.create_direct(chief, member.user_id)
    with pytest.raises(errors.NotSupported):
        await harness.chat.delete(member, uuid.UUID(direct.id))
    assert await contents(harness, member, gid) == [(str(chief.user_id), "keep me")]

    await harness.chat.delete(chief, gid)
    with pytest.raises(errors.NotFound):
        await harness.shared.get(member, gid)


async def test_non_members_get_not_found_everywhere(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    chief, member, outsider = await people(harness, 3)
    gid = await group(harness, chief, member)
    direct, _ = await harness.shared.create_direct(chief, member.user_id)
    did = uuid.UUID(direct.id)
    for cid in (gid, did):
        await harness.shared.send(member, cid, "members only")
    privacy = privacy_service(harness)
    attempts: dict[str, Callable[[uuid.UUID], Awaitable[object]]] = {
        "shared.get": lambda cid: harness.shared.get(outsider, cid),
        "shared.messages": lambda cid: harness.shared.messages(outsider, cid, limit=10),
        "shared.send": lambda cid: harness.shared.send(outsider, cid, "let me in"),
        "shared.add_member": lambda cid: harness.shared.add_member(
            outsider, cid, outsider.user_id
        ),
        "chat.begin_send": lambda cid: harness.chat.begin_send(outsider, cid, "let me in"),
        "chat.viewport": lambda cid: harness.chat.viewport(
            outsider, cid, from_seq=None, to_seq=None
        ),
        "chat.replay": lambda cid: harness.chat.replay(outsider, cid, 0),
        "chat.rename": lambda cid: harness.chat.rename(outsider, cid, "mine now"),
        "chat.edit": lambda cid: harness.chat.edit(outsider, cid, 1, "rewritten"),
        "chat.delete": lambda cid: harness.chat.delete(outsider, cid),
        "privacy.export": lambda cid: privacy.export_conversation(outsider, cid),
        "privacy.verify": lambda cid: privacy.verify(outsider, cid),
        "privacy.rotate_key": lambda cid: privacy.rotate_key(outsider, cid),
        "privacy.hard_delete": lambda cid: privacy.hard_delete(outsider, cid),
    }
    wrong: list[tuple[str, str, str]] = []
    for kind, cid in (("group", gid), ("direct", did)):
        for name, attempt in attempts.items():
            try:
                await attempt(cid)
            except errors.NotFound:
                continue
            except errors.ServiceError as exc:
                wrong.append((kind, name, type(exc).__name__))
            else:
                wrong.append((kind, name, "no error"))
    assert wrong == []
    listed, _ = await harness.shared.list_conversations(outsider, limit=50, offset=0)
    assert not {str(gid), str(did)} & {item.id for item in listed}
    records, _ = await harness.chat.list_conversations(outsider, limit=50, offset=0)
    assert not {gid, did} & {r.id for r in records}
    rows = await admin.fetch(
        "SELECT id, message_count, deleted_at, sealed_title FROM conversations"
        " WHERE id = ANY($1::uuid[]) ORDER BY id",
        [gid, did],
    )
    assert [(r["message_count"], r["deleted_at"]) for r in rows] == [(1, None), (1, None)]
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM conversation_members WHERE user_id = $1", outsider.user_id
        )
        == 0
    )
    for cid in (gid, did):
        assert await contents(harness, member, cid) == [(str(member.user_id), "members only")]


async def test_only_admins_rename_a_group_and_nobody_renames_or_erases_a_direct_one(
    harness: ChatHarness,
) -> None:
    chief, member = await people(harness, 2)
    gid = await group(harness, chief, member, name="Before")
    with pytest.raises(errors.Forbidden):
        await harness.chat.rename(member, gid, "Taken over")
    assert (await harness.shared.get(member, gid)).title == "Before"
    await harness.chat.rename(chief, gid, "After")
    assert (await harness.shared.get(member, gid)).title == "After"
    direct, _ = await harness.shared.create_direct(chief, member.user_id)
    did = uuid.UUID(direct.id)
    await harness.shared.send(member, did, "still here")
    for who in (chief, member):
        with pytest.raises(errors.NotSupported):
            await harness.chat.rename(who, did, "ours")
        with pytest.raises(errors.NotSupported):
            await privacy_service(harness).hard_delete(who, did)
    assert await contents(harness, chief, did) == [(str(member.user_id), "still here")]


async def test_erasing_an_account_hands_its_shared_conversations_to_another_member(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    creator_email, creator = await person(harness, "Creator")
    elder, younger = await people(harness, 2)
    gid = await group(harness, creator, elder)
    await harness.shared.add_member(creator, gid, younger.user_id)  # joins later
    await harness.shared.send(creator, gid, "from the creator")
    await harness.shared.send(younger, gid, "from the younger")
    direct, _ = await harness.shared.create_direct(creator, younger.user_id)
    did = uuid.UUID(direct.id)
    await harness.shared.send(creator, did, "just us")
    alone = await group(harness, creator, name="Only me")

    await privacy_service(harness).delete_account(creator, PASSWORD)

    # The group lives on: its longest-standing member is its creator and admin now, and
    # every message still reads and verifies for the others.
    item = await harness.shared.get(elder, gid)
    assert participants(item) == {str(elder.user_id): "admin", str(younger.user_id): "member"}
    assert await contents(harness, younger, gid) == [
        (None, "from the creator"),
        (str(younger.user_id), "from the younger"),
    ]
    view = await harness.chat.viewport(elder, gid, from_seq=None, to_seq=None)
    assert view.integrity_valid and [m.content for m in view.messages] == [
        "from the creator",
        "from the younger",
    ]
    creators = await admin.fetch(
        "SELECT id, user_id FROM conversations WHERE id = ANY($1::uuid[])", [gid, did, alone]
    )
    assert {r["id"]: r["user_id"] for r in creators} == {
        gid: elder.user_id,
        did: younger.user_id,
    }
    assert await admin.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1 AND user_id = $2",
        gid,
        elder.user_id,
    ) == 2
    # The direct conversation stays the other person's; the new admin adds people.
    assert await contents(harness, younger, did) == [(None, "just us")]
    newcomer = (await people(harness, 1))[0]
    await harness.shared.add_member(elder, gid, newcomer.user_id)
    # Nothing is left of the erased account.
    assert await admin.fetchval("SELECT count(*) FROM users WHERE email = $1", creator_email) == 0


async def test_sequences_past_postgresqls_integers_are_refused_or_answered_empty(
    harness: ChatHarness,
) -> None:
    chief, member = await people(harness, 2)
    gid = await group(harness, chief, member)
    await harness.shared.send(chief, gid, "one")
    for bound in ({"after": 2**31 - 1}, {"before": 2**31}, {"after": -1}):
        with pytest.raises(errors.InvalidInput):
            await harness.shared.messages(member, gid, limit=10, **bound)
    assert await harness.chat.replay(member, gid, 2**31 - 1) == []
    assert [m.content for m in await harness.chat.replay(member, gid, 0)] == ["one"]
