"""The contract between server/realtime/engine and python-socketio / python-engineio.

The engine reaches into private hooks of both libraries (pinned exactly in
pyproject.toml). Every hook it relies on is checked here twice: it exists with the
signature the engine calls it with, and it still behaves the way the engine needs, in a
small real run (real library objects, a real `AsyncSocket`, or an in-process aiohttp
server with the real library and a raw Engine.IO client). Each failure message starts
with the hook's name, so an upgrade that breaks one says which.

If this file fails to import, the traceback names the hook too: the engine modules bind
`engineio.async_socket.AsyncSocket._send_ping`, `engineio.async_drivers.aiohttp.WebSocket`,
`engineio.json`, `socketio.packet` and `socketio.async_pubsub_manager.AsyncPubSubManager`
when they are imported.
"""

# This file exists to touch the libraries' private members (like the engine itself).
# ruff: noqa: SLF001

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import inspect
import json
import time
import types
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp
import engineio
import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from engineio import async_server, async_socket, base_server, base_socket
from engineio import json as eio_json
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet
from socketio.async_pubsub_manager import AsyncPubSubManager

from server.realtime.engine import fanout
from server.realtime.engine.fanout import ChatEngineServer, FastEmitManager, FastRedisManager
from server.realtime.engine.lean_queue import LeanQueue
from server.realtime.engine.pubsub_probe import LISTENER_OK, pubsub_listener_state
from server.realtime.engine.socket_server import UNNAMED_EVENT, ChatSocketServer
from server.realtime.engine.wire_packet import WireJSON, WirePacket

_TIMEOUT_S = 3.0
_PUBSUB = "socketio.async_pubsub_manager.AsyncPubSubManager"
_SEND_PING_QUALNAME = "AsyncSocket._send_ping"


# --- signatures -------------------------------------------------------------------------

# hook (its import path): (the parameters the engine calls it with, async?)
_SIGNATURES: dict[str, tuple[str, bool]] = {
    # engine.io heartbeats (fanout.ChatEngineServer, ping_wheel)
    "engineio.async_socket.AsyncSocket.schedule_ping": ("self", False),
    "engineio.async_socket.AsyncSocket._send_ping": ("self", True),
    "engineio.async_socket.AsyncSocket.send": ("self, pkt", True),
    "engineio.async_socket.AsyncSocket.receive": ("self, pkt", True),
    "engineio.async_socket.AsyncSocket.check_ping_timeout": ("self", True),
    "engineio.AsyncServer.start_background_task": ("self, target, args, kwargs", False),
    # engine.io's websocket driver (fanout._UncompressedWebSocket)
    "engineio.async_socket.AsyncSocket._upgrade_websocket": ("self, environ", True),
    "engineio.async_socket.AsyncSocket._websocket_handler": ("self, ws", True),
    "engineio.async_drivers.aiohttp.WebSocket.__init__": ("self, handler, server", False),
    "engineio.async_drivers.aiohttp.WebSocket.__call__": ("self, environ", True),
    "engineio.async_drivers.aiohttp.WebSocket.send": ("self, message", True),
    "engineio.async_drivers.aiohttp.WebSocket.wait": ("self", True),
    "engineio.async_drivers.aiohttp.WebSocket.close": ("self", True),
    # engine.io's per-socket queue (lean_queue), sends and disconnects
    "engineio.AsyncServer.create_queue": ("self, args, kwargs", False),
    "engineio.async_socket.AsyncSocket.poll": ("self", True),
    "engineio.AsyncServer.send_packet": ("self, sid, pkt", True),
    "engineio.AsyncServer.disconnect": ("self, sid", True),
    "engineio.packet.Packet.__init__": ("self, packet_type, data, encoded_packet", False),
    # handshakes refused before a session exists (handshake_gate, guarded_engine)
    "engineio.AsyncServer._handle_connect": ("self, environ, transport, jsonp_index", True),
    "engineio.AsyncServer._ok": ("self, packets, headers, jsonp_index", False),
    "engineio.AsyncServer.generate_id": ("self", False),
    # undecodable frames (frame_guard, socket_server, wire_packet)
    "engineio.async_socket.AsyncSocket.close": ("self, wait, abort, reason", True),
    "socketio.AsyncServer._handle_eio_message": ("self, eio_sid, data", True),
    "socketio.packet.Packet.decode": ("self, encoded_packet", False),
    "socketio.packet.Packet.add_attachment": ("self, attachment", False),
    # the protocols as their specifications write them (engineio_rules, socketio_rules)
    "engineio.AsyncServer.handle_request": ("self, args, kwargs", True),
    "engineio.AsyncServer.attach": ("self, app, engineio_path", False),
    "engineio.AsyncServer._trigger_event": ("self, event, args, kwargs", True),
    "engineio.AsyncServer._make_response": ("self, response_dict, environ", True),
    "engineio.AsyncServer._bad_request": ("self, message", False),
    "engineio.AsyncServer._cors_allowed_origins": ("self, environ", False),
    "socketio.AsyncServer._handle_ack": ("self, eio_sid, namespace, id, data", True),
    "socketio.AsyncServer._send_packet": ("self, eio_sid, pkt", True),
    "socketio.base_manager.BaseManager.get_namespaces": ("self", False),
    "socketio.base_manager.BaseManager.is_connected": ("self, sid, namespace", False),
    # python-socketio's server (socket_server.ChatSocketServer)
    "socketio.AsyncServer._engineio_server_class": ("self", False),
    "socketio.AsyncServer._handle_event": ("self, eio_sid, namespace, id, data", True),
    "socketio.AsyncServer._handle_eio_connect": ("self, eio_sid, environ", True),
    "socketio.AsyncServer._handle_connect": ("self, eio_sid, namespace, data", True),
    "socketio.AsyncServer._handle_eio_disconnect": ("self, eio_sid, reason", True),
    "socketio.AsyncServer._send_eio_packet": ("self, eio_sid, eio_pkt", True),
    "socketio.AsyncServer.shutdown": ("self", True),
    # python-socketio's managers (fanout.FastEmitManager, pubsub_probe)
    "socketio.base_manager.BaseManager.set_server": ("self, server", False),
    "socketio.base_manager.BaseManager.sid_from_eio_sid": ("self, eio_sid, namespace", False),
    "socketio.base_manager.BaseManager.get_participants": ("self, namespace, room", False),
    "socketio.base_manager.BaseManager._generate_ack_id": ("self, sid, callback", False),
    "socketio.AsyncManager.trigger_callback": ("self, sid, id, data", True),
    "socketio.async_pubsub_manager.AsyncPubSubManager.initialize": ("self", False),
    "socketio.async_pubsub_manager.AsyncPubSubManager._publish": ("self, data", True),
    "socketio.async_pubsub_manager.AsyncPubSubManager._listen": ("self", True),
    # python-socketio's Redis listener (pubsub_listener.ReportingRedisListener)
    "socketio.AsyncRedisManager._listen": ("self", True),
    "socketio.AsyncRedisManager._redis_listen_with_retries": ("self", True),
    "socketio.AsyncRedisManager._redis_connect": ("self", False),
    # python-socketio's packets (fanout._encode_event, wire_packet)
    "socketio.packet.Packet.__init__": (
        "self, packet_type, data, namespace, id, binary, encoded_packet",
        False,
    ),
    "socketio.packet.Packet.encode": ("self", False),
    "socketio.packet.Packet.data_is_binary": ("data", False),
}


