"""`GET /api/health`: 200 when this instance can serve, 503 naming what is down.

`database` is "ok" or "down" (a `SELECT 1` through the pool). `redis` is one of:

- "not configured": no `REDIS_URL`, one instance;
- "down": Redis does not answer `PING`;
- "listener stopped": python-socketio's pub/sub listener task has ended, so room
  emits of other instances no longer reach this instance's sockets;
- "listener stalled": a heartbeat published on the Socket.IO channel did not come
  back through that listener in time (it is reconnecting, or falling behind);
- "ok".

The listener check lives in `server.realtime.engine.pubsub_probe` (it reaches into the
manager); the app hands it to this route as `PUBSUB_STATE`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from protocol.rest import Health
from server.appkeys import POOL, PUBSUB_STATE, REDIS
from server.rest.http import json_response

__all__ = ["health_routes"]

_TIMEOUT_S = 2.0
_OK = "ok"


async def _database_ok(app: web.Application) -> bool:
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            async with app[POOL].acquire() as con:
                return bool(await con.fetchval("SELECT 1") == 1)
    except Exception:  # any failure means "down"; the status is the answer
        return False


async def _ping(app: web.Application) -> bool:
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            await app[REDIS].ping()
        return True
    except Exception:  # any failure means "down"
        return False


async def _redis_state(app: web.Application) -> str:
    if REDIS not in app:
        return "not configured"
    if not await _ping(app):
        return "down"
    return await app[PUBSUB_STATE]()


async def health(request: web.Request) -> web.Response:
    database, redis = await asyncio.gather(_database_ok(request.app), _redis_state(request.app))
    database_state = "ok" if database else "down"
    ok = database and redis in (_OK, "not configured")
    return json_response(
        Health(status="ok" if ok else "unavailable", database=database_state, redis=redis),
        status=200 if ok else 503,
    )


def health_routes() -> list[web.RouteDef]:
    return [web.get("/api/health", health)]
