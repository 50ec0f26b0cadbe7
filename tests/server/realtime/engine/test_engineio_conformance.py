"""Engine.IO v4, as its specification (socketio/engine.io-protocol) writes it, over raw
HTTP long-polling and raw websockets against our engine (`GuardedEngineServer`, echoing
every message) with the protocol suite's settings: pings every 0.3 s, 0.2 s to answer,
1,000,000-byte payloads. No Engine.IO client in between: every byte is the test's.

Each test names the specification's rule it checks; the official suite's own cases are
among them (scripts/conformance_server.py serves the same server to the suite itself).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from conformance_server import (
    ENGINEIO,
    MAX_PAYLOAD,
    PING_INTERVAL_S,
    PING_TIMEOUT_S,
    conformance_app,
)
from polling import eventually

from server.realtime.engine.guarded_engine import GuardedEngineServer

T = TypeVar("T")

_WAIT_S = 5.0  # for what must happen: only a broken server waits this long
_SEP = "\x1e"


@dataclass
class Served:
    """The conformance server on a random port, and a raw HTTP client for it."""

    app: web.Application
    http: aiohttp.ClientSession
    base: str

    @property
    def engine(self) -> GuardedEngineServer:
        return self.app[ENGINEIO]

    def url(self, query: str = "EIO=4&transport=polling") -> str:
        return f"{self.base}/engine.io/?{query}"

    def session_url(self, sid: str) -> str:
        return self.url(f"EIO=4&transport=polling&sid={sid}")

    async def request(
        self, method: str, url: str, body: str | bytes | None = None
    ) -> tuple[int, str]:
        async with asyncio.timeout(_WAIT_S):
            async with self.http.request(method, url, data=body) as response:
                return response.status, await response.text()

    async def handshake(self) -> dict[str, Any]:
        status, text = await self.request("GET", self.url())
        assert status == 200 and text.startswith("0"), (status, text)
        opening: dict[str, Any] = json.loads(text[1:])
        return opening

    async def open_session(self) -> str:
        return str((await self.handshake())["sid"])

    async def poll(self, sid: str) -> tuple[int, str]:
        return await self.request("GET", self.session_url(sid))

    async def push(self, sid: str, body: str | bytes) -> tuple[int, str]:
        return await self.request("POST", self.session_url(sid), body)

    async def websocket(self, query: str = "EIO=4&transport=websocket") -> Any:
        return await self.http.ws_connect(self.url(query).replace("http", "ws", 1))


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


async def within(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(_WAIT_S):
        return await awaitable


async def text_frame(ws: aiohttp.ClientWebSocketResponse) -> str:
    msg = await within(ws.receive())
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    assert isinstance(msg.data, str)
    return msg.data


async def closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> None:
    """The server closes this websocket (engine.io's PINGs may come first)."""
    async with asyncio.timeout(_WAIT_S):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return
            assert msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2", msg


def _open_fields(opening: dict[str, Any], upgrades: list[str]) -> None:
    assert set(opening) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(opening["sid"], str) and opening["sid"]
    assert opening["upgrades"] == upgrades
    assert opening["pingInterval"] == round(PING_INTERVAL_S * 1000) == 300
    assert opening["pingTimeout"] == round(PING_TIMEOUT_S * 1000) == 200
    assert opening["maxPayload"] == MAX_PAYLOAD == 1_000_000


# --- handshake -------------------------------------------------------------------------------


async def test_a_polling_handshake_opens_a_session_with_the_exact_settings(served: Served) -> None:
    """Handshake: the server MUST respond with an `open` packet (sid, upgrades,
    pingInterval, pingTimeout, maxPayload), intervals in milliseconds."""
    async with served.http.get(served.url()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert text[0] == "0" and _SEP not in text
    _open_fields(json.loads(text[1:]), ["websocket"])


async def test_a_websocket_handshake_opens_a_session_without_upgrades(served: Served) -> None:
    ws = await served.websocket()
    opening = await text_frame(ws)
    assert opening[0] == "0"
    _open_fields(json.loads(opening[1:]), [])
    await ws.close()


@pytest.mark.parametrize(("interval", "timeout"), [(1.5, 0.58), (0.25, 0.125), (25, 20)])
async def test_the_open_packet_carries_intervals_to_the_millisecond(
    interval: float, timeout: float
) -> None:
    """python-engineio wrote `int(interval) * 1000` (0 for 0.3 s, 1000 for 1.5 s) and
    `int(timeout * 1000)` (579 for 0.58 s)."""
    engine = GuardedEngineServer(
        async_mode="aiohttp", ping_interval=interval, ping_timeout=timeout, logger=False
    )
    app = web.Application()
    engine.attach(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.make_url("/engine.io/?EIO=4&transport=polling")) as r:
                opening = json.loads((await r.text())[1:])
            ws = await http.ws_connect(server.make_url("/engine.io/?EIO=4&transport=websocket"))
            ws_opening = json.loads((await text_frame(ws))[1:])
            await ws.close()
    finally:
        await engine.heartbeats.stop()
        await engine.shutdown()
        await server.close()
    for fields in (opening, ws_opening):
        assert fields["pingInterval"] == round(interval * 1000)
        assert fields["pingTimeout"] == round(timeout * 1000)


@pytest.mark.parametrize(
    "query", ["transport=polling", "EIO=abc&transport=polling", "EIO=3&transport=polling"]
)
async def test_a_handshake_without_protocol_version_4_is_refused(
    served: Served, query: str
) -> None:
    """Query parameters: `EIO` is mandatory; missing, the server MUST answer HTTP 400."""
    status, _ = await served.request("GET", served.url(query))
    assert status == 400


@pytest.mark.parametrize("query", ["EIO=4", "EIO=4&transport=abc", "EIO=4&transport="])
async def test_a_handshake_without_a_known_transport_is_refused(
    served: Served, query: str
) -> None:
    """`transport` is mandatory (python-engineio took a missing one for `polling`)."""
    status, _ = await served.request("GET", served.url(query))
    assert status == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_a_handshake_is_a_get(served: Served, method: str) -> None:
    """Handshake: the client MUST send an HTTP GET (aiohttp answered PUT with 405)."""
    status, _ = await served.request(method, served.url())
    assert status == 400
    assert not served.engine.sockets


@pytest.mark.parametrize("query", ["transport=websocket", "EIO=abc&transport=websocket", "EIO=4"])
async def test_a_websocket_without_the_mandatory_parameters_is_refused(
    served: Served, query: str
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await served.websocket(query)
    assert refused.value.status == 400


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_unknown_session_is_refused(served: Served, method: str) -> None:
    """The server MUST return HTTP 400 if the session ID is not known."""
    status, _ = await served.request(method, served.session_url("no-such-session"), "4x")
    assert status == 400


# --- messages over long-polling ----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "4hello",
        _SEP.join(["4test1", "4test2", "4test3"]),
        "4hello" + _SEP + "bAQIDBA==",
        "4héllo — 你好 🚀",
        _SEP.join(f"4m{i}" for i in range(40)),  # python-engineio dropped all past 16
    ],
    ids=["one", "several", "text-and-binary", "utf-8", "forty"],
)
async def test_a_post_is_answered_ok_and_its_packets_are_received(
    served: Served, payload: str
) -> None:
    """Sending data: success is HTTP 200 with `ok` in the body; packets are separated by
    \\x1e, binary ones base64 with a `b` prefix (the server echoes each)."""
    sid = await served.open_session()
    async with served.http.post(served.session_url(sid), data=payload.encode()) as response:
        assert response.status == 200
        assert await response.text() == "ok"
    received: list[str] = []
    while len(received) < payload.count(_SEP) + 1:
        status, text = await served.poll(sid)
        assert status == 200
        received.extend(text.split(_SEP))
    assert _SEP.join(received) == payload


@pytest.mark.parametrize(
    "payload",
    ["abc", "", "4hello" + _SEP, "2", "0", "6", "bA", "9x"],
    ids=["garbage", "empty", "empty-packet", "ping", "open", "noop", "bad-base64", "type-9"],
)
async def test_a_post_that_does_not_decode_closes_the_session(
    served: Served, payload: str
) -> None:
    """A payload the server cannot decode (or a packet a client never sends: OPEN, NOOP,
    and PING since v4 reversed the heartbeat) is an error: 400, and the session is gone."""
    sid = await served.open_session()
    status, _ = await served.push(sid, payload)
    assert status == 400
    assert (await served.poll(sid))[0] == 400


async def test_a_post_that_is_not_utf8_closes_the_session(served: Served) -> None:
    sid = await served.open_session()
    assert (await served.push(sid, b"4\xff\xfe"))[0] == 400
    assert (await served.poll(sid))[0] == 400


async def test_a_post_over_max_payload_is_refused_and_closes_the_session(served: Served) -> None:
    """maxPayload is the most a client may send at once."""
    sid = await served.open_session()
    status, _ = await served.push(sid, "4" + "x" * MAX_PAYLOAD)
    assert status == 413
    assert (await served.poll(sid))[0] == 400


async def test_a_post_of_exactly_max_payload_is_received(served: Served) -> None:
    sid = await served.open_session()
    body = "4" + "x" * (MAX_PAYLOAD - 1)
    assert await served.push(sid, body) == (200, "ok")
    assert await served.poll(sid) == (200, body)


async def test_a_second_get_while_one_waits_closes_the_session(served: Served) -> None:
    """A client MUST NOT have more than one active GET; should it happen, the server MUST
    return HTTP 400 and close the session (the waiting GET gets CLOSE)."""
    sid = await served.open_session()
    first = asyncio.ensure_future(served.poll(sid))
    await eventually(lambda: served.engine.long_polling(sid), what="the first GET to wait")
    assert (await served.poll(sid))[0] == 400
    assert await within(first) == (200, "1")
    assert (await served.poll(sid))[0] == 400


async def test_a_second_post_while_one_is_received_closes_the_session(served: Served) -> None:
    """A client MUST NOT have more than one active POST; should it happen, the server MUST
    return HTTP 400 and close the session."""
    sid = await served.open_session()
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"4first"
        await release.wait()

    first = asyncio.ensure_future(served.push(sid, slow_body()))  # type: ignore[arg-type]
    await eventually(lambda: served.engine.posting(sid), what="the first POST to be received")
    assert (await served.push(sid, "4second"))[0] == 400
    release.set()
    assert (await within(first))[0] == 400
    assert (await served.poll(sid))[0] == 400


# --- messages over websocket -------------------------------------------------------------------


async def test_a_websocket_carries_text_and_binary_packets(served: Served) -> None:
    """Each packet is its own frame; binary payloads as they are, with no type byte."""
    ws = await served.websocket()
    await text_frame(ws)
    await ws.send_str("4hello")
    assert await text_frame(ws) == "4hello"
    await ws.send_bytes(bytes([1, 2, 3, 4]))
    msg = await within(ws.receive())
    assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == bytes([1, 2, 3, 4])
    await ws.close()


async def test_a_websocket_packet_that_does_not_decode_closes_the_session(served: Served) -> None:
    ws = await served.websocket()
    sid = json.loads((await text_frame(ws))[1:])["sid"]
    await ws.send_str("abc")
    await closed_by_server(ws)
    await eventually(lambda: sid not in served.engine.sockets, what="the session to end")


async def test_a_websocket_frame_over_max_payload_closes_the_connection(served: Served) -> None:
    ws = await served.websocket()
    await text_frame(ws)
    await ws.send_str("4" + "x" * MAX_PAYLOAD)
    await closed_by_server(ws)


# --- heartbeat -------------------------------------------------------------------------------


async def test_polling_pings_come_every_interval_and_pongs_keep_the_session(
    served: Served,
) -> None:
    """Heartbeat: every pingInterval the server sends PING; the client answers PONG. The
    client gives up on a PING that is not there within pingInterval + pingTimeout: the
    old quarter-second wheel sent it up to 500 ms late, past that allowance."""
    started = time.monotonic()
    sid = await served.open_session()
    answered = time.monotonic()
    for _ in range(3):
        assert await served.poll(sid) == (200, "2")
        arrived = time.monotonic()
        assert arrived - started >= PING_INTERVAL_S  # never early
        assert arrived - answered < PING_INTERVAL_S + PING_TIMEOUT_S
        started = time.monotonic()  # the next ping is due an interval after this pong
        assert await served.push(sid, "3") == (200, "ok")
        answered = time.monotonic()


async def test_an_unanswered_ping_closes_a_polling_session_on_time(served: Served) -> None:
    """If the server does not receive a PONG within pingTimeout, it SHOULD consider the
    connection closed: a GET waiting then gets CLOSE, not its own timeout's 400 (which
    would come a whole pingInterval + pingTimeout after it started)."""
    sid = await served.open_session()
    assert await served.poll(sid) == (200, "2")
    pinged = time.monotonic()
    assert await served.poll(sid) == (200, "1")
    assert time.monotonic() - pinged < PING_INTERVAL_S + PING_TIMEOUT_S
    assert (await served.poll(sid))[0] == 400
    assert (await served.push(sid, "3"))[0] == 400


async def test_websocket_pings_come_every_interval(served: Served) -> None:
    ws = await served.websocket()
    await text_frame(ws)
    for _ in range(3):
        assert await text_frame(ws) == "2"
        await ws.send_str("3")
    await ws.close()


async def test_an_unanswered_ping_closes_a_websocket_session(served: Served) -> None:
    ws = await served.websocket()
    sid = json.loads((await text_frame(ws))[1:])["sid"]
    await closed_by_server(ws)
    await eventually(lambda: sid not in served.engine.sockets, what="the session to end")


# --- close -----------------------------------------------------------------------------------


async def test_a_polling_client_closes_its_session_with_close(served: Served) -> None:
    """CLOSE: the waiting GET is ended with NOOP, and the session is gone."""
    sid = await served.open_session()
    waiting = asyncio.ensure_future(served.poll(sid))
    await eventually(lambda: served.engine.long_polling(sid), what="the GET to wait")
    assert await served.push(sid, "1") == (200, "ok")
    assert await within(waiting) == (200, "6")
    assert (await served.poll(sid))[0] == 400


async def test_a_websocket_client_closes_its_session_with_close(served: Served) -> None:
    """The websocket is closed at once, not when engine.io's writer next times out."""
    ws = await served.websocket()
    sid = json.loads((await text_frame(ws))[1:])["sid"]
    await ws.send_str("1")
    sent = time.monotonic()
    msg = await within(ws.receive())
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    # engine.io's writer would have closed it when its wait ran out: interval + timeout.
    assert time.monotonic() - sent < PING_INTERVAL_S
    await eventually(lambda: sid not in served.engine.sockets, what="the session to end")


# --- upgrade ---------------------------------------------------------------------------------


async def _upgrade(served: Served, sid: str) -> aiohttp.ClientWebSocketResponse:
    ws = await served.websocket(f"EIO=4&transport=websocket&sid={sid}")
    await ws.send_str("2probe")
    assert await text_frame(ws) == "3probe"
    return ws


async def test_an_upgrade_ends_the_waiting_get_with_noop_and_moves_to_the_websocket(
    served: Served,
) -> None:
    """Upgrade: PING `probe` is answered PONG `probe`; a waiting GET gets NOOP; after
    UPGRADE the websocket carries every packet, and nothing before the first one."""
    sid = await served.open_session()
    waiting = asyncio.ensure_future(served.poll(sid))
    await eventually(lambda: served.engine.long_polling(sid), what="the GET to wait")
    ws = await _upgrade(served, sid)
    assert await within(waiting) == (200, "6")
    await ws.send_str("5")
    await ws.send_str("4hello")
    assert await text_frame(ws) == "4hello"
    await ws.close()


async def test_an_upgrade_with_no_get_waiting_sends_no_noop_over_the_websocket(
    served: Served,
) -> None:
    sid = await served.open_session()
    ws = await _upgrade(served, sid)
    await ws.send_str("5")
    await ws.send_str("4hello")
    assert await text_frame(ws) == "4hello"  # python-engineio sent "6" first
    await ws.close()


async def test_a_get_during_the_upgrade_is_ended_with_noop(served: Served) -> None:
    sid = await served.open_session()
    ws = await _upgrade(served, sid)
    assert await served.poll(sid) == (200, "6")
    await ws.send_str("5")
    await ws.send_str("4after")
    assert await text_frame(ws) == "4after"
    await ws.close()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_http_requests_after_the_upgrade_are_refused(served: Served, method: str) -> None:
    sid = await served.open_session()
    ws = await _upgrade(served, sid)
    await ws.send_str("5")
    await eventually(lambda: served.engine.sockets[sid].upgraded, what="the upgrade")
    status, _ = await served.request(method, served.session_url(sid), "4x")
    assert status == 400
    await ws.send_str("4still")
    assert await text_frame(ws) == "4still"
    await ws.close()


@pytest.mark.parametrize("upgraded", [True, False], ids=["after-upgrade", "during-upgrade"])
async def test_a_second_websocket_for_a_session_is_closed(served: Served, upgraded: bool) -> None:
    """A client MUST NOT open more than one WebSocket connection per session; should it
    happen, the server MUST close the WebSocket connection (the first one goes on)."""
    sid = await served.open_session()
    ws = await _upgrade(served, sid)
    if upgraded:
        await ws.send_str("5")
        await eventually(lambda: served.engine.sockets[sid].upgraded, what="the upgrade")
    second = await served.websocket(f"EIO=4&transport=websocket&sid={sid}")
    await closed_by_server(second)
    if not upgraded:
        await ws.send_str("5")
    await ws.send_str("4first")
    assert await text_frame(ws) == "4first"
    await ws.close()


async def test_binary_packets_are_base64_over_polling(served: Served) -> None:
    """HTTP long-polling: binary payloads MUST be base64-encoded, prefixed with `b`."""
    sid = await served.open_session()
    data = bytes(range(256))
    packet = "b" + base64.b64encode(data).decode()
    assert await served.push(sid, packet) == (200, "ok")
    assert await served.poll(sid) == (200, packet)
