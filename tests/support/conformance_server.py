"""The server the Socket.IO and Engine.IO protocol suites expect, built from our classes.

The protocol documents (socket.io-protocol v5, engine.io-protocol v4) each describe a
reference server for their test suite; this is that server, made of the engine we run
in production rather than of Node's:

- `/engine.io/`: an Engine.IO server (`GuardedEngineServer`, the one `ChatSocketServer`
  builds) that sends every message back;
- `/socket.io/`: a Socket.IO server (`ChatSocketServer`, `FastEmitManager`, `WirePacket`)
  whose main namespace sends `auth` (the CONNECT payload, `{}` without one) once
  connected, echoes `message` as `message-back` and answers `message-with-ack` with its
  own arguments; `/custom` only sends `auth`; `/private` (ours, not the suites') refuses
  a CONNECT whose payload is not `{"token": "let-me-in"}` with `Not authorized`.

Settings are the suites': pings every 0.3 s, 0.2 s to answer, 1,000,000-byte payloads,
any origin. The pytest conformance tests (tests/server/realtime/engine/) serve it on a
random port; `scripts/conformance_server.py` serves it on 127.0.0.1:3000, where the
official suites (mocha, run from their own checkout) look for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from aiohttp import web

from server.realtime.engine.fanout import FastEmitManager
from server.realtime.engine.guarded_engine import GuardedEngineServer
from server.realtime.engine.socket_server import ChatSocketServer
from server.realtime.engine.wire_packet import WirePacket

__all__ = [
    "ACCEPTED_TOKEN",
    "ENGINEIO",
    "HANDSHAKE_TIMEOUT_S",
    "MAX_PAYLOAD",
    "PING_INTERVAL_S",
    "PING_TIMEOUT_S",
    "SOCKETIO",
    "conformance_app",
    "engineio_echo_server",
    "socketio_echo_server",
]

PING_INTERVAL_S = 0.3
PING_TIMEOUT_S = 0.2
MAX_PAYLOAD = 1_000_000
ACCEPTED_TOKEN = "let-me-in"  # the /private namespace's test token
# Node's default `connectTimeout`: a session that never sends CONNECT is closed then.
HANDSHAKE_TIMEOUT_S = 45.0
#: The servers an application from `conformance_app` serves.
ENGINEIO = web.AppKey("engineio", GuardedEngineServer)
SOCKETIO = web.AppKey("socketio", ChatSocketServer)

_SETTINGS: dict[str, Any] = {
    "async_mode": "aiohttp",
    "ping_interval": PING_INTERVAL_S,
    "ping_timeout": PING_TIMEOUT_S,
    "max_http_buffer_size": MAX_PAYLOAD,
    "cors_allowed_origins": "*",
    "transports": ["polling", "websocket"],
}


def engineio_echo_server() -> GuardedEngineServer:
    """Our Engine.IO server, sending each message (text or binary) back to its sender."""
    eio = GuardedEngineServer(logger=False, **_SETTINGS)

    async def echo(sid: str, data: Any) -> None:
        await eio.send(sid, data)

    eio.on("message", echo)
    return eio


def socketio_echo_server(handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S) -> ChatSocketServer:
    """Our Socket.IO server with the suites' namespaces (see the module docstring)."""
    sio = ChatSocketServer(
        handshake_timeout_s=handshake_timeout_s,
        serializer=WirePacket,
        client_manager=FastEmitManager(),
        logger=False,
        engineio_logger=False,
        **_SETTINGS,
    )

    pending: set[asyncio.Task[None]] = set()  # kept until done (the loop holds tasks weakly)

    def send_auth_once_connected(sid: str, namespace: str, auth: Any) -> None:
        # python-socketio runs `connect` before it sends the CONNECT packet (Node's
        # `connection` event comes after it): the suites want `auth` after CONNECT.
        async def emit() -> None:
            for _ in range(1000):
                if sio.manager.is_connected(sid, namespace):
                    data = auth if auth is not None else {}
                    await sio.emit("auth", data, to=sid, namespace=namespace)
                    return
                await asyncio.sleep(0)

        task = asyncio.ensure_future(emit())
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def connect_main(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        send_auth_once_connected(sid, "/", auth)

    async def message(sid: str, *args: Any) -> None:
        await sio.emit("message-back", args, to=sid)

    async def message_with_ack(sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    async def connect_custom(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        send_auth_once_connected(sid, "/custom", auth)

    async def connect_private(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if not isinstance(auth, dict) or auth.get("token") != ACCEPTED_TOKEN:
            raise socketio.exceptions.ConnectionRefusedError("Not authorized")

    async def whoami(sid: str) -> str:
        return sid

    sio.on("connect", connect_main, namespace="/")
    sio.on("message", message, namespace="/")
    sio.on("message-with-ack", message_with_ack, namespace="/")
    sio.on("connect", connect_custom, namespace="/custom")
    sio.on("connect", connect_private, namespace="/private")
    sio.on("whoami", whoami, namespace="/private")
    return sio


def conformance_app(handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S) -> web.Application:
    """Both servers on one aiohttp application: `/engine.io/` and `/socket.io/`."""
    app = web.Application()
    eio = engineio_echo_server()
    sio = socketio_echo_server(handshake_timeout_s)
    eio.attach(app, engineio_path="engine.io")
    sio.attach(app, socketio_path="socket.io")
    app[ENGINEIO] = eio
    app[SOCKETIO] = sio

    async def stop(_: web.Application) -> None:
        await eio.heartbeats.stop()
        await sio.eio.heartbeats.stop()
        await eio.shutdown()
        await sio.shutdown()

    app.on_shutdown.append(stop)
    return app