def _resolve(hook: str) -> Any:
    """The object a dotted hook path names, or None when it is gone."""
    parts = hook.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if inspect.getattr_static(found, name, None) is None:
                return None
            found = getattr(found, name)
        return found
    return None


@pytest.mark.parametrize(("hook", "expected"), list(_SIGNATURES.items()), ids=list(_SIGNATURES))
def test_hook_exists_with_the_signature_the_engine_calls(
    hook: str, expected: tuple[str, bool]
) -> None:
    params, is_async = expected
    func = _resolve(hook)
    assert func is not None, f"{hook} no longer exists"
    signature = inspect.signature(func)
    assert ", ".join(signature.parameters) == params, (
        f"{hook} changed signature: now {signature}, the engine calls it as ({params})"
    )
    # _listen is an async generator (the listener task iterates it).
    actual = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
    assert actual is is_async, f"{hook} is no longer {'async' if is_async else 'synchronous'}"


def test_the_room_emit_override_has_the_library_signature() -> None:
    def shape(func: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]

    assert shape(socketio.AsyncManager.emit) == shape(FastEmitManager.emit), (
        "socketio.AsyncManager.emit changed signature: now "
        f"{inspect.signature(socketio.AsyncManager.emit)}, FastEmitManager.emit overrides "
        f"{inspect.signature(FastEmitManager.emit)}"
    )


# --- engine.io heartbeats: who clears and who sets AsyncSocket.last_ping --------------------


