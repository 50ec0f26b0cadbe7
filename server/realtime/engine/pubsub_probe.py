"""Is python-socketio's Redis pub/sub listener alive and keeping up? (`/api/health`)

The heartbeat travels the path every cross-instance event takes: this instance
publishes a `callback` message (the manager's own message kind, addressed to its own
`host_id`) on the manager's channel, Redis fans it out, and the manager's listener
task dispatches it to a callback registered under a sid no socket can have. Other
instances ignore it (it is not addressed to them). The listener starts with the
first socket of the instance; before that there is nothing to deliver to.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`manager.thread` (the listener task), `manager._generate_ack_id`, `manager._publish`,
`manager.callbacks`, `manager.host_id`, and the listener handing a `callback` message for
this `host_id` to `manager.trigger_callback(sid, id, args)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from socketio.async_pubsub_manager import AsyncPubSubManager

__all__ = ["LISTENER_OK", "pubsub_listener_state"]

LISTENER_OK = "ok"
_TIMEOUT_S = 2.0
# Not an engine.io sid (those are base64 of random bytes): no socket can collide with it.
_PROBE_SID = "scca:health-probe"


async def pubsub_listener_state(sio: Any, *, timeout_s: float = _TIMEOUT_S) -> str:
    """ "ok", "listener stopped" or "listener stalled" for a pub/sub client manager.

    `sio` is the `socketio.AsyncServer`; a server without a pub/sub manager, or whose
    manager has not started listening yet, is "ok".
    """
    manager = sio.manager
    if not isinstance(manager, AsyncPubSubManager) or not sio.manager_initialized:
        return LISTENER_OK
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
    return LISTENER_OK
