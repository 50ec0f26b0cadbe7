"""How many sockets a user has open, across every instance (for MAX_SOCKETS_PER_USER).

One instance counts its own sockets. With Redis, each user has a sorted set of
`instance:sid` members scored by the last time their instance vouched for them; every
instance re-vouches for its live sockets on each sweep, and members older than
`stale_after_s` are not counted, so the sockets of a crashed instance stop counting by
themselves.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Protocol

import redis.asyncio as redis_asyncio

from server.service.connected_sockets import ConnectedSockets
from server.service.redis_errors import REDIS_ERRORS

__all__ = ["LocalPresence", "Presence", "RedisPresence"]

_LOG = logging.getLogger(__name__)


class Presence(Protocol):
    async def count(self, user_id: uuid.UUID) -> int: ...

    async def joined(self, user_id: uuid.UUID, sid: str) -> None: ...

    async def left(self, user_id: uuid.UUID, sid: str) -> None: ...

    async def refresh(self) -> None: ...


class LocalPresence:
    def __init__(self, connected: ConnectedSockets) -> None:
        self._connected = connected

    async def count(self, user_id: uuid.UUID) -> int:
        return self._connected.count_for_user(user_id)

    async def joined(self, user_id: uuid.UUID, sid: str) -> None:
        return None

    async def left(self, user_id: uuid.UUID, sid: str) -> None:
        return None

    async def refresh(self) -> None:
        return None


class RedisPresence:
    def __init__(
        self,
        client: redis_asyncio.Redis,
        connected: ConnectedSockets,
        *,
        stale_after_s: float,
        prefix: str = "scca:presence:",
    ) -> None:
        self._redis = client
        self._connected = connected
        self._stale_after_s = stale_after_s
        self._prefix = prefix
        self._instance = uuid.uuid4().hex[:12]

    def _key(self, user_id: uuid.UUID) -> str:
        return f"{self._prefix}{user_id}"

    def _member(self, sid: str) -> str:
        return f"{self._instance}:{sid}"

    async def count(self, user_id: uuid.UUID) -> int:
        """Sockets of this user on every instance; this instance's count if Redis is down."""
        local = self._connected.count_for_user(user_id)
        try:
            shared = await self._redis.zcount(
                self._key(user_id), time.time() - self._stale_after_s, "+inf"
            )
        except REDIS_ERRORS:
            return local
        return max(int(shared), local)

    async def joined(self, user_id: uuid.UUID, sid: str) -> None:
        key = self._key(user_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {self._member(sid): time.time()})
                pipe.zremrangebyscore(key, "-inf", time.time() - self._stale_after_s)
                pipe.expire(key, int(self._stale_after_s * 2) + 1)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            _LOG.warning("redis: presence not recorded: %s", type(exc).__name__)

    async def left(self, user_id: uuid.UUID, sid: str) -> None:
        with contextlib.suppress(*REDIS_ERRORS):  # a member left behind goes stale
            await self._redis.zrem(self._key(user_id), self._member(sid))

    async def refresh(self) -> None:
        """Vouch again for every live socket of this instance (called by the sweep)."""
        now = time.time()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id, sessions in self._connected.sessions_by_user().items():
                    key = self._key(user_id)
                    members = {self._member(sid): now for sids in sessions.values() for sid in sids}
                    pipe.zadd(key, members)
                    pipe.expire(key, int(self._stale_after_s * 2) + 1)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            _LOG.warning("redis: presence not refreshed: %s", type(exc).__name__)