class _RecordingEngine(engineio.AsyncServer):  # type: ignore[misc]
    """The stock engine.io server, recording background tasks instead of starting them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(async_mode="aiohttp", **kwargs)
        self.started: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        self.queue_calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        self.started.append((target, args, kwargs))
        return None

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        self.queue_calls.append((args, kwargs))
        return super().create_queue(*args, **kwargs)


def _is_send_ping(target: Any) -> bool:
    return getattr(target, "__func__", None) is AsyncSocket._send_ping and isinstance(
        getattr(target, "__self__", None), AsyncSocket
    )


def _send_ping_tasks() -> list[asyncio.Task[Any]]:
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == _SEND_PING_QUALNAME
    ]


def _methods_assigning(attribute: str, modules: Iterable[types.ModuleType]) -> set[str]:
    """Every `Class.method` of these modules that assigns `<something>.<attribute>`."""
    found: set[str] = set()
    for module in modules:
        for cls in ast.parse(inspect.getsource(module)).body:
            if not isinstance(cls, ast.ClassDef):
                continue
            for method in cls.body:
                if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(method):
                    targets: list[ast.expr] = []
                    if isinstance(node, ast.Assign):
                        targets = node.targets
                    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                        targets = [node.target]
                    if any(isinstance(t, ast.Attribute) and t.attr == attribute for t in targets):
                        found.add(f"{cls.name}.{method.name}")
    return found


_SERVER_SIDE_ENGINEIO = (base_socket, async_socket, base_server, async_server, eio_aiohttp)


def test_only_the_socket_init_schedule_ping_and_send_ping_write_last_ping() -> None:
    writers = _methods_assigning("last_ping", _SERVER_SIDE_ENGINEIO)
    expected = {"BaseSocket.__init__", "AsyncSocket.schedule_ping", "AsyncSocket._send_ping"}
    assert writers == expected, (
        "engineio.async_socket.AsyncSocket.last_ping: the methods writing it changed from "
        f"{sorted(expected)} to {sorted(writers)}; ChatEngineServer._ping stands in for "
        "_send_ping (sets it) and relies on schedule_ping alone clearing it"
    )


async def test_schedule_ping_clears_last_ping_and_starts_send_ping_with_no_args() -> None:
    engine = _RecordingEngine(ping_interval=25, ping_timeout=20)
    sock = AsyncSocket(engine, "contract-sid")
    assert sock.last_ping, (
        "engineio.base_socket.BaseSocket.__init__ no longer sets last_ping: "
        "schedule_ping would never schedule the first ping"
    )
    sock.schedule_ping()
    assert sock.last_ping is None, (
        "engineio.async_socket.AsyncSocket.schedule_ping no longer clears last_ping"
    )
    assert len(engine.started) == 1, (
        "engineio.async_socket.AsyncSocket.schedule_ping no longer calls "
        f"server.start_background_task exactly once: {engine.started!r}"
    )
    target, args, kwargs = engine.started[0]
    assert _is_send_ping(target) and target.__self__ is sock and not args and not kwargs, (
        "engineio.async_socket.AsyncSocket.schedule_ping no longer calls "
        f"server.start_background_task(self._send_ping) with no args: {engine.started[0]!r}; "
        "ChatEngineServer.start_background_task would not hand the socket to the ping wheel"
    )
    assert fanout._SEND_PING is AsyncSocket._send_ping, (
        "engineio.async_socket.AsyncSocket._send_ping was replaced after the engine was "
        "imported (socketio's instrument() patches it): the ping wheel no longer recognises it"
    )
    sock.schedule_ping()
    assert len(engine.started) == 1, (
        "engineio.async_socket.AsyncSocket.schedule_ping no longer skips a socket whose "
        "last_ping is already cleared: the wheel would ping it twice per cycle"
    )
    sock.last_ping = time.time()
    await sock.receive(eio_packet.Packet(eio_packet.PONG))
    assert sock.last_ping is None and len(engine.started) == 2, (
        "engineio.async_socket.AsyncSocket.receive no longer calls schedule_ping on a PONG: "
        "the next ping would never be scheduled"
    )


async def _ping_with_library(sock: AsyncSocket) -> None:
    await sock._send_ping()


async def _ping_with_wheel(sock: AsyncSocket) -> None:
    engine: ChatEngineServer = sock.server
    engine._ping(sock)
    await asyncio.gather(*engine._pings)


@pytest.mark.parametrize(
    "ping", [_ping_with_library, _ping_with_wheel], ids=["AsyncSocket._send_ping", "PingWheel"]
)
async def test_a_ping_sets_last_ping_and_queues_a_ping_packet_unless_closing(
    ping: Callable[[AsyncSocket], Any],
) -> None:
    """engine.io's `_send_ping` (after its sleep) and the wheel's stand-in do the same."""
    engine = ChatEngineServer(async_mode="aiohttp", ping_interval=0, ping_timeout=20)
    sock = AsyncSocket(engine, "contract-sid")
    sock.last_ping = None  # as schedule_ping leaves it
    before = time.time()
    await ping(sock)
    assert sock.last_ping is not None and before <= sock.last_ping <= time.time(), (
        "engineio.async_socket.AsyncSocket._send_ping no longer sets last_ping to time.time() "
        "(the ping wheel's ChatEngineServer._ping must do what it does)"
    )
    queued = sock.queue.get_nowait()
    assert queued.packet_type == eio_packet.PING and sock.queue.empty(), (
        "engineio.async_socket.AsyncSocket._send_ping no longer queues one PING packet "
        "through AsyncSocket.send"
    )
    sock.last_ping = None
    sock.closing = True
    await ping(sock)
    assert sock.last_ping is None and sock.queue.empty(), (
        "engineio.async_socket.AsyncSocket._send_ping now pings a closing socket"
    )


async def test_check_ping_timeout_reads_last_ping() -> None:
    engine = _RecordingEngine(ping_interval=25, ping_timeout=1)
    sock = AsyncSocket(engine, "contract-sid")
    sock.last_ping = None
    assert await sock.check_ping_timeout() is True and not sock.closed, (
        "engineio.async_socket.AsyncSocket.check_ping_timeout now times out a socket whose "
        "last_ping is cleared (between a PONG and the wheel's next ping)"
    )
    sock.last_ping = time.time() - 2
    assert await sock.check_ping_timeout() is False and sock.closed, (
        "engineio.async_socket.AsyncSocket.check_ping_timeout no longer closes a socket whose "
        "ping went unanswered for ping_timeout: silent clients would never be dropped"
    )


async def test_the_ping_wheel_receives_what_schedule_ping_would_start() -> None:
    engine = ChatEngineServer(async_mode="aiohttp", ping_interval=0.05, ping_timeout=20)
    sock = AsyncSocket(engine, "contract-sid")
    try:
        sock.schedule_ping()
        assert not _send_ping_tasks(), (
            "engineio.async_socket.AsyncSocket.schedule_ping: a per-socket _send_ping task is "
            "running; ChatEngineServer.start_background_task no longer intercepts it"
        )
        pkt = await asyncio.wait_for(sock.queue.get(), _TIMEOUT_S)
        assert pkt.packet_type == eio_packet.PING and sock.last_ping is not None, (
            "engineio.async_socket.AsyncSocket.schedule_ping: the ping wheel never pinged"
        )
    finally:
        await engine.heartbeats.stop()


# --- engine.io: the driver table, the per-socket queue, the socket's state --------------------


def test_the_driver_table_has_the_aiohttp_websocket_driver() -> None:
    stock = engineio.AsyncServer(async_mode="aiohttp")
    table = stock._async
    assert isinstance(table, dict) and table.get("websocket") is eio_aiohttp.WebSocket, (
        "engineio.AsyncServer._async no longer has the aiohttp WebSocket driver under "
        f"'websocket': {table!r}"
    )
    engine = ChatEngineServer(async_mode="aiohttp")
    assert engine._async["websocket"] is fanout._UncompressedWebSocket
    assert issubclass(fanout._UncompressedWebSocket, eio_aiohttp.WebSocket)
    assert {k: v for k, v in engine._async.items() if k != "websocket"} == {
        k: v for k, v in table.items() if k != "websocket"
    }
    again = engineio.AsyncServer(async_mode="aiohttp")._async
    assert again["websocket"] is eio_aiohttp.WebSocket, (
        "engineio.AsyncServer._async: replacing a server's driver table changed every "
        "server's (the table is no longer copied)"
    )

    async def handler(ws: Any) -> None:
        return None

    driver = eio_aiohttp.WebSocket(handler, stock)
    kept = [getattr(driver, name, "missing") for name in ("handler", "server", "_sock")]
    assert kept == [handler, stock, None], (
        "engineio.async_drivers.aiohttp.WebSocket no longer keeps handler / server / _sock "
        "(_UncompressedWebSocket.__call__ uses all three)"
    )


def test_create_queue_is_the_per_socket_queue_factory() -> None:
    engine = _RecordingEngine()
    sock = AsyncSocket(engine, "contract-sid")
    assert engine.queue_calls == [((), {})], (
        "engineio.AsyncServer.create_queue is no longer called once, with no arguments, "
        f"for each socket's queue: {engine.queue_calls!r}"
    )
    assert isinstance(sock.queue, asyncio.Queue), (
        "engineio.AsyncServer.create_queue no longer makes an asyncio.Queue (what LeanQueue "
        f"replaces): {sock.queue!r}"
    )
    assert isinstance(AsyncSocket(ChatEngineServer(async_mode="aiohttp"), "x").queue, LeanQueue), (
        "engineio.AsyncServer.create_queue: an AsyncSocket's queue no longer comes from it"
    )


def _queue_calls(modules: Iterable[types.ModuleType]) -> dict[str, set[str]]:
    """Methods called on `<something>.queue`, with the modules calling them."""
    calls: dict[str, set[str]] = {}
    for module in modules:
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "queue"
            ):
                calls.setdefault(node.func.attr, set()).add(module.__name__)
    return calls


def test_lean_queue_has_every_queue_method_engineio_calls() -> None:
    calls = _queue_calls(_SERVER_SIDE_ENGINEIO)
    assert calls, "engineio.async_socket.AsyncSocket.queue: no calls found; the scan is stale"
    missing = sorted(name for name in calls if not callable(getattr(LeanQueue, name, None)))
    assert not missing, (
        f"engineio.async_socket.AsyncSocket.queue: engine.io now calls {missing} on a "
        f"socket's queue ({calls}); LeanQueue does not provide it"
    )
    for name in calls:
        stock_async = inspect.iscoroutinefunction(getattr(asyncio.Queue, name, None))
        assert inspect.iscoroutinefunction(getattr(LeanQueue, name)) is stock_async, (
            f"engineio.async_socket.AsyncSocket.queue.{name}: asyncio.Queue's is "
            f"{'async' if stock_async else 'synchronous'}, LeanQueue's is not"
        )
    for module in _SERVER_SIDE_ENGINEIO:
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "create_queue"
            ):
                assert not node.args and not node.keywords, (
                    f"engineio.AsyncServer.create_queue is now called with arguments in "
                    f"{module.__name__} (a bounded queue?); LeanQueue is unbounded"
                )
    assert engineio.AsyncServer().get_queue_empty_exception() is asyncio.QueueEmpty, (
        "engineio.AsyncServer.get_queue_empty_exception is no longer asyncio.QueueEmpty, "
        "which LeanQueue.get_nowait raises"
    )


async def test_a_real_socket_runs_on_the_lean_queue() -> None:
    engine = ChatEngineServer(async_mode="aiohttp", ping_interval=0.05, ping_timeout=0.05)
    sock = AsyncSocket(engine, "contract-sid")
    assert (sock.upgraded, sock.closing, sock.closed) == (False, False, False), (
        "engineio.async_socket.AsyncSocket.upgraded/closing/closed no longer start False"
    )
    sock.last_ping = None  # no ping timeout in this run
    for data in ("a", "b", "c"):
        await sock.send(eio_packet.Packet(eio_packet.MESSAGE, data))
    assert not sock.queue.empty()
    polled = await asyncio.wait_for(sock.poll(), _TIMEOUT_S)
    assert [p.data for p in polled] == ["a", "b", "c"] and sock.queue.empty(), (
        "engineio.async_socket.AsyncSocket.poll no longer drains the whole queue in one call "
        "(fanout's direct writes rely on an empty queue meaning nothing is in flight)"
    )
    with pytest.raises(engineio.exceptions.QueueEmpty):
        await asyncio.wait_for(sock.poll(), _TIMEOUT_S)  # waits ping_interval + ping_timeout
    reader = asyncio.create_task(sock.poll())
    await asyncio.wait_for(sock.close(wait=True), _TIMEOUT_S)
    closing = await asyncio.wait_for(reader, _TIMEOUT_S)
    assert [p.packet_type for p in closing] == [eio_packet.CLOSE], (
        "engineio.async_socket.AsyncSocket.close no longer sends CLOSE through the queue"
    )
    assert sock.closing and sock.closed, (
        "engineio.async_socket.AsyncSocket.close no longer sets closing and closed"
    )


# --- python-socketio: packets and the fast path's encoding -----------------------------------

_PAYLOADS: list[tuple[str, str, list[Any], bool]] = [
    # (namespace, event, args, ASCII only)
    (
        "/",
        "ai-token",
        [{"conversationId": "c1", "token": "hi", "tokenIndex": 3, "partial": "hi"}],
        True,
    ),
    ("/", "typing-start", [], True),
    ("/chat", "message-added", [{"id": 1, "ok": True, "none": None}, 2, "x", [1, 2.5]], True),
    ("/", "escapes", ['quote " backslash \\ newline \n tab \t cr \r nul \x00 us \x1f'], True),
    ("/", "ai-token", [{"token": "héllo — 你好 🚀", "partial": "ünïcode\u2028"}], False),
    ("/chat", "emoji", ["🙂", {"é": "ß"}], False),
]


def _library_frame(packet_class: type[Any], namespace: str, event: str, args: list[Any]) -> str:
    """What AsyncManager.emit puts on the wire for a room EVENT."""
    encoded = packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
    assert isinstance(encoded, str)
    frame = eio_packet.Packet(eio_packet.MESSAGE, encoded).encode()
    assert isinstance(frame, str)
    return frame


def _decoded(frame: str) -> tuple[int, str | None, Any]:
    """The Socket.IO packet a text frame carries, as the library decodes it."""
    message = eio_packet.Packet(encoded_packet=frame)
    assert message.packet_type == eio_packet.MESSAGE, frame
    pkt = sio_packet.Packet(encoded_packet=message.data)
    return pkt.packet_type, pkt.namespace, pkt.data


def test_packet_classes_use_the_json_modules_the_fast_path_accepts() -> None:
    assert sio_packet.Packet.json is eio_json, (
        "socketio.packet.Packet.json is no longer engineio.json: FastEmitManager.set_server "
        "would refuse the default packet class"
    )
    assert WirePacket.json is WireJSON, "socketio.packet.Packet.json: WirePacket's was replaced"
    assert (eio_packet.MESSAGE, sio_packet.EVENT, eio_packet.PING) == (4, 2, 2), (
        "engineio.packet.MESSAGE / socketio.packet.EVENT / engineio.packet.PING changed value"
    )


@pytest.mark.parametrize(
    ("namespace", "event", "args", "ascii_only"),
    _PAYLOADS,
    ids=["ai-token", "no-args", "namespace", "escapes", "non-ascii", "namespace-non-ascii"],
)
def test_the_fast_path_writes_the_library_event_frame(
    namespace: str, event: str, args: list[Any], ascii_only: bool
) -> None:
    frame = fanout._encode_event(namespace, event, args)
    wire = _library_frame(WirePacket, namespace, event, args)
    assert frame == wire, (
        "socketio.packet.Packet.encode: an EVENT no longer encodes as fanout._encode_event "
        f"writes it:\n library {wire!r}\n fanout  {frame!r}"
    )
    stock = _library_frame(sio_packet.Packet, namespace, event, args)
    if ascii_only:
        assert frame == stock, (
            "socketio.packet.Packet.encode (default json): an EVENT no longer encodes as "
            f"fanout._encode_event writes it:\n library {stock!r}\n fanout  {frame!r}"
        )
    else:
        # The standard library escapes non-ASCII (\uXXXX) where msgspec writes UTF-8: not
        # the same bytes, but the same packet for socket.io-client.
        assert _decoded(frame) == _decoded(stock), (
            f"socketio.packet.Packet.encode: {stock!r} and fanout's {frame!r} differ"
        )
    assert _decoded(frame) == (
        sio_packet.EVENT,
        None if namespace == "/" else namespace,
        [event, *args],
    ), f"socketio.packet.Packet.decode no longer reads fanout's frame {frame!r} back"
    queued = eio_packet.Packet(eio_packet.MESSAGE, frame[1:]).encode()
    assert queued == frame, (
        "engineio.packet.Packet(MESSAGE, str).encode no longer writes '4' + the string: "
        "FastEmitManager's queued frames would differ from its direct ones"
    )


def test_data_is_binary_finds_bytes_anywhere() -> None:
    is_binary = sio_packet.Packet.data_is_binary
    assert is_binary([b"x"]) and is_binary([{"a": [1, {"b": bytearray(b"y")}]}]), (
        "socketio.packet.Packet.data_is_binary no longer finds nested bytes: the fast path "
        "would write binary data as JSON"
    )
    assert not is_binary(["a", {"b": [1, None, "c"]}]), (
        "socketio.packet.Packet.data_is_binary reports binary for plain JSON data"
    )


# --- python-socketio: the server builds its manager and engine through our hooks ---------------


class _OtherJSON:
    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, **kwargs)

    loads = staticmethod(json.loads)


class _OtherJSONPacket(sio_packet.Packet):  # type: ignore[misc]
    json = _OtherJSON


class _RecordingManager(socketio.AsyncManager):  # type: ignore[misc]
    def set_server(self, server: Any) -> None:
        self.packet_class_at_set_server = vars(server).get("packet_class")
        super().set_server(server)


def test_the_server_sets_packet_class_before_attaching_the_manager() -> None:
    for serializer, expected in (("default", sio_packet.Packet), (WirePacket, WirePacket)):
        recorder = _RecordingManager()
        sio = socketio.AsyncServer(client_manager=recorder, serializer=serializer)
        assert recorder.packet_class_at_set_server is expected, (
            "socketio.base_server.BaseServer.__init__ no longer sets packet_class before "
            "calling manager.set_server(server) (FastEmitManager.set_server checks it)"
        )
        assert recorder.server is sio


def test_the_fast_path_refuses_a_packet_class_it_does_not_encode_for() -> None:
    try:
        socketio.AsyncServer(client_manager=FastEmitManager(), serializer=_OtherJSONPacket)
    except TypeError as exc:
        assert "packet class" in str(exc), exc
    else:
        pytest.fail(
            "socketio.base_server.BaseServer.__init__ no longer calls manager.set_server(server) "
            "with packet_class set: FastEmitManager accepted a packet class with another json"
        )
    for serializer, expected in (("default", sio_packet.Packet), (WirePacket, WirePacket)):
        manager = FastEmitManager()
        sio = socketio.AsyncServer(client_manager=manager, serializer=serializer)
        assert manager.server is sio and sio.packet_class is expected, (
            "socketio.base_server.BaseServer.__init__ no longer attaches the manager "
            "with manager.set_server(server)"
        )


def test_the_engine_server_class_hook_builds_our_engine() -> None:
    sio = ChatSocketServer(handshake_timeout_s=1, async_mode="aiohttp", serializer=WirePacket)
    assert isinstance(sio.eio, ChatEngineServer), (
        "socketio.AsyncServer._engineio_server_class is no longer how the server builds its "
        "engine.io server"
    )
    for event, ours in (
        ("connect", ChatSocketServer._handle_eio_connect),
        ("disconnect", ChatSocketServer._handle_eio_disconnect),
    ):
        handler = sio.eio.handlers.get(event)
        assert getattr(handler, "__func__", None) is ours, (
            f"socketio.AsyncServer._handle_eio_{event} is no longer the engine.io "
            f"'{event}' handler: {handler!r}"
        )


def test_the_redis_manager_delivers_through_the_fast_emit() -> None:
    mro = FastRedisManager.__mro__
    below = mro[mro.index(AsyncPubSubManager) + 1]
    assert below is FastEmitManager, (
        f"{_PUBSUB}: FastRedisManager's method order no longer puts FastEmitManager right "
        f"under the pub/sub layer: {[c.__name__ for c in mro]}"
    )
    assert FastRedisManager.emit is AsyncPubSubManager.emit, (
        "socketio.AsyncRedisManager now defines emit: FastRedisManager.emit is no longer "
        "AsyncPubSubManager.emit"
    )
    assert super(AsyncPubSubManager, FastRedisManager).emit is FastEmitManager.emit, (
        f"{_PUBSUB}._handle_emit's super().emit no longer resolves to FastEmitManager.emit"
    )


# --- in-process runs: the real library on aiohttp, a raw Engine.IO client ----------------------


def _chat_server(manager: FastEmitManager | None = None, **options: Any) -> ChatSocketServer:
    settings: dict[str, Any] = {
        "handshake_timeout_s": 30.0,
        "serializer": WirePacket,
        "async_mode": "aiohttp",
        "client_manager": manager if manager is not None else FastEmitManager(),
        "ping_interval": 25,
        "ping_timeout": 20,
        "transports": ["polling", "websocket"],
        "logger": False,
        "engineio_logger": False,
    }
    settings.update(options)
    return ChatSocketServer(**settings)


@contextlib.asynccontextmanager
async def _serving(sio: ChatSocketServer) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield http, str(server.make_url("/socket.io/"))
    finally:
        await sio.eio.heartbeats.stop()
        await sio.shutdown()
        await server.close()


async def _text(ws: aiohttp.ClientWebSocketResponse, hook: str) -> str:
    msg = await asyncio.wait_for(ws.receive(), _TIMEOUT_S)
    assert msg.type == aiohttp.WSMsgType.TEXT, f"{hook}: expected a text frame, got {msg!r}"
    assert isinstance(msg.data, str)
    return msg.data


async def _poll(http: aiohttp.ClientSession, url: str, hook: str) -> list[str]:
    """One long-polling GET: the packets it returns."""
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=_TIMEOUT_S)) as response:
            assert response.status == 200, f"{hook}: HTTP {response.status}"
            return (await response.text()).split("\x1e")
    except TimeoutError:
        pytest.fail(f"{hook}: nothing arrived by long-polling within {_TIMEOUT_S} s")


async def _open_websocket(
    http: aiohttp.ClientSession, url: str, query: str = ""
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await http.ws_connect(f"{url}?EIO=4&transport=websocket{query}", compress=15)
    if query:
        return ws, ""
    opening = await _text(ws, "engineio.AsyncServer websocket handshake")
    assert opening.startswith("0{"), f"engineio.AsyncServer: no OPEN packet: {opening!r}"
    return ws, str(json.loads(opening[1:])["sid"])


async def _connect_namespace(ws: aiohttp.ClientWebSocketResponse) -> str:
    await ws.send_str("40")
    reply = await _text(ws, "socketio.AsyncServer._handle_connect")
    assert reply.startswith("40{"), f"socketio.AsyncServer._handle_connect: {reply!r}"
    return str(json.loads(reply[2:])["sid"])


async def _eventually(check: Callable[[], bool], message: str) -> None:
    deadline = time.monotonic() + _TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, message
        await asyncio.sleep(0.01)


async def test_a_websocket_session_through_every_engine_hook() -> None:
    sio = _chat_server()
    manager: FastEmitManager = sio.manager
    events: list[str] = []

    async def any_event(event: str, sid: str, *args: Any) -> str:
        events.append(event)
        return "ok"

    sio.on("*", any_event)
    async with _serving(sio) as (http, url):
        ws, eio_sid = await _open_websocket(http, url)
        engine: ChatEngineServer = sio.eio
        assert ws.compress == 0, (
            "engineio.AsyncServer._async['websocket']: the driver serving the websocket is no "
            "longer _UncompressedWebSocket (permessage-deflate was negotiated)"
        )
        eio_socket = engine.sockets.get(eio_sid)
        assert isinstance(eio_socket, AsyncSocket), (
            "engineio.AsyncServer.sockets no longer maps the sid to its AsyncSocket"
        )
        assert isinstance(eio_socket.queue, LeanQueue), (
            "engineio.AsyncServer.create_queue no longer makes the socket's queue"
        )
        assert eio_socket.upgraded, (
            "engineio.async_socket.AsyncSocket.upgraded is not set on a websocket session"
        )
        assert isinstance(engine.direct_websockets.get(eio_sid), web.WebSocketResponse), (
            "engineio.async_drivers.aiohttp.WebSocket: handler.__self__ is no longer the "
            "AsyncSocket (its sid names the websocket), or _sock / __call__(environ) changed"
        )
        timer = sio._handshake_timers.get(eio_sid)
        assert timer is not None, (
            "socketio.AsyncServer._handle_eio_connect is no longer called on an engine.io connect"
        )
        assert not _send_ping_tasks(), (
            "engineio.async_socket.AsyncSocket.schedule_ping: a per-socket _send_ping task runs"
        )

        sid = await _connect_namespace(ws)
        assert manager.sid_from_eio_sid(eio_sid, "/") == sid, (
            "socketio.base_manager.BaseManager.sid_from_eio_sid no longer maps the engine.io "
            "sid to the Socket.IO sid"
        )
        assert eio_sid not in sio._handshake_timers and timer.cancelled(), (
            "socketio.AsyncServer._handle_connect is no longer called for a CONNECT packet"
        )
        assert "/" in manager.rooms and list(manager.get_participants("/", sid)) == [
            (sid, eio_sid)
        ], (
            "socketio.base_manager.BaseManager.rooms / get_participants(namespace, room) no "
            "longer give (sid, eio_sid)"
        )

        direct = manager.direct_frames
        await sio.emit("note", {"text": "héllo"}, to=sid)
        frame = await _text(ws, "FastEmitManager.emit")
        assert frame == '42["note",{"text":"héllo"}]', frame
        assert manager.direct_frames == direct + 1, (
            "engineio.async_socket.AsyncSocket.upgraded / queue.empty(): the emit to an idle "
            "websocket was not written directly"
        )

        await sio.emit("bin", b"\x01\x02", to=sid)
        frame = await _text(ws, "socketio.packet.Packet.data_is_binary")
        assert frame == '451-["bin",{"_placeholder":true,"num":0}]', (
            "socketio.packet.Packet.data_is_binary / AsyncManager.emit: binary data did not "
            f"take the library's path: {frame!r}"
        )
        attachment = await asyncio.wait_for(ws.receive(), _TIMEOUT_S)
        assert attachment.data == b"\x01\x02" and manager.direct_frames == direct + 1

        answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await sio.emit("ask", 7, to=sid, callback=answered.set_result)
        frame = await _text(ws, "socketio.AsyncManager.emit with a callback")
        assert frame == '421["ask",7]', (
            "socketio.AsyncManager.emit / _generate_ack_id: an emit with a callback is no "
            f"longer sent with ack id 1: {frame!r}"
        )
        await ws.send_str('431["yes"]')
        assert await asyncio.wait_for(answered, _TIMEOUT_S) == "yes", (
            "socketio.AsyncManager.trigger_callback did not call the emit's callback"
        )

        # (An EVENT without a name, `42[]`, closes the connection: test_socketio_conformance.)
        for sent in ('42["connect",1]', '42["disconnect"]', "42[7]"):
            await ws.send_str(sent)
        await ws.send_str('423["echo","x"]')
        ack = await _text(ws, "socketio.AsyncServer._handle_event")
        assert ack == '433["ok"]', f"socketio.AsyncServer._handle_event: ack {ack!r}"
        await _eventually(
            lambda: len(events) == 4,
            f"socketio.AsyncServer._handle_event: the handler saw {events!r}",
        )
        assert sorted(events) == sorted([UNNAMED_EVENT] * 3 + ["echo"]), (
            "socketio.AsyncServer._handle_event(eio_sid, namespace, id, data) is no longer "
            f"how events reach handlers: reserved or invalid names got through: {events!r}"
        )

        await ws.close()
        await _eventually(
            lambda: eio_sid not in engine.direct_websockets and eio_sid not in engine.sockets,
            "engineio.async_drivers.aiohttp.WebSocket: the closed websocket stayed registered",
        )
        assert manager.sid_from_eio_sid(eio_sid, "/") is None, (
            "socketio.AsyncServer._handle_eio_disconnect did not disconnect the namespace"
        )


async def test_polling_emits_are_queued_and_an_upgrade_makes_them_direct() -> None:
    sio = _chat_server()
    manager: FastEmitManager = sio.manager
    async with _serving(sio) as (http, url):
        polling = f"{url}?EIO=4&transport=polling"
        [opening] = await _poll(http, polling, "engineio.AsyncServer polling handshake")
        eio_sid = json.loads(opening[1:])["sid"]
        async with http.post(f"{polling}&sid={eio_sid}", data="40") as response:
            assert response.status == 200
        [connected] = await _poll(
            http, f"{polling}&sid={eio_sid}", "socketio.AsyncServer._handle_connect"
        )
        sid = json.loads(connected[2:])["sid"]
        engine: ChatEngineServer = sio.eio
        eio_socket = engine.sockets[eio_sid]
        assert not eio_socket.upgraded and engine.direct_socket(eio_sid) is None, (
            "engineio.async_socket.AsyncSocket.upgraded is set on a polling session"
        )

        queued = manager.queued_frames
        await sio.emit("note", {"n": 1}, to=sid)
        hook = "socketio.AsyncServer._send_eio_packet(eio_sid, pkt)"
        packets = await _poll(http, f"{polling}&sid={eio_sid}", hook)
        assert '42["note",{"n":1}]' in packets and manager.queued_frames == queued + 1, (
            f"{hook} did not deliver: {packets!r}"
        )

        ws, _ = await _open_websocket(http, url, f"&sid={eio_sid}")
        await ws.send_str("2probe")
        assert await _text(ws, "AsyncSocket._websocket_handler probe") == "3probe"
        await ws.send_str("5")
        # No NOOP follows: the one engine.io queued at the probe for a long-poll that never
        # came is dropped (engineio_rules.PollingEndsOnUpgrade); the next frame is the note.
        await _eventually(
            lambda: engine.direct_socket(eio_sid) is not None,
            "engineio.async_drivers.aiohttp.WebSocket: an upgraded socket's websocket is not "
            "registered for direct writes (handler.__self__ / upgraded / queue.empty())",
        )
        direct = manager.direct_frames
        await sio.emit("note", {"n": 2}, to=sid)
        assert await _text(ws, "FastEmitManager.emit") == '42["note",{"n":2}]'
        assert manager.direct_frames == direct + 1
        await ws.close()


async def test_pings_go_through_the_wheel_and_pongs_reschedule_them() -> None:
    sio = _chat_server(ping_interval=0.3, ping_timeout=5)
    async with _serving(sio) as (http, url):
        ws, eio_sid = await _open_websocket(http, url)
        await _connect_namespace(ws)
        eio_socket = sio.eio.sockets[eio_sid]
        for cycle in (1, 2):
            assert not _send_ping_tasks(), (
                "engineio.async_socket.AsyncSocket.schedule_ping: a per-socket _send_ping task "
                "runs instead of the ping wheel"
            )
            assert await _text(ws, "ping wheel") == "2", (
                f"engineio.async_socket.AsyncSocket.schedule_ping: no PING in cycle {cycle}"
            )
            assert eio_socket.last_ping is not None
            await ws.send_str("3")
            await _eventually(
                lambda: eio_socket.last_ping is None,
                "engineio.async_socket.AsyncSocket.receive no longer clears last_ping "
                "(schedule_ping) on a PONG",
            )
        await ws.close()


async def test_a_session_without_a_handshake_expires_and_a_closed_one_cancels_its_timer() -> None:
    sio = _chat_server(handshake_timeout_s=1.0)
    async with _serving(sio) as (http, url):
        silent, silent_sid = await _open_websocket(http, url)
        leaving, leaving_sid = await _open_websocket(http, url)
        timer = sio._handshake_timers[leaving_sid]
        await leaving.close()
        await _eventually(
            lambda: leaving_sid not in sio.eio.sockets,
            "engineio.AsyncServer.sockets: a closed websocket session stayed in it",
        )
        assert timer.cancelled() and leaving_sid not in sio._handshake_timers, (
            "socketio.AsyncServer._handle_eio_disconnect(eio_sid, reason) is no longer called "
            "when an engine.io session closes"
        )
        await _eventually(
            lambda: silent_sid not in sio.eio.sockets,
            "engineio.AsyncServer.disconnect / sockets: a session that never sent CONNECT "
            "outlived the handshake timeout",
        )
        await silent.close()


class _MarkingCodec:
    """A codec whose output is recognisable: what the server's sealing codec stands for."""

    MARK = "codec:"

    def dumps(self, obj: Any) -> str:
        return self.MARK + json.dumps(obj)

    def loads(self, raw: bytes | str) -> Any:
        text = raw.decode() if isinstance(raw, bytes) else raw
        if not text.startswith(self.MARK):
            raise ValueError("not ours")
        return json.loads(text[len(self.MARK) :])


