"""The Redis mirror of running replies, against the machine's Redis.

A reply's mirror is whole or absent: after Redis lost it (a restart, an expiry while it
was unreachable), the next token writes it whole again, and a reader that finds a
partial record treats it as absent, never as an error.
"""

from __future__ import annotations

import uuid

import redis.asyncio as redis_asyncio
from sealed_tracker import sealed_tracker

from protocol.socket_events import GeneratingState
from server.service.generation_tracker import RedisTracker
from server.service.generations import LocalGenerations, RunningGeneration


def _tracker(redis_client: redis_asyncio.Redis, prefix: str) -> RedisTracker:
    return sealed_tracker(redis_client, LocalGenerations(), prefix=prefix)


async def _stream(tracker: RedisTracker, generation: RunningGeneration, *tokens: str) -> None:
    for token in tokens:
        generation.add_token(token)
        await tracker.progressed(generation, token)


def _generation() -> RunningGeneration:
    return RunningGeneration(
        conversation_id=uuid.uuid4(), user_id=uuid.uuid4(), owner=uuid.uuid4(), sequence=4
    )


async def test_another_instance_resumes_from_the_mirror(redis_client: redis_asyncio.Redis) -> None:
    prefix = f"scca-test-{uuid.uuid4().hex[:8]}:"
    owner, reader = _tracker(redis_client, prefix), _tracker(redis_client, prefix)
    generation = _generation()
    await owner.started(generation)
    await _stream(owner, generation, "The", " quick", " answer")
    assert await reader.snapshot(generation.conversation_id) == GeneratingState(
        sequence=4, partial="The quick answer", token_index=3
    )
    await owner.ended(generation)
    assert await reader.snapshot(generation.conversation_id) is None
    assert await redis_client.keys(prefix + "*") == []


async def test_a_lost_mirror_is_written_whole_by_the_next_token(
    redis_client: redis_asyncio.Redis,
) -> None:
    prefix = f"scca-test-{uuid.uuid4().hex[:8]}:"
    owner, reader = _tracker(redis_client, prefix), _tracker(redis_client, prefix)
    generation = _generation()
    await owner.started(generation)
    await _stream(owner, generation, "one", " two")
    await redis_client.delete(*await redis_client.keys(prefix + "*"))  # as a Redis restart loses it
    assert await reader.snapshot(generation.conversation_id) is None
    await _stream(owner, generation, " three")
    assert owner.mirror_rebuilds == 1
    assert await reader.snapshot(generation.conversation_id) == GeneratingState(
        sequence=4, partial="one two three", token_index=3
    )
    await _stream(owner, generation, " four")
    assert owner.mirror_rebuilds == 1
    snapshot = await reader.snapshot(generation.conversation_id)
    assert snapshot is not None and snapshot.partial == "one two three four"
    await owner.ended(generation)  # the rebuilt record has its owner: it can be cleared
    assert await redis_client.keys(prefix + "*") == []


async def test_a_partial_record_reads_as_absent(redis_client: redis_asyncio.Redis) -> None:
    prefix = f"scca-test-{uuid.uuid4().hex[:8]}:"
    reader = _tracker(redis_client, prefix)
    conversation_id = uuid.uuid4()
    meta = f"{prefix}generation:{conversation_id}"
    partial_records: list[dict[str, str]] = [
        {"tokenIndex": "61"},  # what the next token used to leave after a restart
        {"owner": str(uuid.uuid4()), "tokenIndex": "3"},
        {"owner": str(uuid.uuid4()), "sequence": "not a number", "tokenIndex": "3"},
        {"owner": str(uuid.uuid4()), "sequence": "4", "tokenIndex": "3"},  # its text is gone
    ]
    try:
        for fields in partial_records:
            await redis_client.delete(meta)
            await redis_client.hset(meta, mapping=fields)  # type: ignore[arg-type]
            assert await reader.snapshot(conversation_id) is None, fields
    finally:
        await redis_client.delete(meta, meta + ":text")


async def test_a_token_never_writes_into_another_owners_record(
    redis_client: redis_asyncio.Redis,
) -> None:
    prefix = f"scca-test-{uuid.uuid4().hex[:8]}:"
    first, second = _tracker(redis_client, prefix), _tracker(redis_client, prefix)
    old = _generation()
    await first.started(old)
    await _stream(first, old, "old")
    new = RunningGeneration(
        conversation_id=old.conversation_id, user_id=old.user_id, owner=uuid.uuid4(), sequence=4
    )
    await second.started(new)
    await _stream(second, new, "new")
    await _stream(first, old, " stale")
    snapshot = await second.snapshot(new.conversation_id)
    assert snapshot is not None and snapshot.partial == "new"
    await first.ended(old)  # not its record any more: left alone
    assert await _tracker(redis_client, prefix).snapshot(new.conversation_id) is not None
    await second.ended(new)
    assert await redis_client.keys(prefix + "*") == []
