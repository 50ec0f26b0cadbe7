"""Conversation heads: listing, renaming, deleting, keys."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from storage_helpers import append, new_conversation, new_user

from storage import (
    NotFound,
    count_conversations,
    get_conversation,
    hard_delete_conversation,
    list_conversations,
    list_deleted_before,
    list_messages,
    rename_conversation,
    set_head,
    set_wrapped_key,
    soft_delete_conversation,
    user_tx,
)


async def test_list_is_most_recently_updated_first_and_pages(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversations = []
    for _ in range(4):
        conversations.append(await new_conversation(pool, user))
        await asyncio.sleep(0.002)
    await append(pool, user, conversations[1].id, b"bump")
    async with user_tx(pool, user.id) as con:
        listed = await list_conversations(con, limit=10, offset=0)
        page = await list_conversations(con, limit=2, offset=1)
        assert await count_conversations(con) == 4
    expected = [conversations[i].id for i in (1, 3, 2, 0)]
    assert [c.id for c in listed] == expected
    assert [c.id for c in page] == expected[1:3]
    assert listed[0].message_count == 1


async def test_rename_and_missing(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    async with user_tx(pool, user.id) as con:
        renamed = await rename_conversation(con, conversation.id, b"sealed new name")
        assert await rename_conversation(con, uuid.uuid4(), b"x") is None
        assert await get_conversation(con, uuid.uuid4()) is None
        with pytest.raises(NotFound):
            await set_head(con, uuid.uuid4(), message_count=1, merkle_root=b"r")
        with pytest.raises(NotFound):
            await set_wrapped_key(con, uuid.uuid4(), b"k", 2)
    assert renamed is not None and renamed.sealed_title == b"sealed new name"
    assert renamed.title is None
    assert renamed.updated_at >= conversation.updated_at
    async with user_tx(pool, user.id) as con:
        cleared = await rename_conversation(con, conversation.id, None)
    assert cleared is not None and cleared.sealed_title is None


async def test_soft_delete_hides_and_hard_delete_destroys(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    await append(pool, user, conversation.id, b"secret")
    async with user_tx(pool, user.id) as con:
        deleted_at = await soft_delete_conversation(con, conversation.id)
        assert deleted_at is not None
        assert await soft_delete_conversation(con, conversation.id) is None
        assert await get_conversation(con, conversation.id) is None
        assert await count_conversations(con) == 0
        assert await list_deleted_before(con, deleted_at) == []
        assert await list_deleted_before(con, deleted_at + timedelta(seconds=1)) == [
            conversation.id
        ]
    row = await admin.fetchrow(
        "SELECT title, sealed_title FROM conversations WHERE id = $1", conversation.id
    )
    assert conversation.sealed_title is not None
    assert row is not None and (row["title"], row["sealed_title"]) == (None, None)

    async with user_tx(pool, user.id) as con:
        assert await hard_delete_conversation(con, conversation.id) is True
        assert await hard_delete_conversation(con, conversation.id) is False
        assert await list_messages(con, conversation.id) == []
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1", conversation.id
        )
        == 0
    )


async def test_hard_delete_zeroes_the_key_before_deleting(
    pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    """The row version that DELETE removes holds zeros, not the wrapped key."""
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    # A probe trigger records what the deleted row held; it runs as its owner.
    await admin.execute(
        "CREATE TABLE deleted_key_probe (wrapped_key bytea);"
        "CREATE FUNCTION deleted_key_capture() RETURNS trigger LANGUAGE plpgsql"
        " SECURITY DEFINER SET search_path = public AS"
        " $$ BEGIN INSERT INTO deleted_key_probe VALUES (OLD.wrapped_key); RETURN OLD; END $$;"
        "CREATE TRIGGER deleted_key_capture BEFORE DELETE ON conversations"
        " FOR EACH ROW EXECUTE FUNCTION deleted_key_capture();"
    )
    try:
        async with user_tx(pool, user.id) as con:
            assert await hard_delete_conversation(con, conversation.id) is True
        captured = await admin.fetchval("SELECT wrapped_key FROM deleted_key_probe")
    finally:
        await admin.execute(
            "DROP TRIGGER deleted_key_capture ON conversations;"
            "DROP FUNCTION deleted_key_capture();"
            "DROP TABLE deleted_key_probe;"
        )
    assert captured == bytes(len(conversation.wrapped_key))
    assert conversation.wrapped_key != captured


async def test_set_wrapped_key_rotates(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    new_key = os.urandom(60)
    async with user_tx(pool, user.id) as con:
        await set_wrapped_key(con, conversation.id, new_key, 2)
        rotated = await get_conversation(con, conversation.id)
    assert rotated is not None and (rotated.wrapped_key, rotated.key_version) == (new_key, 2)
    assert rotated.created_at < datetime.now(UTC) + timedelta(seconds=5)
