"""Redis and PostgreSQL (a test's own, not the machine's) go away and come back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from deploy_support import (
    cluster_envs,
    conversation,
    create_conversation,
    eventually,
    register,
    tab,
)
from instances import Instance, http_json, instance_env, running_instances
from node_client import NodeClients, resumed_text
from pg import TempDatabase
from pg_cluster import OwnPostgres, own_postgres
from redis_proc import own_redis

import storage


async def test_redis_restart_mid_stream(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    async with own_redis() as redis:
        envs = cluster_envs(server_db, tmp_path, 2, redis=redis.url)
        async with running_instances(envs, tmp_path / "logs") as (first, second):
            account = await register(first.base_url)
            conversation_id = await create_conversation(
                first.base_url, account, model="scripted:60:20"
            )
            other_id = await create_conversation(first.base_url, account)
            here = await tab(node, first.base_url, account, conversation_id)
            there = await tab(node, second.base_url, account, conversation_id)
            for app in (first, second):
                assert (await app.wait_health())["redis"] == "ok"

            send = asyncio.create_task(here.emit("send-message", {"content": "keep going"}))
            await there.wait_for("ai-token", lambda d: d["tokenIndex"] >= 5)
            await redis.stop()

            # Each instance says so, and keeps serving its own sockets.
            for app in (first, second):
                body = await app.wait_health(status=503, timeout=5)
                assert body == {"status": "unavailable", "database": "ok", "redis": "down"}
            [ack] = await send
            assert ack == {"success": True, "messageCount": 2, "sequence": 2}
            final = (await here.wait_for("ai-complete")).data["content"]
            assert len(here.named("ai-token")) == 60
            local = await tab(node, second.base_url, account, other_id)
            [local_ack] = await local.emit("send-message", {"content": "Redis is down"})
            assert local_ack["success"] is True and local_ack["messageCount"] == 2
            await local.wait_for("ai-complete")
            # The other instance's tab missed the end of the stream.
            assert len(there.named("ai-token")) < 60 and not there.named("ai-complete")

            await redis.start()
            for app in (first, second):
                body = await app.wait_health(timeout=30)
                assert body["redis"] == "ok"

            # The tab that missed events catches up by joining again with lastSeq.
            mark = len(there.events)
            [join] = await there.emit(
                "join-conversation", {"conversationId": conversation_id, "lastSeq": 1}
            )
            assert join["success"] is True and join["messageCount"] == 2
            added = await there.wait_for("message-added", after=mark)
            assert added.data["sequence"] == 2 and added.data["role"] == "assistant"
            assert added.data["content"] == final

            # And delivery across instances works again.
            mark = len(there.events)
            [again] = await here.emit("send-message", {"content": "are you back?"})
            assert again["success"] is True and again["messageCount"] == 4
            remote = await there.wait_for("ai-complete", after=mark)
            assert remote.data["sequence"] == 4
            mine = await here.wait_for("ai-complete", lambda d: d["sequence"] == 4)
            assert remote.data["content"] == mine.data["content"]
            tokens = [e.data for e in there.events[mark:] if e.event == "ai-token"]
            assert tokens and tokens[-1]["partial"] == remote.data["content"]


@asynccontextmanager
async def _instance_on_own_postgres(
    tmp_path: Path, **extra: str
) -> AsyncIterator[tuple[OwnPostgres, Instance]]:
    """One instance on a cluster of this test's own (lock TTL 3 s unless given, no Redis)."""
    async with own_postgres() as pg:
        await storage.apply_schema(pg.admin_dsn, app_role="scca_app")
        app_dsn = storage.app_dsn(pg.admin_dsn, app_role="scca_app", app_password=None)
        env = instance_env(
            app_dsn=app_dsn,
            data_dir=tmp_path / "data",
            **{"GENERATION_LOCK_TTL_S": "3", **extra},
        )
        async with running_instances([env], tmp_path / "logs") as [app]:
            yield pg, app


