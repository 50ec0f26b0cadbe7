"""A Redis of the test's own, so a test may stop and restart it (the machine's stays up)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as redis_asyncio
import redis.exceptions
from instances import free_port

__all__ = ["OwnRedis", "own_redis"]


@dataclass
class OwnRedis:
    """`redis-server` on a free port, no persistence; `stop()` and `start()` at will."""

    port: int
    work: Path
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        """Start on the same port as before and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is required (Debian package redis-server)")
        with (self.work / "redis.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.work),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError((self.work / "redis.log").read_text())
            client = redis_asyncio.Redis.from_url(self.url, socket_connect_timeout=0.5)
            try:
                if await client.ping():
                    return
            except (OSError, redis.exceptions.ConnectionError):
                await asyncio.sleep(0.05)
            finally:
                await client.aclose()
        raise RuntimeError("redis-server did not answer PING")

    async def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop it (by default abruptly, as a crash would) and reap it."""
        if self.process is None:
            return
        if self.process.returncode is None:
            os.kill(self.process.pid, sig)
        await self.process.wait()

    def client(self) -> redis_asyncio.Redis:
        return redis_asyncio.Redis.from_url(self.url)


@asynccontextmanager
async def own_redis() -> AsyncIterator[OwnRedis]:
    """A running `redis-server` of this test; killed by PID on exit."""
    work = Path(tempfile.mkdtemp(prefix="scca-redis-"))
    server = OwnRedis(port=free_port(), work=work)
    try:
        await server.start()
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            await server.stop()
        shutil.rmtree(work, ignore_errors=True)
