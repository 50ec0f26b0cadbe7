"""Throttling password guesses without locking owners out (OWASP authentication guidance).

Failures are counted, not attempts, under three keys:

- the account *and* the address together: after `free` failures, each further attempt
  from that pair must wait 1, 2, 4 ... seconds (at most `max_delay_s`) after the last
  failure; a success clears the pair. An attacker elsewhere never slows the owner down,
  whose own pair has no failures;
- the address alone: a far higher ceiling of failures per window across every account
  (one address stuffing credentials);
- the account alone: a far higher ceiling still across every address (a distributed
  guess at one account). Reaching it does hold the owner back until the window ends:
  the price of bounding a botnet's guesses, and why it is far above anything one
  attacker reaches at the pair delays.

The same guard covers every password check behind a token (changing the password,
deleting the account), keyed by the user id, so a stolen token is no password oracle.
State lives in Redis when configured (every instance sees the same counts), else in
this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis_asyncio

from server.service import exceptions as errors
from server.service.redis_errors import REDIS_ERRORS

__all__ = [
    "FailureStore",
    "LocalFailures",
    "PasswordThrottle",
    "RedisFailures",
    "ThrottleLimits",
]


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    free: int = 3
    max_delay_s: float = 900.0
    pair_window_s: int = 3600
    per_address: int = 100
    per_account: int = 1000
    window_s: int = 3600


class FailureStore(Protocol):
    async def read(self, key: str) -> tuple[int, float]:
        """Failures under `key` in its window, and when the last one happened (0: none)."""
        ...

    async def record(self, key: str, now: float, window_s: int) -> None: ...

    async def clear(self, key: str) -> None: ...


class LocalFailures:
    """One instance: failures in this process, forgotten when their window has passed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._entries: dict[str, tuple[int, float, float]] = {}  # count, last, expires
        self._next_prune = 0.0
        self._clock = clock

    async def read(self, key: str) -> tuple[int, float]:
        count, last, expires = self._entries.get(key, (0, 0.0, 0.0))
        if expires <= self._clock():
            return 0, 0.0
        return count, last

    async def record(self, key: str, now: float, window_s: int) -> None:
        if now >= self._next_prune:
            self._entries = {k: v for k, v in self._entries.items() if v[2] > now}
            self._next_prune = now + 60
        count, _ = await self.read(key)
        self._entries[key] = (count + 1, now, now + window_s)

    async def clear(self, key: str) -> None:
        self._entries.pop(key, None)


class RedisFailures:
    """Many instances: a hash per key (count, last), expiring with its window. If Redis
    is unreachable the instance counts on its own (`LocalFailures`): never fail open."""

    def __init__(self, client: redis_asyncio.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._fallback = LocalFailures()

    async def read(self, key: str) -> tuple[int, float]:
        try:
            count, last = await self._redis.hmget(self._prefix + key, ["count", "last"])
        except REDIS_ERRORS:
            return await self._fallback.read(key)
        return int(count or 0), float(last or 0.0)

    async def record(self, key: str, now: float, window_s: int) -> None:
        name = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(name, "count", 1)
                pipe.hset(name, "last", repr(now))
                pipe.expire(name, window_s)
                await pipe.execute()
        except REDIS_ERRORS:
            await self._fallback.record(key, now, window_s)

    async def clear(self, key: str) -> None:
        await self._fallback.clear(key)
        try:
            await self._redis.delete(self._prefix + key)
        except REDIS_ERRORS:
            return


class PasswordThrottle:
    """`check` before verifying a password, then `failed` or `succeeded`."""

    def __init__(
        self,
        store: FailureStore,
        limits: ThrottleLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limits = limits or ThrottleLimits()
        self._clock = clock

    @staticmethod
    def _keys(subject: str, address: str | None) -> tuple[str, str | None, str]:
        pair = f"pair:{subject}|{address or '-'}"
        return pair, (f"addr:{address}" if address else None), f"acct:{subject}"

    async def check(self, subject: str, address: str | None) -> None:
        """Raise RateLimited (with the seconds to wait) when this attempt must wait."""
        limits, now = self._limits, self._clock()
        pair, by_address, by_account = self._keys(subject, address)
        failures, last = await self._store.read(pair)
        if failures >= limits.free:
            delay = min(2.0 ** (failures - limits.free), limits.max_delay_s)
            wait = last + delay - now
            if wait > 0:
                raise errors.RateLimited(wait, "Too many failed attempts; try again later")
        ceilings = [(by_account, limits.per_account)]
        if by_address is not None:
            ceilings.append((by_address, limits.per_address))
        for key, ceiling in ceilings:
            count, last = await self._store.read(key)
            if count >= ceiling:
                wait = max(last + limits.window_s - now, 1.0)
                raise errors.RateLimited(wait, "Too many failed attempts; try again later")

    async def failed(self, subject: str, address: str | None) -> None:
        limits, now = self._limits, self._clock()
        pair, by_address, by_account = self._keys(subject, address)
        await self._store.record(pair, now, limits.pair_window_s)
        await self._store.record(by_account, now, limits.window_s)
        if by_address is not None:
            await self._store.record(by_address, now, limits.window_s)

    async def succeeded(self, subject: str, address: str | None) -> None:
        """The pair starts over; the ceilings keep counting (they bound guesses overall)."""
        pair, _, _ = self._keys(subject, address)
        await self._store.clear(pair)
