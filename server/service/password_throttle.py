"""Throttling password guesses without locking owners out (OWASP authentication guidance).

Every attempt is counted *before* the password is checked, in one atomic step, as a
failure until it proves otherwise (guesses sent in parallel cannot all slip through
while the first ones are still hashing); a right password takes its count back. Three
counts:

- the account *and* the address together: after `free` failures, each further attempt
  from that pair must wait 1, 2, 4 ... seconds (at most `max_delay_s`) after the last
  one; a success clears the pair. An attacker elsewhere never slows the owner down,
  whose own pair has no failures;
- the address alone: a far higher ceiling of failures per fixed window across every
  account (one address stuffing credentials). Allowlisted addresses are not counted
  (a NAT or proxy in front of many users: configure TRUST_PROXY or the allowlist);
- the account alone: a far higher ceiling still, across every address (a distributed
  guess at one account). Reaching it does hold the owner back until the window ends:
  the price of bounding a botnet's guesses, and why it is far above anything one
  attacker reaches at the pair delays.

IPv6 addresses count per /64 (one host holds a whole /64). The same guard covers every
password check behind a token, keyed by the user id, so a stolen token is no password
oracle. Counts live in Redis when configured (every instance sees the same counts),
else in this process; emails and addresses appear there only as keyed hashes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as redis_asyncio

from server.service import exceptions as errors
from server.service.address_allowlist import AddressAllowlist
from server.service.address_limits import address_bucket
from server.service.key_names import KeyNames
from server.service.redis_errors import REDIS_ERRORS

__all__ = [
    "Attempt",
    "FailureStore",
    "LocalFailures",
    "PasswordThrottle",
    "RedisFailures",
    "ThrottleLimits",
]

_REFUSED = "Too many failed attempts; try again later"


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    free: int = 3
    max_delay_s: float = 900.0
    pair_window_s: int = 3600
    per_address: int = 100
    per_account: int = 1000
    window_s: int = 3600


class FailureStore(Protocol):
    async def attempt(self, key: str, now: float, ttl_s: int) -> tuple[int, float]:
        """Count one attempt under `key` (forgotten `ttl_s` after the last one): the
        count with it, and when the one before it happened (0: none), in one step."""
        ...

    async def undo(self, key: str, previous: float) -> None:
        """Take one attempt back, and the time of the last one with it."""
        ...

    async def clear(self, key: str) -> None: ...


class LocalFailures:
    """One instance: counts in this process (each step runs without yielding)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._entries: dict[str, tuple[int, float, float]] = {}  # count, last, expires
        self._next_prune = 0.0
        self._clock = clock

    def _live(self, key: str) -> tuple[int, float]:
        count, last, expires = self._entries.get(key, (0, 0.0, 0.0))
        return (count, last) if expires > self._clock() else (0, 0.0)

    async def attempt(self, key: str, now: float, ttl_s: int) -> tuple[int, float]:
        if now >= self._next_prune:
            self._entries = {k: v for k, v in self._entries.items() if v[2] > now}
            self._next_prune = now + 60
        count, last = self._live(key)
        self._entries[key] = (count + 1, now, now + ttl_s)
        return count + 1, last

    async def undo(self, key: str, previous: float) -> None:
        count, _, expires = self._entries.get(key, (0, 0.0, 0.0))
        if count > 1:
            self._entries[key] = (count - 1, previous, expires)
        else:
            self._entries.pop(key, None)

    async def clear(self, key: str) -> None:
        self._entries.pop(key, None)


class RedisFailures:
    """Many instances: a hash per key (count, last) in one MULTI per step. If Redis is
    unreachable the instance counts on its own (`LocalFailures`): never fail open."""

    def __init__(self, client: redis_asyncio.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._fallback = LocalFailures()

    async def attempt(self, key: str, now: float, ttl_s: int) -> tuple[int, float]:
        name = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(name, "count", 1)
                pipe.hget(name, "last")
                pipe.hset(name, "last", repr(now))
                pipe.expire(name, ttl_s)
                count, last, _, _ = await pipe.execute()
        except REDIS_ERRORS:
            return await self._fallback.attempt(key, now, ttl_s)
        return int(count), float(last or 0.0)

    async def undo(self, key: str, previous: float) -> None:
        name = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(name, "count", -1)
                pipe.hset(name, "last", repr(previous))
                await pipe.execute()
        except REDIS_ERRORS:
            await self._fallback.undo(key, previous)

    async def clear(self, key: str) -> None:
        await self._fallback.clear(key)
        try:
            await self._redis.delete(self._prefix + key)
        except REDIS_ERRORS:
            return


@dataclass(slots=True)
class Attempt:
    """One password attempt in flight: what it counted, to take back on success."""

    pair: str
    ceilings: list[tuple[str, float]] = field(default_factory=list)


class PasswordThrottle:
    """`check` before verifying a password (it counts the attempt), `succeeded` after a
    right one. A wrong one needs nothing more: it was counted."""

    def __init__(
        self,
        store: FailureStore,
        limits: ThrottleLimits | None = None,
        *,
        names: KeyNames,
        allowlist: AddressAllowlist | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limits = limits or ThrottleLimits()
        self._names = names
        self._allowlist = allowlist or AddressAllowlist()
        self._clock = clock

    async def check(self, subject: str, address: str | None) -> Attempt:
        """Count this attempt; RateLimited (with the seconds to wait, and nothing
        counted) when it must wait."""
        limits, now = self._limits, self._clock()
        where = address_bucket(address) if address else "-"
        attempt = Attempt(pair=self._names(f"pair\x00{subject}\x00{where}"))
        window = int(now // limits.window_s)
        window_end = (window + 1) * limits.window_s
        ceilings = [(self._names(f"acct\x00{subject}"), limits.per_account)]
        if address and address not in self._allowlist:
            ceilings.append((self._names(f"addr\x00{where}"), limits.per_address))
        try:
            for name, ceiling in ceilings:
                key = f"{name}:{window}"
                count, previous = await self._store.attempt(key, now, limits.window_s + 1)
                attempt.ceilings.append((key, previous))
                if count > ceiling:
                    raise errors.RateLimited(max(window_end - now, 1.0), _REFUSED)
            count, previous = await self._store.attempt(attempt.pair, now, limits.pair_window_s)
            failures = count - 1
            if failures >= limits.free:
                delay = min(2.0 ** (failures - limits.free), limits.max_delay_s)
                if previous + delay > now:
                    await self._store.undo(attempt.pair, previous)
                    raise errors.RateLimited(previous + delay - now, _REFUSED)
        except errors.RateLimited:
            await self._take_back(attempt)
            raise
        return attempt

    async def succeeded(self, attempt: Attempt) -> None:
        """A right password: the pair starts over and the ceilings do not count it."""
        await self._store.clear(attempt.pair)
        await self._take_back(attempt)

    async def _take_back(self, attempt: Attempt) -> None:
        for key, previous in attempt.ceilings:
            await self._store.undo(key, previous)
