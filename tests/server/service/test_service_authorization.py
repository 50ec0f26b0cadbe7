"""Who may do what, at the service: sessions (authenticate, logout, me, active sessions),
the owner's own view of a conversation next to everyone else's NotFound, and the
privacy operations' checks (password, missing user, audit trail, erasure).

Real PostgreSQL (row-level security decides what a caller sees), real crypto, the
scripted model; no socket, no HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from pg import TempDatabase
from service_harness import ChatHarness, privacy_service

import crypto
import storage
from server.service import exceptions as errors
from server.service.chat import REPLAY_LIMIT
from server.service.identity import Identity
from server.service.keyring import new_wrapped_conversation_key, open_conversation_keys
from server.service.privacy import ErasedAccount, PrivacyService

PASSWORD = "correct horse battery"  # what ChatHarness.person registers with


@pytest.fixture
def privacy(harness: ChatHarness) -> PrivacyService:
    return privacy_service(harness)


async def _login(harness: ChatHarness, email: str) -> str:
    return (await harness.accounts.login(email, PASSWORD, ip="127.0.0.2", user_agent="t")).token


async def _email(admin: asyncpg.Connection, identity: Identity) -> str:
    return str(await admin.fetchval("SELECT email FROM users WHERE id = $1", identity.user_id))


async def _audit(admin: asyncpg.Connection, action: str) -> list[dict[str, Any]]:
    rows = await admin.fetch(
        "SELECT user_id, conversation_id, details, ip FROM audit_log WHERE action = $1 ORDER BY id",
        action,
    )
    return [{**row, "details": json.loads(row["details"])} for row in rows]


async def _unauthorized(call: object) -> str:
    with pytest.raises(errors.Unauthorized) as caught:
        await call  # type: ignore[misc]
    return caught.value.message


async def _replied(harness: ChatHarness, identity: Identity, text: str = "hi") -> uuid.UUID:
    conversation_id = await harness.conversation(identity)
    start = await harness.chat.begin_send(identity, conversation_id, text)
    assert start.generation is not None and start.generation.task is not None
    await start.generation.task
    return conversation_id


# ── sessions ────────────────────────────────────────────────────────────────


async def test_authenticate_yields_the_sessions_own_identity_and_data_key(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    conversation_id = await _replied(harness, alice, "only alice reads this")
    token = await _login(harness, await _email(admin, alice))
    again = await harness.accounts.authenticate(token)
    assert again.user_id == alice.user_id and again.session_id != alice.session_id
    assert again.data_key == alice.data_key  # the same data key, unwrapped for this session
    [message, _] = await harness.chat.replay(again, conversation_id, 0)
    assert message.content == "only alice reads this"


async def test_touching_a_session_records_its_last_activity(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    token = await _login(harness, await _email(admin, alice))
    claims = crypto.verify_access_token(harness.settings.secret_key, token)
    await admin.execute(
        "UPDATE sessions SET last_seen_at = now() - interval '1 day' WHERE id = $1",
        claims.session_id,
    )

    async def last_seen() -> datetime:
        value = await admin.fetchval(
            "SELECT last_seen_at FROM sessions WHERE id = $1", claims.session_id
        )
        assert isinstance(value, datetime)
        return value

    await harness.accounts.authenticate(token)
    assert await last_seen() < datetime.now(UTC) - timedelta(hours=23)
    await harness.accounts.authenticate(token, touch=True)
    assert await last_seen() > datetime.now(UTC) - timedelta(minutes=1)


async def test_a_session_opened_at_login_is_stored_as_issued(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    email = await _email(admin, alice)
    login = await harness.accounts.login(email, PASSWORD, ip="198.51.100.7", user_agent="x" * 600)
    assert (login.user_id, login.email) == (alice.user_id, email)
    claims = crypto.verify_access_token(harness.settings.secret_key, login.token)
    row = await admin.fetchrow(
        "SELECT user_id, expires_at, ip, user_agent, wrapped_data_key FROM sessions WHERE id = $1",
        claims.session_id,
    )
    assert row is not None
    assert row["user_id"] == alice.user_id and row["ip"] == "198.51.100.7"
    assert row["user_agent"] == "x" * 512
    assert row["expires_at"] == login.expires_at == claims.expires_at
    ttl = timedelta(seconds=harness.settings.access_token_ttl_s)
    assert abs(login.expires_at - (datetime.now(UTC) + ttl)) < timedelta(seconds=5)
    # wrapped for this session only: the session key of another session does not open it
    own = crypto.session_wrapping_key(harness.settings.secret_key, claims.session_id)
    context = b"session-data-key:" + claims.session_id.bytes
    assert crypto.unwrap_key(own, row["wrapped_data_key"], context=context) == alice.data_key
    other = crypto.session_wrapping_key(harness.settings.secret_key, alice.session_id)
    with pytest.raises(crypto.KeyUnwrapError):
        crypto.unwrap_key(other, row["wrapped_data_key"], context=context)
    # no user agent at all is stored as none
    bare = await harness.accounts.login(email, PASSWORD, ip=None, user_agent="")
    bare_sid = crypto.verify_access_token(harness.settings.secret_key, bare.token).session_id
    assert await admin.fetchval("SELECT user_agent FROM sessions WHERE id = $1", bare_sid) is None


async def test_a_forged_expired_or_revoked_session_is_unauthorized(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice, mallory = await harness.person(), await harness.person()
    secret = harness.settings.secret_key
    assert await _unauthorized(harness.accounts.authenticate("not.a.jwt")) == (
        "Authentication failed: malformed token"
    )
    wrong_key, _ = crypto.issue_access_token(
        bytes(32), user_id=alice.user_id, session_id=alice.session_id, ttl=timedelta(minutes=1)
    )
    assert await _unauthorized(harness.accounts.authenticate(wrong_key)) == (
        "Authentication failed: invalid signature"
    )
    revoked = "Authentication failed: session expired or revoked"
    # mallory's id on alice's session, and a session id nobody has
    for user_id, session_id in ((mallory.user_id, alice.session_id), (alice.user_id, uuid.uuid4())):
        token, _ = crypto.issue_access_token(
            secret, user_id=user_id, session_id=session_id, ttl=timedelta(minutes=1)
        )
        assert await _unauthorized(harness.accounts.authenticate(token)) == revoked
    token = await _login(harness, await _email(admin, alice))
    sid = crypto.verify_access_token(secret, token).session_id
    await admin.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1", sid
    )
    assert await _unauthorized(harness.accounts.authenticate(token)) == revoked


async def test_a_damaged_session_key_is_unauthorized(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    token = await _login(harness, await _email(admin, alice))
    sid = crypto.verify_access_token(harness.settings.secret_key, token).session_id
    await admin.execute(
        "UPDATE sessions SET wrapped_data_key = set_byte(wrapped_data_key, 20,"
        " get_byte(wrapped_data_key, 20) # 1) WHERE id = $1",
        sid,
    )
    assert await _unauthorized(harness.accounts.authenticate(token)) == (
        "Authentication failed: session key invalid"
    )


async def test_logout_ends_only_the_callers_session_and_is_audited(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    email = await _email(admin, alice)
    kept, ended = await _login(harness, email), await _login(harness, email)
    leaving = await harness.accounts.authenticate(ended)
    await harness.accounts.logout(leaving, ip="203.0.113.5")
    await _unauthorized(harness.accounts.authenticate(ended))
    assert (await harness.accounts.authenticate(kept)).user_id == alice.user_id
    entries = [r for r in await _audit(admin, "logout") if r["user_id"] == alice.user_id]
    assert [r["ip"] for r in entries] == ["203.0.113.5"]
    assert await admin.fetchval(
        "SELECT revoked_at IS NOT NULL AND wrapped_data_key = ''::bytea FROM sessions"
        " WHERE id = $1",
        leaving.session_id,
    )


async def test_me_lists_the_callers_live_sessions(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice, bob = await harness.person(), await harness.person()
    email = await _email(admin, alice)
    second = await harness.accounts.authenticate(await _login(harness, email))
    user, sessions = await harness.accounts.me(second)
    assert (user.id, user.email) == (alice.user_id, email)
    assert {s.id for s in sessions} == {alice.session_id, second.session_id}
    await harness.accounts.logout(alice, ip=None)
    _, sessions = await harness.accounts.me(second)
    assert [s.id for s in sessions] == [second.session_id]
    _, bobs = await harness.accounts.me(bob)
    assert [s.id for s in bobs] == [bob.session_id]
    ghost = Identity(user_id=uuid.uuid4(), session_id=uuid.uuid4(), data_key=crypto.new_key())
    assert await _unauthorized(harness.accounts.me(ghost)) == (
        "Authentication failed: user not found"
    )


async def test_a_csrf_token_belongs_to_one_session_under_one_secret(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    login = await harness.accounts.login(
        await _email(admin, alice), PASSWORD, ip=None, user_agent=None
    )
    session = await harness.accounts.authenticate(login.token)
    assert login.session_id == session.session_id
    assert login.csrf_token == harness.accounts.csrf_token(session.session_id)
    expected = hmac.new(
        harness.settings.secret_key, b"csrf-token:" + session.session_id.bytes, hashlib.sha256
    ).digest()
    assert login.csrf_token == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
    assert harness.accounts.csrf_valid(session, login.csrf_token)
    assert not harness.accounts.csrf_valid(alice, login.csrf_token)  # another session's
    assert not harness.accounts.csrf_valid(session, login.csrf_token[:-1])
    assert not harness.accounts.csrf_valid(session, "")
    assert not harness.accounts.csrf_valid(session, None)


async def test_active_session_ids_keeps_only_the_users_live_ones(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice, bob = await harness.person(), await harness.person()
    second = await harness.accounts.authenticate(await _login(harness, await _email(admin, alice)))
    asked = [alice.session_id, second.session_id, bob.session_id, uuid.uuid4()]
    assert await harness.accounts.active_session_ids(alice.user_id, asked) == {
        alice.session_id,
        second.session_id,
    }
    await harness.accounts.logout(second, ip=None)
    assert await harness.accounts.active_session_ids(alice.user_id, asked) == {alice.session_id}
    assert await harness.accounts.active_session_ids(bob.user_id, asked) == {bob.session_id}


# ── conversations: the owner's view ─────────────────────────────────────────


async def test_the_owner_lists_pages_of_their_own_conversations(harness: ChatHarness) -> None:
    alice, bob = await harness.person(), await harness.person()
    mine = [await harness.conversation(alice) for _ in range(3)]
    await harness.conversation(bob)
    first, more = await harness.chat.list_conversations(alice, limit=2, offset=0)
    rest, no_more = await harness.chat.list_conversations(alice, limit=2, offset=2)
    assert (len(first), more, len(rest), no_more) == (2, True, 1, False)
    assert {r.id for r in first + rest} == set(mine)
    exact, exact_more = await harness.chat.list_conversations(alice, limit=3, offset=0)
    assert (len(exact), exact_more) == (3, False)


async def test_the_owner_renames_and_deletes_their_conversation(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice)
    renamed = await harness.chat.rename(alice, conversation_id, "Trip")
    assert (renamed.id, renamed.title) == (conversation_id, "Trip")
    cleared = await harness.chat.rename(alice, conversation_id, None)
    assert cleared.title is None
    deleted_at = await harness.chat.delete(alice, conversation_id)
    assert datetime.fromisoformat(deleted_at.replace("Z", "+00:00")) > datetime.now(UTC) - (
        timedelta(minutes=1)
    )
    with pytest.raises(errors.NotFound):
        await harness.chat.open_for_join(alice, conversation_id)
    with pytest.raises(errors.NotFound):
        await harness.chat.delete(alice, conversation_id)
    [entry] = [r for r in await _audit(admin, "delete") if r["conversation_id"] == conversation_id]
    assert entry["user_id"] == alice.user_id


async def test_deleting_stops_the_running_reply_for_good(harness: ChatHarness) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice, "scripted:200:5")
    start = await harness.chat.begin_send(alice, conversation_id, "long")
    assert start.generation is not None and start.generation.task is not None
    await harness.tokens_streamed(start.generation, 2)
    await harness.chat.delete(alice, conversation_id)
    assert start.generation.task.done()
    outcome = start.generation.task.result()
    assert not outcome.stored and isinstance(outcome.failure(), errors.Cancelled)


async def test_deleting_drops_a_reply_lock_held_by_another_instance(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    """Soft delete is still a row: only dropping the lock keeps a reply streaming on
    another instance from committing into it."""
    alice = await harness.person()
    conversation_id = await harness.conversation(alice)
    async with storage.user_tx(harness.pool, alice.user_id) as con:
        assert await storage.acquire_generation(
            con,
            conversation_id=conversation_id,
            user_id=alice.user_id,
            owner=uuid.uuid4(),
            sequence=2,
            ttl_seconds=60,
        )
    await harness.chat.delete(alice, conversation_id)
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM generation_locks WHERE conversation_id = $1", conversation_id
        )
        == 0
    )


async def test_joining_tells_whether_the_stored_root_is_the_last_link(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    empty = await harness.conversation(alice)
    record, root_ok = await harness.chat.open_for_join(alice, empty)
    assert (record.id, record.message_count, root_ok) == (empty, 0, True)
    conversation_id = await _replied(harness, alice)
    record, root_ok = await harness.chat.open_for_join(alice, conversation_id)
    assert (record.message_count, root_ok) == (2, True)
    await admin.execute(
        "UPDATE conversations SET merkle_root = $2 WHERE id = $1", conversation_id, bytes(32)
    )
    assert (await harness.chat.open_for_join(alice, conversation_id))[1] is False


async def test_replay_returns_at_most_the_replay_limit(
    harness: ChatHarness, server_db: TempDatabase
) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice)
    record, _ = await harness.chat.open_for_join(alice, conversation_id)
    keys = open_conversation_keys(alice, conversation_id, record.wrapped_key, record.key_version)
    link = None
    async with storage.user_tx(harness.pool, alice.user_id) as con:
        for seq in range(1, REPLAY_LIMIT + 3):
            token = crypto.pack(keys, conversation_id, seq, crypto.Role.USER, f"m{seq}")
            link = crypto.next_link(keys.integrity, link, token)
            await storage.insert_message(
                con,
                conversation_id=conversation_id,
                user_id=alice.user_id,
                seq=seq,
                role=int(crypto.Role.USER),
                token=token,
                link=link,
                client_msg_id=None,
            )
        await storage.set_head(
            con, conversation_id, message_count=REPLAY_LIMIT + 2, merkle_root=link
        )
    replayed = await harness.chat.replay(alice, conversation_id, 1)
    assert [m.sequence for m in replayed] == list(range(2, REPLAY_LIMIT + 2))
    assert replayed[-1].content == f"m{REPLAY_LIMIT + 1}"


async def test_stop_without_a_running_reply_is_false(harness: ChatHarness) -> None:
    alice = await harness.person()
    conversation_id = await _replied(harness, alice)
    assert await harness.chat.stop(alice, conversation_id) is False


# ── conversation keys ───────────────────────────────────────────────────────


def test_a_conversation_key_opens_only_for_its_owner_conversation_and_version() -> None:
    alice = Identity(uuid.uuid4(), uuid.uuid4(), crypto.new_key())
    mallory = Identity(uuid.uuid4(), uuid.uuid4(), crypto.new_key())
    conv, other = uuid.uuid4(), uuid.uuid4()
    wrapped = new_wrapped_conversation_key(alice, conv, 7)
    keys = open_conversation_keys(alice, conv, wrapped, 7)
    token = crypto.pack(keys, conv, 1, crypto.Role.USER, "x")
    # the wrapped key is bound to (conversation, version) as context
    key = crypto.unwrap_key(
        alice.data_key, wrapped, context=b"conversation-key:" + conv.bytes + (7).to_bytes(4, "big")
    )
    assert crypto.derive_conversation_keys(key, conv, 7) == keys
    assert crypto.unpack(keys, conv, token).content == "x"
    for attempt in (
        lambda: open_conversation_keys(mallory, conv, wrapped, 7),
        lambda: open_conversation_keys(alice, other, wrapped, 7),
        lambda: open_conversation_keys(alice, conv, wrapped, 8),
    ):
        with pytest.raises(crypto.KeyUnwrapError):
            attempt()
    first = new_wrapped_conversation_key(alice, conv)
    assert open_conversation_keys(alice, conv, first, 1) != open_conversation_keys(
        alice, conv, new_wrapped_conversation_key(alice, conv), 1
    )
    with pytest.raises(crypto.KeyUnwrapError):
        open_conversation_keys(alice, conv, first, 2)


# ── privacy ─────────────────────────────────────────────────────────────────


async def test_exports_are_the_owners_alone_and_audited(
    harness: ChatHarness, privacy: PrivacyService, admin: asyncpg.Connection
) -> None:
    alice, mallory = await harness.person(), await harness.person()
    conversation_id = await _replied(harness, alice, "export me")
    second = await _replied(harness, alice, "and me")
    export = await privacy.export_conversation(alice, conversation_id)
    assert export.conversation.id == conversation_id and export.report.valid
    assert export.messages[0].content == "export me"
    [entry] = [r for r in await _audit(admin, "export") if r["conversation_id"] == conversation_id]
    assert (entry["user_id"], entry["details"]) == (alice.user_id, {"messages": 2})
    report = await privacy.verify(alice, conversation_id)
    assert report.valid and report.message_count == 2
    for attempt in (
        privacy.export_conversation(mallory, conversation_id),
        privacy.verify(mallory, conversation_id),
        privacy.hard_delete(mallory, conversation_id),
    ):
        with pytest.raises(errors.NotFound):
            await attempt
    account = await privacy.export_account(alice)
    assert account.user.id == alice.user_id
    assert {c.conversation.id for c in account.conversations} == {conversation_id, second}
    [whole] = [r for r in await _audit(admin, "export_account") if r["user_id"] == alice.user_id]
    assert whole["details"] == {"conversations": 2}
    assert (await privacy.export_account(mallory)).conversations == []


async def test_an_account_export_skips_what_was_deleted_meanwhile(
    harness: ChatHarness, privacy: PrivacyService
) -> None:
    alice = await harness.person()
    ids = {await harness.conversation(alice) for _ in range(3)}
    real_read = privacy._read  # noqa: SLF001 - the race is made at the one read it hits
    deleted: list[uuid.UUID] = []

    async def read_after_deleting_the_first(identity, conversation_id, *, audit):  # type: ignore[no-untyped-def]
        if not deleted:  # the first one the export reads is deleted just before
            deleted.append(conversation_id)
            await harness.chat.delete(alice, conversation_id)
        return await real_read(identity, conversation_id, audit=audit)

    privacy._read = read_after_deleting_the_first  # type: ignore[method-assign]  # noqa: SLF001
    account = await privacy.export_account(alice)
    assert {c.conversation.id for c in account.conversations} == ids - set(deleted)
    assert len(account.conversations) == 2


async def test_deleting_a_missing_account_is_unauthorized(
    harness: ChatHarness, privacy: PrivacyService
) -> None:
    ghost = Identity(user_id=uuid.uuid4(), session_id=uuid.uuid4(), data_key=crypto.new_key())
    assert await _unauthorized(privacy.delete_account(ghost, PASSWORD)) == (
        "Authentication failed: user not found"
    )


async def test_exporting_a_missing_account_is_unauthorized(
    harness: ChatHarness, privacy: PrivacyService
) -> None:
    """Found by the mutation run: the audit entry used to be written first, and its
    foreign key failed (NOT_FOUND) before the user check was reached."""
    ghost = Identity(user_id=uuid.uuid4(), session_id=uuid.uuid4(), data_key=crypto.new_key())
    assert await _unauthorized(privacy.export_account(ghost)) == (
        "Authentication failed: user not found"
    )


async def test_an_account_deleted_twice_at_once_is_erased_once(
    harness: ChatHarness, privacy: PrivacyService
) -> None:
    """Both requests pass the password check; the one that comes second finds the user
    gone (in its erase transaction or, if late, at the check) and is Unauthorized."""
    alice = await harness.person()
    first, second = await asyncio.gather(
        privacy.delete_account(alice, PASSWORD),
        privacy.delete_account(alice, PASSWORD),
        return_exceptions=True,
    )
    outcomes = sorted([first, second], key=lambda r: isinstance(r, BaseException))
    assert isinstance(outcomes[0], ErasedAccount)
    assert isinstance(outcomes[1], errors.Unauthorized)
    assert outcomes[1].message == "Authentication failed: user not found"


async def test_hard_delete_records_what_it_destroyed(
    harness: ChatHarness, privacy: PrivacyService, admin: asyncpg.Connection
) -> None:
    alice = await harness.person()
    live = await _replied(harness, alice)
    gone = await _replied(harness, alice)
    await harness.chat.delete(alice, gone)
    before = datetime.now(UTC)
    assert (await privacy.hard_delete(alice, live)) >= before
    await privacy.hard_delete(alice, gone)
    entries = {
        r["conversation_id"]: r
        for r in await _audit(admin, "hard_delete")
        if r["user_id"] == alice.user_id
    }
    assert entries[live]["details"] == {"messages": 2, "wasSoftDeleted": False}
    assert entries[gone]["details"] == {"messages": 2, "wasSoftDeleted": True}
    with pytest.raises(errors.NotFound):
        await privacy.hard_delete(alice, live)


async def test_hard_delete_ends_a_running_reply(
    harness: ChatHarness, privacy: PrivacyService
) -> None:
    alice = await harness.person()
    conversation_id = await harness.conversation(alice, "scripted:200:5")
    start = await harness.chat.begin_send(alice, conversation_id, "long")
    assert start.generation is not None and start.generation.task is not None
    await harness.tokens_streamed(start.generation, 2)
    await privacy.hard_delete(alice, conversation_id)
    assert start.generation.task.done()
    assert not start.generation.task.result().stored


async def test_deleting_an_account_needs_the_password_and_erases_everything(
    harness: ChatHarness, privacy: PrivacyService, admin: asyncpg.Connection
) -> None:
    alice, bob = await harness.person(), await harness.person()
    kept = await _replied(harness, bob)
    first = await _replied(harness, alice)
    running = await harness.conversation(alice, "scripted:200:5")
    start = await harness.chat.begin_send(alice, running, "long")
    assert start.generation is not None and start.generation.task is not None
    await harness.tokens_streamed(start.generation, 2)
    with pytest.raises(errors.InvalidInput) as caught:
        await privacy.delete_account(alice, "wrong password")
    assert caught.value.message == "password: incorrect password"
    erased = await privacy.delete_account(alice, PASSWORD)
    assert set(erased.conversation_ids) == {first, running}
    assert erased.session_ids == [alice.session_id]
    assert start.generation.task.done()
    outcome = start.generation.task.result()
    assert not outcome.stored and isinstance(outcome.failure(), errors.Cancelled)
    [entry] = [
        r
        for r in await _audit(admin, "account_deleted")
        if r["details"].get("conversations") == 2 and r["details"].get("sessions") == 1
    ]
    assert entry["user_id"] is None
    assert await admin.fetchval("SELECT count(*) FROM users WHERE id = $1", alice.user_id) == 0
    assert len(await harness.chat.replay(bob, kept, 0)) == 2
