"""Nothing readable in Redis: an attacker with read (or publish) access to it, watching a
whole conversation between two instances.

Two in-process servers share a Redis of the test's own. Canaries go in a conversation's
title, in a message and in the streamed reply (from a local server speaking OpenAI's
wire format, through the real SDK). While it runs, the attacker MONITORs every command,
subscribes to every channel, reads every key and has Redis write its dump file; none of
it may hold a canary. The traffic did cross Redis (the other instance's socket got every
event), so a clear copy anywhere would be found.

Then the attacker publishes: captured messages again (replays), and messages written the
way python-socketio and the generation control channel write them, in clear (forgeries).
Each is dropped, counted in /metrics, and reaches no socket and no running reply.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest_asyncio
from fake_llm import FakeOpenAIServer
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClients, resumed_text
from pg import TempDatabase
from polling import eventually

from protocol.names import conversation_room
from server.appkeys import METRICS

_DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
if str(_DEPLOY) not in sys.path:
    sys.path.insert(0, str(_DEPLOY))

from redis_proc import OwnRedis, own_redis  # noqa: E402

MODEL = "gpt-4o-mini"


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[OwnRedis]:
    async with own_redis() as server:
        yield server


class Eavesdropper:
    """Everything an attacker with access to Redis sees: MONITOR, every channel."""

    def __init__(self, redis: OwnRedis) -> None:
        self._redis = redis
        self.monitored = bytearray()
        self.published: list[tuple[bytes, bytes]] = []  # channel, data
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self._redis.port)
        writer.write(b"MONITOR\r\n")
        await writer.drain()
        assert await reader.readline() == b"+OK\r\n"
        client = self._redis.client()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe("*")

        async def monitor() -> None:
            try:
                while chunk := await reader.read(65536):
                    self.monitored += chunk
            finally:
                writer.close()

        async def listen() -> None:
            try:
                async for message in pubsub.listen():
                    self.published.append((message["channel"], message["data"]))
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()

        self._tasks = [asyncio.create_task(monitor()), asyncio.create_task(listen())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def every_key(self) -> bytes:
        """Every key's name and serialized value, as `DUMP` (and a backup) holds it."""
        client = self._redis.client()
        try:
            found = bytearray()
            async for key in client.scan_iter(count=1000):
                found += key + b"\x00" + (await client.dump(key) or b"") + b"\x00"
            return bytes(found)
        finally:
            await client.aclose()

    async def dump_file(self) -> bytes:
        client = self._redis.client()
        try:
            await client.save()
        finally:
            await client.aclose()
        return (self._redis.work / "dump.rdb").read_bytes()


@asynccontextmanager
async def eavesdropping(redis: OwnRedis) -> AsyncIterator[Eavesdropper]:
    eavesdropper = Eavesdropper(redis)
    await eavesdropper.start()
    try:
        yield eavesdropper
    finally:
        await eavesdropper.stop()


@asynccontextmanager
async def _two_instances(
    db: TempDatabase, redis_url: str, fake: FakeOpenAIServer
) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    shared = {
        "REDIS_URL": redis_url,
        "REDIS_CHANNEL": f"scca-sealed-{uuid.uuid4().hex[:8]}",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "test-key",
        "DEFAULT_MODEL": MODEL,
    }
    async with (
        live_server(test_settings(db.app_dsn, **shared)) as one,
        live_server(test_settings(db.app_dsn, **shared)) as two,
    ):
        yield one, two


def _rejected(live: LiveServer, channel: str, reason: str) -> float:
    value = live.app[METRICS].registry.get_sample_value(
        "scca_sealed_rejected_total", {"channel": channel, "reason": reason}
    )
    return value or 0.0


def _canaries() -> dict[str, str]:
    return {part: f"canary{part}{uuid.uuid4().hex}" for part in ("title", "message", "reply")}


async def test_a_conversation_between_two_instances_leaves_nothing_readable_in_redis(
    server_db: TempDatabase, redis: OwnRedis, node: NodeClients
) -> None:
    canary = _canaries()
    # Long enough after the canary for a third socket to connect and join mid-reply.
    tokens = ["The", " word", " is ", canary["reply"], *(f" w{i}" for i in range(30))]
    async with (
        eavesdropping(redis) as eavesdropper,
        FakeOpenAIServer(tokens=tokens, token_delay_s=0.1) as fake,
        _two_instances(server_db, redis.url, fake) as (one, two),
    ):
        account = await one.register()
        token = account["token"]
        conversation_id = await one.create_conversation(token, title=canary["title"])
        writer = await node.joined(one.base_url, token, conversation_id)
        watcher = await node.joined(two.base_url, token, conversation_id)

        # The seed's send-message acknowledges once the reply is complete.
        sent = asyncio.create_task(writer.emit("send-message", {"content": canary["message"]}))
        # The message and the reply reach the other instance's socket through Redis.
        await watcher.wait_for("message-added", lambda d: d["content"] == canary["message"])
        await watcher.wait_for("ai-token", lambda d: canary["reply"] in d["partial"])

        # Mid-reply: a socket joining on the other instance resumes from the mirror...
        late = await node.joined(two.base_url, token, conversation_id)
        state = await late.wait_for("state")
        assert "generating" in state.data
        assert canary["reply"] in state.data["generating"]["partial"], state.data
        assert state.data["title"] == canary["title"], state.data
        # ...which, like every other key, Redis holds sealed, in memory and on disk.
        during = await eavesdropper.every_key()
        assert b"generation" in during, "the reply's mirror should be in Redis now"
        dump = await eavesdropper.dump_file()

        complete = await watcher.wait_for("ai-complete", timeout=30)
        [ack] = await sent
        assert ack["success"] is True, ack
        assert canary["reply"] in complete.data["content"], complete.data
        assert resumed_text(late, complete.data["sequence"]) == "".join(tokens)
        after = await eavesdropper.every_key()

    channels = {channel for channel, _ in eavesdropper.published}
    assert len(eavesdropper.published) > len(tokens), channels  # the traffic was captured
    assert eavesdropper.monitored.count(b"PUBLISH") >= len(eavesdropper.published) // 2
    for part, value in canary.items():
        needle = value.encode()
        found = eavesdropper.monitored.find(needle)
        assert found < 0, f"{part} in MONITOR: {eavesdropper.monitored[found - 300 : found + 50]!r}"
        assert not any(needle in data for _, data in eavesdropper.published), f"{part} pub/sub"
        for where, seen in (("keys during", during), ("dump", dump), ("keys after", after)):
            assert needle not in seen, f"{part} in {where}"


