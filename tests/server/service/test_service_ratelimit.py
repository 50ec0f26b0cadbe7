"""The rate limiter on its own: fixed windows in-process and in the real Redis, the login
guard, the per-event limits, the flood detector (per-address limits:
test_service_address_limits.py).

The clock is the only thing replaced (`ratelimit.time`), so windows and retry-after
values are exact; Redis is the machine's real one (keys under a prefix of each test's own).
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from protocol.names import ClientEvent
from server.service import exceptions as errors
from server.service import ratelimit
from server.service.event_limits import Action, EventLimiter, EventLimits
from server.service.ratelimit import LocalCounter, RedisCounter


class Clock:
    """`time.time()` for the rate limiter, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1_000_000.25)
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=fake.time))
    return fake


@pytest.fixture
def prefix() -> str:
    return f"test-rl-{uuid.uuid4().hex[:10]}:"


async def _keys(client: redis_asyncio.Redis, prefix: str) -> dict[str, int]:
    names = [name.decode() async for name in client.scan_iter(match=f"{prefix}*")]
    values = [int(await client.get(name)) for name in names]
    if names:
        await client.delete(*names)
    return {name.removeprefix(prefix): value for name, value in zip(names, values, strict=True)}


# ── LocalCounter ────────────────────────────────────────────────────────────


async def test_a_local_window_admits_the_limit_then_says_how_long_to_wait(clock: Clock) -> None:
    counter = LocalCounter()
    clock.now = 1000.5  # window 100 of 10 s: [1000, 1010)
    assert [await counter.hit("k", 3, 10) for _ in range(3)] == [None, None, None]
    assert await counter.hit("k", 3, 10) == 9.5
    assert await counter.hit("other", 3, 10) is None  # keys count apart
    clock.now = 1009.75
    assert await counter.hit("k", 3, 10) == 0.25
    clock.now = 1010.0  # a new window starts from zero
    assert await counter.hit("k", 3, 10) is None


async def test_local_windows_are_pruned_once_a_minute_keeping_the_last_two(
    clock: Clock,
) -> None:
    counter = LocalCounter()

    def windows() -> set[tuple[str, int]]:
        return set(counter._windows)  # noqa: SLF001 - the pruning is only seen here

    clock.now = 100.0  # the first hit prunes (nothing) and starts the minute
    await counter.hit("a", 5, 10)
    clock.now = 145.0
    await counter.hit("e", 5, 10)
    clock.now = 150.0
    await counter.hit("b", 5, 10)
    clock.now = 160.0  # exactly 60 s since the last prune: not yet
    await counter.hit("c", 5, 10)
    assert windows() == {("a", 10), ("e", 14), ("b", 15), ("c", 16)}
    clock.now = 160.5  # now it prunes: window 16 and the one before it stay
    await counter.hit("d", 5, 10)
    assert windows() == {("b", 15), ("c", 16), ("d", 16)}
    clock.now = 200.0  # 39.5 s later: no prune
    await counter.hit("f", 5, 10)
    assert ("b", 15) in windows()
    clock.now = 221.0
    await counter.hit("g", 5, 10)
    assert windows() == {("g", 22)}


# ── RedisCounter ────────────────────────────────────────────────────────────


async def test_the_redis_window_is_one_key_per_window_that_outlives_it_by_a_second(
    clock: Clock, redis_client: redis_asyncio.Redis, prefix: str
) -> None:
    counter = RedisCounter(redis_client, prefix=prefix)
    clock.now = 6000.25  # window 200 of 30 s: [6000, 6030)
    assert [await counter.hit("k", 2, 30) for _ in range(2)] == [None, None]
    assert await counter.hit("k", 2, 30) == 29.75
    ttl_ms = await redis_client.pttl(f"{prefix}k:200")
    assert 30_000 < ttl_ms <= 31_000
    clock.now = 6030.0
    assert await counter.hit("k", 2, 30) is None
    assert await _keys(redis_client, prefix) == {"k:200": 3, "k:201": 1}


