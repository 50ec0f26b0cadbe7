"""The room broadcast's fast path, observed through the real client."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import aiohttp
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClients
from pg import TempDatabase
from polling import eventually

from server.appkeys import SIO


def _engine_session_over(live: LiveServer, sid: str) -> bool:
    """The server has closed this Engine.IO session (or already forgotten it)."""
    session = live.app[SIO].eio.sockets.get(sid)
    return session is None or bool(session.closed)


async def test_websocket_frames_are_written_directly_and_polling_ones_queued(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"], model="scripted:30:0")
    ws_tab = await node.connect(server.base_url, token=account["token"], transports=["websocket"])
    poll_tab = await node.connect(server.base_url, token=account["token"], transports=["polling"])
    for tab in (ws_tab, poll_tab):
        [ack] = await tab.emit("join-conversation", conversation_id)
        assert ack["success"] is True
    manager = server.app[SIO].manager
    before_direct, before_queued = manager.direct_frames, manager.queued_frames
    [ack] = await ws_tab.emit("send-message", {"content": "count my frames"})
    assert ack["success"] is True
    await poll_tab.wait_for("ai-complete")
    # 30 tokens + ai-complete reach each tab; typing-start/message-added reach the other.
    assert manager.direct_frames - before_direct >= 31
    assert manager.queued_frames - before_queued >= 31
    for tab in (ws_tab, poll_tab):
        tokens = [e.data for e in tab.named("ai-token")]
        assert [t["tokenIndex"] for t in tokens] == list(range(1, 31))
        assert tab.named("ai-complete")[0].data["content"] == tokens[-1]["partial"]


async def test_websocket_does_not_negotiate_permessage_deflate(server: LiveServer) -> None:
    account = await server.register()
    url = f"{server.base_url}/api/socket/?EIO=4&transport=websocket&token={account['token']}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, compress=15) as ws:
        assert ws.compress == 0
        opening = await ws.receive_str()
        assert opening.startswith("0{")


async def test_heartbeats_keep_flowing_during_a_fast_stream(
    server_db: TempDatabase, node: NodeClients
) -> None:
    settings = test_settings(server_db.app_dsn, PING_INTERVAL_S="1", PING_TIMEOUT_S="2")
    async with live_server(settings) as fast:
        account = await fast.register()
        conversation_id = await fast.create_conversation(account["token"], model="scripted:400:5")
        tab = await node.connect(fast.base_url, token=account["token"], transports=["websocket"])
        [ack] = await tab.emit("join-conversation", conversation_id)
        assert ack["success"] is True
        [ack] = await tab.emit("send-message", {"content": "a long one"}, timeout=60)
        assert ack["success"] is True, ack
        # The stream took ~2 s, longer than the ping timeout: heartbeats were answered.
        assert tab.connected.is_set()
        tokens = [e.data["tokenIndex"] for e in tab.named("ai-token")]
        assert tokens == list(range(1, 401))


async def test_metrics_are_exposed_in_prometheus_format(
    server: LiveServer, node: NodeClients
) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"], model="scripted:5:0")
    tab = await node.connect(server.base_url, token=account["token"])
    await tab.emit("join-conversation", conversation_id)
    await tab.emit("send-message", {"content": "measure me"})
    await tab.emit("no-such-event")
    async with server.http.get(server.base_url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert "scca_connected_sockets 1.0" in text
    assert 'scca_socket_events_in_total{event="send-message"} 1.0' in text
    assert 'scca_socket_events_in_total{event="other"} 1.0' in text
    assert "scca_ai_tokens_streamed_total 5.0" in text
    assert 'scca_generations_total{outcome="completed"} 1.0' in text
    assert 'scca_errors_total{code="UNKNOWN_EVENT",transport="socket"} 1.0' in text
    assert "scca_database_latency_seconds" in text
    await tab.disconnect()


async def test_idle_sockets_are_kept_alive_by_heartbeats_on_both_transports(
    server_db: TempDatabase, node: NodeClients
) -> None:
    settings = test_settings(server_db.app_dsn, PING_INTERVAL_S="1", PING_TIMEOUT_S="1")
    async with live_server(settings) as fast:
        # engine.io schedules a socket's next ping when it connects and on every PONG:
        # counting the schedules per socket counts the heartbeats it answered.
        wheel = fast.app[SIO].eio.heartbeats
        schedule = wheel.schedule
        scheduled: Counter[int] = Counter()

        def counted(eio_socket: Any) -> None:
            scheduled[id(eio_socket)] += 1
            schedule(eio_socket)

        wheel.schedule = counted
        account = await fast.register()
        tabs = [
            await node.connect(fast.base_url, token=account["token"], transports=transports)
            for transports in (["websocket"], ["polling"], ["polling", "websocket"])
        ]
        rounds = 3  # each longer than the timeout: a socket without heartbeats would be gone
        await eventually(
            lambda: len(scheduled) == len(tabs) and min(scheduled.values()) > rounds,
            what=f"{rounds} heartbeats answered by each of the {len(tabs)} idle tabs",
            timeout=30,
        )
        for tab in tabs:
            assert tab.connected.is_set(), tab.disconnect_reason
            [ack] = await tab.emit("ping")
            assert ack["success"] is True


async def test_a_client_that_stops_answering_pings_is_dropped(server_db: TempDatabase) -> None:
    settings = test_settings(
        server_db.app_dsn, PING_INTERVAL_S="1", PING_TIMEOUT_S="1", HANDSHAKE_TIMEOUT_S="60"
    )
    async with live_server(settings) as fast:
        account = await fast.register()
        url = f"{fast.base_url}/api/socket/?EIO=4&transport=polling&token={account['token']}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                sid = json.loads((await response.text())[1:])["sid"]
            async with http.post(f"{url}&sid={sid}", data="40") as response:
                assert response.status == 200
            # It never polls, never answers the ping; watched on the server, since a GET
            # of the client's would be a poll.
            await eventually(
                lambda: _engine_session_over(fast, sid),
                what="the server to drop a socket that answers no ping",
                timeout=30,
            )
            async with http.get(f"{url}&sid={sid}") as response:
                body = await response.text()
                assert response.status == 400 or body.startswith("1"), (response.status, body)
