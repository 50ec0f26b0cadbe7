"""Socket.IO v5, as its specification (socketio/socket.io-protocol) writes it, over raw
websockets and raw HTTP long-polling against our server (`ChatSocketServer` on our
engine, `FastEmitManager`, `WirePacket`) with the protocol suite's settings and its
handlers: `/` sends `auth` once connected, echoes `message` as `message-back` and
answers `message-with-ack` with its arguments; `/custom` sends `auth`; `/private`
(ours) refuses a CONNECT without the right token. No Socket.IO client in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from conformance_server import ACCEPTED_TOKEN, SOCKETIO, conformance_app, socketio_echo_server
from polling import eventually

from server.realtime.engine.socket_server import ChatSocketServer

T = TypeVar("T")

_WAIT_S = 5.0  # for what must happen: only a broken server waits this long
_SEP = "\x1e"
_PLACEHOLDERS = '{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}'


@dataclass
class Served:
    app: web.Application
    http: aiohttp.ClientSession
    base: str

    @property
    def sio(self) -> ChatSocketServer:
        return self.app[SOCKETIO]

    def url(self, query: str) -> str:
        return f"{self.base}/socket.io/?EIO=4&{query}"

    async def websocket(self) -> Session:
        ws = await self.http.ws_connect(self.url("transport=websocket").replace("http", "ws", 1))
        opening = await _frame(ws)
        assert isinstance(opening, str) and opening[0] == "0"
        return Session(ws, json.loads(opening[1:])["sid"])

    async def request(self, method: str, url: str, body: str | None = None) -> tuple[int, str]:
        async with asyncio.timeout(_WAIT_S):
            async with self.http.request(method, url, data=body) as response:
                return response.status, await response.text()


@dataclass
class Session:
    """A raw Engine.IO websocket session; `receive` skips the engine's PINGs (answering
    them) unless asked for them."""

    ws: aiohttp.ClientWebSocketResponse
    eio_sid: str

    async def send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def receive(self) -> str | bytes:
        async with asyncio.timeout(_WAIT_S):
            while True:
                frame = await _frame(self.ws)
                if frame != "2":
                    return frame
                await self.ws.send_str("3")

    async def connect(self, namespace: str = "/", payload: str = "") -> str:
        """CONNECT; the Socket.IO sid from the server's CONNECT (the `auth` echo read too)."""
        prefix = "" if namespace == "/" else f"{namespace},"
        await self.send(f"40{prefix}{payload}")
        connected = await self.receive()
        assert isinstance(connected, str) and connected.startswith(f"40{prefix}"), connected
        sid = json.loads(connected[2 + len(prefix) :])["sid"]
        auth = await self.receive()
        assert isinstance(auth, str) and auth.startswith(f"42{prefix}" + '["auth",'), auth
        return str(sid)

    async def closed_by_server(self) -> None:
        """The server closes the websocket; nothing but PINGs (answered) and Engine.IO's
        CLOSE packet come first."""
        async with asyncio.timeout(_WAIT_S):
            while True:
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return
                assert msg.type == aiohttp.WSMsgType.TEXT and msg.data in ("1", "2"), msg
                if msg.data == "2":
                    await self.ws.send_str("3")