class _LoopbackRedisManager(FastRedisManager):
    """FastRedisManager with Redis replaced by an in-process channel: only the two transport
    methods every pub/sub backend of python-socketio implements are swapped, and what
    `_publish` puts on the bus is encoded with `self.json` exactly as the library's is."""

    def __init__(self) -> None:
        super().__init__("redis://127.0.0.1:9/0", channel="contract", codec=_MarkingCodec())
        self.bus: asyncio.Queue[str] = asyncio.Queue()
        self.carried: list[str] = []

    async def _publish(self, data: Any) -> None:
        encoded = self.json.dumps(data)
        self.carried.append(encoded)
        await self.bus.put(encoded)

    async def _listen(self) -> AsyncIterator[str]:
        while True:
            yield await self.bus.get()


async def test_the_pubsub_listener_dispatches_callbacks_and_emits() -> None:
    manager = _LoopbackRedisManager()
    sio = _chat_server(manager)
    assert await pubsub_listener_state(sio) == LISTENER_OK  # not started yet
    async with _serving(sio) as (http, url):
        ws, _ = await _open_websocket(http, url)
        sid = await _connect_namespace(ws)
        listener = getattr(manager, "thread", None)
        assert isinstance(listener, asyncio.Task) and not listener.done(), (
            f"{_PUBSUB}.thread is no longer the listener task initialize() starts on the "
            f"first connection: {listener!r}"
        )
        assert isinstance(manager.host_id, str) and manager.host_id, f"{_PUBSUB}.host_id is gone"
        assert await pubsub_listener_state(sio, timeout_s=_TIMEOUT_S) == LISTENER_OK, (
            f"{_PUBSUB}._thread (the listener) no longer dispatches the probe's `callback`"
        )

        heard: list[tuple[Any, ...]] = []
        arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def callback(*args: Any) -> None:
            heard.append(args)
            if not arrived.done():
                arrived.set_result(None)

        ack_id = manager._generate_ack_id("contract-probe", callback)
        assert manager.callbacks["contract-probe"][ack_id] is callback, (
            f"{_PUBSUB}._generate_ack_id no longer registers the callback in callbacks[sid][id]"
        )
        message = {"method": "callback", "sid": "contract-probe", "namespace": "/", "id": ack_id}
        await manager._publish({**message, "host_id": "another-instance", "args": ["no"]})
        await manager._publish({**message, "host_id": manager.host_id, "args": [1, "two"]})
        await asyncio.wait_for(arrived, _TIMEOUT_S)
        assert heard == [(1, "two")], (
            f"{_PUBSUB}.trigger_callback: a `callback` message was not dispatched to the "
            f"registered function once, for this host_id only: {heard!r}"
        )
        assert ack_id not in manager.callbacks["contract-probe"], (
            "socketio.AsyncManager.trigger_callback no longer removes a called callback"
        )

        direct = manager.direct_frames
        await sio.emit("ai-token", {"t": "x"}, to=sid)
        assert await _text(ws, "AsyncPubSubManager.emit") == '42["ai-token",{"t":"x"}]'
        peer_emit = {
            "method": "emit",
            "event": "from-peer",
            "data": [{"n": 2}],
            "binary": False,
            "namespace": "/",
            "room": sid,
            "skip_sid": None,
            "callback": None,
            "host_id": "another-instance",
        }
        await manager._publish(peer_emit)
        assert await _text(ws, "AsyncPubSubManager._handle_emit") == '42["from-peer",{"n":2}]'
        assert manager.direct_frames == direct + 2, (
            f"{_PUBSUB}._handle_emit no longer delivers through FastEmitManager.emit "
            "(the method right under the pub/sub layer)"
        )

        assert manager.carried and all(
            carried.startswith(_MarkingCodec.MARK) for carried in manager.carried
        ), f"{_PUBSUB}: messages no longer cross the channel through the manager's codec"
        dropped = manager.direct_frames
        await manager.bus.put(json.dumps(peer_emit))  # clear JSON, as a forger would send
        await manager._publish({**peer_emit, "data": [{"n": 3}]})
        assert await _text(ws, "AsyncPubSubManager._thread") == '42["from-peer",{"n":3}]', (
            f"{_PUBSUB}._thread: a message its codec refuses was not dropped"
        )
        assert manager.direct_frames == dropped + 1

        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        assert await pubsub_listener_state(sio) == "listener stopped", (
            f"{_PUBSUB}.thread: a finished listener is not reported stopped"
        )
        await ws.close()


