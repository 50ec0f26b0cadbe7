"""`/api/health` knows when cross-instance delivery is broken, not only when Redis is down."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from deploy_support import redis_url, register
from instances import instance_env, running_instances
from live_server import live_server, test_settings
from node_client import NodeClients
from pg import TempDatabase
from redis_proc import own_redis

from server.appkeys import SIO


async def test_health_reports_a_stalled_pubsub_listener_and_its_recovery(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    async with own_redis() as redis:
        env = instance_env(
            app_dsn=server_db.app_dsn, data_dir=tmp_path / "data", redis_url=redis.url
        )
        async with running_instances([env], tmp_path / "logs") as [app]:
            account = await register(app.base_url)
            client = await node.connect(app.base_url, token=account.token)
            assert client.connected.is_set(), client.connect_error  # the listener starts
            assert await app.wait_health() == {"status": "ok", "database": "ok", "redis": "ok"}
            control = redis.client()
            try:
                # PUBLISH waits, PING still answers: Redis is up, nothing flows through it.
                await control.client_pause(4000, all=False)  # WRITE mode
                status, body = await app.health()
                assert (status, body) == (
                    503,
                    {"status": "unavailable", "database": "ok", "redis": "listener stalled"},
                )
                await control.client_unpause()
            finally:
                await control.aclose()
            assert (await app.wait_health(timeout=10))["redis"] == "ok"
            await client.disconnect()


async def test_health_reports_a_stopped_pubsub_listener(
    server_db: TempDatabase, node: NodeClients
) -> None:
    settings = test_settings(server_db.app_dsn, REDIS_URL=redis_url())
    async with live_server(settings) as server:
        account = await server.register()
        client = await node.connect(server.base_url, token=account["token"])
        assert client.connected.is_set(), client.connect_error
        assert await server.call("GET", "/api/health") == (
            200,
            {"status": "ok", "database": "ok", "redis": "ok"},
        )
        listener = server.app[SIO].manager.thread
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        assert await server.call("GET", "/api/health") == (
            503,
            {"status": "unavailable", "database": "ok", "redis": "listener stopped"},
        )
        await client.disconnect()
        await asyncio.wait_for(client.closed.wait(), 5)
