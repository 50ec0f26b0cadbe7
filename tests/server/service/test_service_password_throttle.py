"""Password guesses are throttled by account and address together, with progressive
delays; an attacker elsewhere never locks the owner out; far higher ceilings per
address and per account bound the guesses overall. Both stores: this process, and Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio

from server.service.exceptions import RateLimited
from server.service.password_throttle import (
    FailureStore,
    LocalFailures,
    PasswordThrottle,
    RedisFailures,
    ThrottleLimits,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture(params=["local", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_client: redis_asyncio.Redis, clock: Clock
) -> AsyncIterator[FailureStore]:
    if request.param == "local":
        yield LocalFailures(clock)
        return
    prefix = f"scca-test-{uuid.uuid4().hex[:8]}:pw:"
    yield RedisFailures(redis_client, prefix)
    keys = [key async for key in redis_client.scan_iter(f"{prefix}*")]
    if keys:
        await redis_client.delete(*keys)


async def _refused(throttle: PasswordThrottle, subject: str, address: str) -> float:
    with pytest.raises(RateLimited) as raised:
        await throttle.check(subject, address)
    return raised.value.retry_after


async def test_delays_grow_for_the_attackers_pair_and_never_touch_the_owner(
    store: FailureStore, clock: Clock
) -> None:
    throttle = PasswordThrottle(store, ThrottleLimits(free=3), clock=clock)
    victim, attacker, owner = "victim@example.com", "203.0.113.9", "198.51.100.7"
    for _ in range(3):  # the free failures
        await throttle.check(victim, attacker)
        await throttle.failed(victim, attacker)
    delays = []
    for _ in range(5):
        delays.append(await _refused(throttle, victim, attacker))
        clock.now += delays[-1] + 0.01
        await throttle.check(victim, attacker)  # once waited, one more guess
        await throttle.failed(victim, attacker)
    assert [round(d) for d in delays] == [1, 2, 4, 8, 16]
    # The owner, from their own address, is not slowed at all, and logs in.
    await throttle.check(victim, owner)
    await throttle.succeeded(victim, owner)
    assert await _refused(throttle, victim, attacker) == pytest.approx(32, abs=0.1)


async def test_a_success_clears_the_pair_and_the_delay_is_capped(
    store: FailureStore, clock: Clock
) -> None:
    throttle = PasswordThrottle(store, ThrottleLimits(free=2, max_delay_s=5), clock=clock)
    for _ in range(6):
        clock.now += 10
        await throttle.check("a@example.com", "192.0.2.1")
        await throttle.failed("a@example.com", "192.0.2.1")
    assert await _refused(throttle, "a@example.com", "192.0.2.1") == pytest.approx(5)
    clock.now += 5
    await throttle.check("a@example.com", "192.0.2.1")
    await throttle.succeeded("a@example.com", "192.0.2.1")
    await throttle.failed("a@example.com", "192.0.2.1")  # one failure after: still free
    await throttle.check("a@example.com", "192.0.2.1")


async def test_the_address_and_account_ceilings_bound_guesses_overall(
    store: FailureStore, clock: Clock
) -> None:
    limits = ThrottleLimits(free=100, per_address=5, per_account=8, window_s=600)
    throttle = PasswordThrottle(store, limits, clock=clock)
    # One address trying many accounts: refused once it has failed 5 times in all.
    for n in range(5):
        await throttle.check(f"user{n}@example.com", "192.0.2.50")
        await throttle.failed(f"user{n}@example.com", "192.0.2.50")
    assert 590 < await _refused(throttle, "fresh@example.com", "192.0.2.50") <= 600
    await throttle.check("fresh@example.com", "192.0.2.51")  # another address is not
    # Many addresses trying one account: refused everywhere at the account's ceiling.
    for n in range(8):
        await throttle.check("target@example.com", f"198.51.100.{n}")
        await throttle.failed("target@example.com", f"198.51.100.{n}")
    await _refused(throttle, "target@example.com", "203.0.113.200")