def test_the_redis_listener_iterates_the_retrying_subscription_we_replace() -> None:
    """`_listen` reads `_redis_listen_with_retries()` (ours reconnects quickly and reports
    gaps), which subscribes `self.pubsub` to `self.channel` after `_redis_connect()`."""
    hook = "socketio.AsyncRedisManager._listen"
    source = inspect.getsource(socketio.AsyncRedisManager._listen)
    assert "self._redis_listen_with_retries()" in source, (
        f"{hook} no longer iterates _redis_listen_with_retries(): the listener's gap "
        "reports (engine/pubsub_listener.py) would never run"
    )
    hook = "socketio.AsyncRedisManager._redis_listen_with_retries"
    source = inspect.getsource(socketio.AsyncRedisManager._redis_listen_with_retries)
    for used in ("self._redis_connect()", "self.pubsub.subscribe(self.channel)"):
        assert used in source, f"{hook} no longer does {used}: our replacement does"
    assert (
        FastRedisManager._redis_listen_with_retries
        is not socketio.AsyncRedisManager._redis_listen_with_retries
    ), "FastRedisManager no longer puts the reporting listener before the library's"


# --- the protocols as their specifications write them (engineio_rules, socketio_rules) ------


async def test_the_open_packet_waits_in_the_queue_when_the_connect_event_fires() -> None:
    hook = "engineio.AsyncServer._handle_connect / _trigger_event('connect', sid, environ)"
    engine = ChatEngineServer(async_mode="aiohttp", ping_interval=0.3, ping_timeout=0.2)
    seen: list[Any] = []

    async def connect(sid: str, environ: dict[str, Any]) -> None:
        seen.append(engine.sockets[sid].queue.peek())

    engine.on("connect", connect)
    app = web.Application()
    engine.attach(app)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            url = server.make_url("/engine.io/?EIO=4&transport=polling")
            async with http.get(url) as response:
                opening = json.loads((await response.text())[1:])
    finally:
        await engine.heartbeats.stop()
        await engine.shutdown()
        await server.close()
    assert len(seen) == 1 and getattr(seen[0], "packet_type", None) == eio_packet.OPEN, (
        f"{hook}: the OPEN packet is no longer the first queued packet when the connect "
        f"event fires ({seen!r}); EngineIORules._exact_open_packet fixes its intervals there"
    )
    assert (opening["pingInterval"], opening["pingTimeout"]) == (300, 200), (
        f"{hook}: the OPEN packet's fields changed: {opening!r}"
    )


