"""Fixed-window rate limits, shared across instances through Redis when configured."""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as redis_asyncio

from server.service.redis_errors import REDIS_ERRORS

__all__ = ["LocalCounter", "RateCounter", "RedisCounter"]


class RateCounter(Protocol):
    async def hit(self, key: str, limit: int, window_s: int) -> float | None:
        """Count one event; None when within `limit` per window, else seconds to wait."""
        ...


class LocalCounter:
    """In-process windows (one instance, no Redis). Old windows are pruned as they pass."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, int], int] = {}
        self._last_prune = 0.0

    async def hit(self, key: str, limit: int, window_s: int) -> float | None:
        now = time.time()
        window = int(now // window_s)
        if now - self._last_prune > 60:
            self._windows = {k: v for k, v in self._windows.items() if k[1] >= window - 1}
            self._last_prune = now
        count = self._windows.get((key, window), 0) + 1
        self._windows[(key, window)] = count
        if count > limit:
            return (window + 1) * window_s - now
        return None


class RedisCounter:
    """INCR + EXPIRE per window key; if Redis is down, fall back to a local window."""

    def __init__(self, client: redis_asyncio.Redis, prefix: str = "scca:rl:") -> None:
        self._redis = client
        self._prefix = prefix
        self._fallback = LocalCounter()

    async def hit(self, key: str, limit: int, window_s: int) -> float | None:
        now = time.time()
        window = int(now // window_s)
        name = f"{self._prefix}{key}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window_s + 1)
                count, _ = await pipe.execute()
        except REDIS_ERRORS:
            return await self._fallback.hit(key, limit, window_s)
        if int(count) > limit:
            return (window + 1) * window_s - now
        return None
