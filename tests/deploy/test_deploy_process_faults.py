"""An instance killed (SIGKILL) mid-reply behind nginx, and one stopped (SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from deploy_support import (
    Account,
    cluster_envs,
    conversation,
    create_conversation,
    eventually,
    register,
    tab,
)
from instances import Instance, instance_env, running_instances
from nginx_proxy import running_nginx
from node_client import NodeClient, NodeClients
from pg import TempDatabase

# socket.io-client as a frontend runs it: reconnect by itself, quickly.
RECONNECTING = {"reconnection": True, "reconnectionDelay": 200, "reconnectionDelayMax": 500}


def _pinned(node_number: int) -> dict[str, Any]:
    """A browser that already holds nginx's cookie for instance `node_number`."""
    return {"extra_headers": {"cookie": f"scca_node={node_number}"}, "options": RECONNECTING}


async def _rows(admin_dsn: str, conversation_id: str) -> tuple[list[int], int]:
    con = await asyncpg.connect(admin_dsn)
    try:
        rows = await con.fetch(
            "SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq",
            uuid.UUID(conversation_id),
        )
        locks = await con.fetchval(
            "SELECT count(*) FROM generation_locks WHERE conversation_id = $1",
            uuid.UUID(conversation_id),
        )
    finally:
        await con.close()
    return [r["seq"] for r in rows], int(locks)


