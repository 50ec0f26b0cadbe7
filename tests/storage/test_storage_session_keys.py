"""Session copies of the data key: never handed out once expired, blanked by the sweep's
narrow door (blank_expired_session_keys, owned by scca_session_sweep), re-wrapped on a
password change."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from polling import eventually
from storage_helpers import new_user

from storage import (
    SessionRecord,
    StorageError,
    UserRecord,
    anonymous_tx,
    blank_expired_session_keys,
    create_session,
    get_active_session,
    list_active_sessions,
    rewrap_session_key,
    touch_session,
    user_tx,
)

SWEEP_ROLE = "scca_session_sweep"
FUNCTION = "blank_expired_session_keys(integer)"


async def _session(
    pool: asyncpg.Pool, user: UserRecord, *, expires_in: timedelta, key: bytes = b"wrapped"
) -> SessionRecord:
    async with user_tx(pool, user.id) as con:
        return await create_session(
            con,
            session_id=uuid.uuid4(),
            user_id=user.id,
            wrapped_data_key=key,
            expires_at=datetime.now(UTC) + expires_in,
            ip=None,
            user_agent=None,
        )


async def _key(admin: asyncpg.Connection, session_id: uuid.UUID) -> bytes:
    key: bytes = await admin.fetchval(
        "SELECT wrapped_data_key FROM sessions WHERE id = $1", session_id
    )
    return key


async def test_the_sweep_blanks_expired_keys_and_keeps_live_ones(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user = await new_user(pool)
    live = await _session(pool, user, expires_in=timedelta(hours=1), key=b"live key")
    expired = [
        await _session(pool, user, expires_in=-timedelta(seconds=s), key=b"old key") for s in (1, 2)
    ]
    async with anonymous_tx(pool) as con:
        assert await blank_expired_session_keys(con, 100) >= 2
    assert [await _key(admin, s.id) for s in expired] == [b"", b""]
    assert await _key(admin, live.id) == b"live key"
    async with anonymous_tx(pool) as con:
        assert await blank_expired_session_keys(con, 100) == 0  # nothing left to blank


async def test_the_sweep_works_in_batches_oldest_first(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    async with anonymous_tx(pool) as con:
        await blank_expired_session_keys(con, 1000)  # what earlier tests left expired
    user = await new_user(pool)
    older = await _session(pool, user, expires_in=-timedelta(minutes=2))
    newer = await _session(pool, user, expires_in=-timedelta(minutes=1))
    async with anonymous_tx(pool) as con:
        assert await blank_expired_session_keys(con, 1) == 1
    assert (await _key(admin, older.id), await _key(admin, newer.id)) == (b"", b"wrapped")
    async with anonymous_tx(pool) as con:
        assert await blank_expired_session_keys(con, 1) == 1
        assert await blank_expired_session_keys(con, 1) == 0
    assert await _key(admin, newer.id) == b""


async def test_the_sweep_skips_a_row_held_by_someone_else(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user = await new_user(pool)
    expired = await _session(pool, user, expires_in=-timedelta(seconds=1))
    async with admin.transaction():
        await admin.execute("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", expired.id)
        async with anonymous_tx(pool) as con:
            await blank_expired_session_keys(con, 1000)  # returns at once: no waiting
    assert await _key(admin, expired.id) == b"wrapped"
    async with anonymous_tx(pool) as con:
        assert await blank_expired_session_keys(con, 1000) >= 1
    assert await _key(admin, expired.id) == b""


async def test_reads_never_hand_out_an_expired_session_before_the_sweep(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user = await new_user(pool)
    expired = await _session(pool, user, expires_in=-timedelta(seconds=1))
    before = await admin.fetchval("SELECT last_seen_at FROM sessions WHERE id = $1", expired.id)
    async with user_tx(pool, user.id) as con:
        assert await get_active_session(con, expired.id) is None
        assert await get_active_session(con, expired.id, for_share=True) is None
        assert await list_active_sessions(con, user.id) == []
        await touch_session(con, expired.id)
        assert await rewrap_session_key(con, expired.id, b"new") is False
    assert await _key(admin, expired.id) == b"wrapped"  # still there: only the sweep blanks
    after = await admin.fetchval("SELECT last_seen_at FROM sessions WHERE id = $1", expired.id)
    assert after == before


async def _touch(pool: asyncpg.Pool, user: UserRecord, session_id: uuid.UUID) -> bool:
    async with user_tx(pool, user.id) as con:
        return await touch_session(con, session_id)


async def _done_or_waiting(task: asyncio.Task[bool], admin: asyncpg.Connection) -> bool:
    """Whether `task` has finished, or an app connection is blocked on a lock."""
    if task.done():
        return True
    await admin.execute("SELECT pg_stat_clear_snapshot()")  # not the transaction's first
    waiting: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'scca' AND wait_event_type = 'Lock'"
    )
    return waiting > 0


async def test_touch_skips_a_session_row_someone_else_holds(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    """A key rotation holds its session row FOR SHARE for its whole run; recording
    activity is best effort and must not wait for it (a socket connect touches)."""
    user = await new_user(pool)
    live = await _session(pool, user, expires_in=timedelta(hours=1))
    last_seen = "SELECT last_seen_at FROM sessions WHERE id = $1"
    before = await admin.fetchval(last_seen, live.id)
    async with admin.transaction():
        await admin.execute("SELECT 1 FROM sessions WHERE id = $1 FOR SHARE", live.id)
        touch = asyncio.create_task(_touch(pool, user, live.id))
        await eventually(lambda: _done_or_waiting(touch, admin), what="the touch to end or wait")
        done_while_held = touch.done()
    touched_while_held = await touch
    assert done_while_held, "the touch waited for the row lock"
    assert touched_while_held is False
    assert await admin.fetchval(last_seen, live.id) == before
    assert await _touch(pool, user, live.id) is True
    assert await admin.fetchval(last_seen, live.id) > before


async def test_touch_leaves_revoked_expired_and_others_sessions_alone(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user, other = await new_user(pool), await new_user(pool)
    live = await _session(pool, user, expires_in=timedelta(hours=1))
    expired = await _session(pool, user, expires_in=-timedelta(seconds=1))
    revoked = await _session(pool, user, expires_in=timedelta(hours=1))
    await admin.execute("UPDATE sessions SET revoked_at = now() WHERE id = $1", revoked.id)
    assert await _touch(pool, other, live.id) is False  # row security
    assert await _touch(pool, user, expired.id) is False
    assert await _touch(pool, user, revoked.id) is False
    assert await _touch(pool, user, uuid.uuid4()) is False
    seen = await admin.fetch(
        "SELECT last_seen_at = created_at AS untouched FROM sessions WHERE id = ANY($1)",
        [live.id, expired.id, revoked.id],
    )
    assert [row["untouched"] for row in seen] == [True, True, True]


async def test_rewrap_replaces_a_live_key_only(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user, other = await new_user(pool), await new_user(pool)
    live = await _session(pool, user, expires_in=timedelta(hours=1))
    async with user_tx(pool, other.id) as con:
        assert await rewrap_session_key(con, live.id, b"planted") is False  # row security
    async with user_tx(pool, user.id) as con:
        assert await rewrap_session_key(con, live.id, b"rewrapped") is True
    assert await _key(admin, live.id) == b"rewrapped"


async def test_a_session_read_for_share_cannot_be_rewritten_meanwhile(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user = await new_user(pool)
    live = await _session(pool, user, expires_in=timedelta(hours=1))
    async with user_tx(pool, user.id) as con:
        assert await get_active_session(con, live.id, for_share=True) is not None
        with pytest.raises(asyncpg.LockNotAvailableError):
            await admin.execute("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE NOWAIT", live.id)
    async with user_tx(pool, user.id) as con:
        assert await get_active_session(con, live.id) is not None
        await admin.execute("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE NOWAIT", live.id)


# ── the narrow door ─────────────────────────────────────────────────────────


async def test_the_sweep_function_is_a_narrow_security_definer(
    admin: asyncpg.Connection,
) -> None:
    fn = await admin.fetchrow(
        "SELECT p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) AS owner,"
        " has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,"
        " has_function_privilege('scca_app', p.oid, 'EXECUTE') AS app_exec"
        " FROM pg_proc p WHERE p.oid = to_regprocedure($1)",
        FUNCTION,
    )
    assert fn is not None
    assert (fn["prosecdef"], fn["owner"], fn["public_exec"], fn["app_exec"]) == (
        True,
        SWEEP_ROLE,
        False,
        True,
    )
    assert fn["proconfig"] == ["search_path=pg_catalog, public, pg_temp"]
    role = await admin.fetchrow(
        "SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", SWEEP_ROLE
    )
    assert role is not None and tuple(role.values()) == (False, False, False)


async def test_the_sweep_role_reaches_expired_keys_only_and_writes_only_blanks(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    """What the function runs as, tried directly: live sessions are invisible to it, an
    expired one takes nothing but an empty key, other columns are out of its reach."""
    user = await new_user(pool)
    live = await _session(pool, user, expires_in=timedelta(hours=1))
    expired = await _session(pool, user, expires_in=-timedelta(seconds=1))
    async with admin.transaction():
        await admin.execute(f"SET LOCAL ROLE {SWEEP_ROLE}")
        assert (
            await admin.execute("UPDATE sessions SET wrapped_data_key = '' WHERE id = $1", live.id)
            == "UPDATE 0"
        )
        assert await admin.fetchval("SELECT count(*) FROM sessions WHERE id = $1", live.id) == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await admin.execute(
                "UPDATE sessions SET wrapped_data_key = 'forged' WHERE id = $1", expired.id
            )
    async with admin.transaction():
        await admin.execute(f"SET LOCAL ROLE {SWEEP_ROLE}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await admin.execute("UPDATE sessions SET revoked_at = now() WHERE id = $1", expired.id)
    async with admin.transaction():
        await admin.execute(f"SET LOCAL ROLE {SWEEP_ROLE}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await admin.fetchval("SELECT user_id FROM sessions WHERE id = $1", expired.id)
    assert await _key(admin, live.id) == b"wrapped"
    assert await _key(admin, expired.id) == b"wrapped"


async def test_the_sweep_function_refuses_a_batch_of_nothing(pool: asyncpg.Pool) -> None:
    for bad in (0, -1):
        with pytest.raises(StorageError, match="positive max_rows"):
            async with anonymous_tx(pool) as con:
                await blank_expired_session_keys(con, bad)
