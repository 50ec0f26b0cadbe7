"""A password change rotates the data key: a new random data key, every conversation key
re-wrapped under it, the current session's copy re-wrapped, other sessions revoked, no
message touched, all in one transaction. The old password with an old copy of the
account row then opens a retired data key that opens nothing current.

And identities built before the change (a socket keeps one for its connection) go on
working: they pick the new data key up from their session row."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from polling import eventually
from service_harness import ChatHarness

import crypto
from server.service import exceptions as errors
from server.service.generation_tracker import LocalTracker
from server.service.identity import Identity
from server.service.privacy import PrivacyService

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def _user_context(user_id: uuid.UUID) -> bytes:
    return b"user-data-key:" + user_id.bytes


def _conversation_context(conversation_id: uuid.UUID, key_version: int) -> bytes:
    return b"conversation-key:" + conversation_id.bytes + key_version.to_bytes(4, "big")


async def _email(admin: asyncpg.Connection, identity: Identity) -> str:
    email: str = await admin.fetchval("SELECT email FROM users WHERE id = $1", identity.user_id)
    return email


async def _chat(harness: ChatHarness, identity: Identity, title: str, *texts: str) -> uuid.UUID:
    """A titled conversation with `texts` sent and answered."""
    record = await harness.chat.create_conversation(identity, title=title, model="scripted:4:0")
    for text in texts:
        start = await harness.chat.begin_send(identity, record.id, text)
        assert start.generation is not None and start.generation.task is not None
        assert (await start.generation.task).failure() is None
    return record.id


async def _login(harness: ChatHarness, email: str, password: str) -> Identity:
    login = await harness.accounts.login(email, password, ip=None, user_agent=None)
    return await harness.accounts.authenticate(login.token)


async def _ciphertexts(admin: asyncpg.Connection, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await admin.fetch(
        "SELECT conversation_id, seq, token, link FROM messages WHERE user_id = $1"
        " ORDER BY conversation_id, seq",
        user_id,
    )


async def test_the_old_password_and_account_row_open_nothing_after_a_change(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    email = f"rotation-{uuid.uuid4().hex[:12]}@example.com"
    registered = await harness.accounts.register(email, PASSWORD, ip=None, user_agent=None)
    alice = await harness.accounts.authenticate(registered.token)
    other_session = await _login(harness, email, PASSWORD)
    chats = {
        await _chat(harness, alice, "Lisbon", "three days in Lisbon", "and Porto?"): "Lisbon",
        await _chat(harness, alice, "Recipes", "pastéis de nata"): "Recipes",
    }
    deleted = await _chat(harness, alice, "Gone", "soon deleted")
    await harness.chat.delete(alice, deleted)
    old_row = await admin.fetchrow(
        "SELECT kek_salt, wrapped_data_key FROM users WHERE id = $1", alice.user_id
    )
    before = await _ciphertexts(admin, alice.user_id)
    assert len(before) == 2 * 4  # four sends: each the user's message and the reply

    revoked = await harness.accounts.change_password(alice, PASSWORD, NEW_PASSWORD, ip=None)
    assert revoked == [other_session.session_id]

    # The attacker's view: the old password and the account row as it was.
    old_kek = crypto.derive_kek(PASSWORD, old_row["kek_salt"])
    old_data_key = crypto.unwrap_key(
        old_kek, old_row["wrapped_data_key"], context=_user_context(alice.user_id)
    )
    assert old_data_key == alice.data_key
    rows = await admin.fetch(
        "SELECT id, wrapped_key, key_version FROM conversations WHERE user_id = $1",
        alice.user_id,
    )
    assert {row["id"] for row in rows} == {*chats, deleted}
    for row in rows:
        with pytest.raises(crypto.KeyUnwrapError):
            crypto.unwrap_key(
                old_data_key,
                row["wrapped_key"],
                context=_conversation_context(row["id"], row["key_version"]),
            )
        assert row["key_version"] == 1  # re-wrapped, not rotated
    with pytest.raises(crypto.KeyUnwrapError):
        crypto.unwrap_key(
            crypto.derive_kek(PASSWORD, old_row["kek_salt"]),
            await admin.fetchval("SELECT wrapped_data_key FROM users WHERE id = $1", alice.user_id),
            context=_user_context(alice.user_id),
        )
    with pytest.raises(errors.Unauthorized):
        await harness.accounts.login(email, PASSWORD, ip=None, user_agent=None)

    # The owner's view: the new password reads every message and title; the messages
    # are the very same bytes.
    fresh = await _login(harness, email, NEW_PASSWORD)
    assert fresh.data_key != old_data_key
    listed, _ = await harness.chat.list_conversations(fresh, limit=10, offset=0)
    assert {r.id: r.title for r in listed} == chats
    privacy = PrivacyService(harness.pool, LocalTracker(harness.generations))
    for conversation_id in chats:
        export = await privacy.export_conversation(fresh, conversation_id)
        assert export.report.valid
        assert all(m.content for m in export.messages)
    first = await harness.chat.viewport(fresh, next(iter(chats)), from_seq=None, to_seq=None)
    assert [m.content for m in first.messages][::2] == ["three days in Lisbon", "and Porto?"]
    assert await _ciphertexts(admin, alice.user_id) == before

    # The session that changed the password goes on, with the new key; the other is gone.
    assert (await harness.accounts.authenticate(registered.token)).data_key == fresh.data_key
    assert (
        await admin.fetchval(
            "SELECT wrapped_data_key FROM sessions WHERE id = $1", other_session.session_id
        )
        == b""
    )


async def _register(harness: ChatHarness) -> tuple[str, str, Identity]:
    """A new user: (email, token, the session's identity)."""
    email = f"rotation-{uuid.uuid4().hex[:12]}@example.com"
    login = await harness.accounts.register(email, PASSWORD, ip=None, user_agent=None)
    return email, login.token, await harness.accounts.authenticate(login.token)


async def test_an_identity_from_before_the_change_picks_up_the_new_data_key(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    """A socket keeps the identity it connected with; after a password change made in
    its own session (over REST) it still lists, joins, reads, renames and creates, and
    what it creates is wrapped under the new data key."""
    email, token, socket = await _register(harness)
    before = await _chat(harness, socket, "Before", "hello")
    rest = await harness.accounts.authenticate(token)
    await harness.accounts.change_password(rest, PASSWORD, NEW_PASSWORD, ip=None)
    current = await harness.accounts.authenticate(token)
    assert socket.data_key != current.data_key

    listed, _ = await harness.chat.list_conversations(socket, limit=10, offset=0)
    assert [r.title for r in listed] == ["Before"]
    joined, root_ok = await harness.chat.open_for_join(socket, before)
    assert joined.title == "Before" and root_ok
    view = await harness.chat.viewport(socket, before, from_seq=None, to_seq=None)
    assert view.integrity_valid and view.messages[0].content == "hello"
    assert (await harness.chat.rename(socket, before, "Renamed")).title == "Renamed"
    after = (await harness.chat.create_conversation(socket, title="After", model=None)).id

    fresh = await _login(harness, email, NEW_PASSWORD)
    listed, _ = await harness.chat.list_conversations(fresh, limit=10, offset=0)
    assert {r.id: r.title for r in listed} == {before: "Renamed", after: "After"}
    wrapped = await admin.fetchval("SELECT wrapped_key FROM conversations WHERE id = $1", after)
    crypto.unwrap_key(fresh.data_key, wrapped, context=_conversation_context(after, 1))
    with pytest.raises(crypto.KeyUnwrapError):
        crypto.unwrap_key(socket.data_key, wrapped, context=_conversation_context(after, 1))


async def test_a_revoked_session_can_neither_read_nor_create_after_the_change(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    email, _, alice = await _register(harness)
    conversation_id = await _chat(harness, alice, "Mine")
    elsewhere = await _login(harness, email, PASSWORD)
    await harness.accounts.change_password(alice, PASSWORD, NEW_PASSWORD, ip=None)
    with pytest.raises(errors.Unauthorized):
        await harness.chat.create_conversation(elsewhere, title="planted", model=None)
    with pytest.raises(errors.Unauthorized):
        await harness.chat.open_for_join(elsewhere, conversation_id)
    assert (
        await admin.fetchval("SELECT count(*) FROM conversations WHERE user_id = $1", alice.user_id)
        == 1
    )


async def test_two_changes_at_once_leave_exactly_one_password_and_every_key_under_it(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    email, _, alice = await _register(harness)
    conversation_id = await _chat(harness, alice, "Shared", "one")
    candidates = ["first new passphrase", "second new passphrase"]
    results = await asyncio.gather(
        *(harness.accounts.change_password(alice, PASSWORD, p, ip=None) for p in candidates),
        return_exceptions=True,
    )
    won = [p for p, r in zip(candidates, results, strict=True) if isinstance(r, list)]
    lost = [r for r in results if not isinstance(r, list)]
    assert len(won) == 1, results
    assert len(lost) == 1 and isinstance(lost[0], errors.Conflict | errors.InvalidInput), lost
    loser = next(p for p in candidates if p not in won)
    with pytest.raises(errors.Unauthorized):
        await harness.accounts.login(email, loser, ip=None, user_agent=None)
    winner = await _login(harness, email, won[0])
    view = await harness.chat.viewport(winner, conversation_id, from_seq=None, to_seq=None)
    assert view.conversation.title == "Shared" and view.messages[0].content == "one"


async def test_a_key_that_does_not_open_stops_the_change_and_changes_nothing(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    email, token, alice = await _register(harness)
    good = await _chat(harness, alice, "Good", "fine")
    broken = await _chat(harness, alice, "Broken")
    elsewhere = await _login(harness, email, PASSWORD)
    await admin.execute(
        "UPDATE conversations SET wrapped_key = set_byte(wrapped_key, 20,"
        " get_byte(wrapped_key, 20) # 1) WHERE id = $1",
        broken,
    )
    state = (
        "SELECT (SELECT row(kek_salt, wrapped_data_key, password_hash)::text FROM users"
        "   WHERE id = $1),"
        " (SELECT array_agg(row(id, wrapped_data_key, revoked_at)::text ORDER BY id)"
        "   FROM sessions WHERE user_id = $1),"
        " (SELECT array_agg(row(id, wrapped_key)::text ORDER BY id) FROM conversations"
        "   WHERE user_id = $1)"
    )
    before = await admin.fetchrow(state, alice.user_id)
    with pytest.raises(errors.Conflict, match="key does not open"):
        await harness.accounts.change_password(alice, PASSWORD, NEW_PASSWORD, ip=None)
    assert await admin.fetchrow(state, alice.user_id) == before
    await harness.accounts.authenticate(token)
    view = await harness.chat.viewport(elsewhere, good, from_seq=None, to_seq=None)
    assert view.messages[0].content == "fine"


# ── races with a password change, made deterministic by holding its locks ──


async def _waiting_on_a_lock(admin: asyncpg.Connection) -> bool:
    """Whether one of the service's connections is blocked on a row lock right now."""
    waiting: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'scca' AND wait_event_type = 'Lock'"
    )
    return waiting > 0


async def test_a_conversation_created_during_a_change_is_wrapped_under_the_new_key(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    """The change holds the session row from its first statement; a create waits for it
    and then wraps its key under the new data key, never under the retired one."""
    _, _, alice = await _register(harness)
    new_data_key = crypto.new_key()
    session_context = b"session-data-key:" + alice.session_id.bytes
    async with admin.transaction():
        await admin.execute(
            "UPDATE sessions SET wrapped_data_key = $2 WHERE id = $1",
            alice.session_id,
            crypto.wrap_key(alice.session_key, new_data_key, context=session_context),
        )
        create = asyncio.create_task(
            harness.chat.create_conversation(alice, title="racing", model=None)
        )
        await eventually(lambda: _waiting_on_a_lock(admin), what="the create to wait")
    record = await create
    assert record.title == "racing"
    context = _conversation_context(record.id, 1)
    crypto.unwrap_key(new_data_key, record.wrapped_key, context=context)
    with pytest.raises(crypto.KeyUnwrapError):
        crypto.unwrap_key(alice.data_key, record.wrapped_key, context=context)


async def test_a_login_overlapping_a_change_opens_no_session_on_the_retired_key(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    email, _, alice = await _register(harness)
    sessions = "SELECT count(*) FROM sessions WHERE user_id = $1"
    before = await admin.fetchval(sessions, alice.user_id)
    async with admin.transaction():
        # What a password change does to the row, committed while the login is under way.
        await admin.execute(
            "UPDATE users SET kek_salt = $2, wrapped_data_key = $3 WHERE id = $1",
            alice.user_id,
            crypto.new_salt(),
            crypto.new_key() + bytes(29),
        )
        login = asyncio.create_task(
            harness.accounts.login(email, PASSWORD, ip=None, user_agent=None)
        )
        await eventually(lambda: _waiting_on_a_lock(admin), what="the login to wait")
    with pytest.raises(errors.Unauthorized):
        await login
    assert await admin.fetchval(sessions, alice.user_id) == before
