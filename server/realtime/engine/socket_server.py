"""Our python-socketio server: the guarded fast engine, and a handshake timeout.

python-socketio keeps an engine.io session that never sends the Socket.IO CONNECT
packet alive forever (pings keep answering); a script can hold thousands of those.
Here such a session is closed `handshake_timeout_s` after it opened. New sessions can be
refused before they exist (`admit_handshakes`), and a session whose client sends a
packet that does not decode is closed (`frame_guard`).

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`AsyncServer._engineio_server_class`, `_handle_event(eio_sid, namespace, id, data)`,
`_handle_eio_connect(eio_sid, environ)`, `_handle_connect(eio_sid, namespace, data)`,
`_handle_eio_disconnect(eio_sid, reason)`, `_handle_eio_message(eio_sid, data)` (decoding
with `packet_class` and raising ValueError("Unexpected binary packet") itself),
`manager.sid_from_eio_sid`, `eio.sockets`, `eio.disconnect(eio_sid)`,
`AsyncSocket.close(wait=, abort=)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import WSCloseCode
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from server.realtime.engine.exceptions import FrameFault, UndecodableFrame
from server.realtime.engine.frame_guard import CLOSE_CODE, CLOSE_REASON
from server.realtime.engine.guarded_engine import GuardedEngineServer
from server.realtime.engine.handshake_gate import HandshakeRefusal
from server.realtime.engine.socketio_rules import SocketIORules

__all__ = ["RESERVED_EVENTS", "UNNAMED_EVENT", "ChatSocketServer", "HandshakeCheck"]

# Not `message`: socket.io-client's `socket.send(...)` emits exactly that event.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting"})
UNNAMED_EVENT = "(reserved or invalid event name)"

#: Decides on a new session from its environ: it admits the session by returning and
#: refuses it by raising `socketio.exceptions.ConnectionRefusedError(message, data?)`,
#: as a connect handler does; the client's `connect_error` carries the message and data.
HandshakeCheck = Callable[[dict[str, Any]], Awaitable[None]]

_LOG = logging.getLogger(__name__)
# The one ValueError python-socketio raises itself about a client's packet once our
# packet class has decoded it: a binary event or ack for a namespace it has not joined.
_BINARY_BEFORE_CONNECT = "Unexpected binary packet"


class ChatSocketServer(SocketIORules, socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, *, handshake_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handshake_timeout_s = handshake_timeout_s
        self._handshake_checks: set[asyncio.Task[None]] = set()
        # Only sessions still in their handshake: removed once connected or expired.
        self._handshake_timers: dict[str, asyncio.TimerHandle] = {}

    def _engineio_server_class(self) -> type[GuardedEngineServer]:
        return GuardedEngineServer

    def admit_handshakes(self, check: HandshakeCheck) -> None:
        """Run `check` on every new Engine.IO session (on every path this server serves)
        before engine.io builds it; a refused one is told why as a Socket.IO
        `connect_error` and closed, with nothing allocated for it."""

        async def gate(environ: dict[str, Any]) -> HandshakeRefusal | None:
            try:
                await check(environ)
            except socketio.exceptions.ConnectionRefusedError as exc:
                refusal = self.packet_class(
                    sio_packet.CONNECT_ERROR, data=exc.error_args, namespace="/"
                )
                return HandshakeRefusal(messages=(refusal.encode(),))
            return None

        self.eio.handshake_gate = gate

    def report_frame_faults(self, listener: Callable[[str], None]) -> None:
        """Call `listener(reason)` for every undecodable frame (see `frame_guard`)."""
        self.eio.frame_guard.listen(listener)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> Any:
        try:
            # python-socketio skips decoding an empty packet and dispatches it as an
            # event without a name; an empty attachment (a zero-length buffer) is fine.
            if not data and eio_sid not in self._binary_packet:
                raise UndecodableFrame(FrameFault.EMPTY)
            return await super()._handle_eio_message(eio_sid, data)
        except UndecodableFrame as exc:
            fault = exc.fault
        except ValueError as exc:
            if str(exc) != _BINARY_BEFORE_CONNECT:
                raise
            fault = FrameFault.UNEXPECTED
        await self._close_after_fault(eio_sid, fault)
        return None

    async def _close_after_fault(self, eio_sid: str, fault: FrameFault) -> None:
        """One log line, the listener told, and the connection closed: a websocket with
        1002 (its client may ignore an engine.io CLOSE), a polling session with CLOSE."""
        engine: GuardedEngineServer = self.eio
        ws = engine.direct_websockets.get(eio_sid)
        engine.frame_guard.report(
            fault, sid=eio_sid, transport="polling" if ws is None else "websocket"
        )
        if ws is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):  # closing already
                await ws.close(code=CLOSE_CODE, message=CLOSE_REASON)
            return
        eio_socket = engine.sockets.get(eio_sid)
        if eio_socket is not None:
            # wait=False: a client that never polls again must not hold this task; the
            # engine's sweep removes the closed session.
            await eio_socket.close(wait=False, abort=False)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> Any:
        """A client may not fire the reserved events (`connect`, `disconnect`, ...) nor send
        an event name that is not a string: both arrive at handlers as an unknown event.
        An EVENT whose payload is not a non-empty array closes the connection (the
        Socket.IO specification's MUST)."""
        if not isinstance(data, list) or not data:
            raise UndecodableFrame(FrameFault.MALFORMED)
        if not isinstance(data[0], str) or data[0] in RESERVED_EVENTS:
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
        # Joined to any namespace, not only "/" (a Socket.IO v5 client need not join it);
        # one still being joined (its connect handler runs) gets another timeout.
        joined = [
            self.manager.is_connected(sid, namespace)
            for namespace in list(self.manager.get_namespaces())
            if (sid := self.manager.sid_from_eio_sid(eio_sid, namespace)) is not None
        ]
        if any(joined):
            return
        if joined:
            self._handshake_timers[eio_sid] = asyncio.get_running_loop().call_later(
                self._handshake_timeout_s, self._check_handshake, eio_sid
            )
            return
        task = asyncio.create_task(self._expire_handshake(eio_sid))
        self._handshake_checks.add(task)
        task.add_done_callback(self._handshake_checks.discard)

    async def _expire_handshake(self, eio_sid: str) -> None:
        _LOG.info("closing an engine.io session that never completed the Socket.IO handshake")
        engine: GuardedEngineServer = self.eio
        eio_socket = engine.sockets.get(eio_sid)
        if eio_socket is not None:  # (engine.io's `disconnect` waits for a poll that may not come)
            await engine.end_session(eio_socket, engine.reason.SERVER_DISCONNECT, eio_packet.CLOSE)

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
