"""Liveness marks of running replies, against the machine's Redis (short windows)."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sealed_tracker import sealed_tracker

from server.service.generations import CancelMode, LocalGenerations, RunningGeneration
from server.service.reply_liveness import LostReply, RedisLiveness

WINDOW_S = 0.3


def _unreachable() -> redis_asyncio.Redis:
    """A Redis redis_client whose every command fails at once (nothing listens on port 1)."""
    return redis_asyncio.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), retries=0))


def _prefix() -> str:
    return f"scca-test-{uuid.uuid4().hex[:8]}:"


def _reply(conversation_id: uuid.UUID | None = None) -> RunningGeneration:
    return RunningGeneration(
        conversation_id=conversation_id or uuid.uuid4(),
        user_id=uuid.uuid4(),
        owner=uuid.uuid4(),
        sequence=2,
    )


async def _lost_after(liveness: RedisLiveness, timeout: float) -> float:
    """Seconds until `lost()` reports something, polling as the sweep does."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not await liveness.lost(set()):  # noqa: ASYNC110 (polls as the sweep does)
            await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_a_renewed_reply_is_never_lost(redis_client: redis_asyncio.Redis) -> None:
    liveness = RedisLiveness(redis_client, prefix=_prefix(), alive_ttl_s=WINDOW_S)
    reply = _reply()
    await liveness.claim(reply)
    deadline = time.monotonic() + 4 * WINDOW_S
    while time.monotonic() < deadline:
        assert await liveness.renew(reply)
        assert await liveness.lost(set()) == []
        await asyncio.sleep(WINDOW_S / 3)
    await liveness.forget(reply, lost=False)


async def test_a_reply_that_stops_renewing_is_lost_after_a_whole_window(
    redis_client: redis_asyncio.Redis,
) -> None:
    prefix = _prefix()
    liveness = RedisLiveness(redis_client, prefix=prefix, alive_ttl_s=WINDOW_S)
    reply = _reply()
    await liveness.claim(reply)  # then its instance dies: nothing renews it
    elapsed = await _lost_after(liveness, timeout=5)
    # the mark outlives the owner by a window, then must stay missing for another
    assert elapsed >= 2 * WINDOW_S - 0.05, elapsed
    [lost] = await liveness.lost(set())
    assert (lost.conversation_id, lost.owner, lost.user_id, lost.sequence) == (
        reply.conversation_id,
        reply.owner,
        reply.user_id,
        2,
    )
    # a reply running on the asking instance is never reported
    assert await liveness.lost({reply.conversation_id}) == []
    await liveness.forget(lost, lost=True)
    assert await liveness.lost(set()) == []
    await redis_client.delete(liveness.mark_key(reply.conversation_id))


async def test_an_unreachable_redis_is_no_evidence_of_death(
    redis_client: redis_asyncio.Redis,
) -> None:
    prefix = _prefix()
    liveness = RedisLiveness(redis_client, prefix=prefix, alive_ttl_s=WINDOW_S)
    reply = _reply()
    await liveness.claim(reply)
    await redis_client.delete(liveness.mark_key(reply.conversation_id))
    assert await liveness.lost(set()) == []  # missing: the window starts
    unreachable = _unreachable()
    blind = RedisLiveness(unreachable, prefix=prefix, alive_ttl_s=WINDOW_S)
    await asyncio.sleep(WINDOW_S * 1.5)
    assert await blind.lost(set()) == []
    assert await blind.renew(reply)  # cannot tell: keep going
    await unreachable.aclose()
    # the instance that saw it missing must see it missing for a whole window again
    # after any outage; here, the same instance keeps its observation
    assert len(await liveness.lost(set())) == 1
    await liveness.forget(reply, lost=False)


async def test_an_outage_restarts_the_window(redis_client: redis_asyncio.Redis) -> None:
    prefix = _prefix()
    liveness = RedisLiveness(redis_client, prefix=prefix, alive_ttl_s=WINDOW_S)
    reply = _reply()
    await liveness.claim(reply)
    await redis_client.delete(liveness.mark_key(reply.conversation_id))
    assert await liveness.lost(set()) == []
    await asyncio.sleep(WINDOW_S * 1.5)
    # Redis stops answering this instance for a moment (its connection is refused)
    liveness._redis = _unreachable()  # noqa: SLF001
    assert await liveness.lost(set()) == []
    await liveness._redis.aclose()  # noqa: SLF001
    liveness._redis = redis_client  # noqa: SLF001
    assert await liveness.lost(set()) == [], "an outage must not count toward the window"
    await asyncio.sleep(WINDOW_S * 1.2)
    assert len(await liveness.lost(set())) == 1
    await liveness.forget(reply, lost=False)


async def test_a_taken_over_reply_is_fenced_and_the_next_one_is_not(
    redis_client: redis_asyncio.Redis,
) -> None:
    prefix = _prefix()
    generations = LocalGenerations()
    tracker = sealed_tracker(redis_client, generations, prefix=prefix)
    liveness = RedisLiveness(redis_client, prefix=prefix, alive_ttl_s=WINDOW_S)
    stalled = _reply()
    generations.add(stalled)
    await tracker.started(stalled)
    stalled.add_token("before")
    assert await tracker.progressed(stalled, "before")
    # another instance took it over while it was stalled
    await tracker.forget_lost(
        LostReply(stalled.conversation_id, stalled.user_id, stalled.owner, stalled.sequence)
    )
    assert await tracker.snapshot(uuid.uuid4()) is None
    assert not await liveness.renew(stalled)
    stalled.add_token(" after")
    assert not await tracker.progressed(stalled, " after"), "a fenced token must not go out"
    await liveness.renew_all([stalled])
    assert stalled.cancel_mode is CancelMode.DISCARD
    generations.remove(stalled)
    assert (
        await sealed_tracker(redis_client, LocalGenerations(), prefix=prefix).snapshot(
            stalled.conversation_id
        )
        is None
    ), "a lost reply's mirror is gone: joiners see no generation"
    # the conversation's next reply claims the mark over the tombstone
    fresh = _reply(stalled.conversation_id)
    await tracker.started(fresh)
    assert await liveness.renew(fresh)
    fresh.add_token("new")
    assert await tracker.progressed(fresh, "new")
    await tracker.ended(fresh)
    assert await redis_client.keys(prefix + "*") == []
