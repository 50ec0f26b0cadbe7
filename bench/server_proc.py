"""The chat server as a subprocess on a free 127.0.0.1 port, against a temporary database.

`started_server()` creates a throwaway database (tests/support/pg.py), starts
``.venv/bin/python run.py`` (through `probed_run.py` when an emit log is wanted) with a
raised open-file limit, waits for `/api/health`, and always stops the process it started
(SIGTERM, then SIGKILL) and drops the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench import procstat

__all__ = ["ServerError", "ServerProcess", "free_port", "started_server"]

ROOT = Path(__file__).resolve().parents[1]
_RATE_LIMITS = (
    "RATE_SENDS_PER_MIN",
    "RATE_EDITS_PER_MIN",
    "RATE_JOINS_PER_MIN",
    "RATE_EVENTS_PER_MIN",
    "RATE_CONNECTS_PER_MIN_PER_IP",
    "RATE_CREATES_PER_MIN",
    "RATE_KEY_ROTATIONS_PER_MIN",
    "RATE_EXPORTS_PER_MIN",
    "RATE_REGISTERS_PER_HOUR_PER_IP",
)


class ServerError(RuntimeError):
    """The server did not start (the message carries the tail of its log)."""


@dataclass(frozen=True, slots=True)
class ServerProcess:
    url: str
    pid: int
    database: str
    log_path: Path
    emit_log: Path | None


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def _wait_healthy(
    url: str, proc: asyncio.subprocess.Process, log: Path, within_s: float
) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise ServerError(f"server exited with {proc.returncode}:\n{_tail(log)}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url + "/api/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise ServerError(f"server not healthy within {within_s:.0f} s:\n{_tail(log)}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM our own child (by its PID), SIGKILL it if it lingers."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 15)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def _tests_support() -> None:
    support = str(ROOT / "tests" / "support")
    if support not in sys.path:
        sys.path.insert(0, support)


@asynccontextmanager
async def started_server(
    env: Mapping[str, str] | None = None,
    *,
    emit_probe: bool = False,
    script: Path | None = None,
    startup_timeout: float = 60,
) -> AsyncIterator[ServerProcess]:
    """Run the server until the block exits. `env` overrides the benchmark defaults;
    `script` replaces run.py (e.g. a wrapper that instruments the server)."""
    _tests_support()
    from pg import temporary_database

    async with temporary_database() as db:
        with tempfile.TemporaryDirectory(prefix="scca-bench-") as scratch:
            folder = Path(scratch)
            port = free_port()
            emit_log = folder / "emits.log" if emit_probe else None
            settings = {
                "APP_DATABASE_URL": db.app_dsn,
                "SECRET_KEY": secrets.token_urlsafe(48),
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "LOG_LEVEL": "WARNING",
                "MAX_SOCKETS_PER_USER": "1000",
                "TOKEN_COALESCE_MS": "0",
                "SHUTDOWN_GRACE_S": "2",
                "DATA_DIR": str(folder / "data"),
                # A load test is a flood by design: lift the per-user and per-IP limits.
                **{name: "1000000" for name in _RATE_LIMITS},
            }
            settings.update(env or {})
            child_env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "REDIS_URL", "APP_ENV")
            }
            child_env.update(settings)
            if emit_log is not None:
                child_env["BENCH_EMIT_LOG"] = str(emit_log)
            if script is None:
                script = ROOT / ("bench/probed_run.py" if emit_probe else "run.py")
            log_path = folder / "server.log"
            with log_path.open("wb") as log:
                proc = await asyncio.create_subprocess_exec(
                    _python(),
                    str(script),
                    cwd=ROOT,
                    env=child_env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=procstat.raise_nofile_limit,
                )
            try:
                url = f"http://127.0.0.1:{port}"
                await _wait_healthy(url, proc, log_path, startup_timeout)
                yield ServerProcess(
                    url=url, pid=proc.pid, database=db.name, log_path=log_path, emit_log=emit_log
                )
            finally:
                await _stop(proc)