async def within(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(_WAIT_S):
        return await awaitable


async def _frame(ws: aiohttp.ClientWebSocketResponse) -> str | bytes:
    msg = await within(ws.receive())
    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
    data: str | bytes = msg.data
    return data


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    app = conformance_app()
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Served(app, http, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


# --- connecting to a namespace ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "payload", "auth"),
    [
        ("/", "", {}),
        ("/", '{"token":"123"}', {"token": "123"}),
        ("/custom", "", {}),
        ("/custom", '{"token":"abc"}', {"token": "abc"}),
    ],
)
async def test_connect_is_answered_with_connect_carrying_a_new_sid(
    served: Served, namespace: str, payload: str, auth: dict[str, Any]
) -> None:
    """Connection to a namespace: the client sends CONNECT (optionally with a payload),
    the server answers CONNECT with `{sid}`, a Socket.IO sid distinct from Engine.IO's."""
    session = await served.websocket()
    prefix = "" if namespace == "/" else f"{namespace},"
    await session.send(f"40{prefix}{payload}")
    connected = await session.receive()
    assert isinstance(connected, str) and connected.startswith(f"40{prefix}")
    handshake = json.loads(connected[2 + len(prefix) :])
    assert set(handshake) == {"sid"} and isinstance(handshake["sid"], str)
    assert handshake["sid"] != session.eio_sid
    assert await session.receive() == f"42{prefix}" + json.dumps(
        ["auth", auth], separators=(",", ":")
    )


async def test_connect_to_an_unknown_namespace_is_refused_as_invalid(served: Served) -> None:
    """python-socketio answered `"Unable to connect"` (a bare string, not v5's object)."""
    session = await served.websocket()
    await session.send("40/random")
    assert await session.receive() == '44/random,{"message":"Invalid namespace"}'
    await session.connect("/")  # the session itself goes on


async def test_a_refused_connect_carries_the_reason_and_a_right_one_connects(
    served: Served,
) -> None:
    """CONNECT_ERROR `{message}` when the server does not allow the connection."""
    session = await served.websocket()
    await session.send('40/private,{"token":"wrong"}')
    assert await session.receive() == '44/private,{"message":"Not authorized"}'
    await session.send(f'40/private,{{"token":"{ACCEPTED_TOKEN}"}}')
    connected = await session.receive()
    assert isinstance(connected, str) and connected.startswith("40/private,")
    sid = json.loads(connected[len("40/private,") :])["sid"]
    await session.send('42/private,7["whoami"]')
    assert await session.receive() == f'43/private,7["{sid}"]'


@pytest.mark.parametrize("frame", ["40[1]", '40"token"', '40/custom,"x"', "40/custom,[]"])
async def test_a_connect_payload_that_is_not_an_object_closes_the_connection(
    served: Served, frame: str
) -> None:
    session = await served.websocket()
    await session.send(frame)
    await session.closed_by_server()


@pytest.mark.parametrize("frame", ["4abc", "4", "47", "44{}"])
async def test_a_first_packet_that_is_not_a_connect_closes_the_connection(
    served: Served, frame: str
) -> None:
    """An invalid handshake: the server closes the connection."""
    session = await served.websocket()
    await session.send(frame)
    await session.closed_by_server()


async def test_a_session_joined_to_a_custom_namespace_only_outlives_the_handshake_timer() -> None:
    """A v5 client need not join `/` (there is no implicit connection to it any more): a
    session on `/custom` alone has completed its handshake and must stay open."""
    app = conformance_app(handshake_timeout_s=0.5)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            served = Served(app, http, str(server.make_url("")).rstrip("/"))
            custom = await served.websocket()
            await custom.connect("/custom")
            silent = await served.websocket()  # opened after `custom`: its timer fires later
            pongs = asyncio.ensure_future(custom.receive())  # answers PINGs; nothing else comes
            await silent.closed_by_server()
            assert not pongs.done(), pongs
            pongs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pongs
            assert custom.eio_sid in served.sio.eio.sockets
            await custom.send('42["message","still here"]')  # `/` not joined: ignored
            await custom.send("40")
            await custom.receive()  # CONNECT
            await custom.receive()  # auth
            await custom.send('42["message","still here"]')
            assert await custom.receive() == '42["message-back","still here"]'
    finally:
        await server.close()


async def test_a_session_still_joining_a_custom_namespace_outlives_the_handshake_timer() -> None:
    """The timer fires while `/slow`'s connect handler still runs: the session is being
    joined, so it gets another timeout instead of being closed under its client."""
    # Shorter than a ping cycle: engine.io reads nothing more from a websocket while a
    # connect handler runs, so a handler slower than pingInterval + pingTimeout loses it.
    sio = socketio_echo_server(handshake_timeout_s=0.1)
    release = asyncio.Event()

    async def slow_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await release.wait()

    sio.on("connect", slow_connect, namespace="/slow")
    app = web.Application()
    app[SOCKETIO] = sio
    sio.attach(app, socketio_path="socket.io")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            served = Served(app, http, str(server.make_url("")).rstrip("/"))
            joining = await served.websocket()
            await joining.send("40/slow,")
            connected = asyncio.ensure_future(joining.receive())  # answers PINGs meanwhile
            silent = await served.websocket()  # opened after `joining`: its timer fires later
            assert await silent.receive() == "1"  # Engine.IO CLOSE: the timer went off
            assert not connected.done(), connected
            release.set()
            frame = await within(connected)
            assert isinstance(frame, str) and frame.startswith("40/slow,{"), frame
            assert joining.eio_sid in sio.eio.sockets
    finally:
        await sio.eio.heartbeats.stop()
        await sio.shutdown()
        await server.close()


# --- disconnecting ------------------------------------------------------------------------------


async def test_disconnect_from_the_main_namespace_keeps_the_connection(served: Served) -> None:
    """DISCONNECT: no answer is expected; the low-level connection MAY be kept alive."""
    session = await served.websocket()
    await session.connect("/")
    await session.send("41")
    assert await _frame(session.ws) == "2"  # the engine's next PING: still connected
    await session.ws.send_str("3")
    await eventually(
        lambda: served.sio.manager.sid_from_eio_sid(session.eio_sid, "/") is None,
        what="the namespace to be left",
    )


async def test_connect_then_disconnect_a_custom_namespace(served: Served) -> None:
    session = await served.websocket()
    await session.connect("/")
    await session.connect("/custom")
    await session.send("41/custom,")
    await session.send('42["message","message to main namespace"]')
    assert await session.receive() == '42["message-back","message to main namespace"]'


# --- events and acknowledgements ----------------------------------------------------------------


async def test_a_message_event_reaches_its_handler(served: Served) -> None:
    """`message` is an event like any other (socket.io-client's `socket.send()` emits it;
    our server used to drop it as reserved)."""
    session = await served.websocket()
    await session.connect("/")
    await session.send('42["message",1,"2",{"3":[true]}]')
    assert await session.receive() == '42["message-back",1,"2",{"3":[true]}]'


async def test_an_event_with_binary_attachments(served: Served) -> None:
    """BINARY_EVENT: placeholders in the JSON, each attachment its own binary frame."""
    session = await served.websocket()
    await session.connect("/")
    await session.send(f'452-["message",{_PLACEHOLDERS}]')
    await session.send(bytes([1, 2, 3]))
    await session.send(bytes([4, 5, 6]))
    assert await session.receive() == f'452-["message-back",{_PLACEHOLDERS}]'
    assert await session.receive() == bytes([1, 2, 3])
    assert await session.receive() == bytes([4, 5, 6])


async def test_an_event_with_an_ack_id_is_acknowledged_with_that_id(served: Served) -> None:
    session = await served.websocket()
    await session.connect("/")
    await session.send('42456["message-with-ack",1,"2",{"3":[false]}]')
    assert await session.receive() == '43456[1,"2",{"3":[false]}]'


async def test_a_binary_event_with_an_ack_is_acknowledged_with_a_binary_ack(
    served: Served,
) -> None:
    session = await served.websocket()
    await session.connect("/")
    await session.send(f'452-789["message-with-ack",{_PLACEHOLDERS}]')
    await session.send(bytes([1, 2, 3]))
    await session.send(bytes([4, 5, 6]))
    assert await session.receive() == f"462-789[{_PLACEHOLDERS}]"
    assert await session.receive() == bytes([1, 2, 3])
    assert await session.receive() == bytes([4, 5, 6])


async def test_an_ack_from_the_client_reaches_the_server_callback(served: Served) -> None:
    session = await served.websocket()
    sid = await session.connect("/")
    answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    await served.sio.emit("question", "why", to=sid, callback=lambda *a: answered.set_result(a))
    assert await session.receive() == '421["question","why"]'
    await session.send('431["because",2]')
    assert await within(answered) == ("because", 2)


@pytest.mark.parametrize(
    "frame",
    [
        "42{}",
        "42[]",
        '42"message"',
        "421",
        '42abc["message-with-ack",1]',
        "4abc",
        "49[]",
        '431{"a":1}',
        "431",
    ],
    ids=[
        "payload-object",
        "payload-empty-array",
        "payload-string",
        "no-payload",
        "bad-ack-id",
        "unknown-type-a",
        "unknown-type-9",
        "ack-payload-object",
        "ack-no-payload",
    ],
)
async def test_a_packet_of_invalid_format_closes_the_connection(served: Served, frame: str) -> None:
    """An EVENT's payload is mandatory and MUST be a non-empty array, an ACK's an array;
    otherwise (and for what does not decode at all) the receiver MUST close the connection."""
    session = await served.websocket()
    await session.connect("/")
    await session.send(frame)
    await session.closed_by_server()
    await eventually(
        lambda: session.eio_sid not in served.sio.eio.sockets, what="the session to end"
    )


# --- the same over long-polling ----------------------------------------------------------------


async def _poll_until(served: Served, sid: str, count: int) -> list[str]:
    """Packets from as many long-polls as it takes to get `count` of them (PINGs answered)."""
    packets: list[str] = []
    while len(packets) < count:
        status, text = await served.request("GET", served.url(f"transport=polling&sid={sid}"))
        assert status == 200, (status, text)
        for packet in text.split(_SEP):
            if packet == "2":
                await served.request("POST", served.url(f"transport=polling&sid={sid}"), "3")
            else:
                packets.append(packet)
    return packets


async def test_socketio_over_long_polling_then_websocket(served: Served) -> None:
    """The sample session: CONNECT, events, an ack and an attachment over polling, then
    the upgrade, after which the websocket carries the same namespace."""
    status, text = await served.request("GET", served.url("transport=polling"))
    assert status == 200
    eio_sid = json.loads(text[1:])["sid"]
    session_url = served.url(f"transport=polling&sid={eio_sid}")
    assert await served.request("POST", session_url, '40{"token":"p"}') == (200, "ok")
    connected, auth = await _poll_until(served, eio_sid, 2)
    assert connected.startswith("40{") and auth == '42["auth",{"token":"p"}]'
    body = _SEP.join(
        [
            '42["message","a"]',
            '4212["message-with-ack","b"]',
            '451-["message",{"_placeholder":true,"num":0}]',
            "bAQID",
        ]
    )
    assert await served.request("POST", session_url, body) == (200, "ok")
    replies = await _poll_until(served, eio_sid, 4)
    assert '42["message-back","a"]' in replies and "4312[\"b\"]" in replies
    binary = replies.index('451-["message-back",{"_placeholder":true,"num":0}]')
    assert replies[binary + 1] == "bAQID"

    ws = await served.http.ws_connect(
        served.url(f"transport=websocket&sid={eio_sid}").replace("http", "ws", 1)
    )
    session = Session(ws, eio_sid)
    await session.send("2probe")
    assert await session.receive() == "3probe"
    await session.send("5")
    await session.send('42["message","over websocket"]')
    assert await session.receive() == '42["message-back","over websocket"]'
    assert (await served.request("GET", session_url))[0] == 400


async def test_an_invalid_packet_over_long_polling_closes_the_session(served: Served) -> None:
    status, text = await served.request("GET", served.url("transport=polling"))
    eio_sid = json.loads(text[1:])["sid"]
    session_url = served.url(f"transport=polling&sid={eio_sid}")
    await served.request("POST", session_url, "40")
    await _poll_until(served, eio_sid, 2)
    await served.request("POST", session_url, "42{}")
    # The session is closed: a waiting long-poll gets CLOSE, later requests 400.
    status, text = await served.request("GET", session_url)
    assert status == 400 or text.split(_SEP)[-1] == "1", (status, text)
    assert (await served.request("GET", session_url))[0] == 400