def test_every_method_on_the_engine_path_reaches_handle_request() -> None:
    hook = "engineio.AsyncServer.attach / async_drivers.aiohttp.create_route"
    engine = ChatEngineServer(async_mode="aiohttp")
    app = web.Application()
    with warnings.catch_warnings():
        # aiohttp wraps a handler it does not take for a coroutine function (deprecated).
        warnings.simplefilter("error", DeprecationWarning)
        engine.attach(app, engineio_path="eio")
    routes = [r for r in app.router.routes() if r.resource and r.resource.canonical == "/eio/"]
    assert {r.method for r in routes} >= {"GET", "POST", "OPTIONS", "*"}, (
        f"{hook}: the engine's routes changed: {[r.method for r in routes]}"
    )
    assert all(r.handler == engine.handle_request for r in routes), (
        f"{hook}: engineio.AsyncServer.handle_request is no longer every route's handler"
    )


def test_a_websocket_request_is_answered_by_engineios_own_coroutine() -> None:
    """No coroutine of ours around engine.io's on the websocket path: aiohttp keeps the
    handler's frames for the websocket's whole life (EngineIORules.handle_request)."""
    hook = "engineio.AsyncServer.handle_request"
    engine = ChatEngineServer(async_mode="aiohttp")
    for query in ("EIO=4&transport=websocket", "EIO=4&transport=polling"):
        request = make_mocked_request(
            "GET", f"/engine.io/?{query}", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
        )
        answer = engine.handle_request(request)
        library_code = engineio.AsyncServer.handle_request.__code__
        try:
            assert getattr(answer, "cr_code", None) is library_code, (
                f"{hook}: a handshake is no longer answered by engine.io's own coroutine "
                f"({answer!r}): a frame more for every socket"
            )
        finally:
            answer.close()


