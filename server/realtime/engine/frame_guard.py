"""Undecodable client frames: refused in one log line, counted, and their connection closed.

Left to the libraries, a frame that does not decode (an empty or garbage text frame, an
unknown packet type, JSON nested past the recursion limit, an integer past Python's
4,300-digit limit) gets no answer and a 10-to-28-line traceback in the log, once per
frame; an empty or garbage Engine.IO frame even kills engine.io's websocket handler, and
aiohttp then writes an HTTP 500 into the open websocket. Node's socket.io closes the
connection on a packet it cannot parse; so do we, at whichever layer finds it:

- Engine.IO (the first character of each websocket text frame): `FrameCheckingWebSocket`,
  a mixin over engine.io's websocket driver, checks each frame before engine.io decodes
  it, and closes the websocket (1002, protocol error) on a bad one.
- Socket.IO (the packet inside an Engine.IO MESSAGE, on either transport): `WirePacket`
  turns decode errors into `UndecodableFrame`, and `ChatSocketServer` closes the session.

Either way `FrameGuard.report` writes one WARNING line (the fault, the session id and
the transport; never the frame) and tells the registered listener (the app counts it in
`/metrics`). A conforming client never sends such a frame, and every refusal closes a
connection, so the per-address connection limit also bounds how many lines anyone can
make us write.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`engineio.async_drivers.aiohttp.WebSocket.wait` returning each frame's data and its
`_sock` (the aiohttp `WebSocketResponse`), engine.io's websocket handler ending the
session when `wait` raises OSError, and `handler.__self__.sid`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode
from engineio.async_drivers.aiohttp import WebSocket as _AiohttpWebSocket

from server.realtime.engine.chained import Chained
from server.realtime.engine.exceptions import FrameFault, UndecodableFrame

__all__ = [
    "CLOSE_CODE",
    "CLOSE_REASON",
    "DECODE_ERRORS",
    "FrameCheckingWebSocket",
    "FrameGuard",
    "decode_fault",
    "engineio_frame_fault",
    "frame_checked",
]

_LOG = logging.getLogger(__name__)
# Engine.IO packet types a client sends: CLOSE, PING, PONG, MESSAGE, UPGRADE. OPEN and
# NOOP only ever go from server to client.
_CLIENT_ENGINEIO_TYPES = frozenset("12345")
_SERVER_ENGINEIO_TYPES = frozenset("06")
#: How a websocket is closed after an undecodable frame: 1002, protocol error.
CLOSE_CODE = WSCloseCode.PROTOCOL_ERROR
CLOSE_REASON = b"undecodable frame"
# What decoding a client's bytes can raise (a packet parser indexing, converting and
# recursing over input it has not validated), beyond ValueError itself.
DECODE_ERRORS = (ValueError, TypeError, AttributeError, IndexError, KeyError, RecursionError)


def engineio_frame_fault(data: str | bytes) -> FrameFault | None:
    """What is wrong with a websocket frame at the Engine.IO layer, or None when engine.io
    can decode it (a binary frame is a binary MESSAGE: Socket.IO decides about it)."""
    if not isinstance(data, str):
        return None
    if not data:
        return FrameFault.EMPTY
    kind = data[0]
    if kind == "b":  # a base64 binary MESSAGE (polling's encoding; legal, if odd, here)
        try:
            base64.b64decode(data[1:])  # as engine.io will
        except (binascii.Error, ValueError):
            return FrameFault.MALFORMED
        return None
    if kind in _CLIENT_ENGINEIO_TYPES:
        return None
    if kind in _SERVER_ENGINEIO_TYPES:
        return FrameFault.UNEXPECTED
    return FrameFault.UNKNOWN_TYPE


def decode_fault(exc: BaseException) -> FrameFault:
    """The fault a decoder's exception stands for."""
    if isinstance(exc, UndecodableFrame):
        return exc.fault
    if isinstance(exc, RecursionError):
        return FrameFault.TOO_DEEP
    if isinstance(exc, json.JSONDecodeError):
        return FrameFault.BAD_JSON
    # The standard library's own words since 3.11 (sys.set_int_max_str_digits).
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return FrameFault.HUGE_NUMBER
    return FrameFault.MALFORMED


class FrameGuard:
    """Reports refused frames: one log line each, and the listener (a metrics counter)."""

    def __init__(self) -> None:
        self._listener: Callable[[str], None] | None = None

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call `listener(fault.value)` for every refused frame."""
        self._listener = listener

    def report(self, fault: FrameFault, *, sid: str | None, transport: str) -> None:
        _LOG.warning(
            "closed a %s connection after an undecodable frame: %s (sid=%s)",
            transport,
            fault.value,
            sid,
        )
        if self._listener is not None:
            self._listener(fault.value)


class FrameCheckingWebSocket(_AiohttpWebSocket):  # type: ignore[misc]
    """engine.io's aiohttp websocket, handing engine.io only frames it can decode.

    A mixin: `frame_checked` puts it in front of whichever driver the engine uses.
    `wait` is a plain function returning a `Chained` awaitable, not a coroutine: an idle
    websocket waits in it for its whole life, and a coroutine frame of ours around the
    driver's would cost every socket that frame."""

    def wait(self) -> Awaitable[Any]:
        return Chained(super().wait(), FrameCheckingWebSocket._checked, self)

    def _checked(self, data: Any) -> Awaitable[Any] | None:
        """None to hand `data` to engine.io; the refusal for a frame it cannot decode."""
        fault = engineio_frame_fault(data)
        if fault is None:
            return None
        return self._refuse(fault)

    async def _refuse(self, fault: FrameFault) -> Any:
        eio_socket = getattr(self.handler, "__self__", None)
        guard: FrameGuard = self.server.frame_guard
        guard.report(fault, sid=getattr(eio_socket, "sid", None), transport="websocket")
        await self._sock.close(code=CLOSE_CODE, message=CLOSE_REASON)
        # What engine.io's own driver raises when the websocket closes: every place that
        # waits for a frame (the upgrade's probe, the read loop) then ends the session.
        raise OSError("undecodable frame")


def frame_checked(driver: type[Any]) -> type[Any]:
    """`driver` (an engine.io aiohttp websocket class) with its frames checked."""
    if issubclass(driver, FrameCheckingWebSocket):
        return driver
    return type(f"FrameChecked{driver.__name__}", (FrameCheckingWebSocket, driver), {})