async def test_forged_and_replayed_messages_are_dropped_and_counted(
    server_db: TempDatabase, redis: OwnRedis, node: NodeClients
) -> None:
    tokens = [f" t{i}" for i in range(40)]
    async with (
        eavesdropping(redis) as eavesdropper,
        FakeOpenAIServer(tokens=tokens, token_delay_s=0.05) as fake,
        _two_instances(server_db, redis.url, fake) as (one, two),
    ):
        channel = one.settings.redis_channel
        control = f"{channel}:generation-control"
        account = await one.register()
        conversation_id = await one.create_conversation(account["token"])
        writer = await node.joined(one.base_url, account["token"], conversation_id)
        watcher = await node.joined(two.base_url, account["token"], conversation_id)
        # From here both instances are listening: each sees every message from now on.
        await _until_both_listen(redis, channel)
        mark = len(eavesdropper.published)
        sent = asyncio.create_task(writer.emit("send-message", {"content": "hello"}))
        await watcher.wait_for("message-added", lambda d: d["content"] == "hello")
        await watcher.wait_for("ai-token", lambda d: d["tokenIndex"] >= 3)

        captured = [data for c, data in eavesdropper.published[mark:] if c == channel.encode()]
        assert captured
        attacker = redis.client()
        try:
            # Forgeries, written exactly as python-socketio and the control channel would.
            forged_emit = {
                "method": "emit",
                "event": "ai-complete",
                "data": {"sequence": 99, "content": "forged", "messageCount": 99, "timestamp": "x"},
                "namespace": "/",
                "room": conversation_room(conversation_id),
                "skip_sid": None,
                "callback": None,
                "host_id": uuid.uuid4().hex,
            }
            await attacker.publish(channel, json.dumps(forged_emit))
            forged_cancel = {"conversationId": conversation_id, "mode": "discard"}
            await attacker.publish(control, json.dumps(forged_cancel))
            # Replays: every message the instances have exchanged since `mark`, once more.
            for data in captured:
                await attacker.publish(channel, data)
        finally:
            await attacker.aclose()

        def counted() -> bool:
            forged = sum(_rejected(live, "socketio", "forged") for live in (one, two))
            control_forged = sum(
                _rejected(live, "generation-control", "forged") for live in (one, two)
            )
            replayed = sum(_rejected(live, "socketio", "replayed") for live in (one, two))
            # Each instance receives every message (its own too): two of each.
            return forged == 2 and control_forged == 2 and replayed == 2 * len(captured)

        await eventually(counted, what="every forged and replayed message to be counted")
        complete = await watcher.wait_for("ai-complete", timeout=30)
        [ack] = await sent
        assert ack["success"] is True, ack
        metrics_text = await _metrics_text(one)

    # The forged cancel stopped nothing and the forged completion reached no socket.
    assert complete.data["content"].strip() == "".join(tokens).strip(), complete.data
    for client in (writer, watcher):
        completions = client.named("ai-complete")
        assert [e.data["sequence"] for e in completions] == [2], completions
    added = [e.data["content"] for e in watcher.named("message-added")]
    assert added == ["hello"], added  # the replayed message-added was dropped
    tokens_seen = [e.data["tokenIndex"] for e in watcher.named("ai-token")]
    assert tokens_seen == list(range(1, len(tokens) + 1)), tokens_seen  # no token twice
    assert 'scca_sealed_rejected_total{channel="socketio",reason="replayed"}' in metrics_text


async def _until_both_listen(redis: OwnRedis, channel: str) -> None:
    client = redis.client()
    try:

        async def subscribers() -> bool:
            [(_, count)] = await client.pubsub_numsub(channel)
            return int(count) == 2

        await eventually(subscribers, what="both instances to subscribe to the channel")
    finally:
        await client.aclose()


async def _metrics_text(live: LiveServer) -> str:
    async with live.http.get(live.base_url + "/metrics") as response:
        assert response.status == 200
        return await response.text()