async def test_postgres_restart(tmp_path: Path, node: NodeClients) -> None:
    async with _instance_on_own_postgres(tmp_path) as (pg, app):
        account = await register(app.base_url)
        conversation_id = await create_conversation(
            app.base_url, account, model="scripted:60:25"
        )
        client = await tab(node, app.base_url, account, conversation_id)
        [first] = await client.emit("send-message", {"content": "before the outage"})
        assert first["success"] is True and first["messageCount"] == 2

        send = asyncio.create_task(client.emit("send-message", {"content": "during"}))
        await client.wait_for("ai-token", lambda d: d["sequence"] == 4)
        await pg.stop("fast")

        [lost] = await send
        assert lost["success"] is False, lost
        body = await app.wait_health(status=503, timeout=5)
        assert body == {"status": "unavailable", "database": "down", "redis": "not configured"}
        status, error = await http_json(
            "GET", f"{app.base_url}/api/conversations/{conversation_id}", token=account.token
        )
        assert status == 503
        assert error == {"error": "Database unavailable", "code": "UNAVAILABLE"}
        [refused] = await client.emit("send-message", {"content": "while down"})
        assert refused["success"] is False and refused["error"] == "Database unavailable"
        late = await node.connect(app.base_url, token=account.token)
        assert late.connect_error == "Authentication failed: service unavailable"

        await pg.start()
        await app.wait_health(timeout=15)
        body = await conversation(app.base_url, account, conversation_id)
        # The user's message was committed before the model ran; the reply was not.
        assert [m["content"] for m in body["messages"][:2]] == [
            "before the outage",
            client.named("ai-complete")[0].data["content"],
        ]
        assert [(m["sequence"], m["role"]) for m in body["messages"]] == [
            (1, "user"), (2, "assistant"), (3, "user"),
        ]  # fmt: skip
        assert body["messages"][2]["content"] == "during"
        assert body["integrity"] == {"valid": True, "lastValidSequence": 3}

        async def send_succeeds() -> bool:
            [ack] = await client.emit("send-message", {"content": "after"})
            assert ack["success"] is True or ack["code"] == "BUSY", ack
            return bool(ack["success"])

        # The reply's lock could not be released while the database was down: it
        # expires (GENERATION_LOCK_TTL_S=3) and the conversation is usable again.
        await eventually(send_succeeds, timeout=10, interval=0.5, what="a send after restart")
        con = await asyncpg.connect(pg.admin_dsn)
        try:
            rows = await con.fetch(
                "SELECT seq, role FROM messages WHERE conversation_id = $1 ORDER BY seq",
                uuid.UUID(conversation_id),
            )
            locks = await con.fetchval("SELECT count(*) FROM generation_locks")
        finally:
            await con.close()
        assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
        assert locks == 0


async def test_a_database_outage_is_reported_as_unavailable(
    tmp_path: Path, node: NodeClients
) -> None:
    async with _instance_on_own_postgres(tmp_path) as (pg, app):
        account = await register(app.base_url)
        conversation_id = await create_conversation(app.base_url, account, model="scripted:60:25")
        client = await tab(node, app.base_url, account, conversation_id)
        send = asyncio.create_task(client.emit("send-message", {"content": "during"}))
        await client.wait_for("ai-token")
        await pg.stop("fast")
        [lost] = await send
        [refused] = await client.emit("send-message", {"content": "while down"})
        unavailable = {"success": False, "code": "UNAVAILABLE", "error": "Database unavailable"}
        assert (lost, refused) == (unavailable, unavailable)
        failure = await client.wait_for("ai-error")
        assert failure.data["code"] == "UNAVAILABLE"


async def test_a_database_blip_across_the_commit_keeps_the_reply(
    tmp_path: Path, node: NodeClients
) -> None:
    """PostgreSQL away for 3 s while the reply finishes streaming: the commit is retried
    when it returns, and the reply the user watched is stored, not thrown away."""
    async with _instance_on_own_postgres(tmp_path, GENERATION_LOCK_TTL_S="30") as (pg, app):
        account = await register(app.base_url)
        conversation_id = await create_conversation(app.base_url, account, model="scripted:30:20")
        client = await tab(node, app.base_url, account, conversation_id)
        send = asyncio.create_task(client.emit("send-message", {"content": "hold on"}))
        await client.wait_for("ai-token", lambda d: d["tokenIndex"] >= 5)
        await pg.stop("fast")
        down_at = asyncio.get_running_loop().time()
        await client.wait_for("ai-token", lambda d: d["tokenIndex"] == 30, timeout=10)
        # The whole reply streamed while the database was away; it stays away a while
        # longer (the outage is the scenario, not a wait for a condition).
        await asyncio.sleep(max(0.0, 3.0 - (asyncio.get_running_loop().time() - down_at)))
        assert not client.named("ai-complete") and not send.done()
        await pg.start()
        [ack] = await send
        assert ack == {"success": True, "messageCount": 2, "sequence": 2}
        complete = (await client.wait_for("ai-complete")).data
        streamed = client.named("ai-token")[-1].data["partial"]
        assert complete["content"] == streamed
        body = await conversation(app.base_url, account, conversation_id)
        assert [(m["role"], m["content"]) for m in body["messages"]] == [
            ("user", "hold on"),
            ("assistant", streamed),
        ]
        assert body["integrity"] == {"valid": True, "lastValidSequence": 2}
        [again] = await client.emit("send-message", {"content": "and the next one"})
        assert again["success"] is True and again["messageCount"] == 4


