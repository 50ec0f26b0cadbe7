"""A `RedisTracker` as an instance builds it, with a test secret and rejection counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import redis.asyncio as redis_asyncio

from crypto import ChannelSeal
from server.service.generation_tracker import RedisTracker, control_channel
from server.service.generations import LocalGenerations
from server.service.sealed_channel import SealedChannel
from server.service.sealed_mirror import SealedMirror

TEST_SECRET = b"s" * 32


def sealed_tracker(
    client: redis_asyncio.Redis,
    generations: LocalGenerations,
    *,
    prefix: str,
    secret: bytes = TEST_SECRET,
    rejected: Counter[str] | None = None,
) -> RedisTracker:
    """`rejected` counts what the tracker dropped, by "channel:reason"."""
    counts: Counter[str] = Counter() if rejected is None else rejected

    def count(channel: str) -> Callable[[str], None]:
        return lambda reason: counts.update([f"{channel}:{reason}"])

    return RedisTracker(
        client,
        generations,
        control=SealedChannel(
            ChannelSeal(secret, purpose=b"generation-control"),
            control_channel(prefix),
            on_reject=count("control"),
        ),
        mirror=SealedMirror(
            ChannelSeal(secret, purpose=b"generation-mirror"),
            on_reject=count("mirror"),
        ),
        ttl_s=30,
        prefix=prefix,
    )
