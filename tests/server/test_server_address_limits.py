"""Per-address limits on what anybody can do before authenticating: Engine.IO handshakes
(new socket sessions, on every socket path) and registrations; the allowlist.

Counters use fixed windows (60 s for connections, an hour for registrations): a counting
phase starts only where the current window has room for it (`one_window`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClients
from pg import TempDatabase
from polling import eventually
from rate_windows import one_window

from server.appkeys import CONNECTED, SIO

REFUSED = "Too many connections from this address"
ORIGIN = {"Origin": "http://localhost:3000"}




def _packets(text: str) -> list[str]:
    return text.split("\x1e")


async def polling_handshake(
    live: LiveServer,
    path: str = "/api/socket/",
    headers: dict[str, str] | None = None,
    *,
    keep: bool = False,
) -> list[str]:
    """One raw Engine.IO handshake over long-polling: the packets of its answer. An
    admitted session is closed again (a CLOSE packet) unless `keep`: its budget is spent
    either way, and an idle one would only slow the server's shutdown."""
    url = f"{live.base_url}{path}?EIO=4&transport=polling"
    all_headers = {**ORIGIN, **(headers or {})}
    async with live.http.get(url, headers=all_headers) as response:
        assert response.status == 200, await response.text()
        packets = _packets(await response.text())
    if len(packets) == 1 and not keep:
        await close_session(live, packets, path)
    return packets


async def close_session(live: LiveServer, packets: list[str], path: str = "/api/socket/") -> None:
    """Close an admitted long-polling session (the client's CLOSE packet)."""
    sid = json.loads(packets[0][1:])["sid"]
    url = f"{live.base_url}{path}?EIO=4&transport=polling&sid={sid}"
    async with live.http.post(url, data="1", headers=ORIGIN) as closed:
        assert closed.status == 200


def _websocket_url(live: LiveServer, path: str) -> str:
    return f"{live.base_url.replace('http', 'ws', 1)}{path}?EIO=4&transport=websocket"


async def websocket_opens(live: LiveServer, path: str = "/api/socket/") -> str:
    """One raw Engine.IO handshake over a websocket that is admitted: its OPEN packet."""
    async with live.http.ws_connect(_websocket_url(live, path), headers=ORIGIN) as ws:
        return await asyncio.wait_for(ws.receive_str(), 5)


async def websocket_refused(
    live: LiveServer, path: str = "/api/socket/"
) -> tuple[list[str], int | None]:
    """One raw Engine.IO handshake over a websocket that the server closes: the text
    frames it sent before closing, and the close code."""
    frames: list[str] = []
    async with live.http.ws_connect(_websocket_url(live, path), headers=ORIGIN) as ws:
        while True:
            message = await asyncio.wait_for(ws.receive(), 5)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frames.append(message.data)
        return frames, ws.close_code


def _refusal(packets: list[str]) -> dict[str, Any]:
    """The CONNECT_ERROR of a refused handshake (OPEN first, then `44{...}`)."""
    assert packets[0].startswith("0{"), packets
    assert packets[1].startswith("44{"), packets
    return dict(json.loads(packets[1][2:]))