async def test_redis_back_within_seconds_mid_reply(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    """Redis gone for 3 s while a reply streams and back before it ends: a tab on the
    other instance rejoins (the documented recovery) within seconds, and ends with the
    whole reply; the mirror was rebuilt whole, never left partial."""
    async with own_redis() as redis:
        envs = cluster_envs(server_db, tmp_path, 2, redis=redis.url)
        async with running_instances(envs, tmp_path / "logs") as (first, second):
            account = await register(first.base_url)
            conversation_id = await create_conversation(
                first.base_url, account, model="scripted:300:20"
            )
            here = await tab(node, first.base_url, account, conversation_id)
            there = await tab(node, second.base_url, account, conversation_id)
            for app in (first, second):
                assert (await app.wait_health())["redis"] == "ok"
            send = asyncio.create_task(here.emit("send-message", {"content": "long one"}))
            await there.wait_for("ai-token", lambda d: d["tokenIndex"] >= 5)
            await redis.stop()
            await here.wait_for("ai-token", lambda d: d["tokenIndex"] >= 100, timeout=10)
            await redis.start()
            back_at = asyncio.get_running_loop().time()

            async def rejoined() -> bool:
                mark = len(there.events)
                [join] = await there.emit(
                    "join-conversation", {"conversationId": conversation_id, "lastSeq": 1}
                )
                assert join["success"] is True, join  # never INTERNAL
                state = next(e.data for e in there.events[mark:] if e.event == "state")
                return "generating" in state

            await eventually(rejoined, timeout=5, interval=0.2, what="a join that resumes")
            assert asyncio.get_running_loop().time() - back_at < 5
            [ack] = await send
            assert ack["success"] is True
            final = (await here.wait_for("ai-complete")).data["content"]
            await there.wait_for("ai-complete", lambda d: d["sequence"] == 2)
            assert there.named("ai-complete")[-1].data["content"] == final
            # What the tab shows (`partial` of each token, then the complete reply) is
            # always a prefix of the reply: tokens published while this instance's
            # pub/sub listener was reconnecting are missing from the deltas only.
            shown = [e.data["partial"] for e in there.named("ai-token")]
            assert shown and all(final.startswith(text) for text in shown)



async def test_after_a_listener_gap_the_other_instance_tabs_are_brought_back_in_step(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    """Without any rejoin: once the listener is subscribed again, a tab whose reply
    ended during the gap gets it as `message-added`, and a tab whose reply still streams
    gets `state.generating` and then the rest; both end with the whole reply."""
    async with own_redis() as redis:
        envs = cluster_envs(server_db, tmp_path, 2, redis=redis.url)
        async with running_instances(envs, tmp_path / "logs") as (first, second):
            account = await register(first.base_url)
            short_id = await create_conversation(first.base_url, account, model="scripted:40:20")
            long_id = await create_conversation(first.base_url, account, model="scripted:300:20")
            short_here = await tab(node, first.base_url, account, short_id)
            long_here = await tab(node, first.base_url, account, long_id)
            short_there = await tab(node, second.base_url, account, short_id)
            long_there = await tab(node, second.base_url, account, long_id)
            for app in (first, second):
                assert (await app.wait_health())["redis"] == "ok"
            short_send = asyncio.create_task(short_here.emit("send-message", {"content": "a"}))
            long_send = asyncio.create_task(long_here.emit("send-message", {"content": "b"}))
            await short_there.wait_for("ai-token", lambda d: d["tokenIndex"] >= 3)
            await long_there.wait_for("ai-token", lambda d: d["tokenIndex"] >= 3)
            marks = {id(c): len(c.events) for c in (short_there, long_there)}
            await redis.stop()
            short_final = (await short_here.wait_for("ai-complete")).data["content"]
            await long_here.wait_for("ai-token", lambda d: d["tokenIndex"] >= 80, timeout=10)
            await redis.start()

            added = await short_there.wait_for(
                "message-added", lambda d: d["sequence"] == 2, after=marks[id(short_there)]
            )
            assert added.data["role"] == "assistant" and added.data["content"] == short_final
            resync = await long_there.wait_for(
                "state", lambda d: "generating" in d, after=marks[id(long_there)], timeout=15
            )
            assert resync.data["generating"]["sequence"] == 2
            [ack] = await long_send
            assert ack["success"] is True and (await short_send)[0]["success"] is True
            final = (await long_here.wait_for("ai-complete")).data["content"]
            await long_there.wait_for("ai-complete", lambda d: d["sequence"] == 2)
            start = long_there.events.index(resync)
            assert resumed_text(long_there, 2, after=start) == final
            body = await http_json("GET", f"{second.base_url}/metrics")
            assert "scca_pubsub_missed_windows_total 1.0" in str(body[1])
