"""Hostile input: rate limits, floods, stalled handshakes, foreign origins, forged tokens,
fuzzed events, and logs that never carry content."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
import jwt
import pytest
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import TEST_SECRET, LiveServer, live_server, test_settings
from node_client import NodeClients
from pg import TempDatabase
from polling import eventually

import crypto
from server.appkeys import SIO


async def test_send_rate_limit_refuses_with_retry_after_and_keeps_the_socket(
    server_db: TempDatabase, node: NodeClients
) -> None:
    settings_ = test_settings(server_db.app_dsn, RATE_SENDS_PER_MIN="3", SCRIPTED_DELAY_MS="0")
    async with live_server(settings_) as live:
        account = await live.register()
        conversation_id = await live.create_conversation(account["token"])
        tab = await node.connect(live.base_url, token=account["token"])
        [ack] = await tab.emit("join-conversation", conversation_id)
        for i in range(3):
            [ack] = await tab.emit("send-message", {"content": f"message {i}"})
            assert ack["success"] is True, ack
        [limited] = await tab.emit("send-message", {"content": "one too many"})
        assert limited["success"] is False and limited["code"] == "RATE_LIMITED"
        assert 0 < limited["retryAfter"] <= 60
        assert tab.connected.is_set()
        [pong] = await tab.emit("ping")
        assert "timestamp" in pong
        _, body = await live.call(
            "GET", f"/api/conversations/{conversation_id}", token=account["token"]
        )
        assert body["messageCount"] == 6


async def test_a_flooder_is_disconnected_and_its_neighbour_is_still_served(
    server_db: TempDatabase, node: NodeClients
) -> None:
    """The neighbour's round trip during a flood is a figure of bench/flood.py; here, what
    holds on any machine: it is answered throughout, the flooder is refused and cut off."""
    settings_ = test_settings(
        server_db.app_dsn, RATE_EVENTS_PER_MIN="50", FLOOD_DISCONNECT_AFTER="20"
    )
    async with live_server(settings_) as live:
        flooder_account = await live.register()
        good_account = await live.register()
        flooder = await node.connect(live.base_url, token=flooder_account["token"])
        good = await node.connect(live.base_url, token=good_account["token"])

        async def answered() -> None:
            [pong] = await good.emit("ping")
            assert pong["success"] is True and "timestamp" in pong, pong

        for _ in range(5):
            await answered()
        flood = [flooder.emit("ping", timeout=5) for _ in range(200)]
        flood_task = asyncio.gather(*flood, return_exceptions=True)
        for _ in range(5):
            await answered()
        results = await flood_task
        await asyncio.wait_for(flooder.closed.wait(), 30)
        acks = [r[0] for r in results if isinstance(r, list) and r]
        assert any(a.get("code") == "RATE_LIMITED" for a in acks)
        assert flooder.disconnect_reason == "io server disconnect"
        assert good.connected.is_set()
        await answered()  # and after the flooder has gone


def _engine_session_over(live: LiveServer, sid: str) -> bool:
    """The server has closed this Engine.IO session (or already forgotten it)."""
    session = live.app[SIO].eio.sockets.get(sid)
    return session is None or bool(session.closed)


async def test_a_session_that_never_completes_the_handshake_is_closed(
    server_db: TempDatabase,
) -> None:
    async with live_server(test_settings(server_db.app_dsn, HANDSHAKE_TIMEOUT_S="1")) as live:
        url = f"{live.base_url}/api/socket/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                opening = await response.text()
            sid = json.loads(opening[1:])["sid"]
            # Watched on the server: a GET of the client's would wait out a long-poll.
            await eventually(
                lambda: _engine_session_over(live, sid),
                what="the server to close a session without a Socket.IO handshake",
            )
            async with http.get(f"{url}&sid={sid}") as response:
                body = await response.text()
                # a closed session answers 400, or a final CLOSE packet ("1")
                assert response.status == 400 or body.startswith("1"), (response.status, body)


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_a_foreign_origin_is_refused(server: LiveServer, transport: str) -> None:
    account = await server.register()
    query = f"EIO=4&transport={transport}&token={account['token']}"
    url = f"{server.base_url}/api/socket/?{query}"
    headers = {"Origin": "https://evil.example"}
    async with aiohttp.ClientSession() as http:
        if transport == "polling":
            async with http.get(url, headers=headers) as response:
                assert response.status == 400
                assert "evil.example" not in response.headers.get("Access-Control-Allow-Origin", "")
        else:
            with pytest.raises(aiohttp.WSServerHandshakeError):
                async with http.ws_connect(url, headers=headers):
                    pass
        ok_headers = {"Origin": "http://localhost:3000"}
        async with http.get(
            f"{server.base_url}/api/socket/?EIO=4&transport=polling", headers=ok_headers
        ) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


async def test_connections_per_ip_are_limited(server_db: TempDatabase, node: NodeClients) -> None:
    settings_ = test_settings(server_db.app_dsn, RATE_CONNECTS_PER_MIN_PER_IP="3")
    async with live_server(settings_) as live:
        account = await live.register()
        clients = [await node.connect(live.base_url, token=account["token"]) for _ in range(4)]
        assert [c.connected.is_set() for c in clients] == [True, True, True, False]
        assert clients[3].connect_error == "Too many connections from this address"


def _forged(payload: dict[str, Any], key: str = TEST_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_forged_tokens_are_refused_on_rest_and_sockets(
    server: LiveServer, node: NodeClients
) -> None:
    victim = await server.register()
    attacker = await server.register()
    claims = jwt.decode(victim["token"], options={"verify_signature": False})
    now = int(time.time())
    header_b64 = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body_b64 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    attacker_claims = jwt.decode(attacker["token"], options={"verify_signature": False})
    head, _, signature = victim["token"].split(".")
    tampered_claims = {**claims, "sub": attacker_claims["sub"]}
    tampered_body = base64.urlsafe_b64encode(json.dumps(tampered_claims).encode()).rstrip(b"=")
    forged = {
        "alg none": f"{header_b64}.{body_b64}.",
        "tampered payload": f"{head}.{tampered_body.decode()}.{signature}",
        "swapped sid": _forged({**attacker_claims, "sid": claims["sid"]}),
        "expired": _forged({**claims, "exp": now - 60, "iat": now - 120, "nbf": now - 120}),
        "not yet valid": _forged({**claims, "nbf": now + 3600}),
        "HS512": _forged(claims, alg="HS512"),
        "another key": _forged(claims, key="another-secret-key-that-is-long-enough-42"),
        "refresh type": _forged({**claims, "typ": "refresh"}),
    }
    for name, token in forged.items():
        status, body = await server.call("GET", "/api/auth/me", token=token)
        assert status == 401, (name, body)
        assert body["code"] == "UNAUTHORIZED"
        client = await node.connect(server.base_url, token=token)
        assert client.connect_error is not None, name
        assert client.connect_error.startswith("Authentication failed"), (
            name,
            client.connect_error,
        )
    # the genuine token still works
    status, _ = await server.call("GET", "/api/auth/me", token=victim["token"])
    assert status == 200
    # a token issued for a session id that was never created
    stray, _ = crypto.issue_access_token(
        TEST_SECRET.encode(),
        user_id=uuid.UUID(claims["sub"]),
        session_id=uuid.uuid4(),
        ttl=timedelta(minutes=5),
    )
    status, _ = await server.call("GET", "/api/auth/me", token=stray)
    assert status == 401


async def test_logs_never_carry_content_tokens_or_passwords(
    server: LiveServer, node: NodeClients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = f"pw-{uuid.uuid4().hex}"
    account = await server.register(password=password)
    conversation_id = await server.create_conversation(account["token"])
    tab = await node.connect(server.base_url, token=account["token"], transports=["polling"])
    await tab.emit("join-conversation", conversation_id)
    secret = f"plaintext-{uuid.uuid4().hex}"
    await tab.emit("send-message", {"content": secret})
    reply = (await tab.wait_for("ai-complete")).data["content"]
    await tab.emit("edit-message", {"sequence": 1, "newContent": secret + "-edited"})
    await tab.wait_for("ai-complete", after=len(tab.events) - 1)
    await server.call(
        "POST", "/api/auth/login", json={"email": "x@example.com", "password": password}
    )
    await tab.disconnect()
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for needle in (secret, reply, password, account["token"]):
        assert needle not in text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
EVENTS = st.sampled_from(
    [
        "join-conversation",
        "leave-conversation",
        "send-message",
        "edit-message",
        "stop-generation",
        "ping",
        "no-such-event",
        "connect",
        "disconnect",
        "message",
    ]
)


async def test_fuzzed_events_never_break_the_server(server: LiveServer, node: NodeClients) -> None:
    """Every event, every JSON shape, wrong arities, binary attachments and oversized frames."""
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"], model="scripted:3:0")
    bystander = await node.connect(server.base_url, token=account["token"])
    [ack] = await bystander.emit("join-conversation", conversation_id)
    fuzzer = socketio.AsyncClient(reconnection=False)
    await fuzzer.connect(
        server.base_url,
        socketio_path="/api/socket",
        auth={"token": account["token"]},
        transports=["websocket"],
    )
    await fuzzer.call("join-conversation", conversation_id, timeout=10)
    acks: list[Any] = []

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(event=EVENTS, args=st.lists(JSON | st.binary(max_size=16), max_size=3))
    def run(event: str, args: list[Any]) -> None:
        acks.append(asyncio.run_coroutine_threadsafe(call(event, args), loop).result(30))

    async def call(event: str, args: list[Any]) -> Any:
        return await fuzzer.call(event, tuple(args) if len(args) != 1 else args[0], timeout=20)

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(run)
    for ack in acks:
        assert isinstance(ack, dict), ack
        assert "success" in ack
        if ack["success"] is False:
            assert ack["code"] and ack["error"]
    # An oversized frame closes that connection, and nothing else.
    giant = socketio.AsyncClient(reconnection=False)
    await giant.connect(
        server.base_url,
        socketio_path="/api/socket",
        auth={"token": account["token"]},
        transports=["websocket"],
    )
    await giant.emit("send-message", {"content": "x" * 1_200_000})
    await eventually(
        lambda: not giant.connected, what="the server to close the oversized frame's connection"
    )
    await fuzzer.disconnect()
    # the bystander still chats
    [ack] = await bystander.emit("send-message", {"content": "still fine?"})
    assert ack["success"] is True, ack
    status, _ = await server.call("GET", "/api/health")
    assert status == 200


async def test_behind_a_trusted_proxy_limits_count_the_forwarded_address(
    server_db: TempDatabase, node: NodeClients
) -> None:
    settings_ = test_settings(
        server_db.app_dsn, TRUST_PROXY="true", RATE_CONNECTS_PER_MIN_PER_IP="2"
    )
    async with live_server(settings_) as live:
        account = await live.register()

        async def via(address: str) -> bool:
            # a spoofed first entry, then the address the proxy appended
            headers = {"X-Forwarded-For": f"6.6.6.6, {address}"}
            client = await node.connect(
                live.base_url,
                token=account["token"],
                transports=["polling"],
                extra_headers=headers,
            )
            return client.connected.is_set()

        tag = uuid.uuid4().hex[:2]
        first = f"198.51.100.{int(tag, 16) % 250 + 1}"
        second = f"203.0.113.{int(tag, 16) % 250 + 1}"
        assert [await via(first) for _ in range(3)] == [True, True, False]
        assert await via(second) is True


async def test_sockets_per_user_are_capped_across_instances(
    server_db: TempDatabase, node: NodeClients
) -> None:
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    channel = f"scca-test-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": redis_url, "REDIS_CHANNEL": channel, "MAX_SOCKETS_PER_USER": "3"}
    async with (
        live_server(test_settings(server_db.app_dsn, **env)) as one,
        live_server(test_settings(server_db.app_dsn, **env)) as two,
    ):
        account = await one.register()
        first = [await node.connect(one.base_url, token=account["token"]) for _ in range(2)]
        third = await node.connect(two.base_url, token=account["token"])
        fourth = await node.connect(two.base_url, token=account["token"])
        assert all(c.connected.is_set() for c in [*first, third])
        assert fourth.connect_error == "Too many connections: at most 3 per user"
        await first[0].disconnect()
        await asyncio.wait_for(first[0].closed.wait(), 5)

        async def accepted_again() -> bool:
            again = await node.connect(two.base_url, token=account["token"])
            if not again.connected.is_set():
                assert again.connect_error == fourth.connect_error, again.connect_error
            return again.connected.is_set()

        # Instance one frees the slot in Redis once it has seen the socket go.
        await eventually(accepted_again, what="a new socket once one of the three closed")
