"""Room benchmarks with real socket.io-client sockets: fan-out, paced latency, wire bytes.

- `fanout`: C websocket clients in one conversation, one T-token reply with `partial`,
  no delay between tokens; server CPU (utime+stime from just before the send to
  `ai-complete` on every client) per delivered `ai-token` event.
- `paced`: the same clients, a reply at 50 tokens/s; latency from the server's emit of
  each token to its receipt by each client (method in `_paced_figures`).
- `wire_bytes`: bytes one client receives for a T-token reply with and without `partial`.

Clients live in Node workers (`bench/node/worker.mjs`); groups of sockets are named, and
`RoomClients` is one group spread over the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import procstat, rest
from bench.emit_probe import read_emits
from bench.nodeworkers import NodeWorker, WorkerError, split
from bench.stats import percentile

__all__ = [
    "Reply",
    "RoomClients",
    "connect_room",
    "fanout",
    "paced",
    "stream_reply",
    "wire_bytes",
]


@dataclass
class RoomClients:
    """One group of sockets (same user, same conversation) spread over some workers."""

    group: str
    workers: list[NodeWorker]
    conversation_id: str
    message_count: int
    connected: int
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class Reply:
    """What the clients saw of one streamed reply."""

    sent_at_ms: float
    ack: dict[str, Any] | None
    tokens: list[int]
    tcp_bytes: list[int]
    frame_bytes: list[int]
    complete_at_ms: list[float | None]
    complete_server_ms: list[float | None]
    times: list[tuple[int, list[float | None]]]  # (worker index, receipt ms by tokenIndex)
    server_cpu_s: float
    client_cpu_s: float  # the Node workers and this process
    interrupt_cpu_s: float  # irq + softirq (loopback TCP delivery is charged here)
    other_cpu_s: float  # processes besides server and clients: PostgreSQL, anything else
    timed_out: bool

    @property
    def last_complete_ms(self) -> float:
        done = [t for t in self.complete_at_ms if t is not None]
        return max(done) if done else math.nan


async def connect_room(
    pool: Sequence[NodeWorker],
    *,
    url: str,
    path: str,
    token: str,
    conversation_id: str,
    clients: int,
    group: str,
    partial: bool = True,
    wait_s: float = 120,
) -> RoomClients:
    """Connect `clients` websocket sockets over the workers and join them to the room."""
    shares = [(w, n) for w, n in zip(pool, split(clients, len(pool)), strict=True) if n > 0]
    reports = await asyncio.gather(
        *(
            w.ask(
                "connect",
                "ready",
                wait_s,
                group=group,
                url=url,
                path=path,
                tokens=[token],
                count=n,
                partial=partial,
                conversationId=conversation_id,
            )
            for w, n in shares
        )
    )
    errors: dict[str, int] = {}
    for report in reports:
        for code, count in report["errors"].items():
            errors[code] = errors.get(code, 0) + int(count)
    counts = [r["messageCount"] for r in reports if r["messageCount"] is not None]
    return RoomClients(
        group=group,
        workers=[w for w, _ in shares],
        conversation_id=conversation_id,
        message_count=int(counts[0]) if counts else 0,
        connected=sum(int(r["connected"]) for r in reports),
        errors=errors,
    )


async def join_room(room: RoomClients, conversation_id: str) -> None:
    """Move every socket of the group to another conversation."""
    reports = await asyncio.gather(
        *(
            w.ask("join", "joined", 120, group=room.group, conversationId=conversation_id)
            for w in room.workers
        )
    )
    for report in reports:
        if report["errors"]:
            raise WorkerError(f"join failed: {report['errors']}")
    room.conversation_id = conversation_id
    room.message_count = int(reports[0]["messageCount"])


async def stream_reply(
    room: RoomClients,
    sender: RoomClients,
    *,
    server_pid: int,
    content: str,
    times: bool = False,
    wait_s: float = 120,
) -> Reply:
    """Send one message from `sender`'s first socket; collect `room`'s view of the reply.

    `sender` may be `room` itself (its first socket sends) or another group in the
    same conversation.
    """
    sequence = room.message_count + 2
    await asyncio.gather(
        *(
            w.ask(
                "arm",
                "armed",
                30,
                group=room.group,
                sequence=sequence,
                times=times,
                timeoutMs=wait_s * 1000,
            )
            for w in room.workers
        )
    )
    involved = {w.index: w for w in [*room.workers, *sender.workers]}.values()
    host_before = procstat.host_sample()
    clients_before = procstat.self_cpu_seconds() + sum(w.cpu_seconds() for w in involved)
    before = procstat.sample(server_pid)
    sending = sender.workers[0]
    await sending.command(
        "send", group=sender.group, index=0, content=content, timeoutMs=wait_s * 1000
    )
    reports = await asyncio.gather(
        *(w.expect("done", wait_s + 10, room.group) for w in room.workers)
    )
    after = procstat.sample(server_pid)
    client_cpu = (
        procstat.self_cpu_seconds() + sum(w.cpu_seconds() for w in involved) - clients_before
    )
    host_after = procstat.host_sample()
    host_busy = host_after.busy_seconds_since(host_before)
    interrupts = host_after.interrupt_seconds_since(host_before)
    sent = await sending.expect("sent", wait_s + 10, sender.group)
    room.message_count = sequence
    if sender is not room:
        sender.message_count = sequence
    reply = Reply(
        sent_at_ms=float(sent["sentAt"]),
        ack=sent["ack"],
        tokens=[],
        tcp_bytes=[],
        frame_bytes=[],
        complete_at_ms=[],
        complete_server_ms=[],
        times=[],
        server_cpu_s=after.cpu_s - before.cpu_s,
        client_cpu_s=client_cpu,
        interrupt_cpu_s=interrupts,
        other_cpu_s=max(0.0, host_busy - interrupts - client_cpu - (after.cpu_s - before.cpu_s)),
        timed_out=any(r["timedOut"] for r in reports),
    )
    for worker, report in zip(room.workers, reports, strict=True):
        reply.tokens += report["tokens"]
        reply.tcp_bytes += report["tcpBytes"]
        reply.frame_bytes += report["frameBytes"]
        reply.complete_at_ms += report["completeAt"]
        reply.complete_server_ms += report["completeServerTs"]
        if report["times"] is not None:
            reply.times += [(worker.index, t) for t in report["times"]]
    return reply


async def _new_room(
    pool: Sequence[NodeWorker],
    http: aiohttp.ClientSession,
    url: str,
    path: str,
    *,
    clients: int,
    model: str,
    group: str,
    account: rest.Account | None = None,
) -> tuple[rest.Account, RoomClients]:
    if account is None:
        account = await rest.register(http, url, rest.new_email(group, 0))
    conversation_id = await rest.create_conversation(http, url, account.token, model)
    room = await connect_room(
        pool,
        url=url,
        path=path,
        token=account.token,
        conversation_id=conversation_id,
        clients=clients,
        group=group,
    )
    if room.connected != clients:
        raise WorkerError(f"{group}: {room.connected}/{clients} connected {room.errors}")
    return account, room


async def fanout(
    pool: Sequence[NodeWorker],
    http: aiohttp.ClientSession,
    *,
    url: str,
    path: str,
    server_pid: int,
    clients: int,
    tokens: int,
    around_stream: Callable[[], AbstractAsyncContextManager[None]] | None = None,
) -> tuple[dict[str, Any], rest.Account, RoomClients]:
    """The fan-out figures; also returns the room, for `paced` to reuse its clients.

    `around_stream` wraps the measured reply only (e.g. a profiler recording).
    """
    account, room = await _new_room(
        pool,
        http,
        url,
        path,
        clients=clients,
        model=f"scripted:{min(tokens, 50)}:0",
        group="room",
    )
    await stream_reply(room, room, server_pid=server_pid, content="warm up")
    conversation_id = await rest.create_conversation(
        http, url, account.token, f"scripted:{tokens}:0"
    )
    await join_room(room, conversation_id)
    async with around_stream() if around_stream is not None else contextlib.nullcontext():
        reply = await stream_reply(room, room, server_pid=server_pid, content="fan out")
    events = sum(reply.tokens)
    wall_s = (reply.last_complete_ms - reply.sent_at_ms) / 1000
    return (
        {
            "fanout_clients": room.connected,
            "fanout_tokens": tokens,
            "fanout_events": events,
            "fanout_events_expected": clients * tokens,
            "fanout_min_tokens_per_client": min(reply.tokens),
            "fanout_wall_s": round(wall_s, 3),
            "fanout_events_per_s": round(events / wall_s, 1),
            "fanout_server_cpu_s": round(reply.server_cpu_s, 3),
            "fanout_server_us_per_event": round(reply.server_cpu_s / events * 1e6, 2),
            "fanout_client_cpu_s": round(reply.client_cpu_s, 3),
            "fanout_interrupt_cpu_s": round(reply.interrupt_cpu_s, 3),
            "fanout_other_cpu_s": round(reply.other_cpu_s, 3),
            "fanout_timed_out": reply.timed_out,
        },
        account,
        room,
    )


async def paced(
    pool: Sequence[NodeWorker],
    http: aiohttp.ClientSession,
    room: RoomClients,
    account: rest.Account,
    *,
    url: str,
    server_pid: int,
    emit_log: Path | None,
    tokens: int,
    interval_ms: int = 20,
) -> dict[str, Any]:
    """Emit-to-receipt latency of a reply paced at one token per `interval_ms`."""
    conversation_id = await rest.create_conversation(
        http, url, account.token, f"scripted:{tokens}:{interval_ms}"
    )
    await join_room(room, conversation_id)
    offsets = {w.index: await w.clock_offset_ms() for w in room.workers}
    reply = await stream_reply(
        room,
        room,
        server_pid=server_pid,
        content="paced",
        times=True,
        wait_s=tokens * interval_ms / 1000 + 60,
    )
    emits = (
        read_emits(emit_log, conversation_id, room.message_count) if emit_log is not None else {}
    )
    figures = _paced_figures(reply, offsets, emits, tokens, interval_ms)
    figures["paced_interrupt_cpu_s"] = round(reply.interrupt_cpu_s, 3)
    figures["paced_other_cpu_s"] = round(reply.other_cpu_s, 3)
    return figures


def _paced_figures(
    reply: Reply,
    offsets: dict[int, tuple[float, float]],
    emits: dict[int, float],
    tokens: int,
    interval_ms: int,
) -> dict[str, Any]:
    """Three views of the same stream.

    - probe (the headline when the server ran with `emit_probe`): receipt time, moved to
      the harness's clock with the worker's measured offset, minus the server's
      time.time() when it started that token's room emit. Same machine, same clock; the
      offset's uncertainty is half the best pipe round trip (reported).
    - spread: receipt minus the first receipt of the same tokenIndex by any client. A
      lower bound that needs no server cooperation; misses the first client's own delay.
    - ai-complete: the one event the server timestamps itself (ms, truncated), receipt
      minus that stamp minus 0.5 ms; +-0.5 ms.
    All include the client's own event-loop delay (each worker holds ~C/workers sockets).
    """
    receipts: dict[int, list[float]] = {}
    missing = 0
    for worker_index, times in reply.times:
        offset = offsets[worker_index][0]
        for index in range(1, tokens + 1):
            t = times[index] if index < len(times) else None
            if t is None:
                missing += 1
                continue
            receipts.setdefault(index, []).append(float(t) - offset)
    spread = [t - min(ts) for ts in receipts.values() for t in ts]
    figures: dict[str, Any] = {
        "paced_clients": len(reply.times),
        "paced_tokens": tokens,
        "paced_interval_ms": interval_ms,
        "paced_missing_receipts": missing,
        "paced_spread_p50_ms": round(percentile(spread, 50), 3),
        "paced_spread_p99_ms": round(percentile(spread, 99), 3),
        "paced_clock_uncertainty_ms": round(max(u for _, u in offsets.values()), 3),
    }
    stamped = [
        done - offsets[w][0] - server - 0.5
        for (w, _), done, server in zip(
            reply.times, reply.complete_at_ms, reply.complete_server_ms, strict=True
        )
        if done is not None and server is not None
    ]
    figures["paced_complete_p99_ms"] = round(percentile(stamped, 99), 3)
    if emits:
        latency = [
            t - emits[index] * 1000 for index, ts in receipts.items() if index in emits for t in ts
        ]
        first = [min(ts) - emits[i] * 1000 for i, ts in receipts.items() if i in emits]
        gaps = [emits[i + 1] - emits[i] for i in range(1, tokens) if i in emits and i + 1 in emits]
        figures |= {
            "paced_method": "emit-probe",
            "paced_p50_ms": round(percentile(latency, 50), 3),
            "paced_p99_ms": round(percentile(latency, 99), 3),
            "paced_max_ms": round(max(latency), 3),
            "paced_first_receipt_p50_ms": round(percentile(first, 50), 3),
            "paced_emit_interval_ms": round(sum(gaps) / len(gaps) * 1000, 3) if gaps else None,
        }
    else:
        figures |= {
            "paced_method": "first-receipt",
            "paced_p50_ms": figures["paced_spread_p50_ms"],
            "paced_p99_ms": figures["paced_spread_p99_ms"],
        }
    return figures


async def wire_bytes(
    pool: Sequence[NodeWorker],
    http: aiohttp.ClientSession,
    account: rest.Account,
    *,
    url: str,
    path: str,
    server_pid: int,
    tokens: int,
) -> dict[str, Any]:
    """Bytes one listening client receives for a `tokens`-token reply, with and without
    `partial`: TCP payload bytes read by its websocket (ws `_socket.bytesRead`), and the
    websocket frames rebuilt from engine.io packets (header + payload) as a cross-check.
    A third socket sends, so neither measured client gets the sender's ack."""
    worker = pool[:1]
    conversation_id = await rest.create_conversation(
        http, url, account.token, f"scripted:{tokens}:0"
    )
    rooms = {}
    for group, partial in (("bytes-send", True), ("bytes-full", True), ("bytes-delta", False)):
        rooms[group] = await connect_room(
            worker,
            url=url,
            path=path,
            token=account.token,
            conversation_id=conversation_id,
            clients=1,
            group=group,
            partial=partial,
        )
    delta_room = rooms["bytes-delta"]
    full_room = rooms["bytes-full"]
    await worker[0].ask(
        "arm",
        "armed",
        30,
        group=delta_room.group,
        sequence=full_room.message_count + 2,
        timeoutMs=120_000,
    )
    full = await stream_reply(
        full_room, rooms["bytes-send"], server_pid=server_pid, content="bytes"
    )
    delta = await worker[0].expect("done", 30, delta_room.group)
    for group in rooms:
        await worker[0].ask("close", "closed", 30, group=group)
    partial_bytes = full.tcp_bytes[0]
    delta_bytes = int(delta["tcpBytes"][0])
    return {
        "wire_tokens": tokens,
        "partial_bytes_per_reply": partial_bytes,
        "delta_bytes_per_reply": delta_bytes,
        "partial_frame_bytes_per_reply": full.frame_bytes[0],
        "delta_frame_bytes_per_reply": int(delta["frameBytes"][0]),
        "partial_over_delta": round(partial_bytes / delta_bytes, 2) if delta_bytes else None,
        "wire_tokens_received": [full.tokens[0], int(delta["tokens"][0])],
    }
