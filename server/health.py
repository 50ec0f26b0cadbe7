"""`GET /api/health`: 200 when this instance can serve, 503 naming what is down."""

from __future__ import annotations

import asyncio

from aiohttp import web

from protocol.rest import Health
from server.appkeys import POOL, REDIS
from server.http import json_response

__all__ = ["health_routes"]

_TIMEOUT_S = 2.0


async def _database_ok(app: web.Application) -> bool:
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            async with app[POOL].acquire() as con:
                return bool(await con.fetchval("SELECT 1") == 1)
    except Exception:  # any failure means "down"; the status is the answer
        return False


async def _redis_state(app: web.Application) -> str:
    if REDIS not in app:
        return "not configured"
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            await app[REDIS].ping()
        return "ok"
    except Exception:  # any failure means "down"
        return "down"


async def health(request: web.Request) -> web.Response:
    database = "ok" if await _database_ok(request.app) else "down"
    redis = await _redis_state(request.app)
    ok = database == "ok" and redis in ("ok", "not configured")
    return json_response(
        Health(status="ok" if ok else "unavailable", database=database, redis=redis),
        status=200 if ok else 503,
    )


def health_routes() -> list[web.RouteDef]:
    return [web.get("/api/health", health)]
