"""The Python driver: load-test clients on python-socketio's AsyncClient, in this process.

Same flow and figures as the Node driver (see `flows.py`); all clients share this
process's event loop, so its CPU caps how hard it can push a server (`load.py`
reports the harness's CPU per delivered event to show when that happens).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

from bench import rest
from bench.flows import FlowConfig, FlowStats

__all__ = ["PythonRun", "run_python_flows"]


def _now_ms() -> float:
    return time.perf_counter() * 1000.0


class _Failed(Exception):
    """A step failed with a protocol error code (or a timeout)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _Waiter:
    event: str
    predicate: Callable[[Any], bool]
    future: asyncio.Future[float]


@dataclass
class _Client:
    n: int
    sio: socketio.AsyncClient
    waiters: list[_Waiter] = field(default_factory=list)

    def wait(self, event: str, predicate: Callable[[Any], bool] = lambda _: True) -> Any:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append(_Waiter(event, predicate, future))
        return future

    def fail_all(self, code: str) -> None:
        for waiter in self.waiters:
            if not waiter.future.done():
                waiter.future.set_exception(_Failed(code))
                waiter.future.exception()  # retrieved: a failed round is counted, not raised
        self.waiters.clear()

    def deliver(self, event: str, data: Any) -> None:
        t = _now_ms()
        kept = []
        for waiter in self.waiters:
            if waiter.event == event and not waiter.future.done() and waiter.predicate(data):
                waiter.future.set_result(t)
            elif not waiter.future.done():
                kept.append(waiter)
        self.waiters = kept

    async def ack(self, event: str, payload: Any, wait_s: float) -> dict[str, Any]:
        try:
            answer = await self.sio.call(event, payload, timeout=wait_s)
        except socketio.exceptions.TimeoutError:
            self.fail_all("ACK_TIMEOUT")
            raise _Failed("ACK_TIMEOUT") from None
        if not isinstance(answer, dict) or not answer.get("success"):
            code = str(answer.get("code", "UNKNOWN")) if isinstance(answer, dict) else "BAD_ACK"
            self.fail_all(code)
            raise _Failed(code)
        return answer


async def _setup(
    cfg: FlowConfig,
    http: aiohttp.ClientSession,
    n: int,
    email: str,
    password: str,
    stats: FlowStats,
) -> _Client:
    account = await rest.register(http, cfg.url, email, password)
    conversation_id = await rest.create_conversation(
        http, cfg.url, account.token, cfg.model, title="load"
    )
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    client = _Client(n=n, sio=sio)

    async def any_event(event: str, *args: Any) -> None:
        stats.events += 1
        if event == "ai-token":
            stats.tokens += 1
        client.deliver(event, args[0] if args else None)

    sio.on("*", any_event)
    await sio.connect(
        cfg.url,
        auth={"token": account.token},
        transports=list(cfg.transports),
        socketio_path=cfg.path,
        wait_timeout=cfg.step_timeout_s,
    )
    await client.ack("join-conversation", conversation_id, cfg.step_timeout_s)
    return client


async def _round(cfg: FlowConfig, client: _Client, r: int, stats: FlowStats) -> None:
    timeout = cfg.step_timeout_s
    t0 = _now_ms()
    first = client.wait("ai-token")
    complete = client.wait("ai-complete")
    payload = {
        "content": f"{cfg.content} (round {r})",
        "clientMsgId": f"{cfg.run_id}-{r}-{client.n}",
    }
    ack = asyncio.ensure_future(client.ack("send-message", payload, timeout))
    try:
        async with asyncio.timeout(timeout):
            t_first, t_complete, _ = await asyncio.gather(first, complete, ack)
    except TimeoutError:
        raise _Failed("TIMEOUT_ai-complete") from None
    finally:
        ack.cancel()
    stats.first_token.append(t_first - t0)
    stats.complete.append(t_complete - t0)
    if not cfg.edit:
        return
    t1 = _now_ms()
    truncated = client.wait("conversation-truncated")
    regenerated = client.wait(
        "ai-complete", lambda d: isinstance(d, dict) and d.get("sequence") == 2
    )
    edit = {"sequence": 1, "newContent": f"{cfg.edit_content} (round {r})"}
    edit_ack = asyncio.ensure_future(client.ack("edit-message", edit, timeout))
    try:
        async with asyncio.timeout(timeout):
            t_trunc, _ = await asyncio.gather(truncated, edit_ack)
            stats.truncate.append(t_trunc - t1)
            await regenerated
    except TimeoutError:
        raise _Failed("TIMEOUT_edit") from None
    finally:
        edit_ack.cancel()


async def _client_rounds(
    cfg: FlowConfig,
    client: _Client,
    stats: FlowStats,
    deadline: float,
    progress: Callable[[], None],
) -> None:
    await asyncio.sleep(random.random() * cfg.start_spread_ms / 1000)
    for r in range(cfg.rounds):
        if time.monotonic() >= deadline:
            return
        try:
            await _round(cfg, client, r, stats)
            stats.rounds += 1
        except _Failed as exc:
            stats.errors[exc.code] += 1
            client.fail_all("ABANDONED")
            await asyncio.sleep(0.05)
        except (socketio.exceptions.SocketIOError, aiohttp.ClientError, OSError) as exc:
            stats.errors[type(exc).__name__] += 1
            client.fail_all("ABANDONED")
            await asyncio.sleep(0.05)
        progress()
        if cfg.think_ms > 0:
            await asyncio.sleep(random.random() * 2 * cfg.think_ms / 1000)


@dataclass
class PythonRun:
    stats: FlowStats
    ready: int
    setup_s: float
    measured_s: float
    stopped: bool


async def run_python_flows(
    cfg: FlowConfig,
    users: list[tuple[str, str]],
    *,
    on_progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[], None] | None = None,
    parallel_setup: int = 20,
) -> PythonRun:
    """Set every client up, then run the rounds together; hard stop at the duration."""
    stats = FlowStats()
    clients: list[_Client] = []
    gate = asyncio.Semaphore(parallel_setup)
    setup_started = time.monotonic()
    async with aiohttp.ClientSession() as http:

        async def setup(n: int, email: str, password: str) -> None:
            async with gate:
                try:
                    clients.append(await _setup(cfg, http, n, email, password, stats))
                except (_Failed, rest.RestError) as exc:
                    stats.setup_errors[getattr(exc, "code", type(exc).__name__)] += 1
                except (socketio.exceptions.SocketIOError, aiohttp.ClientError, OSError) as exc:
                    stats.setup_errors[type(exc).__name__] += 1

        await asyncio.gather(*(setup(n, e, p) for n, (e, p) in enumerate(users)))
        setup_s = time.monotonic() - setup_started
        stats.events = stats.tokens = 0

        def progress() -> None:
            if on_progress is not None:
                on_progress(stats.rounds, sum(stats.errors.values()))

        if on_start is not None:
            on_start()
        started = time.monotonic()
        deadline = started + cfg.duration_s
        stopped = False
        tasks = [
            asyncio.create_task(_client_rounds(cfg, c, stats, deadline, progress)) for c in clients
        ]
        try:
            _, pending = await asyncio.wait(tasks, timeout=cfg.duration_s + 2)
            for task in pending:
                stopped = True
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            measured_s = time.monotonic() - started
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.sio.disconnect()
    return PythonRun(
        stats=stats, ready=len(clients), setup_s=setup_s, measured_s=measured_s, stopped=stopped
    )
