"""A password change rotates the data key: a new random data key, every conversation key
re-wrapped under it, the current session's copy re-wrapped, other sessions revoked, no
message touched, all in one transaction. The old password with an old copy of the
account row then opens a retired data key that opens nothing current.

And identities built before the change (a socket keeps one for its connection) go on
working: they pick the new data key up from their session row."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from polling import eventually
from service_harness import ChatHarness, local_throttle, privacy_service

import crypto
from server.service import exceptions as errors
from server.service.accounts import Accounts
from server.service.identity import Identity

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
    privacy = privacy_service(harness)
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


async def _lock_waiters(admin: asyncpg.Connection) -> int:
    """How many of the service's connections are blocked on a lock right now.

    Fresh on every call, also inside a transaction (which otherwise keeps reading the
    statistics snapshot it took first)."""
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    waiting: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'scca' AND wait_event_type = 'Lock'"
    )
    return waiting


async def _waiting_on_a_lock(admin: asyncpg.Connection) -> bool:
    """Whether one of the service's connections is blocked on a row lock right now."""
    return await _lock_waiters(admin) > 0


async def _lock_waiters_at_least(admin: asyncpg.Connection, count: int) -> bool:
    return await _lock_waiters(admin) >= count


async def _done_or_waiting(
    task: asyncio.Task[Any], admin: asyncpg.Connection, waiters: int
) -> bool:
    """Whether `task` has finished, or a lock holds up `waiters` service connections."""
    return task.done() or await _lock_waiters(admin) >= waiters


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


