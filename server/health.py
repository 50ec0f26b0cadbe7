"""`GET /api/health`: 200 when this instance can serve, 503 naming what is down.

`database` is "ok" or "down" (a `SELECT 1` through the pool). `redis` is one of:

- "not configured": no `REDIS_URL`, one instance;
- "down": Redis does not answer `PING`;
- "listener stopped": python-socketio's pub/sub listener task has ended, so room
  emits of other instances no longer reach this instance's sockets;
- "listener stalled": a heartbeat published on the Socket.IO channel did not come
  back through that listener in time (it is reconnecting, or falling behind);
- "ok".

The heartbeat travels the path every cross-instance event takes: this instance
publishes a `callback` message (the manager's own message kind, addressed to its own
`host_id`) on the manager's channel, Redis fans it out, and the manager's listener
task dispatches it to a callback registered under a sid no socket can have. Other
instances ignore it (it is not addressed to them). The listener starts with the
first socket of the instance; before that there is nothing to deliver to, and only
`PING` is checked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from socketio.async_pubsub_manager import AsyncPubSubManager

from protocol.rest import Health
from server.appkeys import POOL, REDIS, SIO
from server.http import json_response

__all__ = ["health_routes", "pubsub_listener_state"]

_TIMEOUT_S = 2.0
# Not an engine.io sid (those are base64 of random bytes): no socket can collide with it.
_PROBE_SID = "scca:health-probe"
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


async def pubsub_listener_state(sio: Any, *, timeout_s: float = _TIMEOUT_S) -> str:
    """ "ok", "listener stopped" or "listener stalled" for a pub/sub client manager.

    `sio` is the `socketio.AsyncServer`; a server without a pub/sub manager, or whose
    manager has not started listening yet, is "ok".
    """
    manager = sio.manager
    if not isinstance(manager, AsyncPubSubManager) or not sio.manager_initialized:
        return _OK
    listener = getattr(manager, "thread", None)
    if not isinstance(listener, asyncio.Future) or listener.done():
        return "listener stopped"
    arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def heard(*_args: Any) -> None:
        if not arrived.done():
            arrived.set_result(None)

    # The manager's own ack bookkeeping, where `trigger_callback(sid, id, args)` looks.
    probe_id = manager._generate_ack_id(_PROBE_SID, heard)
    message = {
        "method": "callback",
        "host_id": manager.host_id,
        "sid": _PROBE_SID,
        "namespace": "/",
        "id": probe_id,
        "args": [],
    }
    try:
        async with asyncio.timeout(timeout_s):
            await manager._publish(message)
            await arrived
    except TimeoutError:
        return "listener stalled"
    finally:
        manager.callbacks.get(_PROBE_SID, {}).pop(probe_id, None)
    return _OK


async def _redis_state(app: web.Application) -> str:
    if REDIS not in app:
        return "not configured"
    if not await _ping(app):
        return "down"
    return await pubsub_listener_state(app[SIO])


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