def test_engineio_still_drops_long_polling_posts_of_more_than_16_packets() -> None:
    """Why EngineIORules decodes POST bodies itself (python-engineio's limit: a POST of
    more than 16 packets raises, and every packet of it is dropped)."""
    assert engineio.payload.Payload.max_decode_packets == 16, (
        "engineio.payload.Payload.max_decode_packets changed: see whether "
        "EngineIORules._post can hand POSTs back to AsyncSocket.handle_post_request"
    )


async def test_the_probe_queues_a_noop_that_the_upgrade_packet_finds_there() -> None:
    hook = "engineio.async_socket.AsyncSocket._websocket_handler"
    sio = _chat_server()
    async with _serving(sio) as (http, url):
        [opening] = await _poll(http, f"{url}?EIO=4&transport=polling", hook)
        eio_sid = json.loads(opening[1:])["sid"]
        eio_socket = sio.eio.sockets[eio_sid]
        ws, _ = await _open_websocket(http, url, f"&sid={eio_sid}")
        await ws.send_str("2probe")
        assert await _text(ws, hook) == "3probe"
        await _eventually(
            lambda: eio_socket.upgrading and not eio_socket.queue.empty(),
            f"{hook}: no NOOP is queued at the probe any more (upgrading "
            f"{eio_socket.upgrading}); engineio_rules.PollingEndsOnUpgrade can go",
        )
        assert eio_socket.queue.peek().packet_type == eio_packet.NOOP
        await ws.send_str("5")
        await _eventually(lambda: eio_socket.upgraded, f"{hook}: no upgrade")
        await sio.eio.send(eio_sid, "after")
        assert await _text(ws, hook) == "4after", (
            f"{hook}: the UPGRADE packet no longer passes through the driver's wait() while "
            "the socket is upgrading: the probe's NOOP was sent over the websocket"
        )
        await ws.close()