async def test_a_login_committing_during_a_change_is_revoked_by_it(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    """A login that holds the account row when a change begins: the change waits for
    it to commit and then revokes the session it opened, whose copy is of the retired
    data key. (Revoking before the account row was locked missed that session.)"""
    email, token, alice = await _register(harness)
    async with admin.transaction():
        # Holds the login after it locked the account row and wrote its session, before
        # it commits (its audit entry is its last statement).
        await admin.execute("LOCK TABLE audit_log IN SHARE MODE")
        login = asyncio.create_task(
            harness.accounts.login(email, PASSWORD, ip=None, user_agent=None)
        )
        await eventually(lambda: _lock_waiters_at_least(admin, 1), what="the login to wait")
        change = asyncio.create_task(
            harness.accounts.change_password(alice, PASSWORD, NEW_PASSWORD, ip=None)
        )
        await eventually(lambda: _lock_waiters_at_least(admin, 2), what="the change to wait")
    late = await login
    revoked = await change
    assert revoked == [late.session_id]
    with pytest.raises(errors.Unauthorized):
        await harness.accounts.authenticate(late.token)
    assert (
        await admin.fetchval("SELECT wrapped_data_key FROM sessions WHERE id = $1", late.session_id)
        == b""
    )
    current = await harness.accounts.authenticate(token)
    assert current.data_key == (await _login(harness, email, NEW_PASSWORD)).data_key


async def test_two_changes_from_two_sessions_at_once_one_wins_one_conflicts(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    """Each change used to re-wrap its own session row and then wait on the other's to
    revoke it: a deadlock, a storage error, a 500. Now both queue on the account row and
    the second finds the keys it read replaced: Conflict, and nothing of it is kept."""
    email, first_token, first = await _register(harness)
    conversation_id = await _chat(harness, first, "Shared", "one")
    second_login = await harness.accounts.login(email, PASSWORD, ip=None, user_agent=None)
    second = await harness.accounts.authenticate(second_login.token)
    candidates = {
        first_token: (first, "first new passphrase"),
        second_login.token: (second, "second new passphrase"),
    }
    async with admin.transaction():
        await admin.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", first.user_id)
        changes = {
            token: asyncio.create_task(
                harness.accounts.change_password(identity, PASSWORD, password, ip=None)
            )
            for token, (identity, password) in candidates.items()
        }
        await eventually(
            lambda: _lock_waiters_at_least(admin, 2), what="both changes to wait on the account"
        )
    results = dict(
        zip(
            changes,
            await asyncio.gather(*changes.values(), return_exceptions=True),
            strict=True,
        )
    )
    won = [token for token, result in results.items() if isinstance(result, list)]
    lost = [token for token in results if token not in won]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(results[lost[0]], errors.Conflict), results
    [winner_token], [loser_token] = won, lost
    assert results[winner_token] == [candidates[loser_token][0].session_id]

    with pytest.raises(errors.Unauthorized):
        await harness.accounts.authenticate(loser_token)
    with pytest.raises(errors.Unauthorized):
        await harness.accounts.login(email, candidates[loser_token][1], ip=None, user_agent=None)
    kept = await harness.accounts.authenticate(winner_token)
    fresh = await _login(harness, email, candidates[winner_token][1])
    assert kept.data_key == fresh.data_key
    view = await harness.chat.viewport(fresh, conversation_id, from_seq=None, to_seq=None)
    assert view.conversation.title == "Shared" and view.messages[0].content == "one"


OLD_SECRET = b"old-secret-key-that-is-long-enough-0123456789"
NEW_SECRET = b"new-secret-key-that-is-long-enough-9876543210"


async def test_a_change_during_a_secret_rotation_keeps_the_callers_session(
    harness: ChatHarness,
) -> None:
    """Mid-rotation of SECRET_KEY a session opened under the old secret has its data key
    wrapped under a key derived from the old secret; the change must re-wrap it under
    that same key, not one derived from the current secret."""
    ttl = timedelta(minutes=5)
    before = Accounts(
        harness.pool,
        OLD_SECRET,
        token_ttl=ttl,
        throttle=local_throttle(),
        accepted_secrets=(NEW_SECRET,),
    )
    after = Accounts(
        harness.pool,
        NEW_SECRET,
        token_ttl=ttl,
        throttle=local_throttle(),
        accepted_secrets=(OLD_SECRET,),
    )
    email = f"rotation-{uuid.uuid4().hex[:12]}@example.com"
    registered = await before.register(email, PASSWORD, ip=None, user_agent=None)
    alice = await after.authenticate(registered.token)
    conversation_id = await _chat(harness, alice, "Kept", "still here")

    await after.change_password(alice, PASSWORD, NEW_PASSWORD, ip=None)

    fresh = await after.login(email, NEW_PASSWORD, ip=None, user_agent=None)
    new_data_key = (await after.authenticate(fresh.token)).data_key
    for accounts in (after, before):
        same = await accounts.authenticate(registered.token)
        assert same.data_key == new_data_key
    view = await harness.chat.viewport(alice, conversation_id, from_seq=None, to_seq=None)
    assert view.messages[0].content == "still here"


async def test_a_change_waits_for_a_rotation_holding_its_session_and_both_complete(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    """Lock order (keyring): the change takes the account row, then its session row,
    which a key rotation holds FOR SHARE; the rotation never asks for the account row,
    so the change simply waits and re-wraps the rotated key."""
    email, token, alice = await _register(harness)
    conversation_id = await _chat(harness, alice, "Rotating", "one", "two")
    privacy = privacy_service(harness)
    async with admin.transaction():
        # Holds the rotation mid-way: session row FOR SHARE, conversation FOR UPDATE.
        await admin.execute(
            "SELECT 1 FROM messages WHERE conversation_id = $1 AND seq = 2 FOR SHARE",
            conversation_id,
        )
        rotation = asyncio.create_task(privacy.rotate_key(alice, conversation_id))
        await eventually(lambda: _lock_waiters_at_least(admin, 1), what="the rotation to wait")
        change = asyncio.create_task(
            harness.accounts.change_password(alice, PASSWORD, NEW_PASSWORD, ip=None)
        )
        await eventually(lambda: _lock_waiters_at_least(admin, 2), what="the change to wait")
    assert (await rotation).key_version == 2
    assert await change == []
    fresh = await _login(harness, email, NEW_PASSWORD)
    assert (await harness.accounts.authenticate(token)).data_key == fresh.data_key
    view = await harness.chat.viewport(fresh, conversation_id, from_seq=None, to_seq=None)
    assert view.integrity_valid
    assert [m.content for m in view.messages][::2] == ["one", "two"]


async def test_a_change_waits_for_a_create_holding_its_session_and_rewraps_its_key(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    email, _, alice = await _register(harness)
    async with admin.transaction():
        # Holds the create after it locked its session row and wrote the conversation.
        await admin.execute("LOCK TABLE audit_log IN SHARE MODE")
        create = asyncio.create_task(
            harness.chat.create_conversation(alice, title="racing", model=None)
        )
        await eventually(lambda: _lock_waiters_at_least(admin, 1), what="the create to wait")
        change = asyncio.create_task(
            harness.accounts.change_password(alice, PASSWORD, NEW_PASSWORD, ip=None)
        )
        await eventually(lambda: _lock_waiters_at_least(admin, 2), what="the change to wait")
    record = await create
    await change
    fresh = await _login(harness, email, NEW_PASSWORD)
    listed, _ = await harness.chat.list_conversations(fresh, limit=10, offset=0)
    assert [(r.id, r.title) for r in listed] == [(record.id, "racing")]


async def test_a_socket_connects_while_its_session_rotates_a_key(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    """A rotation holds its session row FOR SHARE for its whole run; a socket connecting
    on that session (authenticate with touch) must not wait for it: last_seen is best
    effort and a locked row is skipped."""
    _, token, alice = await _register(harness)
    conversation_id = await _chat(harness, alice, "Long", "one")
    privacy = privacy_service(harness)
    last_seen = "SELECT last_seen_at FROM sessions WHERE id = $1"
    seen_before = await admin.fetchval(last_seen, alice.session_id)
    async with admin.transaction():
        await admin.execute(
            "SELECT 1 FROM messages WHERE conversation_id = $1 AND seq = 1 FOR SHARE",
            conversation_id,
        )
        rotation = asyncio.create_task(privacy.rotate_key(alice, conversation_id))
        await eventually(lambda: _lock_waiters_at_least(admin, 1), what="the rotation to wait")
        connect = asyncio.create_task(harness.accounts.authenticate(token, touch=True))
        await eventually(
            lambda: _done_or_waiting(connect, admin, 2), what="the connect to end or wait"
        )
        connected_during_rotation = connect.done()
    connected = await connect
    assert (await rotation).key_version == 2
    assert connected_during_rotation, "the connect waited for the rotation"
    assert connected.session_id == alice.session_id
    assert await admin.fetchval(last_seen, alice.session_id) == seen_before  # skipped
    await harness.accounts.authenticate(token, touch=True)
    assert await admin.fetchval(last_seen, alice.session_id) > seen_before
