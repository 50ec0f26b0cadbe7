"""`GET /metrics`: behind `METRICS_TOKEN` when it is set, absent in production without one,
and cheap to scrape (the database round trip it reports is not one query per scrape)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import asyncpg
import pytest
from live_server import LiveServer, live_server, test_settings
from pg import TempDatabase
from polling import eventually

from server.service.metrics import BACKEND_PROBE_MAX_AGE_S

TOKEN = "metrics-token-0123456789abcdef"


async def _scrape(live: LiveServer, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    async with live.http.get(live.base_url + "/metrics", headers=headers or {}) as response:
        return response.status, await response.text(), response.headers.get("WWW-Authenticate", "")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x",
     "Bearer "],
)
async def test_with_a_token_a_scrape_without_it_gets_401(
    server_db: TempDatabase, authorization: str | None
) -> None:
    async with live_server(test_settings(server_db.app_dsn, METRICS_TOKEN=TOKEN)) as live:
        headers = {"Authorization": authorization} if authorization is not None else {}
        status, body, challenge = await _scrape(live, headers)
        assert status == 401, body
        assert "scca_" not in body
        assert challenge.startswith("Bearer")


async def test_with_the_token_the_scrape_is_served(server_db: TempDatabase) -> None:
    async with live_server(test_settings(server_db.app_dsn, METRICS_TOKEN=TOKEN)) as live:
        for scheme in ("Bearer", "bearer"):
            status, body, _ = await _scrape(live, {"Authorization": f"{scheme} {TOKEN}"})
            assert status == 200
            assert "scca_connected_sockets" in body


async def test_in_production_without_a_token_there_is_no_metrics_route(
    server_db: TempDatabase,
) -> None:
    settings = test_settings(server_db.app_dsn, APP_ENV="production")
    async with live_server(settings) as live:
        for headers in ({}, {"Authorization": "Bearer anything-at-all-0123456789"}):
            status, body, _ = await _scrape(live, headers)
            assert status == 404, body
            assert "scca_" not in body
    settings = test_settings(server_db.app_dsn, APP_ENV="production", METRICS_TOKEN=TOKEN)
    async with live_server(settings) as live:
        assert (await _scrape(live))[0] == 401
        assert (await _scrape(live, {"Authorization": f"Bearer {TOKEN}"}))[0] == 200


async def test_in_development_without_a_token_metrics_stay_open(server: LiveServer) -> None:
    status, body, _ = await _scrape(server)
    assert status == 200 and "scca_database_latency_seconds" in body


async def _last_probe(admin: asyncpg.Connection) -> datetime | None:
    """When the application last sent its database anything. Past its start-up work (a
    first session-key sweep) an idle server sends nothing: only a scrape's probe,
    `SELECT 1`, and the pool's reset after it."""
    value = await admin.fetchval(
        "SELECT max(query_start) FROM pg_stat_activity"
        " WHERE datname = current_database() AND usename <> current_user"
    )
    return value if isinstance(value, datetime) else None


def _latency(body: str) -> float:
    [line] = [x for x in body.splitlines() if x.startswith("scca_database_latency_seconds ")]
    return float(line.split(" ")[1])


async def test_scrapes_do_not_query_the_database_each_time(
    server: LiveServer, admin: asyncpg.Connection
) -> None:
    readings: list[datetime | None] = []

    async def settled() -> bool:
        readings.append(await _last_probe(admin))
        return len(readings) >= 3 and len(set(readings[-3:])) == 1

    await eventually(settled, what="the server's start-up database work to end", interval=0.1)
    started = time.monotonic()
    status, first, _ = await _scrape(server)
    assert status == 200 and _latency(first) > 0
    probe = await _last_probe(admin)
    assert probe is not None, "the first scrape measures the database"
    scrapes = await asyncio.gather(*(_scrape(server) for _ in range(30)))
    assert time.monotonic() - started < BACKEND_PROBE_MAX_AGE_S, "too slow to tell"
    assert await _last_probe(admin) == probe, "a scrape queried the database again"
    assert {_latency(body) for _, body, _ in scrapes} == {_latency(first)}

    async def measured_again() -> bool:
        await _scrape(server)
        return await _last_probe(admin) != probe

    await eventually(
        measured_again, what="a scrape to measure again", timeout=BACKEND_PROBE_MAX_AGE_S * 3
    )
    assert time.monotonic() - started >= BACKEND_PROBE_MAX_AGE_S
