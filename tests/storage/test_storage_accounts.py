"""Users, sessions and the audit log, through the storage functions."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from storage_helpers import append, new_conversation, new_user

from storage import (
    Conflict,
    NotFound,
    anonymous_tx,
    append_audit,
    create_session,
    delete_user,
    find_user_for_login,
    get_active_session,
    get_user,
    list_active_sessions,
    list_audit,
    revoke_other_sessions,
    revoke_session,
    touch_session,
    update_password,
    update_password_hash,
    user_tx,
)


async def test_register_then_log_in_by_email_in_any_case(pool: asyncpg.Pool) -> None:
    email = f"Mixed.{uuid.uuid4().hex[:8]}@Example.TEST"
    user = await new_user(pool, email)
    assert user.email == email.lower()
    async with anonymous_tx(pool) as con:
        found = await find_user_for_login(con, email.upper())
        assert await find_user_for_login(con, "nobody@example.test") is None
        assert await get_user(con, user.id) is None
    assert found == user
    async with user_tx(pool, user.id) as con:
        assert await get_user(con, user.id) == user


async def test_duplicate_email_is_a_conflict(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    with pytest.raises(Conflict) as caught:
        await new_user(pool, user.email.upper())
    assert caught.value.constraint == "users_email_key"


async def test_password_changes(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    salt, wrapped = os.urandom(16), os.urandom(60)
    async with user_tx(pool, user.id) as con:
        await update_password(
            con, user.id, password_hash="new-hash", kek_salt=salt, wrapped_data_key=wrapped
        )
        changed = await get_user(con, user.id)
        await update_password_hash(con, user.id, "rehash")
        rehashed = await get_user(con, user.id)
    assert changed is not None
    assert (changed.password_hash, changed.kek_salt, changed.wrapped_data_key) == (
        "new-hash",
        salt,
        wrapped,
    )
    assert rehashed is not None and rehashed.password_hash == "rehash"
    stranger = uuid.uuid4()
    async with user_tx(pool, user.id) as con:
        with pytest.raises(NotFound):
            await update_password_hash(con, stranger, "x")
        with pytest.raises(NotFound):
            await update_password(
                con, stranger, password_hash="x", kek_salt=b"s", wrapped_data_key=b"k"
            )


async def test_deleting_a_user_erases_everything_it_owns(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    await append(pool, user, conversation.id, b"token")
    async with user_tx(pool, user.id) as con:
        await append_audit(con, user_id=user.id, action="register")
        await create_session(
            con,
            session_id=uuid.uuid4(),
            user_id=user.id,
            wrapped_data_key=b"k",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            ip=None,
            user_agent=None,
        )
        assert await delete_user(con, user.id) is True
        assert await delete_user(con, user.id) is False
    for table in ("users", "sessions", "conversations", "messages", "audit_log"):
        column = "id" if table == "users" else "user_id"
        assert (
            await admin.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", user.id) == 0
        ), table


async def test_session_lifecycle(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    later = datetime.now(UTC) + timedelta(hours=1)
    ids = [uuid.uuid4() for _ in range(3)]
    async with user_tx(pool, user.id) as con:
        for session_id in ids:
            created = await create_session(
                con,
                session_id=session_id,
                user_id=user.id,
                wrapped_data_key=b"wrapped",
                expires_at=later,
                ip="203.0.113.7",
                user_agent="agent",
            )
        expired = await create_session(
            con,
            session_id=uuid.uuid4(),
            user_id=user.id,
            wrapped_data_key=b"wrapped",
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
            ip=None,
            user_agent=None,
        )
    assert created.ip == "203.0.113.7" and created.revoked_at is None
    async with user_tx(pool, user.id) as con:
        assert await get_active_session(con, expired.id) is None
        assert {s.id for s in await list_active_sessions(con, user.id)} == set(ids)
        await touch_session(con, ids[0])
    async with user_tx(pool, user.id) as con:
        touched = await get_active_session(con, ids[0])
        assert touched is not None and touched.last_seen_at > created.last_seen_at
        assert await revoke_session(con, ids[0]) is True
        assert await revoke_session(con, ids[0]) is False
        assert await get_active_session(con, ids[0]) is None
        # Expired but unrevoked sessions are revoked too: their key copies go.
        others = await revoke_other_sessions(con, user.id, keep=ids[1])
        assert sorted(others) == sorted([ids[2], expired.id])
        assert [s.id for s in await list_active_sessions(con, user.id)] == [ids[1]]
        revoked = await con.fetchrow(
            "SELECT revoked_at, wrapped_data_key FROM sessions WHERE id = $1", ids[2]
        )
    assert revoked is not None
    assert revoked["revoked_at"] is not None and revoked["wrapped_data_key"] == b""


async def test_audit_log_keeps_own_entries_and_hides_anonymous_ones(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user = await new_user(pool)
    conversation_id = uuid.uuid4()
    async with user_tx(pool, user.id) as con:
        await append_audit(con, user_id=user.id, action="login", ip="192.0.2.1")
        await append_audit(
            con,
            user_id=user.id,
            action="edit",
            conversation_id=conversation_id,
            details={"sequence": 3, "deleted": 2},
        )
    async with anonymous_tx(pool) as con:
        await append_audit(con, user_id=None, action="login_failed", details={"reason": "x"})
        assert await list_audit(con) == []
    async with user_tx(pool, user.id) as con:
        entries = await list_audit(con)
        assert len(await list_audit(con, limit=1)) == 1
    assert [e.action for e in entries] == ["edit", "login"]
    assert entries[0].details == {"sequence": 3, "deleted": 2}
    assert entries[0].conversation_id == conversation_id
    assert entries[1].details == {} and entries[1].ip == "192.0.2.1"
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM audit_log WHERE user_id IS NULL AND action = 'login_failed'"
        )
        >= 1
    )
