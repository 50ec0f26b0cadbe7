"""Password guesses are throttled by account and address together, with progressive
delays; an attacker elsewhere never locks the owner out; far higher ceilings per
address and per account bound the guesses overall. Every attempt is counted before the
password is checked, so guesses sent at once cannot slip through together. Both stores:
this process, and Redis (where emails and addresses appear only as keyed hashes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio

from server.service.address_allowlist import AddressAllowlist
from server.service.exceptions import RateLimited
from server.service.key_names import KeyNames
from server.service.password_throttle import (
    FailureStore,
    LocalFailures,
    PasswordThrottle,
    RedisFailures,
    ThrottleLimits,
)

NAMES = KeyNames(b"k" * 32, "password-throttle")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prefix() -> str:
    return f"scca-test-{uuid.uuid4().hex[:8]}:pw:"


@pytest_asyncio.fixture(params=["local", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_client: redis_asyncio.Redis, clock: Clock, prefix: str
) -> AsyncIterator[FailureStore]:
    if request.param == "local":
        yield LocalFailures(clock)
        return
    yield RedisFailures(redis_client, prefix)
    keys = [key async for key in redis_client.scan_iter(f"{prefix}*")]
    if keys:
        await redis_client.delete(*keys)


def _throttle(store: FailureStore, clock: Clock, **limits: int) -> PasswordThrottle:
    allowlist = AddressAllowlist.parse("192.0.2.250")
    return PasswordThrottle(
        store, ThrottleLimits(**limits), names=NAMES, allowlist=allowlist, clock=clock
    )


async def _refused(throttle: PasswordThrottle, subject: str, address: str) -> float:
    with pytest.raises(RateLimited) as raised:
        await throttle.check(subject, address)
    return raised.value.retry_after


async def _fail(throttle: PasswordThrottle, subject: str, address: str) -> None:
    await throttle.check(subject, address)  # a wrong password needs nothing more


async def test_delays_grow_for_the_attackers_pair_and_never_touch_the_owner(
    store: FailureStore, clock: Clock
) -> None:
    throttle = _throttle(store, clock, free=3)
    victim, attacker, owner = "victim@example.com", "203.0.113.9", "198.51.100.7"
    for _ in range(3):  # the free failures
        await _fail(throttle, victim, attacker)
    delays = []
    for _ in range(5):
        delays.append(await _refused(throttle, victim, attacker))
        clock.now += delays[-1] + 0.01
        await _fail(throttle, victim, attacker)  # once waited, one more guess
    assert [round(d) for d in delays] == [1, 2, 4, 8, 16]
    # The owner, from their own address, is not slowed at all, and logs in.
    await throttle.succeeded(await throttle.check(victim, owner))
    assert await _refused(throttle, victim, attacker) == pytest.approx(32, abs=0.1)


async def test_guesses_sent_at_once_get_only_the_free_tries(
    store: FailureStore, clock: Clock
) -> None:
    throttle = _throttle(store, clock, free=3, per_account=40)
    outcomes = await asyncio.gather(
        *(throttle.check("victim@example.com", "203.0.113.9") for _ in range(60)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, RateLimited) for o in outcomes) == 3
    # The refused ones took their counts back: the owner's ceiling was never reached.
    await throttle.succeeded(await throttle.check("victim@example.com", "198.51.100.7"))


async def test_a_success_clears_the_pair_and_the_delay_is_capped(
    store: FailureStore, clock: Clock
) -> None:
    throttle = _throttle(store, clock, free=2, max_delay_s=5)
    for _ in range(6):
        clock.now += 10
        await _fail(throttle, "a@example.com", "192.0.2.1")
    assert await _refused(throttle, "a@example.com", "192.0.2.1") == pytest.approx(5)
    clock.now += 5
    await throttle.succeeded(await throttle.check("a@example.com", "192.0.2.1"))
    await _fail(throttle, "a@example.com", "192.0.2.1")  # one failure after: still free
    await _fail(throttle, "a@example.com", "192.0.2.1")


async def test_the_ceilings_count_fixed_windows_and_ipv6_per_64(
    store: FailureStore, clock: Clock
) -> None:
    throttle = _throttle(store, clock, free=100, per_address=5, per_account=8, window_s=600)
    clock.now = 600 * 2000 + 10  # ten seconds into a window
    # One /64 trying many accounts from many of its addresses: one budget.
    for n in range(5):
        await _fail(throttle, f"user{n}@example.com", f"2001:db8:1:2::{n + 1}")
    assert 580 < await _refused(throttle, "fresh@example.com", "2001:db8:1:2::99") <= 590
    await throttle.check("fresh@example.com", "2001:db8:1:3::1")  # another /64 is not
    await throttle.check("fresh@example.com", "192.0.2.250")  # nor the allowlist
    # Many addresses trying one account: refused everywhere at the account's ceiling...
    for n in range(8):
        await _fail(throttle, "target@example.com", f"198.51.100.{n}")
    await _refused(throttle, "target@example.com", "203.0.113.200")
    # ...until the window ends, however the failures were spread in it.
    clock.now += 590
    await throttle.check("target@example.com", "203.0.113.200")


async def test_redis_holds_no_email_or_address(
    redis_client: redis_asyncio.Redis, clock: Clock, prefix: str
) -> None:
    throttle = _throttle(RedisFailures(redis_client, prefix), clock)
    try:
        await _fail(throttle, "someone@example.com", "203.0.113.77")
        keys = [key async for key in redis_client.scan_iter(f"{prefix}*")]
        assert len(keys) == 3, keys  # pair, address, account
        stored = b" ".join(keys)
        for part in (b"someone", b"example.com", b"203.0.113.77"):
            assert part not in stored
    finally:
        keys = [key async for key in redis_client.scan_iter(f"{prefix}*")]
        if keys:
            await redis_client.delete(*keys)
