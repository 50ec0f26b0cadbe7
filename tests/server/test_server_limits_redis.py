"""Rate limits with REDIS_URL set: one budget shared by every instance, and Redis outages.

Two in-process servers share a Redis of the test's own (`tests/deploy/redis_proc.py`):
a fresh one per test, so no other test's traffic from 127.0.0.1 counts, and one the test
may kill and start again. Limits are set low through the environment.

What `server/service/ratelimit.py` does when Redis fails: `RedisCounter.hit` catches the
Redis error and counts in a `LocalCounter` of its own instance (same limit, same fixed
window). So while Redis is down each instance admits the full limit on its own and then
refuses with RATE_LIMITED and a `retryAfter`: not fail-open, not refusing everything.
Once Redis answers again the shared counter decides (Redis restarted empty, so the
budget starts again, split across the instances).

Counters use fixed windows (60 s; 300 s for logins): a counting phase starts only where
the current window has room for it, and asserts that it ended in the same window.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest_asyncio
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClient, NodeClients
from pg import TempDatabase
from polling import eventually
from rate_windows import one_window

_DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
if str(_DEPLOY) not in sys.path:
    sys.path.insert(0, str(_DEPLOY))

from redis_proc import OwnRedis, own_redis  # noqa: E402

PASSWORD = "correct horse battery"


def _generation_control(live: LiveServer) -> str:
    """RedisTracker's cancellation channel: every instance subscribes to it through the
    same Redis client (and connection pool) the rate counter uses."""
    return f"{live.settings.redis_channel}:generation-control"


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[OwnRedis]:
    async with own_redis() as server:
        yield server


@asynccontextmanager
async def _instances(
    db: TempDatabase, redis_url: str, count: int = 2, **env: str
) -> AsyncIterator[list[LiveServer]]:
    """`count` servers on one Redis (one Socket.IO channel), as a deployment runs them."""
    shared = {"REDIS_URL": redis_url, "REDIS_CHANNEL": f"scca-limits-{uuid.uuid4().hex[:8]}"}
    shared.update(env)
    async with live_server(test_settings(db.app_dsn, **shared)) as first:
        if count == 1:
            yield [first]
            return
        async with live_server(test_settings(db.app_dsn, **shared)) as second:
            yield [first, second]




async def _health(live: LiveServer) -> tuple[int, dict[str, Any]]:
    async with live.http.get(live.base_url + "/api/health") as response:
        return response.status, dict(await response.json())


async def _until_health(
    live: LiveServer, predicate: Callable[[int, dict[str, Any]], bool], *, timeout: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: tuple[int, dict[str, Any]] | None = None
    while time.monotonic() < deadline:
        last = await _health(live)
        if predicate(*last):
            return last[1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{live.base_url}: health never matched in {timeout}s (last {last})")


async def _until_subscribed(redis: OwnRedis, channel: str, count: int) -> None:
    """Until `count` clients subscribe to `channel` again (after a Redis restart)."""
    client = redis.client()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            [(_, subscribers)] = await client.pubsub_numsub(channel)
            if subscribers >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{channel}: fewer than {count} subscribers after 20 s")
    finally:
        await client.aclose()


async def _message_count(live: LiveServer, token: str, conversation_id: str) -> int:
    """From the conversation list: reading one conversation spends a join."""
    status, body = await live.call("GET", "/api/conversations", token=token)
    assert status == 200, body
    [found] = [c for c in body["conversations"] if c["id"] == conversation_id]
    return int(found["messageCount"])


def _limited(ack: Any, kind: str, window_s: int = 60) -> None:
    assert isinstance(ack, dict), ack
    assert ack["success"] is False and ack["code"] == "RATE_LIMITED", ack
    assert ack["error"] == f"Too many {kind} events; slow down", ack
    assert 0 < ack["retryAfter"] <= window_s, ack


async def _ping(client: NodeClient) -> dict[str, Any]:
    [ack] = await client.emit("ping")
    return dict(ack)


async def _admitted_pings(client: NodeClient, count: int) -> None:
    for i in range(count):
        ack = await _ping(client)
        assert ack["success"] is True and isinstance(ack["timestamp"], int), (i, ack)


async def _connected(node: NodeClients, live: LiveServer, token: str) -> NodeClient:
    client = await node.connect(live.base_url, token=token)
    assert client.connected.is_set(), client.connect_error
    return client


async def test_sends_joins_and_other_events_share_one_budget_across_instances(
    server_db: TempDatabase, redis: OwnRedis, node: NodeClients
) -> None:
    limits = {
        "RATE_SENDS_PER_MIN": "4",
        "RATE_EDITS_PER_MIN": "2",
        "RATE_JOINS_PER_MIN": "4",
        "RATE_EVENTS_PER_MIN": "6",
        "SCRIPTED_DELAY_MS": "0",
    }
    async with _instances(server_db, redis.url, **limits) as (one, two):
        account = await one.register()
        conversation_id = await one.create_conversation(account["token"])
        tab_one = await _connected(node, one, account["token"])
        tab_two = await _connected(node, two, account["token"])
        tabs = (tab_one, tab_two)

        async with one_window(60, needed_s=10):
            # Joins: two on each instance use the budget of four...
            for _ in range(2):
                for tab in tabs:
                    [ack] = await tab.emit("join-conversation", conversation_id)
                    assert ack["success"] is True, ack
            # ...and the next join is refused on either, with the error event too.
            for tab in tabs:
                mark = len(tab.events)
                [ack] = await tab.emit("join-conversation", conversation_id)
                _limited(ack, "join")
                error = await tab.wait_for("error", after=mark)
                assert error.data["code"] == "RATE_LIMITED", error.data

            # Sends: the same, and a refused send stores nothing.
            for i in range(2):
                for n, tab in enumerate(tabs):
                    [ack] = await tab.emit("send-message", {"content": f"send {i} via {n}"})
                    assert ack["success"] is True, ack
            for tab in tabs:
                [ack] = await tab.emit("send-message", {"content": "one too many"})
                _limited(ack, "send")
            assert await _message_count(one, account["token"], conversation_id) == 8

            # Edits: one on each instance (each regenerates the last reply), then refused.
            for tab in tabs:
                mark = len(tab.events)
                [ack] = await tab.emit("edit-message", {"sequence": 7, "newContent": "edited"})
                assert ack["success"] is True and ack["deletedCount"] in (0, 1), ack
                await tab.wait_for("ai-complete", lambda d: d["sequence"] == 8, after=mark)
            for tab in tabs:
                [ack] = await tab.emit("edit-message", {"sequence": 7, "newContent": "again"})
                _limited(ack, "edit")

            # Any other event (here `ping`): three on each, then refused on either.
            for tab in tabs:
                await _admitted_pings(tab, 3)
            for tab in tabs:
                _limited(await _ping(tab), "other")

        assert all(tab.connected.is_set() for tab in tabs)
        # Another user has a budget of their own.
        other = await one.register()
        stranger = await _connected(node, two, other["token"])
        await _admitted_pings(stranger, 1)
        for client in (*tabs, stranger):
            await client.disconnect()


async def test_connections_per_address_share_one_budget_across_instances(
    server_db: TempDatabase, redis: OwnRedis, node: NodeClients
) -> None:
    async with _instances(server_db, redis.url, RATE_CONNECTS_PER_MIN_PER_IP="4") as (one, two):
        account = await one.register()
        clients: list[NodeClient] = []
        async with one_window(60, needed_s=8):
            for live in (one, two, one, two):
                clients.append(await _connected(node, live, account["token"]))
            for live in (one, two):
                refused = await node.connect(live.base_url, token=account["token"])
                assert not refused.connected.is_set()
                assert refused.connect_error == "Too many connections from this address"
        # The sockets admitted before stay usable.
        for client in clients:
            assert (await _ping(client))["success"] is True
            await client.disconnect()


async def _raw_handshake(live: LiveServer) -> list[str]:
    """One Engine.IO handshake over long-polling, as a script would send it."""
    url = f"{live.base_url}/api/socket/?EIO=4&transport=polling"
    async with live.http.get(url) as response:
        assert response.status == 200
        return (await response.text()).split("\x1e")


async def test_handshakes_per_address_share_one_budget_across_instances(
    server_db: TempDatabase, redis: OwnRedis
) -> None:
    async with (
        _instances(server_db, redis.url, RATE_CONNECTS_PER_MIN_PER_IP="4") as (one, two),
        one_window(60, needed_s=8),
    ):
        for live in (one, two, one, two):
            assert len(await _raw_handshake(live)) == 1  # OPEN: a session
        for live in (one, two):
            opening, refusal, closing = await _raw_handshake(live)
            assert opening.startswith("0{") and closing == "1"
            assert refusal.startswith('44{"message":"Too many connections from this address"')


async def test_registrations_per_address_share_one_budget_across_instances(
    server_db: TempDatabase, redis: OwnRedis
) -> None:
    env = {"RATE_REGISTERS_PER_HOUR_PER_IP": "2"}
    async with (
        _instances(server_db, redis.url, **env) as (one, two),
        one_window(3600, needed_s=30),
    ):
        await one.register()
        await two.register()
        for live in (one, two):
            email = f"late-{uuid.uuid4().hex[:8]}@example.com"
            body = {"email": email, "password": PASSWORD}
            status, answer = await live.call("POST", "/api/auth/register", json=body)
            assert status == 429 and answer["code"] == "RATE_LIMITED", answer


async def _login(
    live: LiveServer, email: str, password: str, address: str
) -> tuple[int, Any, str | None]:
    """A login from `address` (the servers trust the proxy header in these tests)."""
    async with live.http.post(
        live.base_url + "/api/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    ) as response:
        return response.status, await response.json(), response.headers.get("Retry-After")


def _throttled(body: Any, retry_after: str | None, most_s: float) -> None:
    assert body["code"] == "RATE_LIMITED", body
    assert body["error"] == "Too many failed attempts; try again later", body
    assert 0 < body["retryAfter"] <= most_s, body
    assert retry_after is not None and 1 <= int(retry_after) <= most_s + 1, retry_after


async def test_an_attackers_failed_logins_slow_the_attacker_not_the_owner(
    server_db: TempDatabase, redis: OwnRedis
) -> None:
    attacker, owner = "203.0.113.66", "198.51.100.20"
    env = {"TRUST_PROXY": "true", "LOGIN_FREE_FAILURES": "3"}
    async with _instances(server_db, redis.url, **env) as (one, two):
        account = await one.register()
        email = account["user"]["email"]
        # Three free failures, spread over both instances: one count in Redis.
        for live in (one, two, one):
            status, body, _ = await _login(live, email, "wrong password", attacker)
            assert status == 401, body
        # The next guess from that address waits (even the right password, on either
        # instance): the first delay is one second.
        for live in (one, two):
            status, body, retry_after = await _login(live, email, PASSWORD, attacker)
            assert status == 429, body
            _throttled(body, retry_after, most_s=1)
        # The owner, from another address, is not held back at all, on either instance.
        for live in (two, one):
            status, body, _ = await _login(live, email.upper(), PASSWORD, owner)
            assert status == 200, body
        # A guess after the wait is answered (polled: refused guesses do not count), and
        # the next wait doubles.
        async def answered() -> bool:
            status, body, _ = await _login(two, email, "still wrong", attacker)
            assert status in (401, 429), body
            return status == 401

        await eventually(answered, what="the attacker's first delay to pass", interval=0.1)
        status, body, retry_after = await _login(one, email, "again", attacker)
        assert status == 429, body
        _throttled(body, retry_after, most_s=2)
        assert body["retryAfter"] > 1, body


async def test_one_address_failing_across_many_accounts_meets_its_ceiling(
    server_db: TempDatabase, redis: OwnRedis
) -> None:
    env = {"TRUST_PROXY": "true", "LOGIN_FAILURES_PER_ADDRESS_PER_HOUR": "6"}
    async with _instances(server_db, redis.url, **env) as (one, two):
        other = await one.register()

        async def attempts(live: LiveServer) -> None:
            for _ in range(3):
                email = f"nobody-{uuid.uuid4().hex[:12]}@example.com"
                status, body, _ = await _login(live, email, "wrong password", "192.0.2.77")
                assert status == 401, body

        await asyncio.gather(attempts(one), attempts(two))
        for live in (one, two):
            status, body, retry_after = await _login(
                live, other["user"]["email"], PASSWORD, "192.0.2.77"
            )
            assert status == 429, body
            _throttled(body, retry_after, most_s=3600)
        status, body, _ = await _login(two, other["user"]["email"], PASSWORD, "192.0.2.78")
        assert status == 200, body


async def test_a_stolen_token_is_no_password_oracle(
    server_db: TempDatabase, redis: OwnRedis
) -> None:
    env = {"TRUST_PROXY": "true", "LOGIN_FREE_FAILURES": "3"}
    async with _instances(server_db, redis.url, **env) as (one, two):
        account = await one.register()
        token = account["token"]
        guesses = [
            (one, "POST", "/api/auth/password", {"currentPassword": "x", "newPassword": "n" * 12}),
            (two, "DELETE", "/api/account", {"password": "guess 2"}),
            (one, "DELETE", "/api/account", {"password": "guess 3"}),
        ]
        for live, method, path, body in guesses:
            status, answer = await live.call(method, path, token=token, json=body)
            assert status == 400, answer
        for live, method, path, body in guesses:
            right = dict(body)
            right["currentPassword" if "currentPassword" in right else "password"] = PASSWORD
            status, answer, headers = await live.call_with_headers(
                method, path, token=token, json=right
            )
            assert status == 429, answer
            _throttled(answer, headers.get("Retry-After"), most_s=1)


async def test_while_redis_is_down_each_instance_counts_alone_then_the_shared_count_returns(
    server_db: TempDatabase, redis: OwnRedis, node: NodeClients
) -> None:
    limits = {"RATE_EVENTS_PER_MIN": "4", "RATE_SENDS_PER_MIN": "2", "SCRIPTED_DELAY_MS": "0"}
    async with _instances(server_db, redis.url, **limits) as (one, two):
        account = await one.register()
        conversation_id = await one.create_conversation(account["token"])
        tab_one = await node.joined(one.base_url, account["token"], conversation_id)
        tab_two = await node.joined(two.base_url, account["token"], conversation_id)
        tabs = (tab_one, tab_two)

        async with one_window(60, needed_s=12):
            await redis.stop()
            for live in (one, two):
                body = await _until_health(live, lambda s, b: s == 503 and b["redis"] == "down")
                assert body["database"] == "ok", body

            # Each instance admits the whole limit on its own, then refuses.
            for tab in tabs:
                await _admitted_pings(tab, 4)
                _limited(await _ping(tab), "other")
            for n, tab in enumerate(tabs):
                for i in range(2):
                    [ack] = await tab.emit("send-message", {"content": f"outage {n}.{i}"})
                    assert ack["success"] is True, ack
                [ack] = await tab.emit("send-message", {"content": "one too many"})
                _limited(ack, "send")
            # Nothing else breaks: new sockets connect, logins work, every ack has a code.
            late = await _connected(node, two, account["token"])
            _limited(await _ping(late), "other")
            status, body, _ = await _login(one, account["user"]["email"], PASSWORD, "192.0.2.1")
            assert status == 200, body
            status, body = await one.call(
                "GET", f"/api/conversations/{conversation_id}", token=account["token"]
            )
            assert status == 200 and body["messageCount"] == 8, body

            await redis.start()
            # The instances see Redis again: both resubscribed their control channel and
            # their health pings it (which also takes the pooled connection that died
            # with the old process out of the pool: see the next test).
            await _until_subscribed(redis, _generation_control(one), 2)
            for live in (one, two):
                await _until_health(live, lambda s, b: b["redis"] != "down")

            # The shared count again: the same user's budget (Redis restarted empty) is
            # split across the instances, whatever their local windows say.
            for tab in tabs:
                await _admitted_pings(tab, 2)
            for tab in tabs:
                _limited(await _ping(tab), "other")

        for live in (one, two):
            await _until_health(live, lambda s, b: s == 200)
        assert all(tab.connected.is_set() for tab in (*tabs, late))
        for client in (*tabs, late):
            await client.disconnect()


async def test_the_first_decision_after_redis_returns_is_the_shared_counters(
    server_db: TempDatabase, redis: OwnRedis, node: NodeClients
) -> None:
    """Once Redis answers again, a user's events are counted there, from the first one.

    The counter's client keeps, in its pool, a connection to the Redis process that was
    killed; the first command through it after the restart fails ("Connection closed by
    server") and `RedisCounter.hit` takes that as "Redis is down": the event is judged by
    the instance's local window, which the outage exhausted, and refused although the
    shared window is empty.
    """
    async with _instances(server_db, redis.url, count=1, RATE_EVENTS_PER_MIN="2") as [live]:
        account = await live.register()
        tab = await _connected(node, live, account["token"])
        async with one_window(60, needed_s=8):
            await redis.stop()
            await _until_health(live, lambda s, b: b["redis"] == "down")
            await _admitted_pings(tab, 2)
            _limited(await _ping(tab), "other")
            await redis.start()
            # Redis is back and the instance uses it: its tracker is subscribed again.
            await _until_subscribed(redis, _generation_control(live), 1)
            ack = await _ping(tab)
            assert ack["success"] is True, (
                "the first event after Redis came back was judged by the local fallback "
                f"window: {ack}"
            )
        await tab.disconnect()
