"""Refusing a new Engine.IO session before it exists, in words socket.io-client shows.

A handshake is the request without `sid` that opens an Engine.IO session. engine.io lets
the application refuse one only from its `connect` event, after it has built the session,
and then answers HTTP 401: socket.io-client reports that as `connect_error` "xhr poll
error" or "websocket error", with no reason. Here a gate runs first; a refused handshake
is answered the way a refused Socket.IO connect is, with nothing allocated for it:

- polling: one 200 response carrying OPEN (a session id that is never registered), the
  gate's messages (a Socket.IO CONNECT_ERROR with the reason) and CLOSE;
- websocket: the upgrade is accepted, OPEN and the messages are sent, and the websocket
  is closed with 1013 (try again later).

socket.io-client opens, reads CONNECT_ERROR, emits `connect_error` with the reason as
`message` and does not retry on its own, exactly as for a refused connect.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`engineio.AsyncServer._handle_connect(environ, transport, jsonp_index)` being where a
handshake (and only a handshake) is handled, after the origin, transport and protocol
version were checked; `_ok(packets, jsonp_index=)`, `generate_id()`, the OPEN packet's
fields, and `environ["aiohttp.request"]`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import engineio
from aiohttp import WSCloseCode, web
from engineio import packet as eio_packet

__all__ = ["HandshakeGate", "HandshakeRefusal", "refuse_handshake"]

# A refused websocket that never answers our close frame is let go after this long.
_CLOSE_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class HandshakeRefusal:
    """What a refused handshake is told: Engine.IO MESSAGE payloads (a Socket.IO packet
    each), delivered after OPEN and before the session is closed."""

    messages: tuple[str, ...]


#: Decides on a handshake from its WSGI-style environ: None admits it.
HandshakeGate = Callable[[dict[str, Any]], Awaitable[HandshakeRefusal | None]]


def _packets(engine: engineio.AsyncServer, refusal: HandshakeRefusal) -> list[Any]:
    opening = eio_packet.Packet(
        eio_packet.OPEN,
        {
            "sid": engine.generate_id(),
            "upgrades": [],
            "pingTimeout": int(engine.ping_timeout * 1000),
            "pingInterval": int(engine.ping_interval + engine.ping_interval_grace_period)
            * 1000,
            "maxPayload": engine.max_http_buffer_size,
        },
    )
    return [opening, *(eio_packet.Packet(eio_packet.MESSAGE, m) for m in refusal.messages)]


async def refuse_handshake(
    engine: engineio.AsyncServer,
    environ: dict[str, Any],
    transport: str,
    jsonp_index: int | None,
    refusal: HandshakeRefusal,
) -> Any:
    """engine.io's answer to a refused handshake: a response dict for polling (engine.io
    adds its CORS headers), a closed websocket for websocket."""
    packets = _packets(engine, refusal)
    if transport != "websocket":
        return engine._ok([*packets, eio_packet.Packet(eio_packet.CLOSE)], jsonp_index=jsonp_index)
    ws = web.WebSocketResponse(compress=False, timeout=_CLOSE_TIMEOUT_S)
    await ws.prepare(environ["aiohttp.request"])
    for pkt in packets:
        await ws.send_str(pkt.encode())
    await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"connection refused")
    return ws
