"""The resume mirror in Redis is sealed chunks: unreadable there, and refused when moved,
cut or spliced (a reader then resumes nothing rather than wrong text)."""

from __future__ import annotations

import uuid
from collections import Counter

import redis.asyncio as redis_asyncio
from sealed_tracker import sealed_tracker

from server.service.generation_tracker import RedisTracker
from server.service.generations import LocalGenerations, RunningGeneration


def _generation() -> RunningGeneration:
    return RunningGeneration(
        conversation_id=uuid.uuid4(), user_id=uuid.uuid4(), owner=uuid.uuid4(), sequence=2
    )


async def _stream(tracker: RedisTracker, generation: RunningGeneration, *tokens: str) -> None:
    await tracker.started(generation)
    for token in tokens:
        generation.add_token(token)
        assert await tracker.progressed(generation, token)


def _text_key(prefix: str, generation: RunningGeneration) -> str:
    return f"{prefix}generation:{generation.conversation_id}:text"


async def test_the_mirror_holds_no_clear_text_and_another_instance_reads_it(
    redis_client: redis_asyncio.Redis,
) -> None:
    prefix = f"scca-test-{uuid.uuid4().hex[:8]}:"
    rejected: Counter[str] = Counter()
    owner = sealed_tracker(redis_client, LocalGenerations(), prefix=prefix)
    reader = sealed_tracker(redis_client, LocalGenerations(), prefix=prefix, rejected=rejected)
    generation = _generation()
    try:
        await _stream(owner, generation, "confidential", " reply", " text")
        stored = await redis_client.get(_text_key(prefix, generation))
        assert stored and b"confidential" not in stored and b"reply" not in stored
        state = await reader.snapshot(generation.conversation_id)
        assert state is not None and state.partial == "confidential reply text"
        assert state.token_index == 3 and not rejected
    finally:
        await owner.ended(generation)


async def test_a_mirror_moved_cut_or_sealed_elsewhere_resumes_nothing(
    redis_client: redis_asyncio.Redis,
) -> None:
    prefix = f"scca-test-{uuid.uuid4().hex[:8]}:"
    rejected: Counter[str] = Counter()
    owner = sealed_tracker(redis_client, LocalGenerations(), prefix=prefix)
    reader = sealed_tracker(redis_client, LocalGenerations(), prefix=prefix, rejected=rejected)
    stranger = sealed_tracker(
        redis_client, LocalGenerations(), prefix=prefix, secret=b"z" * 32, rejected=rejected
    )
    victim, other = _generation(), _generation()
    victim_key, other_key = _text_key(prefix, victim), _text_key(prefix, other)
    try:
        await _stream(owner, victim, "a", "b", "c")
        await _stream(owner, other, "x", "y", "z")
        original = await redis_client.get(victim_key)
        assert original is not None
        assert (await reader.snapshot(victim.conversation_id)) is not None

        # Another reply's chunks in the victim's place (same owner, same token count).
        await redis_client.set(victim_key, await redis_client.get(other_key) or b"")
        assert await reader.snapshot(victim.conversation_id) is None
        assert rejected == Counter({"mirror:forged": 1})

        # The victim's own chunks with one dropped, or repeated.
        chunk = len(original) // 3
        for spliced in (original[chunk:], original[:chunk] + original[:chunk] + original[chunk:]):
            await redis_client.set(victim_key, spliced)
            assert await reader.snapshot(victim.conversation_id) is None
        assert rejected["mirror:incomplete"] == 2

        # Cut in the middle of a chunk.
        await redis_client.set(victim_key, original[:-3])
        assert await reader.snapshot(victim.conversation_id) is None
        assert rejected["mirror:forged"] == 2

        # An instance with another secret cannot read it.
        await redis_client.set(victim_key, original)
        assert await stranger.snapshot(victim.conversation_id) is None
        assert rejected["mirror:forged"] == 3
        assert await reader.snapshot(victim.conversation_id) is not None
    finally:
        await owner.ended(victim)
        await owner.ended(other)
