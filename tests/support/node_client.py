"""The real Node socket.io-client 4.x, driven from Python through `tests/node/driver.mjs`.

One Node process hosts any number of sockets; every event a socket receives is kept,
in order, so tests assert on exactly what a frontend would see.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["NodeClient", "NodeClients", "ReceivedEvent", "resumed_text"]

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@dataclass
class ReceivedEvent:
    event: str
    args: list[Any]
    t: int = 0

    @property
    def data(self) -> Any:
        return self.args[0] if self.args else None


@dataclass
class NodeClient:
    """One socket.io-client socket inside the driver process."""

    hub: NodeClients
    id: str
    events: list[ReceivedEvent] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    connect_error: str | None = None
    disconnect_reason: str | None = None
    transport: str | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    sid: str | None = None
    connect_count: int = 0
    reconnect_attempts: int = 0
    connect_errors: list[str] = field(default_factory=list)

    async def emit(self, event: str, *args: Any, timeout: float = 30.0) -> list[Any]:
        """Emit with an ack callback; returns the ack's arguments (raises on ack timeout)."""
        return await self.hub.request(
            {
                "op": "emit",
                "id": self.id,
                "event": event,
                "args": list(args),
                "ack": True,
                "timeoutMs": int(timeout * 1000),
            },
            timeout + 5,
        )

    async def emit_no_ack(self, event: str, *args: Any) -> None:
        await self.hub.request(
            {"op": "emit", "id": self.id, "event": event, "args": list(args), "ack": False}, 10
        )

    def named(self, event: str) -> list[ReceivedEvent]:
        return [e for e in self.events if e.event == event]

    async def wait_for(
        self,
        event: str,
        predicate: Callable[[Any], bool] = lambda _: True,
        *,
        timeout: float = 10.0,
        after: int = 0,
    ) -> ReceivedEvent:
        """The first `event` (index >= after) whose first argument satisfies `predicate`."""

        def find() -> ReceivedEvent | None:
            for e in self.events[after:]:
                if e.event == event and predicate(e.data):
                    return e
            return None

        async with asyncio.timeout(timeout):
            async with self.changed:
                while (found := find()) is None:
                    await self.changed.wait()
        return found

    async def wait_connects(self, count: int, *, timeout: float = 10.0) -> None:
        """Until the socket has connected `count` times (reconnections included)."""
        async with asyncio.timeout(timeout):
            async with self.changed:
                while self.connect_count < count:
                    await self.changed.wait()

    async def disconnect(self) -> None:
        await self.hub.send({"op": "disconnect", "id": self.id})


class NodeClients:
    """The driver process. Use as `async with NodeClients() as node:`."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._clients: dict[str, NodeClient] = {}
        self._pending: dict[str, asyncio.Future[list[Any]]] = {}
        self._ids = itertools.count(1)

    async def __aenter__(self) -> NodeClients:
        node = shutil.which("node")
        if node is None or not (NODE_DIR / "node_modules" / "socket.io-client").exists():
            raise RuntimeError(
                "Node.js and tests/node/node_modules are required: run `npm ci` in tests/node "
                "(scripts/test.sh does this)"
            )
        self._proc = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / "driver.mjs"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            try:
                await self.send({"op": "exit"})
                await asyncio.wait_for(self._proc.wait(), 5)
            except (TimeoutError, ConnectionError):
                self._proc.kill()
                await self._proc.wait()
        if self._reader is not None:
            self._reader.cancel()

    async def send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self._proc.stdin.drain()

    async def request(self, message: dict[str, Any], timeout: float) -> list[Any]:
        req = f"r{next(self._ids)}"
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[req] = future
        await self.send({**message, "req": req})
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(req, None)

    async def connect(
        self,
        url: str,
        *,
        token: str | None = None,
        auth: dict[str, Any] | None = None,
        path: str = "/api/socket",
        transports: list[str] | None = None,
        query: dict[str, str] | None = None,
        extra_headers: dict[str, str] | None = None,
        wait: bool = True,
        timeout: float = 10.0,
        options: dict[str, Any] | None = None,
    ) -> NodeClient:
        """Open a socket; with `wait`, until it is connected or refused.

        `options` are merged last into the socket.io-client options (for example
        `{"reconnection": True, "withCredentials": True}`; the driver's defaults are
        `reconnection: false, forceNew: true, timeout: 10000`).
        """
        cid = f"c{next(self._ids)}"
        client = NodeClient(hub=self, id=cid)
        self._clients[cid] = client
        io_options: dict[str, Any] = {"path": path}
        if token is not None or auth is not None:
            io_options["auth"] = {**({"token": token} if token else {}), **(auth or {})}
        if transports:
            io_options["transports"] = transports
        if query:
            io_options["query"] = query
        if extra_headers:
            io_options["extraHeaders"] = extra_headers
        io_options.update(options or {})
        await self.send({"op": "connect", "id": cid, "url": url, "options": io_options})
        if wait:
            async with asyncio.timeout(timeout):
                async with client.changed:
                    while not client.connected.is_set() and client.connect_error is None:
                        await client.changed.wait()
        return client

    async def joined(
        self, url: str, token: str, conversation_id: str, **connect: Any
    ) -> NodeClient:
        """A connected socket that has joined `conversation_id` (asserting both)."""
        client = await self.connect(url, token=token, **connect)
        assert client.connected.is_set(), client.connect_error
        [ack] = await client.emit("join-conversation", conversation_id)
        assert ack["success"] is True, ack
        return client

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            message = json.loads(line)
            kind = message["type"]
            if kind in ("ack", "ack_timeout", "sent", "ack_error"):
                future = self._pending.get(message["req"])
                if future is not None and not future.done():
                    if kind == "ack":
                        future.set_result(message["args"])
                    elif kind == "sent":
                        future.set_result([])
                    else:
                        future.set_exception(TimeoutError(f"{kind} for {message['req']}"))
                continue
            client = self._clients.get(message.get("id", ""))
            if client is None:
                continue
            async with client.changed:
                if kind == "event":
                    client.events.append(
                        ReceivedEvent(message["event"], message["args"], message.get("t", 0))
                    )
                elif kind == "connect":
                    client.transport = message["transport"]
                    client.sid = message.get("sid")
                    client.connect_count += 1
                    client.connected.set()
                elif kind == "connect_error":
                    client.connect_error = message["message"]
                    client.connect_errors.append(message["message"])
                elif kind == "reconnect_attempt":
                    client.reconnect_attempts = int(message["attempt"])
                elif kind == "disconnect":
                    client.disconnect_reason = message["reason"]
                    client.connected.clear()
                    client.closed.set()
                elif kind == "upgrade":
                    client.transport = message["transport"]
                client.changed.notify_all()


def resumed_text(client: NodeClient, sequence: int, after: int = 0) -> str:
    """What a frontend shows: `state.generating`, then the tokens it did not have yet."""
    text, index = "", 0
    for event in client.events[after:]:
        if event.event == "state" and "generating" in event.data:
            text = event.data["generating"]["partial"]
            index = event.data["generating"]["tokenIndex"]
        elif (
            event.event == "ai-token"
            and event.data["sequence"] == sequence
            and event.data["tokenIndex"] > index
        ):
            text += event.data["token"]
            index = event.data["tokenIndex"]
    return text