async def _metric(app: Instance, name: str) -> float:
    """One figure of an instance's /metrics (0 when it is not there yet)."""
    async with aiohttp.ClientSession() as http, http.get(app.base_url + "/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split(" ")[1])
    return 0.0


async def _send_when_free(client: NodeClient, content: str) -> dict[str, Any]:
    """Send until the conversation's lock lets us (BUSY meanwhile, nothing else)."""

    async def attempt() -> dict[str, Any] | None:
        [ack] = await client.emit("send-message", {"content": content})
        assert ack["success"] is True or ack["code"] == "BUSY", ack
        return dict(ack) if ack["success"] else None

    result: dict[str, Any] = await eventually(
        attempt, timeout=15, interval=0.5, what="a send once the lock expired"
    )
    return result


async def test_sigkill_mid_reply_behind_nginx(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    envs = cluster_envs(server_db, tmp_path, 2)  # the default 30 s lock: never waited out
    async with (
        running_instances(envs, tmp_path / "logs") as (doomed, survivor),
        running_nginx([doomed.address, survivor.address]) as nginx,
    ):
        account = await register(nginx.base_url)
        conversation_id = await create_conversation(
            nginx.base_url, account, model="scripted:60:25"
        )
        victim = await tab(node, nginx.base_url, account, conversation_id, **_pinned(1))
        watcher = await tab(node, nginx.base_url, account, conversation_id, **_pinned(2))
        [acknowledged] = await victim.emit("send-message", {"content": "first, acknowledged"})
        assert acknowledged["success"] is True and acknowledged["messageCount"] == 2
        first_reply = (await victim.wait_for("ai-complete")).data["content"]

        in_flight = asyncio.create_task(
            victim.emit("send-message", {"content": "second, in flight"}, timeout=2.5)
        )
        await watcher.wait_for("ai-token", lambda d: d["sequence"] == 4 and d["tokenIndex"] >= 5)
        await doomed.kill()
        killed_at = time.monotonic()

        # The tab reconnects by itself, through nginx, to the surviving instance.
        await victim.wait_connects(2, timeout=15)
        with pytest.raises(TimeoutError):
            await in_flight  # never acknowledged: the instance died before the reply
        mark = len(victim.events)
        [join] = await victim.emit(
            "join-conversation", {"conversationId": conversation_id, "lastSeq": 2}
        )
        assert join["success"] is True and join["messageCount"] == 3
        added = await victim.wait_for("message-added", after=mark)
        assert added.data == {**added.data, "sequence": 3, "content": "second, in flight"}

        body = await conversation(nginx.base_url, account, conversation_id)
        assert [(m["sequence"], m["role"], m["content"]) for m in body["messages"]] == [
            (1, "user", "first, acknowledged"),
            (2, "assistant", first_reply),
            (3, "user", "second, in flight"),
        ]
        assert body["messageCount"] == 3
        assert body["integrity"] == {"valid": True, "lastValidSequence": 3}
        assert not [e for e in watcher.named("ai-complete") if e.data["sequence"] == 4]

        # The survivor notices within seconds that the reply's instance is gone: every tab
        # gets the terminal event the reply never sent, and the conversation is free.
        for client in (watcher, victim):
            lost = await client.wait_for("ai-error", lambda d: d["sequence"] == 4, timeout=10)
            assert lost.data["code"] == "REPLY_LOST", lost.data
        assert time.monotonic() - killed_at < 10
        [state] = await watcher.emit("join-conversation", conversation_id)
        assert state["success"] is True and "generating" not in state, state
        ack = await _send_when_free(victim, "third, after the crash")
        assert ack["messageCount"] == 5 and ack["sequence"] == 5
        assert time.monotonic() - killed_at < 10, "a send is accepted within 10 s of the kill"
        await watcher.wait_for("ai-complete", lambda d: d["sequence"] == 5)
        body = await conversation(nginx.base_url, account, conversation_id)
        assert [m["role"] for m in body["messages"]] == [
            "user", "assistant", "user", "user", "assistant",
        ]  # fmt: skip
        assert body["integrity"] == {"valid": True, "lastValidSequence": 5}
        assert await _rows(server_db.admin_dsn, conversation_id) == ([1, 2, 3, 4, 5], 0)
        assert survivor.running and doomed.process is not None
        assert doomed.process.returncode == -signal.SIGKILL


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


async def _start_reply(
    node: NodeClients, url: str, account: Account, conversation_id: str
) -> tuple[NodeClient, asyncio.Task[list[Any]]]:
    client = await tab(node, url, account, conversation_id, transports=["websocket"])
    send = asyncio.create_task(client.emit("send-message", {"content": "finish this"}))
    await client.wait_for("ai-token", lambda d: d["tokenIndex"] >= 3)
    return client, send


async def test_sigterm_lets_the_running_reply_finish_then_exits_zero(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    grace = 2.5
    env = instance_env(
        app_dsn=server_db.app_dsn, data_dir=tmp_path / "data", SHUTDOWN_GRACE_S=str(grace)
    )
    async with running_instances([env], tmp_path / "logs") as [app]:
        account = await register(app.base_url)
        conversation_id = await create_conversation(app.base_url, account, model="scripted:30:40")
        client, send = await _start_reply(node, app.base_url, account, conversation_id)
        signalled = time.monotonic()
        app.send_signal(signal.SIGTERM)

        await eventually(lambda: _refuses_connections(app.port), timeout=5, what="refused")
        [ack] = await send
        assert ack == {"success": True, "messageCount": 2, "sequence": 2}
        complete = (await client.wait_for("ai-complete")).data
        assert len(client.named("ai-token")) == 30
        assert await app.wait_exit(timeout=3 * grace + 5) == 0
        # Bounded by the grace period: replies get SHUTDOWN_GRACE_S, then aiohttp waits
        # up to twice as long for open connections (a WebSocket is one).
        assert time.monotonic() - signalled < 3 * grace + 4
        assert await _rows(server_db.admin_dsn, conversation_id) == ([1, 2], 0)
        assert complete["messageCount"] == 2 and complete["content"]


async def test_sigterm_exits_as_soon_as_replies_are_done(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    grace = 8.0
    envs = cluster_envs(server_db, tmp_path, 2, SHUTDOWN_GRACE_S=str(grace))
    async with (
        running_instances(envs, tmp_path / "logs") as (stopping, staying),
        running_nginx([stopping.address, staying.address]) as nginx,
    ):
        account = await register(nginx.base_url)
        conversation_id = await create_conversation(nginx.base_url, account, model="scripted:40:25")
        client = await tab(node, nginx.base_url, account, conversation_id, **_pinned(1))
        send = asyncio.create_task(client.emit("send-message", {"content": "finish this"}))
        await client.wait_for("ai-token", lambda d: d["tokenIndex"] >= 3)
        stopping.send_signal(signal.SIGTERM)
        [ack] = await send
        assert ack["success"] is True
        # The exit follows the last reply, not the grace period.
        assert await stopping.wait_exit(timeout=6) == 0  # well before the 8 s grace
        # Its tab was closed as a transport would close, so socket.io-client reconnects.
        await client.wait_connects(2, timeout=5)
        [join] = await client.emit("join-conversation", conversation_id)
        assert join["success"] is True and join["messageCount"] == 2


async def test_sigterm_answers_every_event_of_connected_sockets_while_draining(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    """aiohttp's shutdown stops reading connections; the drain runs before it, so a
    socket on the draining instance still gets an answer to everything it sends."""
    grace = 6.0
    env = instance_env(
        app_dsn=server_db.app_dsn, data_dir=tmp_path / "data", SHUTDOWN_GRACE_S=str(grace)
    )
    async with running_instances([env], tmp_path / "logs") as [app]:
        account = await register(app.base_url)
        running = await create_conversation(app.base_url, account, model="scripted:40:60")
        other = await create_conversation(app.base_url, account)
        client, send = await _start_reply(node, app.base_url, account, running)
        bystander = await tab(node, app.base_url, account, other, transports=["websocket"])
        app.send_signal(signal.SIGTERM)
        await eventually(lambda: _refuses_connections(app.port), timeout=5, what="refused")

        [pong] = await bystander.emit("ping")
        assert pong["success"] is True and isinstance(pong["timestamp"], int)
        [refused] = await bystander.emit("send-message", {"content": "not here"})
        assert refused == {
            "success": False,
            "code": "UNAVAILABLE",
            "error": "The server is restarting; retry",
            "retryAfter": 1.0,
        }
        [edit] = await client.emit("edit-message", {"sequence": 1, "newContent": "changed"})
        assert edit["success"] is False and edit["code"] == "UNAVAILABLE", edit
        [joined] = await bystander.emit("join-conversation", other)
        assert joined["success"] is True and joined["messageCount"] == 0

        [ack] = await send  # the running reply finished within the grace period
        assert ack == {"success": True, "messageCount": 2, "sequence": 2}
        assert len(client.named("ai-token")) == 40
        assert await app.wait_exit(timeout=grace + 10) == 0
        assert await _rows(server_db.admin_dsn, running) == ([1, 2], 0)
        assert await _rows(server_db.admin_dsn, other) == ([], 0)


async def test_a_stalled_owner_never_commits_after_a_takeover(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    """SIGSTOP past the liveness window: the other instance takes the reply over; when
    the owner comes back (SIGCONT) it sends no more tokens and commits nothing."""
    envs = cluster_envs(server_db, tmp_path, 2)
    async with running_instances(envs, tmp_path / "logs") as (stalled, other):
        account = await register(stalled.base_url)
        conversation_id = await create_conversation(
            stalled.base_url, account, model="scripted:200:20"
        )
        sender = await tab(node, stalled.base_url, account, conversation_id)
        watcher = await tab(node, other.base_url, account, conversation_id)
        send = asyncio.create_task(sender.emit("send-message", {"content": "then freeze"}))
        await watcher.wait_for("ai-token", lambda d: d["tokenIndex"] >= 10)
        stalled.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            lost = await watcher.wait_for("ai-error", lambda d: d["sequence"] == 2, timeout=12)
            assert lost.data["code"] == "REPLY_LOST"
            taken_over_s = time.monotonic() - stopped_at
            mark = len(watcher.events)
            [ack] = await watcher.emit("send-message", {"content": "on the other instance"})
            assert ack == {"success": True, "messageCount": 3, "sequence": 3}, ack
        finally:
            stalled.send_signal(signal.SIGCONT)
        await eventually(
            lambda: _metric(stalled, 'scca_generations_total{outcome="discarded"}'),
            timeout=10,
            what="the stalled owner discarding its reply",
        )
        assert await _metric(stalled, "scca_generations_running") == 0
        await watcher.wait_for("ai-complete", lambda d: d["sequence"] == 3, after=mark)
        with contextlib.suppress(TimeoutError):
            await send  # its ack, if any, is not a success: the reply was not stored
        if send.done() and not send.cancelled() and send.exception() is None:
            assert send.result()[0]["success"] is False
        # Nothing of the stalled reply reaches anyone after the takeover, but for the one
        # token that was already on its way out when the process stopped (pub/sub does
        # not check the fence; the commit does).
        before = max(e.data["tokenIndex"] for e in watcher.events[:mark] if e.event == "ai-token")
        late = [e.data for e in watcher.events[mark:] if e.data and e.data.get("sequence") == 2]
        assert [d["tokenIndex"] for d in late] in ([], [before + 1]), late
        assert not [e for e in watcher.named("ai-complete") if e.data["sequence"] == 2]
        body = await conversation(other.base_url, account, conversation_id)
        assert [(m["sequence"], m["role"]) for m in body["messages"]] == [
            (1, "user"), (2, "user"), (3, "assistant"),
        ]  # fmt: skip
        assert body["integrity"] == {"valid": True, "lastValidSequence": 3}
        assert await _rows(server_db.admin_dsn, conversation_id) == ([1, 2, 3], 0)
        assert taken_over_s < 10, taken_over_s
