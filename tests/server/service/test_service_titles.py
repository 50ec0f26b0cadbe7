"""Titles are content: sealed at rest under their conversation's key, opened for each
reader (the wire is unchanged), sealed again by a key rotation, and version 2's clear
titles sealed in place at the owner's first login, list or read.

Also the one reusable seal of a short user-written field (`conversation_fields`)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from service_harness import ChatHarness, privacy_service

import crypto
from server.service import exceptions as errors
from server.service.conversation_fields import Purpose, open_field, seal_field
from server.service.identity import Identity
from server.service.privacy import PrivacyService

PASSWORD = "correct horse battery"
TITLE = "Trip to Lisbon: pastéis de nata 🥐"


@pytest.fixture
def privacy(harness: ChatHarness) -> PrivacyService:
    return privacy_service(harness)


async def _stored(admin: asyncpg.Connection, conversation_id: uuid.UUID) -> asyncpg.Record:
    row = await admin.fetchrow(
        "SELECT title, sealed_title, key_version FROM conversations WHERE id = $1",
        conversation_id,
    )
    assert row is not None
    return row


async def _titled(harness: ChatHarness, identity: Identity, title: str | None) -> uuid.UUID:
    record = await harness.chat.create_conversation(identity, title=title, model="scripted:3:0")
    assert record.title == title
    return record.id


async def test_a_title_is_stored_sealed_and_every_reader_sees_it(
    harness: ChatHarness, privacy: PrivacyService, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    conversation_id = await _titled(harness, alice, TITLE)
    untitled_id = await _titled(harness, alice, None)
    row = await _stored(admin, conversation_id)
    assert row["title"] is None and row["sealed_title"] is not None
    assert TITLE.encode() not in row["sealed_title"]
    assert b"Lisbon" not in row["sealed_title"]
    assert (await _stored(admin, untitled_id))["sealed_title"] is None

    listed, _ = await harness.chat.list_conversations(alice, limit=10, offset=0)
    assert {r.id: r.title for r in listed} == {conversation_id: TITLE, untitled_id: None}
    joined, _ = await harness.chat.open_for_join(alice, conversation_id)
    viewport = await harness.chat.viewport(alice, conversation_id, from_seq=None, to_seq=None)
    exported = await privacy.export_conversation(alice, conversation_id)
    account = await privacy.export_account(alice)
    assert joined.title == viewport.conversation.title == exported.conversation.title == TITLE
    assert {c.conversation.id: c.conversation.title for c in account.conversations} == {
        conversation_id: TITLE,
        untitled_id: None,
    }


async def test_a_rename_is_sealed_and_clearing_leaves_nothing(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    conversation_id = await _titled(harness, alice, "first")
    first = (await _stored(admin, conversation_id))["sealed_title"]
    renamed = await harness.chat.rename(alice, conversation_id, "second")
    assert renamed.title == "second"
    second = (await _stored(admin, conversation_id))["sealed_title"]
    assert second is not None and second != first and b"second" not in second
    listed, _ = await harness.chat.list_conversations(alice, limit=10, offset=0)
    assert [r.title for r in listed] == ["second"]
    cleared = await harness.chat.rename(alice, conversation_id, None)
    assert cleared.title is None
    row = await _stored(admin, conversation_id)
    assert (row["title"], row["sealed_title"]) == (None, None)


async def test_a_sealed_title_opens_only_in_its_own_conversation(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    """Copied into another of the owner's conversations (even one under the same key
    material would not help: the conversation id is bound), it reads as no title."""
    alice = await harness.person()
    source = await _titled(harness, alice, "secret plans")
    target = await _titled(harness, alice, "harmless")
    await admin.execute(
        "UPDATE conversations SET sealed_title = (SELECT sealed_title FROM conversations"
        " WHERE id = $1) WHERE id = $2",
        source,
        target,
    )
    listed, _ = await harness.chat.list_conversations(alice, limit=10, offset=0)
    assert {r.id: r.title for r in listed} == {source: "secret plans", target: None}


async def test_a_key_rotation_seals_the_title_again_under_the_new_key(
    harness: ChatHarness, privacy: PrivacyService, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    conversation_id = await _titled(harness, alice, TITLE)
    before = await _stored(admin, conversation_id)
    result = await privacy.rotate_key(alice, conversation_id)
    after = await _stored(admin, conversation_id)
    assert (result.key_version, after["key_version"]) == (2, 2)
    assert after["sealed_title"] != before["sealed_title"]
    listed, _ = await harness.chat.list_conversations(alice, limit=10, offset=0)
    assert [r.title for r in listed] == [TITLE]
    # the old sealed title belongs to version 1: under version 2 it does not open
    await admin.execute(
        "UPDATE conversations SET sealed_title = $2 WHERE id = $1",
        conversation_id,
        before["sealed_title"],
    )
    listed, _ = await harness.chat.list_conversations(alice, limit=10, offset=0)
    assert [r.title for r in listed] == [None]


async def test_a_rotation_refuses_a_title_that_does_not_open(
    harness: ChatHarness, privacy: PrivacyService, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    conversation_id = await _titled(harness, alice, TITLE)
    await admin.execute(
        "UPDATE conversations SET sealed_title = set_byte(sealed_title, 20,"
        " get_byte(sealed_title, 20) # 1) WHERE id = $1",
        conversation_id,
    )
    with pytest.raises(errors.Conflict, match="title does not decrypt"):
        await privacy.rotate_key(alice, conversation_id)
    assert (await _stored(admin, conversation_id))["key_version"] == 1


# ── version 2's clear titles ────────────────────────────────────────────────


async def _email(admin: asyncpg.Connection, identity: Identity) -> str:
    email: str = await admin.fetchval("SELECT email FROM users WHERE id = $1", identity.user_id)
    return email


async def _first_login(harness: ChatHarness, identity: Identity, admin: asyncpg.Connection) -> None:
    await harness.accounts.login(await _email(admin, identity), PASSWORD, ip=None, user_agent=None)


async def _first_list(harness: ChatHarness, identity: Identity, _: asyncpg.Connection) -> None:
    await harness.chat.list_conversations(identity, limit=1, offset=0)


async def _first_join(harness: ChatHarness, identity: Identity, admin: asyncpg.Connection) -> None:
    any_id = await admin.fetchval(
        "SELECT id FROM conversations WHERE user_id = $1 LIMIT 1", identity.user_id
    )
    await harness.chat.open_for_join(identity, any_id)


async def _first_viewport(
    harness: ChatHarness, identity: Identity, admin: asyncpg.Connection
) -> None:
    any_id = await admin.fetchval(
        "SELECT id FROM conversations WHERE user_id = $1 LIMIT 1", identity.user_id
    )
    await harness.chat.viewport(identity, any_id, from_seq=None, to_seq=None)


async def _first_export(harness: ChatHarness, identity: Identity, _: asyncpg.Connection) -> None:
    await privacy_service(harness).export_account(identity)


FirstUse = Callable[[ChatHarness, Identity, asyncpg.Connection], Awaitable[None]]


@pytest.mark.parametrize(
    "first_use",
    [_first_login, _first_list, _first_join, _first_viewport, _first_export],
    ids=["login", "list", "join", "viewport", "export"],
)
async def test_clear_titles_are_sealed_at_the_first_use_that_holds_the_data_key(
    harness: ChatHarness, admin: asyncpg.Connection, first_use: FirstUse
) -> None:
    alice, bob = await harness.person(), await harness.person()
    ids = [await _titled(harness, alice, None) for _ in range(3)]
    bobs = await _titled(harness, bob, None)
    titles = {ids[0]: "first in clear", ids[1]: "second in clear"}
    for conversation_id, title in [*titles.items(), (bobs, "bob's in clear")]:
        await admin.execute(
            "UPDATE conversations SET title = $2 WHERE id = $1", conversation_id, title
        )

    await first_use(harness, alice, admin)

    rows = await admin.fetch(
        "SELECT id, title, sealed_title FROM conversations WHERE user_id = $1", alice.user_id
    )
    assert all(row["title"] is None for row in rows)
    assert {row["id"] for row in rows if row["sealed_title"] is not None} == set(titles)
    listed, _ = await harness.chat.list_conversations(alice, limit=10, offset=0)
    assert {r.id: r.title for r in listed} == {**titles, ids[2]: None}
    # Bob's row is his alone to seal (row security), at his own first use.
    assert (await _stored(admin, bobs))["title"] == "bob's in clear"
    [record], _ = await harness.chat.list_conversations(bob, limit=10, offset=0)
    assert record.title == "bob's in clear"
    assert (await _stored(admin, bobs))["title"] is None


async def test_a_clear_title_whose_key_does_not_open_is_left_readable(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    good, broken = [await _titled(harness, alice, None) for _ in range(2)]
    for conversation_id in (good, broken):
        await admin.execute(
            "UPDATE conversations SET title = 'in clear' WHERE id = $1", conversation_id
        )
    await admin.execute(
        "UPDATE conversations SET wrapped_key = set_byte(wrapped_key, 20,"
        " get_byte(wrapped_key, 20) # 1) WHERE id = $1",
        broken,
    )
    listed, _ = await harness.chat.list_conversations(alice, limit=10, offset=0)
    assert {r.id: r.title for r in listed} == {good: "in clear", broken: "in clear"}
    assert (await _stored(admin, good))["title"] is None
    assert (await _stored(admin, broken))["title"] == "in clear"


# ── the reusable seal of a short field ──────────────────────────────────────


def test_a_field_opens_only_with_its_keys_conversation_and_version() -> None:
    conversation_id, other = uuid.uuid4(), uuid.uuid4()
    keys = crypto.derive_conversation_keys(crypto.new_key(), conversation_id, 1)
    sealed = seal_field(keys, conversation_id, 1, Purpose.TITLE, "ünïcode ✓")
    assert open_field(keys, conversation_id, 1, Purpose.TITLE, sealed) == "ünïcode ✓"
    assert seal_field(keys, conversation_id, 1, Purpose.TITLE, "ünïcode ✓") != sealed
    stranger = crypto.derive_conversation_keys(crypto.new_key(), conversation_id, 1)
    damaged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for attempt in (
        lambda: open_field(keys, other, 1, Purpose.TITLE, sealed),
        lambda: open_field(keys, conversation_id, 2, Purpose.TITLE, sealed),
        lambda: open_field(stranger, conversation_id, 1, Purpose.TITLE, sealed),
        lambda: open_field(keys, conversation_id, 1, Purpose.TITLE, damaged),
        lambda: open_field(keys, conversation_id, 1, Purpose.TITLE, sealed[:20]),
    ):
        with pytest.raises(crypto.InvalidToken):
            attempt()


def test_a_field_that_is_not_text_does_not_open() -> None:
    """Authenticated bytes that are not UTF-8 were never sealed by `seal_field`."""
    conversation_id = uuid.uuid4()
    keys = crypto.derive_conversation_keys(crypto.new_key(), conversation_id, 1)
    context = b"conversation-field:title\x00" + conversation_id.bytes + (1).to_bytes(4, "big")
    assert (
        open_field(
            keys, conversation_id, 1, Purpose.TITLE, crypto.seal_field(keys, b"ok", context=context)
        )
        == "ok"
    )
    sealed = crypto.seal_field(keys, b"\xff\xfe", context=context)
    with pytest.raises(crypto.InvalidToken, match="invalid message token"):
        open_field(keys, conversation_id, 1, Purpose.TITLE, sealed)
