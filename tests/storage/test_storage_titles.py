"""Titles at rest: sealed only; version 2's clear titles listed, sealed and blanked in
place; conversation keys re-wrapped in bulk (a password change)."""

from __future__ import annotations

import uuid

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from storage_helpers import append, new_conversation, new_user

from storage import (
    Forbidden,
    NotFound,
    UserRecord,
    list_clear_titles,
    lock_every_conversation,
    rewrap_conversation_keys,
    seal_clear_titles,
    soft_delete_conversation,
    user_tx,
)


async def _clear_title(admin: asyncpg.Connection, conversation_id: uuid.UUID, title: str) -> None:
    """Make a row look as version 2 left it: a clear title, nothing sealed."""
    await admin.execute(
        "UPDATE conversations SET title = $2, sealed_title = NULL WHERE id = $1",
        conversation_id,
        title,
    )


async def _titles(
    admin: asyncpg.Connection, user: UserRecord
) -> dict[uuid.UUID, tuple[object, ...]]:
    rows = await admin.fetch(
        "SELECT id, title, sealed_title FROM conversations WHERE user_id = $1", user.id
    )
    return {row["id"]: (row["title"], row["sealed_title"]) for row in rows}


async def test_the_application_cannot_write_a_clear_title_into_a_new_row(
    pool: asyncpg.Pool,
) -> None:
    user = await new_user(pool)
    with pytest.raises(Forbidden):
        async with user_tx(pool, user.id) as con:
            await con.execute(
                "INSERT INTO conversations (id, user_id, title, model, wrapped_key)"
                " VALUES ($1, $2, 'in clear', 'm', '\\x00')",
                uuid.uuid4(),
                user.id,
            )


async def test_a_row_never_holds_both_titles(pool: asyncpg.Pool, admin: asyncpg.Connection) -> None:
    conversation = await new_conversation(pool, await new_user(pool))
    assert conversation.sealed_title is not None
    with pytest.raises(asyncpg.CheckViolationError):
        await admin.execute(
            "UPDATE conversations SET title = 'both' WHERE id = $1", conversation.id
        )


async def test_clear_titles_are_listed_sealed_and_blanked(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user, other = await new_user(pool), await new_user(pool)
    legacy, sealed, untitled = [await new_conversation(pool, user) for _ in range(3)]
    await _clear_title(admin, legacy.id, "in clear")
    await admin.execute("UPDATE conversations SET sealed_title = NULL WHERE id = $1", untitled.id)
    theirs = await new_conversation(pool, other)
    await _clear_title(admin, theirs.id, "someone else's")
    async with user_tx(pool, user.id) as con:
        listed = await list_clear_titles(con)
        assert [(r.id, r.title, r.sealed_title) for r in listed] == [(legacy.id, "in clear", None)]
        assert await seal_clear_titles(con, [(legacy.id, b"now sealed"), (theirs.id, b"x")]) == 1
        assert await list_clear_titles(con) == []
        assert await seal_clear_titles(con, []) == 0
        # Already sealed: a second seal changes nothing.
        assert await seal_clear_titles(con, [(legacy.id, b"again")]) == 0
    assert await _titles(admin, user) == {
        legacy.id: (None, b"now sealed"),
        sealed.id: (None, sealed.sealed_title),
        untitled.id: (None, None),
    }
    assert await _titles(admin, other) == {theirs.id: ("someone else's", None)}


async def test_sealing_does_not_touch_activity(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user = await new_user(pool)
    legacy = await new_conversation(pool, user)
    await _clear_title(admin, legacy.id, "in clear")
    before = await admin.fetchval("SELECT updated_at FROM conversations WHERE id = $1", legacy.id)
    async with user_tx(pool, user.id) as con:
        assert await seal_clear_titles(con, [(legacy.id, b"sealed")]) == 1
    after = await admin.fetchval("SELECT updated_at FROM conversations WHERE id = $1", legacy.id)
    assert after == before


async def test_listing_clear_titles_skips_rows_held_elsewhere(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    """A reader never waits for a clear title: a row someone holds is sealed later."""
    user = await new_user(pool)
    held, free = [await new_conversation(pool, user) for _ in range(2)]
    for conversation in (held, free):
        await _clear_title(admin, conversation.id, "in clear")
    async with admin.transaction():
        await admin.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", held.id)
        async with user_tx(pool, user.id) as con:
            assert [r.id for r in await list_clear_titles(con)] == [free.id]
    async with user_tx(pool, user.id) as con:
        assert {r.id for r in await list_clear_titles(con)} == {held.id, free.id}


async def test_every_key_is_rewrapped_in_one_statement_and_nothing_else_changes(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user, other = await new_user(pool), await new_user(pool)
    live, deleted = [await new_conversation(pool, user) for _ in range(2)]
    await append(pool, user, live.id, b"token")
    async with user_tx(pool, user.id) as con:
        await soft_delete_conversation(con, deleted.id)
    theirs = await new_conversation(pool, other)
    before = await admin.fetch(
        "SELECT conversation_id, seq, token, link FROM messages WHERE user_id = $1", user.id
    )
    async with user_tx(pool, user.id) as con:
        locked = await lock_every_conversation(con)
        assert [r.id for r in locked] == sorted([live.id, deleted.id])
        assert await rewrap_conversation_keys(con, [(live.id, b"k1"), (deleted.id, b"k2")]) == 2
        assert await rewrap_conversation_keys(con, []) == 0
    rows = await admin.fetch(
        "SELECT id, wrapped_key, key_version FROM conversations WHERE user_id = $1", user.id
    )
    assert {r["id"]: (r["wrapped_key"], r["key_version"]) for r in rows} == {
        live.id: (b"k1", 1),
        deleted.id: (b"k2", 1),
    }
    after = await admin.fetch(
        "SELECT conversation_id, seq, token, link FROM messages WHERE user_id = $1", user.id
    )
    assert after == before
    assert (
        await admin.fetchval("SELECT wrapped_key FROM conversations WHERE id = $1", theirs.id)
        == theirs.wrapped_key
    )


async def test_rewrapping_a_key_that_is_not_there_changes_nothing(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user, other = await new_user(pool), await new_user(pool)
    mine = await new_conversation(pool, user)
    theirs = await new_conversation(pool, other)
    with pytest.raises(NotFound):
        async with user_tx(pool, user.id) as con:
            await rewrap_conversation_keys(con, [(mine.id, b"k"), (theirs.id, b"planted")])
    for conversation in (mine, theirs):
        assert (
            await admin.fetchval(
                "SELECT wrapped_key FROM conversations WHERE id = $1", conversation.id
            )
            == conversation.wrapped_key
        )


async def test_a_locked_conversation_holds_off_other_writers(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    async with user_tx(pool, user.id) as con:
        await lock_every_conversation(con)
        with pytest.raises(asyncpg.LockNotAvailableError):
            await admin.execute(
                "SELECT 1 FROM conversations WHERE id = $1 FOR SHARE NOWAIT", conversation.id
            )
