"""Appends, edits and reads of messages, through the storage functions."""

from __future__ import annotations

import asyncio
import os

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from storage_helpers import append, chain, new_conversation, new_user

from storage import (
    Conflict,
    NotFound,
    StorageError,
    count_messages,
    delete_after,
    find_by_client_msg_id,
    get_conversation,
    get_message,
    insert_message,
    list_messages,
    replace_message,
    set_head,
    update_token,
    user_tx,
)


async def test_concurrent_appends_get_consecutive_seqs_and_an_unbroken_chain(
    pool: asyncpg.Pool,
) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    tokens = [os.urandom(64) for _ in range(20)]
    appended = await asyncio.gather(*(append(pool, user, conversation.id, t) for t in tokens))
    assert sorted(m.seq for m in appended) == list(range(1, 21))
    async with user_tx(pool, user.id) as con:
        stored = await list_messages(con, conversation.id)
        head = await get_conversation(con, conversation.id)
    assert [m.seq for m in stored] == list(range(1, 21))
    assert sorted(m.token for m in stored) == sorted(tokens)
    link: bytes | None = None
    for message in stored:
        link = chain(link, message.token)
        assert message.link == link
    assert head is not None
    assert head.message_count == 20
    assert head.merkle_root == link


async def test_truncate_and_replace_is_all_or_nothing(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    for n in range(5):
        await append(pool, user, conversation.id, bytes([n]) * 10)
    async with user_tx(pool, user.id) as con:
        before_messages = await list_messages(con, conversation.id)
        before_head = await get_conversation(con, conversation.id)

    with pytest.raises(RuntimeError, match="crash between delete and replace"):
        async with user_tx(pool, user.id) as con:
            locked = await get_conversation(con, conversation.id, for_update=True)
            assert locked is not None
            assert await delete_after(con, conversation.id, 2) == (3, 3 * (10 + 32))
            raise RuntimeError("crash between delete and replace")

    async with user_tx(pool, user.id) as con:
        assert await list_messages(con, conversation.id) == before_messages
        assert await get_conversation(con, conversation.id) == before_head


async def test_edit_truncates_replaces_and_moves_the_head(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    for n in range(6):
        await append(pool, user, conversation.id, bytes([n]) * 8)
    edited = b"edited token"
    async with user_tx(pool, user.id) as con:
        head = await get_conversation(con, conversation.id, for_update=True)
        assert head is not None
        first = await get_message(con, conversation.id, 1)
        assert first is not None
        deleted, freed = await delete_after(con, conversation.id, 2)
        link = chain(first.link, edited)
        await replace_message(con, conversation.id, 2, token=edited, link=link)
        await set_head(con, conversation.id, message_count=2, merkle_root=link)
    assert (deleted, freed) == (4, 4 * (8 + 32))
    async with user_tx(pool, user.id) as con:
        stored = await list_messages(con, conversation.id)
        head = await get_conversation(con, conversation.id)
        assert await count_messages(con, conversation.id) == 2
    assert [m.token for m in stored] == [bytes([0]) * 8, edited]
    assert head is not None and head.message_count == 2 and head.merkle_root == link
    assert head.updated_at >= conversation.updated_at


async def test_list_messages_ranges(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    for n in range(10):
        await append(pool, user, conversation.id, bytes([n]))
    async with user_tx(pool, user.id) as con:
        assert [m.seq for m in await list_messages(con, conversation.id, from_seq=4)] == list(
            range(4, 11)
        )
        assert [m.seq for m in await list_messages(con, conversation.id, from_seq=3, to_seq=5)] == [
            3,
            4,
            5,
        ]
        assert [m.seq for m in await list_messages(con, conversation.id, limit=2)] == [1, 2]
        assert await list_messages(con, conversation.id, from_seq=11) == []
        assert await get_message(con, conversation.id, 11) is None


async def test_duplicates_are_conflicts_naming_the_constraint(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    await append(pool, user, conversation.id, b"one", client_msg_id="c-1")
    with pytest.raises(Conflict) as duplicate_seq:
        async with user_tx(pool, user.id) as con:
            await insert_message(
                con,
                conversation_id=conversation.id,
                user_id=user.id,
                seq=1,
                role=0,
                token=b"x",
                link=b"y",
            )
    assert duplicate_seq.value.constraint == "messages_pkey"
    with pytest.raises(Conflict) as duplicate_client_id:
        async with user_tx(pool, user.id) as con:
            await insert_message(
                con,
                conversation_id=conversation.id,
                user_id=user.id,
                seq=2,
                role=0,
                token=b"x",
                link=b"y",
                client_msg_id="c-1",
            )
    assert duplicate_client_id.value.constraint == "messages_client_msg_id_key"


async def test_client_msg_id_lookup_and_stopped_flag(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    sent = await append(pool, user, conversation.id, b"question", client_msg_id="abc")
    async with user_tx(pool, user.id) as con:
        reply = await insert_message(
            con,
            conversation_id=conversation.id,
            user_id=user.id,
            seq=2,
            role=1,
            token=b"partial answer",
            link=chain(sent.link, b"partial answer"),
            stopped=True,
        )
        assert await find_by_client_msg_id(con, conversation.id, "abc") == sent
        assert await find_by_client_msg_id(con, conversation.id, "nope") is None
    assert reply.stopped is True and reply.role == 1 and reply.client_msg_id is None


async def test_replacing_a_missing_message_is_not_found(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    await append(pool, user, conversation.id, b"only")
    async with user_tx(pool, user.id) as con:
        with pytest.raises(NotFound):
            await replace_message(con, conversation.id, 2, token=b"t", link=b"l")
        await update_token(con, conversation.id, 1, token=b"rotated", link=b"new link")
        message = await get_message(con, conversation.id, 1)
    assert message is not None and (message.token, message.link) == (b"rotated", b"new link")


async def test_role_outside_range_is_refused(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    with pytest.raises(StorageError):
        async with user_tx(pool, user.id) as con:
            await insert_message(
                con,
                conversation_id=conversation.id,
                user_id=user.id,
                seq=1,
                role=3,
                token=b"t",
                link=b"l",
            )
