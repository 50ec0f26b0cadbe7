"""Our python-socketio server: the fast engine, and a handshake timeout.

python-socketio keeps an engine.io session that never sends the Socket.IO CONNECT
packet alive forever (pings keep answering); a script can hold thousands of those.
Here such a session is closed `handshake_timeout_s` after it opened.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`AsyncServer._engineio_server_class`, `_handle_event(eio_sid, namespace, id, data)`,
`_handle_eio_connect(eio_sid, environ)`, `_handle_connect(eio_sid, namespace, data)`,
`_handle_eio_disconnect(eio_sid, reason)`, `manager.sid_from_eio_sid`, `eio.sockets`,
`eio.disconnect(eio_sid)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import socketio
from aiohttp import WSCloseCode

from server.realtime.engine.fanout import ChatEngineServer

__all__ = ["RESERVED_EVENTS", "UNNAMED_EVENT", "ChatSocketServer"]

RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting", "message"})
UNNAMED_EVENT = "(reserved or invalid event name)"

_LOG = logging.getLogger(__name__)


class ChatSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, *, handshake_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handshake_timeout_s = handshake_timeout_s
        self._handshake_checks: set[asyncio.Task[None]] = set()
        # Only sessions still in their handshake: removed once connected or expired.
        self._handshake_timers: dict[str, asyncio.TimerHandle] = {}

    def _engineio_server_class(self) -> type[ChatEngineServer]:
        return ChatEngineServer

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> Any:
        """A client may not fire the reserved events (`connect`, `disconnect`, ...) nor send
        an event name that is not a string: both arrive at handlers as an unknown event."""
        if not isinstance(data, list) or not data:
            data = [UNNAMED_EVENT]
        elif not isinstance(data[0], str) or data[0] in RESERVED_EVENTS:
            data = [UNNAMED_EVENT, *data[1:]]
        return await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)
        # A timer, not a sleeping task, cancelled as soon as the socket connects.
        self._handshake_timers[eio_sid] = asyncio.get_running_loop().call_later(
            self._handshake_timeout_s, self._check_handshake, eio_sid
        )
        return result

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> Any:
        result = await super()._handle_connect(eio_sid, namespace, data)
        if self.manager.sid_from_eio_sid(eio_sid, namespace or "/") is not None:
            timer = self._handshake_timers.pop(eio_sid, None)
            if timer is not None:
                timer.cancel()
        return result

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> Any:
        timer = self._handshake_timers.pop(eio_sid, None)
        if timer is not None:
            timer.cancel()
        return await super()._handle_eio_disconnect(eio_sid, reason)

    def _check_handshake(self, eio_sid: str) -> None:
        self._handshake_timers.pop(eio_sid, None)
        if eio_sid not in self.eio.sockets:
            return
        if self.manager.sid_from_eio_sid(eio_sid, "/") is not None:
            return
        task = asyncio.create_task(self._expire_handshake(eio_sid))
        self._handshake_checks.add(task)
        task.add_done_callback(self._handshake_checks.discard)

    async def _expire_handshake(self, eio_sid: str) -> None:
        _LOG.info("closing an engine.io session that never completed the Socket.IO handshake")
        try:
            await self.eio.disconnect(eio_sid)
        except Exception as exc:  # already gone: nothing to close
            _LOG.debug("handshake expiry: %s", type(exc).__name__)

    async def shutdown(self) -> None:
        for task in list(self._handshake_checks):
            task.cancel()
        await super().shutdown()

    async def close_transports(self) -> None:
        """Close every connection at the transport level, so socket.io-client reconnects (to
        another instance); a Socket.IO DISCONNECT ("io server disconnect") would leave the
        client disconnected for good. WebSocket clients ignore engine.io's CLOSE packet, so
        their websocket is closed; long-polling clients get the CLOSE packet."""
        engine = self.eio
        await engine.heartbeats.stop()
        for ws in list(engine.direct_websockets.values()):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        for eio_sid in list(engine.sockets):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await engine.disconnect(eio_sid)