async def _metric(live: LiveServer, line_start: str) -> float:
    async with live.http.get(live.base_url + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


HANDSHAKES_REFUSED = 'scca_address_limited_total{limit="handshake"}'


async def test_handshakes_past_the_address_budget_are_refused_without_a_session(
    server_db: TempDatabase,
) -> None:
    """Both paths the app serves (`/api/socket/` and `/api/socket`), both transports."""
    settings = test_settings(server_db.app_dsn, RATE_CONNECTS_PER_MIN_PER_IP="3")
    async with live_server(settings) as live, one_window(60, needed_s=10):
        engine = live.app[SIO].eio
        admitted = [
            await polling_handshake(live, "/api/socket/", keep=True),
            await polling_handshake(live, "/api/socket", keep=True),
            [await websocket_opens(live, "/api/socket")],
        ]
        for packets in admitted:
            assert packets[0].startswith("0{") and not any(p.startswith("44") for p in packets)
        sessions = set(engine.sockets)

        for path in ("/api/socket/", "/api/socket"):
            packets = await polling_handshake(live, path)
            refusal = _refusal(packets)
            assert refusal["message"] == REFUSED
            assert 0 < refusal["data"]["retryAfter"] <= 60
            assert packets[2:] == ["1"], "the session is closed in the same answer"
            frames, code = await websocket_refused(live, path)
            assert _refusal(frames)["message"] == REFUSED
            assert code == aiohttp.WSCloseCode.TRY_AGAIN_LATER
        assert set(engine.sockets) <= sessions, "a refused handshake left a session behind"
        assert await _metric(live, HANDSHAKES_REFUSED) == 4
        await close_session(live, admitted[0], "/api/socket/")
        await close_session(live, admitted[1], "/api/socket")


async def test_a_flood_of_handshakes_is_stopped_at_the_budget(server_db: TempDatabase) -> None:
    """The issue's finding: 200 handshakes in 0.1 s all got a session."""
    settings = test_settings(server_db.app_dsn, RATE_CONNECTS_PER_MIN_PER_IP="5")
    async with live_server(settings) as live, one_window(60, needed_s=10):
        answers = await asyncio.gather(*(polling_handshake(live, keep=True) for _ in range(200)))
        refused = [a for a in answers if len(a) > 1 and a[1].startswith("44")]
        assert len(refused) == 195
        assert len(live.app[SIO].eio.sockets) == 5
        assert await _metric(live, HANDSHAKES_REFUSED) == 195
        for admitted in (a for a in answers if len(a) == 1):
            await close_session(live, admitted)


async def test_socketio_client_sees_a_refused_handshake_as_connect_error(
    server_db: TempDatabase, node: NodeClients
) -> None:
    settings = test_settings(server_db.app_dsn, RATE_CONNECTS_PER_MIN_PER_IP="2")
    async with live_server(settings) as live, one_window(60, needed_s=15):
        account = await live.register()
        for _ in range(2):
            await polling_handshake(live)
        for transports in (["polling"], ["websocket"], ["polling", "websocket"]):
            client = await node.connect(
                live.base_url, token=account["token"], transports=transports
            )
            assert not client.connected.is_set(), transports
            assert client.connect_error == REFUSED, (transports, client.connect_error)
            # socket.io-client adds a trailing slash unless told not to
            bare = await node.connect(
                live.base_url,
                token=account["token"],
                transports=transports,
                options={"addTrailingSlash": False},
            )
            assert bare.connect_error == REFUSED, transports


async def test_a_session_pays_once_and_every_further_connect_on_it_is_counted(
    server_db: TempDatabase,
) -> None:
    """Connect, disconnect and connect again on one Engine.IO session: each connect asks
    the database to authenticate, so only the first is covered by the handshake."""
    settings = test_settings(server_db.app_dsn, RATE_CONNECTS_PER_MIN_PER_IP="3")
    async with live_server(settings) as live, one_window(60, needed_s=10):
        account = await live.register()
        connected = live.app[CONNECTED]
        answers: list[str] = []
        async with live.http.ws_connect(_websocket_url(live, "/api/socket/"), headers=ORIGIN) as ws:
            assert (await ws.receive_str()).startswith("0{")
            for _ in range(4):
                await ws.send_str("40" + json.dumps({"token": account["token"]}))
                answer = await asyncio.wait_for(ws.receive_str(), 5)
                answers.append(answer[:2])
                if answer.startswith("40"):
                    await ws.send_str("41")
                    await eventually(lambda: not len(connected), what="the disconnect")
        # handshake + connect 1 (free), connects 2 and 3 counted: the budget of 3 is spent
        assert answers == ["40", "40", "40", "44"], answers
        assert await _metric(live, 'scca_address_limited_total{limit="connect"}') == 1
        packets = await polling_handshake(live)
        assert _refusal(packets)["message"] == REFUSED


async def test_behind_a_trusted_proxy_handshakes_count_the_forwarded_address(
    server_db: TempDatabase,
) -> None:
    settings = test_settings(
        server_db.app_dsn, TRUST_PROXY="true", RATE_CONNECTS_PER_MIN_PER_IP="2"
    )
    async with live_server(settings) as live, one_window(60, needed_s=10):
        tag = int(uuid.uuid4().hex[:2], 16) % 250 + 1
        first, second = f"198.51.100.{tag}", f"203.0.113.{tag}"

        def via(address: str) -> dict[str, str]:
            return {"X-Forwarded-For": f"6.6.6.6, {address}"}

        for _ in range(2):
            await polling_handshake(live, headers=via(first))
        assert _refusal(await polling_handshake(live, headers=via(first)))["message"] == REFUSED
        assert (await polling_handshake(live, headers=via(second)))[0].startswith("0{")
        assert len(await polling_handshake(live, headers=via(second))) == 1


async def _register(
    live: LiveServer, email: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    return await live.call_with_headers(
        "POST",
        "/api/auth/register",
        json={"email": email, "password": "correct horse battery"},
        headers=headers,
    )


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


async def test_registrations_past_the_address_budget_get_429_with_retry_after(
    server_db: TempDatabase,
) -> None:
    settings = test_settings(
        server_db.app_dsn, TRUST_PROXY="true", RATE_REGISTERS_PER_HOUR_PER_IP="3"
    )
    async with live_server(settings) as live, one_window(3600, needed_s=30):
        tag = int(uuid.uuid4().hex[:2], 16) % 250 + 1
        proxy = {"X-Forwarded-For": f"198.51.100.{tag}"}
        taken = _email()
        assert (await _register(live, taken, proxy))[0] == 201
        # Testing whether an email is taken spends the same budget.
        assert (await _register(live, taken, proxy))[0] == 409
        assert (await _register(live, _email(), proxy))[0] == 201
        status, body, headers = await _register(live, _email(), proxy)
        assert status == 429, body
        assert body["code"] == "RATE_LIMITED"
        assert body["error"] == "Too many accounts registered from this address; try again later"
        assert 0 < body["retryAfter"] <= 3600
        assert 1 <= int(headers["Retry-After"]) <= 3600
        status, body, _ = await _register(live, taken, proxy)
        assert status == 429, "a refused registration says nothing about the email"
        other = {"X-Forwarded-For": f"203.0.113.{tag}"}
        assert (await _register(live, _email(), other))[0] == 201
        assert await _metric(live, 'scca_address_limited_total{limit="register"}') == 2


async def test_registrations_from_ipv6_count_per_64(server_db: TempDatabase) -> None:
    settings = test_settings(
        server_db.app_dsn, TRUST_PROXY="true", RATE_REGISTERS_PER_HOUR_PER_IP="2"
    )
    async with live_server(settings) as live, one_window(3600, needed_s=30):
        prefix = f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"
        for host in ("::1", "::2"):
            headers = {"X-Forwarded-For": f"{prefix}{host}"}
            assert (await _register(live, _email(), headers))[0] == 201
        headers = {"X-Forwarded-For": f"{prefix}:ffff:ffff:ffff:ffff"}
        assert (await _register(live, _email(), headers))[0] == 429
        neighbour = {"X-Forwarded-For": f"2001:db8:{uuid.uuid4().hex[:4]}::1"}
        assert (await _register(live, _email(), neighbour))[0] == 201


async def test_allowlisted_addresses_are_not_limited(
    server_db: TempDatabase, node: NodeClients
) -> None:
    settings = test_settings(
        server_db.app_dsn,
        TRUST_PROXY="true",
        RATE_CONNECTS_PER_MIN_PER_IP="1",
        RATE_REGISTERS_PER_HOUR_PER_IP="1",
        RATE_LIMIT_ALLOWLIST="10.0.0.0/8, 2001:db8:aaaa::/48",
    )
    async with live_server(settings) as live, one_window(60, needed_s=15):
        for harness in ("10.1.2.3", "2001:db8:aaaa:1::7"):
            headers = {"X-Forwarded-For": harness}
            for _ in range(3):
                assert (await _register(live, _email(), headers))[0] == 201
                assert len(await polling_handshake(live, headers=headers)) == 1
        account = await live.register()
        clients = [
            await node.connect(
                live.base_url,
                token=account["token"],
                transports=["polling"],
                extra_headers={"X-Forwarded-For": "10.9.9.9"},
            )
            for _ in range(3)
        ]
        assert all(c.connected.is_set() for c in clients), [c.connect_error for c in clients]
        for client in clients:
            await client.disconnect()
        # and an address outside the list is limited as ever
        stranger = {"X-Forwarded-For": "11.1.2.3"}
        assert (await _register(live, _email(), stranger))[0] == 201
        assert (await _register(live, _email(), stranger))[0] == 429
        assert len(await polling_handshake(live, headers=stranger)) == 1
        assert _refusal(await polling_handshake(live, headers=stranger))["message"] == REFUSED
