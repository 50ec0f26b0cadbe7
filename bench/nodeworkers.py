"""Node processes running real socket.io-client sockets (`bench/node/worker.mjs`).

One worker holds any number of sockets; several workers spread the client-side CPU over
the machine's cores. Python sends JSON commands on the worker's stdin and reads JSON
lines from its stdout, sorted into one queue per message type.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench import procstat

__all__ = ["NodeWorker", "WorkerError", "node_available", "split", "workers"]

WORKER = Path(__file__).resolve().parent / "node" / "worker.mjs"
_CLIENT_DIRS = (WORKER.parent, WORKER.parents[2] / "tests" / "node")


class WorkerError(RuntimeError):
    """A worker died, reported an error, or did not answer in time."""


def node_available() -> str | None:
    """Why Node clients cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not any((d / "node_modules" / "socket.io-client").is_dir() for d in _CLIENT_DIRS):
        return "socket.io-client is not installed: run `npm ci` in bench/node (or tests/node)"
    return None


def split(total: int, parts: int) -> list[int]:
    """`total` spread as evenly as possible over `parts` (earlier parts get the extra)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class NodeWorker:
    """One running worker process."""

    def __init__(self, proc: asyncio.subprocess.Process, index: int) -> None:
        self.index = index
        self._proc = proc
        self._queues: defaultdict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self._errors: list[str] = []
        self.on_progress: Callable[[dict[str, Any]], None] | None = None
        self._requests = 0
        self._exited = False
        self._reader = asyncio.create_task(self._read(), name=f"node-worker-{index}")

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("type", "")
            if kind == "error":
                self._errors.append(str(message.get("message", "")))
            elif kind == "progress" and self.on_progress is not None:
                self.on_progress(message)
                continue
            group = message.get("group")
            self._queues[f"{kind}:{group}" if group else kind].put_nowait(message)
        self._errors.append(f"worker {self.index} exited")
        self._exited = True
        for queue in self._queues.values():
            queue.put_nowait({"type": "exited"})

    async def command(self, op: str, **fields: Any) -> None:
        """Send one command (no answer awaited)."""
        if self._proc.stdin is None or self._proc.returncode is not None:
            raise WorkerError(f"worker {self.index} is not running: {self._errors[-3:]}")
        self._proc.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        await self._proc.stdin.drain()

    async def expect(self, kind: str, wait_s: float, group: str | None = None) -> dict[str, Any]:
        """The next message of type `kind` (about `group`, for messages that name one).

        Raises WorkerError after `wait_s` seconds or if the worker dies.
        """
        queue = self._queues[f"{kind}:{group}" if group else kind]
        if self._exited and queue.empty():
            raise WorkerError(f"worker {self.index} exited: {self._errors[-3:]}")
        try:
            message = await asyncio.wait_for(queue.get(), wait_s)
        except TimeoutError:
            raise WorkerError(
                f"worker {self.index}: no {kind!r} within {wait_s:.0f} s {self._errors[-3:]}"
            ) from None
        if message.get("type") == "exited":
            raise WorkerError(f"worker {self.index} exited: {self._errors[-3:]}")
        return message

    async def ask(self, op: str, kind: str, wait_s: float, **fields: Any) -> dict[str, Any]:
        """Send a command and wait for its answer of type `kind`."""
        await self.command(op, **fields)
        return await self.expect(kind, wait_s, fields.get("group"))

    async def clock_offset_ms(self, samples: int = 25) -> tuple[float, float]:
        """(worker clock - time.time(), uncertainty) in ms, from the tightest round trip."""
        best: tuple[float, float] | None = None
        for _ in range(samples):
            self._requests += 1
            t0 = time.time()
            reply = await self.ask("clock", "clock", 10, req=self._requests)
            t1 = time.time()
            half = (t1 - t0) * 500.0
            offset = float(reply["t"]) - (t0 + t1) * 500.0
            if best is None or half < best[1]:
                best = (offset, half)
        assert best is not None
        return best

    def cpu_seconds(self) -> float:
        """CPU time the worker has used so far (0 once it has exited)."""
        try:
            return procstat.sample(self.pid).cpu_s
        except (FileNotFoundError, ProcessLookupError):
            return 0.0

    async def close(self) -> None:
        """Ask the worker to exit; kill it (this process only) if it does not."""
        if self._proc.returncode is None:
            with contextlib.suppress(WorkerError, ConnectionError):
                await self.command("exit")
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@asynccontextmanager
async def workers(count: int) -> AsyncIterator[Sequence[NodeWorker]]:
    """Start `count` workers; always stop them on exit."""
    problem = node_available()
    if problem is not None:
        raise WorkerError(problem)
    node = shutil.which("node")
    assert node is not None
    started: list[NodeWorker] = []
    try:
        for index in range(count):
            proc = await asyncio.create_subprocess_exec(
                node,
                str(WORKER),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=256 * 1024 * 1024,
                preexec_fn=procstat.raise_nofile_limit,
            )
            started.append(NodeWorker(proc, index))
        yield started
    finally:
        await asyncio.gather(*(w.close() for w in started), return_exceptions=True)
