"""A throwaway PostgreSQL cluster (Debian's binaries), so a test may restart it.

The machine's cluster on 5432 serves every other test and stays up. This one lives
in a temporary folder, listens on 127.0.0.1 on a free port with trust
authentication, and runs as the `postgres` system user when the tests run as root
(PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from instances import free_port

__all__ = ["OwnPostgres", "own_postgres"]


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major, reverse=True)
    if found:
        return Path(found[0]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("PostgreSQL server binaries (pg_ctl, initdb) are required")
    return Path(pg_ctl).parent


def _major(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


@dataclass
class OwnPostgres:
    """A cluster in `data`, on `port`; `stop()` and `start()` restart it for real."""

    port: int
    data: Path
    bin_dir: Path
    run_as: str | None

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, *args: str) -> None:
        command = list(args)
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {out.decode(errors='replace')}")

    async def init(self) -> None:
        await self._run(
            str(self.bin_dir / "initdb"),
            "-D", str(self.data / "pgdata"),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )  # fmt: skip

    async def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        await self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D", str(self.data / "pgdata"),
            "-l", str(self.data / "postgres.log"),
            "-o", options,
            "-w", "-t", "30",
            "start",
        )  # fmt: skip

    async def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects every client and shuts down cleanly; `immediate` is a crash."""
        await self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D", str(self.data / "pgdata"),
            "-m", mode,
            "-w", "-t", "30",
            "stop",
        )  # fmt: skip

    def log(self) -> str:
        path = self.data / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def postmaster_pid(self) -> int | None:
        path = self.data / "pgdata" / "postmaster.pid"
        try:
            return int(path.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None


@asynccontextmanager
async def own_postgres() -> AsyncIterator[OwnPostgres]:
    """A new cluster, started; stopped (or its postmaster killed by PID) and removed on exit."""
    run_as = "postgres" if os.geteuid() == 0 else None
    data = Path(tempfile.mkdtemp(prefix="scca-pg-"))
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        os.chown(data, user.pw_uid, user.pw_gid)
    cluster = OwnPostgres(port=free_port(), data=data, bin_dir=_bin_dir(), run_as=run_as)
    try:
        await cluster.init()
        await cluster.start()
        yield cluster
    finally:
        try:
            await cluster.stop("immediate")
        except RuntimeError:
            pid = cluster.postmaster_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
        shutil.rmtree(data, ignore_errors=True)
