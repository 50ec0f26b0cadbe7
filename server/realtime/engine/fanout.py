"""The room broadcast, designed for the hot path: `ai-token` to every tab of a conversation.

Stock python-socketio on aiohttp spends 40-61 us of CPU per delivered event: aiohttp
compresses every websocket frame per recipient (permessage-deflate, plus ~92 KiB of
zlib state per socket), the manager creates one asyncio task per recipient, and each
packet hops through engine.io's per-socket queue and writer task. Here:

- websockets are created without permessage-deflate (`compress=False`): chat frames are
  small and the CPU and memory cost per socket is far larger than the bytes saved;
- a room emit encodes the packet once and writes the frame straight into each
  recipient's websocket when that is safe, in a plain loop with no task per recipient.

"Safe" keeps per-socket ordering: a frame is written directly only when the socket has
been upgraded to websocket and its engine.io queue is empty. The queue's writer task
only suspends while it waits for the queue (nothing in flight) or while aiohttp drains
a full transport buffer (its bytes are already in that buffer, ahead of ours), so a
direct write can never overtake a queued packet. Anything else (polling, a non-empty
queue, a closing socket, binary data, acks) takes engine.io's normal path. Pings and
their bookkeeping are untouched: they still go through the queue.

Private hooks relied on (checked by tests/server/realtime/engine/test_library_contract.py):
`AsyncSocket.schedule_ping` clearing `last_ping` and calling
`server.start_background_task(self._send_ping)`, and `_send_ping` setting it (`_ping` stands
in for it); `engineio.AsyncServer._async["websocket"]`, the aiohttp `WebSocket`'s `handler`
(bound to the `AsyncSocket`), `server`, `_sock` and `__call__(environ)`; `create_queue`;
`AsyncSocket.upgraded/closing/closed/queue`, `poll` draining the queue; `manager.rooms`,
`get_participants`, `server._send_eio_packet(eio_sid, pkt)`, `Packet.data_is_binary`,
`BaseManager.set_server` assigning `json`, which `_publish` and `_thread` encode and decode
pub/sub messages with,
`Packet.json` and the EVENT text encoding; `base_server` setting `packet_class` before
`manager.set_server(server)`; `AsyncPubSubManager._handle_emit` calling the `emit` below it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import engineio
import msgspec
import socketio
from aiohttp import web
from engineio import json as eio_json
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket as _AiohttpWebSocket
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from server.realtime.engine.engineio_rules import EngineIORules, PollingEndsOnUpgrade
from server.realtime.engine.lean_queue import LeanQueue
from server.realtime.engine.ping_wheel import PingWheel
from server.realtime.engine.pubsub_listener import ReportingRedisListener
from server.realtime.engine.wire_packet import WireJSON, WirePacket

__all__ = [
    "ChatEngineServer",
    "FastEmitManager",
    "FastRedisManager",
    "PubSubCodec",
]

_LOG = logging.getLogger(__name__)
_SEND_PING = AsyncSocket._send_ping
# A ping's watch ends this long before `ping_timeout` after it at the earliest (the wall
# and monotonic clocks may drift apart by that much).
_EXPIRY_SLACK_S = 0.001
# The packet classes whose text frames `_encode_event` reproduces: byte for byte for
# WirePacket (msgspec both ways); for the default class the same JSON values, though the
# standard library escapes non-ASCII as \uXXXX and writes 1e+16 where msgspec writes 1e16.
_JSON_PACKET_CLASSES = (sio_packet.Packet, WirePacket)
_JSON_MODULES = (eio_json, WireJSON)


class _UncompressedWebSocket(PollingEndsOnUpgrade, _AiohttpWebSocket):  # type: ignore[misc]
    """engine.io's aiohttp websocket, without permessage-deflate, registered for direct writes."""

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        # The 101 response's headers are on the wire once prepared (aiohttp serialised
        # them); nothing reads them again, and the websocket would keep them all its life.
        self._sock.headers.clear()
        self.environ = environ
        eio_socket = getattr(self.handler, "__self__", None)
        sid = getattr(eio_socket, "sid", None)
        direct: dict[str, web.WebSocketResponse] = self.server.direct_websockets
        if sid is not None:
            direct[sid] = self._sock
        try:
            await self.handler(self)
        finally:
            if sid is not None and direct.get(sid) is self._sock:
                del direct[sid]
        return self._sock