async def test_the_default_redis_prefix(clock: Clock, redis_client: redis_asyncio.Redis) -> None:
    key = f"test-{uuid.uuid4().hex[:10]}"
    assert await RedisCounter(redis_client).hit(key, 5, 60) is None
    name = f"scca:rl:{key}:{int(clock.now // 60)}"
    assert int(await redis_client.get(name)) == 1
    await redis_client.delete(name)


async def test_without_redis_the_counter_keeps_counting_locally(clock: Clock) -> None:
    down = redis_asyncio.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        counter = RedisCounter(down)
        clock.now = 500.0
        assert [await counter.hit("k", 2, 10) for _ in range(2)] == [None, None]
        assert await counter.hit("k", 2, 10) == 10.0
        assert await counter.hit("other", 2, 10) is None  # each key still counts alone
    finally:
        await down.aclose()


async def _refused(call: object) -> errors.RateLimited:
    with pytest.raises(errors.RateLimited) as caught:
        await call  # type: ignore[misc]
    return caught.value


# ── EventLimiter ────────────────────────────────────────────────────────────

LIMITS = EventLimits(
    sends=1,
    edits=2,
    joins=3,
    other=4,
    connects_per_ip=2,
    flood_refusals=2,
    creates=5,
    key_rotations=6,
    exports=7,
)


async def test_each_action_has_its_own_budget(clock: Clock) -> None:
    limiter = EventLimiter(LocalCounter(), LIMITS)
    user = uuid.uuid4()
    clock.now = 6010.0  # window 100 of 60 s: [6000, 6060)
    budgets = [
        (Action.SEND, 1),
        (Action.EDIT, 2),
        (Action.JOIN, 3),
        (Action.CREATE, 5),
        (Action.ROTATE_KEY, 6),
        (Action.EXPORT, 7),
    ]
    for action, limit in budgets:
        for _ in range(limit):
            await limiter.check(user, action)
        refused = await _refused(limiter.check(user, action))
        assert refused.message == f"Too many {action.value} events; slow down"
        assert refused.retry_after == 50.0
    await limiter.check(uuid.uuid4(), Action.SEND)  # another user's budget is their own


async def test_socket_events_the_services_count_are_not_counted_again(clock: Clock) -> None:
    limiter = EventLimiter(LocalCounter(), LIMITS)
    user = uuid.uuid4()
    clock.now = 6010.0
    for event in (ClientEvent.SEND_MESSAGE, ClientEvent.EDIT_MESSAGE):
        for _ in range(10):  # far past their budgets: the service counts them
            await limiter.check_event(user, event)
    await limiter.check(user, Action.SEND)  # the send budget is untouched
    for _ in range(4):
        await limiter.check_event(user, ClientEvent.STOP_GENERATION)
    refused = await _refused(limiter.check_event(user, "anything_else"))
    assert refused.message == "Too many other events; slow down"  # one budget for the rest


async def test_a_socket_floods_once_its_refusals_pass_the_limit(clock: Clock) -> None:
    limiter = EventLimiter(LocalCounter(), LIMITS)
    assert [await limiter.is_flooding("sid-1") for _ in range(3)] == [False, False, True]
    assert await limiter.is_flooding("sid-2") is False


async def test_event_keys_in_redis(
    clock: Clock, redis_client: redis_asyncio.Redis, prefix: str
) -> None:
    limiter = EventLimiter(RedisCounter(redis_client, prefix=prefix), LIMITS)
    user = uuid.uuid4()
    clock.now = 6010.0
    await limiter.check(user, Action.SEND)
    await limiter.check(user, Action.EDIT)
    await limiter.check(user, Action.JOIN)
    await limiter.check_event(user, ClientEvent.SEND_MESSAGE)  # counted by the service
    await limiter.check_event(user, ClientEvent.STOP_GENERATION)
    await limiter.is_flooding("sid-9")
    assert await _keys(redis_client, prefix) == {
        f"ev:send:{user}:100": 1,
        f"ev:edit:{user}:100": 1,
        f"ev:join:{user}:100": 1,
        f"ev:other:{user}:100": 1,
        "flood:sid-9:100": 1,
    }