# --- handshakes refused before a session exists (handshake_gate, guarded_engine) ----------


async def test_a_refused_handshake_is_answered_without_a_session_on_either_transport() -> None:
    hook = "engineio.AsyncServer._handle_connect"
    sio = _chat_server()
    refuse = True

    async def check(environ: dict[str, Any]) -> None:
        assert isinstance(environ.get("aiohttp.request"), web.Request), (
            "engineio.async_drivers.aiohttp.translate_request no longer puts the request in "
            "environ['aiohttp.request']"
        )
        if refuse:
            raise socketio.exceptions.ConnectionRefusedError("go away", {"retryAfter": 7})

    sio.admit_handshakes(check)
    async with _serving(sio) as (http, url):
        packets = await _poll(http, f"{url}?EIO=4&transport=polling", hook)
        assert len(packets) == 3 and packets[0].startswith("0{") and packets[2] == "1", (
            f"{hook} / engineio.AsyncServer._ok: a refused polling handshake answered {packets!r}"
        )
        opening = json.loads(packets[0][1:])
        assert set(opening) == {"sid", "upgrades", "pingTimeout", "pingInterval", "maxPayload"}, (
            f"engineio.AsyncServer: the OPEN packet's fields changed: {opening!r}"
        )
        assert json.loads(packets[1][2:]) == {"message": "go away", "data": {"retryAfter": 7}}
        ws = await http.ws_connect(f"{url}?EIO=4&transport=websocket")
        frames = [await _text(ws, hook), await _text(ws, hook)]
        closing = await asyncio.wait_for(ws.receive(), _TIMEOUT_S)
        assert frames[0].startswith("0{") and frames[1].startswith("44{"), frames
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1013, closing
        await ws.close()
        assert not sio.eio.sockets, (
            f"{hook}: a refused handshake left a session in engineio.AsyncServer.sockets"
        )
        refuse = False
        packets = await _poll(http, f"{url}?EIO=4&transport=polling", hook)
        assert len(packets) == 1 and json.loads(packets[0][1:])["sid"] in sio.eio.sockets, (
            f"{hook}: an admitted handshake no longer opens a session: {packets!r}"
        )


# --- undecodable frames (frame_guard, wire_packet, socket_server) ------------------------


async def _closed_by_server(ws: aiohttp.ClientWebSocketResponse, hook: str) -> int | None:
    msg = await asyncio.wait_for(ws.receive(), _TIMEOUT_S)
    assert msg.type == aiohttp.WSMsgType.CLOSE, f"{hook}: the server did not close: {msg!r}"
    await ws.close()
    return ws.close_code


@pytest.mark.parametrize(
    ("hook", "frame", "connect", "fault"),
    [
        ("engineio.async_drivers.aiohttp.WebSocket.wait", "9x", False, "unknown_type"),
        ("engineio.async_drivers.aiohttp.WebSocket.wait", "", False, "empty"),
        ("socketio.AsyncServer._handle_eio_message", "49[]", True, "unknown_type"),
        ("socketio.AsyncServer._handle_eio_message", '42["a",', True, "bad_json"),
        ("socketio.AsyncServer._handle_eio_message", "4", True, "empty"),
        (
            "socketio.AsyncServer._handle_eio_message (ValueError 'Unexpected binary packet')",
            '451-["a",{"_placeholder":true,"num":0}]',
            False,
            "unexpected",
        ),
    ],
)
async def test_an_undecodable_frame_ends_its_session_with_a_protocol_error(
    hook: str, frame: str, connect: bool, fault: str
) -> None:
    sio = _chat_server()
    faults: list[str] = []
    sio.report_frame_faults(faults.append)

    async def admit(sid: str, environ: dict[str, Any], auth: Any) -> None:
        return None

    sio.on("connect", admit)
    async with _serving(sio) as (http, url):
        ws, eio_sid = await _open_websocket(http, url)
        if connect:
            await _connect_namespace(ws)
        await ws.send_str(frame)
        assert await _closed_by_server(ws, hook) == 1002, f"{hook}: not closed with 1002"
        assert faults == [fault], f"{hook}: reported {faults!r}"
        await _eventually(
            lambda: eio_sid not in sio.eio.sockets,
            f"{hook}: the session outlived its undecodable frame (engine.io's websocket "
            "handler no longer ends the session when wait() raises OSError?)",
        )


def test_the_library_dispatches_an_empty_packet_without_decoding_it() -> None:
    """Why `ChatSocketServer._handle_eio_message` refuses an empty packet itself."""
    for empty in ("", b""):
        pkt = WirePacket(encoded_packet=empty)
        assert (pkt.packet_type, pkt.data) == (sio_packet.EVENT, None), (
            "socketio.packet.Packet.__init__ now decodes an empty packet: the server's own "
            "check for one can go"
        )