class ChatEngineServer(EngineIORules, engineio.AsyncServer):  # type: ignore[misc]
    """engine.io server whose websockets are uncompressed and reachable for direct writes,
    answering as the Engine.IO specification says (`engineio_rules`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A copy: the driver table is the module's own dict, shared by every server.
        drivers: dict[str, Any] = dict(self._async)
        drivers["websocket"] = _UncompressedWebSocket
        self._async: dict[str, Any] = drivers
        self.direct_websockets: dict[str, web.WebSocketResponse] = {}
        self._pings: set[asyncio.Future[Any]] = set()
        self.heartbeats = PingWheel(
            self.ping_interval, self._ping, timeout_s=self.ping_timeout, expire=self._expire
        )

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        """engine.io starts a task per socket that sleeps `ping_interval` and then pings;
        the wheel of `ping_wheel.py` does the same with a list entry per socket."""
        owner = getattr(target, "__self__", None)
        if (
            getattr(target, "__func__", None) is _SEND_PING
            and isinstance(owner, AsyncSocket)
            and not args
            and not kwargs
        ):
            self.heartbeats.schedule(owner)
            return None  # schedule_ping ignores it
        return super().start_background_task(target, *args, **kwargs)

    def _ping(self, eio_socket: AsyncSocket) -> bool:
        """The rest of engine.io's `AsyncSocket._send_ping`, once the interval has passed;
        True for a long-polling session, whose pong the wheel then watches for."""
        if eio_socket.closing or eio_socket.closed:
            return False
        eio_socket.last_ping = time.time()
        self._keep(eio_socket.send(eio_packet.Packet(eio_packet.PING)))
        return not eio_socket.upgraded

    def _expire(self, eio_socket: AsyncSocket) -> None:
        """`ping_timeout` after a long-polling session's ping: closed if still unanswered
        (engine.io's sweep would get to it anywhere up to a `ping_timeout` later). A
        websocket's read timeout closes it on time by itself."""
        last_ping = eio_socket.last_ping
        if eio_socket.upgraded or eio_socket.closing or eio_socket.closed or not last_ping:
            return  # answered (a pong clears last_ping), upgraded, or gone
        if time.time() - last_ping < self.ping_timeout - _EXPIRY_SLACK_S:
            return  # answered, and pinged again since
        self._keep(self.end_session(eio_socket, self.reason.PING_TIMEOUT, eio_packet.CLOSE))

    def _keep(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._pings.add(task)
        task.add_done_callback(self._pings.discard)

    def create_queue(self, *args: Any, **kwargs: Any) -> LeanQueue:
        """Every socket's packet queue: the lean one (see lean_queue.py)."""
        return LeanQueue()

    def direct_socket(self, eio_sid: str) -> web.WebSocketResponse | None:
        """The websocket to write to directly, or None when the queue must be used."""
        ws = self.direct_websockets.get(eio_sid)
        if ws is None or ws.closed:
            return None
        eio_socket = self.sockets.get(eio_sid)
        if eio_socket is None or eio_socket.closed or not eio_socket.upgraded:
            return None
        if not eio_socket.queue.empty():
            return None
        return ws


def _encode_event(namespace: str, event: str, args: list[Any]) -> str:
    """The Socket.IO v5 text frame of an EVENT with no ack id, as socket.io-client reads it."""
    body = msgspec.json.encode([event, *args]).decode()
    prefix = "" if namespace == "/" else f"{namespace},"
    return f"{eio_packet.MESSAGE}{sio_packet.EVENT}{prefix}{body}"


class FastEmitManager(socketio.AsyncManager):  # type: ignore[misc]
    """Room emits that encode once and write each recipient's frame without a task each.

    The frames are Socket.IO v5 JSON text, so the server's packet class must be one that
    writes exactly that: python-socketio's default or `WirePacket`. Any other (msgpack, a
    custom `json=` module) is refused when the manager is attached to its server.
    """

    #: Frames written straight into a websocket, and frames that took engine.io's queue.
    direct_frames = 0
    queued_frames = 0

    def set_server(self, server: Any) -> None:
        packet_class = getattr(server, "packet_class", None)
        if packet_class not in _JSON_PACKET_CLASSES or packet_class.json not in _JSON_MODULES:
            raise TypeError(
                f"{type(self).__name__} writes Socket.IO JSON text frames itself; the server's "
                f"packet class {packet_class!r} encodes differently. Use serializer=WirePacket "
                "(or the default) without json=, or a stock python-socketio manager."
            )
        super().set_server(server)

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        if callback is not None or sio_packet.Packet.data_is_binary(args):
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback
            )
            return
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        frame = _encode_event(namespace, event, args)
        engine: ChatEngineServer = self.server.eio
        queued: list[str] = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            ws = engine.direct_socket(eio_sid)
            if ws is None:
                queued.append(eio_sid)
                continue
            try:
                await ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                queued.append(eio_sid)  # closing: let engine.io deal with it
            else:
                self.direct_frames += 1
        self.queued_frames += len(queued)
        if queued:
            pkt = eio_packet.Packet(eio_packet.MESSAGE, frame[1:])
            for eio_sid in queued:
                await self.server._send_eio_packet(eio_sid, pkt)


class PubSubCodec(Protocol):
    """What turns a pub/sub message into the bytes Redis carries, and back; `loads`
    raises for a message to drop (python-socketio's listener drops it)."""

    def dumps(self, obj: Any) -> bytes | str: ...

    def loads(self, raw: bytes | str) -> Any: ...


class FastRedisManager(
    ReportingRedisListener,
    socketio.AsyncRedisManager,  # type: ignore[misc]
    FastEmitManager,
):
    """The Redis manager for many instances, delivering locally through `FastEmitManager`.

    Method order puts FastEmitManager.emit right under the pub/sub layer, so both local
    delivery of our own emits and delivery of other instances' emits use it; the listener
    reconnects quickly and reports the events it may have missed (`pubsub_listener`).
    Every message crosses Redis through `codec` (the server seals them).
    """

    def __init__(self, *args: Any, codec: PubSubCodec, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._codec = codec
        self.json = codec

    def set_server(self, server: Any) -> None:
        super().set_server(server)
        # BaseManager.set_server replaces `json` (which `_publish` and the listener use)
        # with the packet class's: the constructor's `json=` would never take effect.
        self.json = self._codec
