"""Per-address limits on their own: the budgets, the IPv6 /64 bucket, the allowlist, the
metric, and the keys in the real Redis. The clock is the only thing replaced."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
import redis.asyncio as redis_asyncio

from server.service import exceptions as errors
from server.service import ratelimit
from server.service.address_allowlist import AddressAllowlist
from server.service.address_limits import AddressLimit, AddressLimiter, address_bucket
from server.service.event_limits import EventLimits
from server.service.key_names import KeyNames
from server.service.metrics import Metrics
from server.service.ratelimit import LocalCounter, RedisCounter

LIMITS = EventLimits(connects_per_ip=2, registers_per_ip=1)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(6030.0)  # minute 100 [6000, 6060), hour 1 [3600, 7200)
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=fake.time))
    return fake


NAMES = KeyNames(b"n" * 32, "address-limits")


def _limiter(
    counter: ratelimit.RateCounter | None = None, allowlist: str = ""
) -> tuple[AddressLimiter, Metrics]:
    metrics = Metrics()
    limiter = AddressLimiter(
        counter or LocalCounter(), LIMITS, AddressAllowlist.parse(allowlist), metrics, NAMES
    )
    return limiter, metrics


async def _refused(
    limiter: AddressLimiter, limit: AddressLimit, address: str
) -> errors.RateLimited:
    with pytest.raises(errors.RateLimited) as caught:
        await limiter.check(limit, address)
    return caught.value


def _refusals(metrics: Metrics, limit: str) -> float:
    value = metrics.registry.get_sample_value("scca_address_limited_total", {"limit": limit})
    return value or 0.0


async def test_handshakes_and_connects_spend_one_budget_of_connections(clock: Clock) -> None:
    limiter, metrics = _limiter()
    await limiter.check(AddressLimit.HANDSHAKE, "192.0.2.1")
    await limiter.check(AddressLimit.CONNECT, "192.0.2.1")
    refused = await _refused(limiter, AddressLimit.HANDSHAKE, "192.0.2.1")
    assert refused.message == "Too many connections from this address"
    assert refused.retry_after == 30.0
    assert refused.code == "RATE_LIMITED" and refused.status == 429
    await _refused(limiter, AddressLimit.CONNECT, "192.0.2.1")
    await limiter.check(AddressLimit.HANDSHAKE, "192.0.2.2")
    assert (_refusals(metrics, "handshake"), _refusals(metrics, "connect")) == (1, 1)


async def test_registrations_have_an_hourly_budget_of_their_own(clock: Clock) -> None:
    limiter, metrics = _limiter()
    await limiter.check(AddressLimit.REGISTER, "192.0.2.1")
    refused = await _refused(limiter, AddressLimit.REGISTER, "192.0.2.1")
    assert refused.message == "Too many accounts registered from this address; try again later"
    assert refused.retry_after == 7200 - 6030.0
    await limiter.check(AddressLimit.HANDSHAKE, "192.0.2.1")  # connections count apart
    assert _refusals(metrics, "register") == 1


async def test_no_address_is_not_counted(clock: Clock) -> None:
    limiter, metrics = _limiter()
    for _ in range(5):
        await limiter.check(AddressLimit.HANDSHAKE, None)
        await limiter.check(AddressLimit.REGISTER, "")
    assert _refusals(metrics, "handshake") == _refusals(metrics, "register") == 0


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::9", "2001:db8:1:2::/64"),
        ("not an address", "not an address"),
    ],
)
def test_what_an_address_is_counted_as(address: str, bucket: str) -> None:
    assert address_bucket(address) == bucket


async def test_ipv6_hosts_of_one_64_share_a_budget(clock: Clock) -> None:
    limiter, _ = _limiter()
    await limiter.check(AddressLimit.REGISTER, "2001:db8:1:2::1")
    await _refused(limiter, AddressLimit.REGISTER, "2001:db8:1:2:ffff::2")
    await limiter.check(AddressLimit.REGISTER, "2001:db8:1:3::1")


async def test_allowlisted_addresses_are_never_counted(clock: Clock) -> None:
    limiter, metrics = _limiter(allowlist="127.0.0.1, 10.0.0.0/8, 2001:db8:aaaa::/48")
    for address in ("127.0.0.1", "10.200.0.1", "::ffff:10.0.0.9", "2001:db8:aaaa:5::1"):
        for _ in range(5):
            await limiter.check(AddressLimit.HANDSHAKE, address)
            await limiter.check(AddressLimit.REGISTER, address)
    await limiter.check(AddressLimit.REGISTER, "11.0.0.1")
    await _refused(limiter, AddressLimit.REGISTER, "11.0.0.1")
    assert _refusals(metrics, "handshake") == 0 and _refusals(metrics, "register") == 1


@pytest.mark.parametrize(
    ("raw", "inside", "outside"),
    [
        ("", [], ["127.0.0.1"]),
        (" 127.0.0.1 ,, ", ["127.0.0.1", "::ffff:127.0.0.1"], ["127.0.0.2", "::1"]),
        ("10.0.0.0/8", ["10.0.0.0", "10.255.255.255"], ["11.0.0.0", "9.255.255.255"]),
        ("::1, 2001:db8::/32", ["::1", "2001:db8:ffff::1"], ["2001:db9::1", "127.0.0.1"]),
        ("10.0.0.0/8", [], ["", "10.0.0.1:443", "garbage", "10.0.0.1, 10.0.0.2"]),
    ],
)
def test_the_allowlist_matches_addresses_inside_its_networks(
    raw: str, inside: list[str], outside: list[str]
) -> None:
    allowlist = AddressAllowlist.parse(raw)
    assert bool(allowlist) is bool(raw.strip(" ,"))
    assert all(address in allowlist for address in inside), inside
    assert not any(address in allowlist for address in outside), outside


@pytest.mark.parametrize("raw", ["10.0.0.1/8", "localhost", "10.0.0.0/33", "1.2.3"])
def test_the_allowlist_refuses_entries_that_are_not_networks(raw: str) -> None:
    with pytest.raises(ValueError, match=raw.replace(".", r"\.")):
        AddressAllowlist.parse(f"127.0.0.1, {raw}")


async def test_address_keys_in_redis(clock: Clock, redis_client: redis_asyncio.Redis) -> None:
    prefix = f"test-al-{uuid.uuid4().hex[:10]}:"
    limiter, _ = _limiter(RedisCounter(redis_client, prefix=prefix))
    await limiter.check(AddressLimit.HANDSHAKE, "192.0.2.3")
    await limiter.check(AddressLimit.CONNECT, "192.0.2.3")
    await limiter.check(AddressLimit.REGISTER, "2001:db8::7")
    names = [name.decode() async for name in redis_client.scan_iter(match=f"{prefix}*")]
    values = {name.removeprefix(prefix): int(await redis_client.get(name)) for name in names}
    await redis_client.delete(*names)
    # Addresses go to Redis as keyed hashes, IPv6 per /64.
    assert values == {
        f"conn:{NAMES('192.0.2.3')}:100": 2,
        f"reg:{NAMES('2001:db8::/64')}:1": 1,
    }
    assert not any("192.0.2" in name or "2001" in name for name in names)
