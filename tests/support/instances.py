"""Server instances as real processes (`python run.py`), for multi-instance tests.

Each instance gets its own port, log file and environment; `running_instances` starts
several at once, waits until each answers `/api/health` with 200, and in its `finally`
kills by PID whatever is still running, so a failing test never leaves a server behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

__all__ = [
    "ROOT",
    "TEST_SECRET",
    "Instance",
    "InstanceFailed",
    "free_port",
    "http_json",
    "instance_env",
    "running_instances",
]

ROOT = Path(__file__).resolve().parents[2]
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
# Only these pass from the test runner's environment to a server: nothing like
# DATABASE_URL or OPENAI_API_KEY may leak in and change what the server does.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")


class InstanceFailed(RuntimeError):
    """A server process did not become healthy, or ended when it should not have."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def instance_env(
    *,
    app_dsn: str,
    data_dir: Path,
    redis_url: str | None = None,
    redis_channel: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of a test server: scripted model, quiet logs, shared secret."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(
        {
            "APP_DATABASE_URL": app_dsn,
            "SECRET_KEY": TEST_SECRET,
            "DATA_DIR": str(data_dir),
            "SCRIPTED_TOKENS": "8",
            "SCRIPTED_DELAY_MS": "2",
            "LOG_LEVEL": "WARNING",
            "SHUTDOWN_GRACE_S": "3",
            "CORS_ORIGINS": "http://localhost:3000",
            "PYTHONUNBUFFERED": "1",
            # Every test registers from 127.0.0.1 (see live_server.test_settings).
            "RATE_REGISTERS_PER_HOUR_PER_IP": "1000000",
        }
    )
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if redis_channel is not None:
        env["REDIS_CHANNEL"] = redis_channel
    env.update(extra)
    return env


async def http_json(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One HTTP request; returns (status, decoded JSON body or text)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as http,
        http.request(method, url, json=body, headers=headers) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text) if text else None
        except ValueError:
            return response.status, text


@dataclass
class Instance:
    """One `run.py` process. `start()` spawns it and waits until it is healthy."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise InstanceFailed(f"{self.name} was never started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def logs(self) -> str:
        """Everything the process wrote (stdout and stderr)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the log."""
        return "\n".join(self.logs().splitlines()[-lines:])

    async def start(self, *, timeout: float = 30.0) -> None:
        """Spawn `python run.py` (appending to the log) and wait for health 200."""
        await self.spawn()
        await self.wait_health(timeout=timeout)

    async def spawn(self) -> None:
        """Start the process (appending to the log); returns at once."""
        if self.running:
            raise InstanceFailed(f"{self.name} is already running")
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "run.py"),
                cwd=str(ROOT),
                env={**self.env, "PORT": str(self.port), "HOST": "127.0.0.1"},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def health(self) -> tuple[int, Any]:
        """`GET /api/health`: (status, body); (0, None) when nothing answers."""
        try:
            return await http_json("GET", self.base_url + "/api/health", timeout=5)
        except (aiohttp.ClientError, TimeoutError):
            return 0, None

    async def wait_health(
        self,
        *,
        status: int = 200,
        timeout: float = 30.0,
        predicate: Callable[[Any], bool] = lambda _: True,
    ) -> Any:
        """Poll `/api/health` until it answers `status` (and `predicate(body)`)."""
        deadline = time.monotonic() + timeout
        last: tuple[int, Any] = (0, None)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.returncode is not None:
                raise InstanceFailed(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            last = await self.health()
            if last[0] == status and predicate(last[1]):
                return last[1]
            await asyncio.sleep(0.1)
        raise InstanceFailed(
            f"{self.name}: /api/health never answered {status} in {timeout}s "
            f"(last: {last}):\n{self.log_tail()}"
        )

    def send_signal(self, sig: signal.Signals) -> None:
        """Signal the process by its PID (only if it still runs)."""
        if self.running:
            os.kill(self.pid, sig)

    async def wait_exit(self, timeout: float) -> int:
        """The exit code; raises TimeoutError if it is still running after `timeout`."""
        if self.process is None:
            raise InstanceFailed(f"{self.name} was never started")
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def kill(self) -> None:
        """SIGKILL and reap."""
        if self.running:
            self.send_signal(signal.SIGKILL)
        if self.process is not None:
            await self.process.wait()

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`; the exit code."""
        if self.process is None:
            return None
        self.send_signal(signal.SIGTERM)
        try:
            return await self.wait_exit(timeout)
        except TimeoutError:
            await self.kill()
            return self.process.returncode


def _instances(
    envs: Sequence[Mapping[str, str]], log_dir: Path, names: Sequence[str] | None
) -> list[Instance]:
    log_dir.mkdir(parents=True, exist_ok=True)
    labels = list(names) if names is not None else [f"app{i + 1}" for i in range(len(envs))]
    return [
        Instance(name=label, port=free_port(), env=dict(env), log_path=log_dir / f"{label}.log")
        for label, env in zip(labels, envs, strict=True)
    ]


@asynccontextmanager
async def running_instances(
    envs: Sequence[Mapping[str, str]],
    log_dir: Path,
    *,
    names: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> AsyncIterator[list[Instance]]:
    """Start one instance per environment, concurrently; yield them once all are healthy.

    On exit every instance still running is killed (SIGKILL, by PID) and reaped; tests
    that care about a graceful stop call `Instance.stop()` themselves.
    """
    started = _instances(envs, log_dir, names)
    try:
        for instance in started:
            await instance.spawn()
        results = await asyncio.gather(
            *(instance.wait_health(timeout=timeout) for instance in started),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        yield started
    except BaseException:
        # pytest shows what a failing test printed: the servers' side of the story.
        for instance in started:
            print(f"--- {instance.name} ({instance.address}) log tail ---\n{instance.log_tail()}")
        raise
    finally:
        for instance in started:
            with contextlib.suppress(ProcessLookupError):
                await instance.kill()
