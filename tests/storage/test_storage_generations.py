"""Generation leases: one running generation per conversation."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg  # type: ignore[import-untyped,unused-ignore]
from storage_helpers import new_conversation, new_user

from storage import (
    acquire_generation,
    cancel_generation,
    extend_generation,
    get_generation,
    holds_generation,
    release_generation,
    user_tx,
)


async def test_lease_is_exclusive_until_released(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    first, second = uuid.uuid4(), uuid.uuid4()
    async with user_tx(pool, user.id) as con:
        assert await acquire_generation(
            con,
            conversation_id=conversation.id,
            user_id=user.id,
            owner=first,
            sequence=2,
            ttl_seconds=30,
        )
        assert not await acquire_generation(
            con,
            conversation_id=conversation.id,
            user_id=user.id,
            owner=second,
            sequence=2,
            ttl_seconds=30,
        )
        lease = await get_generation(con, conversation.id)
        assert lease is not None and (lease.owner, lease.sequence) == (first, 2)
        assert await holds_generation(con, conversation.id, first)
        assert not await holds_generation(con, conversation.id, second)
        assert not await release_generation(con, conversation.id, second)
        assert await extend_generation(con, conversation.id, first, 60)
        assert not await extend_generation(con, conversation.id, second, 60)
        assert await release_generation(con, conversation.id, first)
        assert await get_generation(con, conversation.id) is None
        assert await acquire_generation(
            con,
            conversation_id=conversation.id,
            user_id=user.id,
            owner=second,
            sequence=4,
            ttl_seconds=30,
        )


async def test_expired_lease_is_taken_over(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    crashed, rescuer = uuid.uuid4(), uuid.uuid4()
    async with user_tx(pool, user.id) as con:
        assert await acquire_generation(
            con,
            conversation_id=conversation.id,
            user_id=user.id,
            owner=crashed,
            sequence=1,
            ttl_seconds=0.05,
        )
    await asyncio.sleep(0.1)
    async with user_tx(pool, user.id) as con:
        assert not await holds_generation(con, conversation.id, crashed)
        assert await get_generation(con, conversation.id) is None
        assert await acquire_generation(
            con,
            conversation_id=conversation.id,
            user_id=user.id,
            owner=rescuer,
            sequence=1,
            ttl_seconds=30,
        )
        assert await holds_generation(con, conversation.id, rescuer)
        assert not await release_generation(con, conversation.id, crashed)


async def test_cancel_removes_any_owners_lease_and_reports_it(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)
    runner = uuid.uuid4()
    async with user_tx(pool, user.id) as con:
        assert await cancel_generation(con, conversation.id) is None
        assert await acquire_generation(
            con,
            conversation_id=conversation.id,
            user_id=user.id,
            owner=runner,
            sequence=7,
            ttl_seconds=30,
        )
    async with user_tx(pool, user.id) as con:
        cancelled = await cancel_generation(con, conversation.id)
    assert cancelled is not None and (cancelled.owner, cancelled.sequence) == (runner, 7)
    async with user_tx(pool, user.id) as con:
        assert not await holds_generation(con, conversation.id, runner)
        assert not await extend_generation(con, conversation.id, runner, 30)
        assert not await release_generation(con, conversation.id, runner)


async def test_racing_acquirers_get_exactly_one_lease(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    conversation = await new_conversation(pool, user)

    async def try_acquire() -> bool:
        async with user_tx(pool, user.id) as con:
            return await acquire_generation(
                con,
                conversation_id=conversation.id,
                user_id=user.id,
                owner=uuid.uuid4(),
                sequence=1,
                ttl_seconds=30,
            )

    results = await asyncio.gather(*(try_acquire() for _ in range(10)))
    assert results.count(True) == 1
