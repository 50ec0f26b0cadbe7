"""nginx from Debian's packages in front of test instances, configured by deploy/nginx.conf.

The deployment file is an http-context template; `render_site` fills in its
placeholders the way the nginx Docker image's envsubst step does, and `running_nginx`
wraps it in a main configuration of its own (pid, temp paths, an access log that
names the upstream of every request) and runs it in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from instances import ROOT, free_port

__all__ = ["TEMPLATE", "AccessLine", "Nginx", "render_site", "running_nginx"]

TEMPLATE = ROOT / "deploy" / "nginx.conf"
_PLACEHOLDER = re.compile(r"\$\{(SCCA_[A-Z0-9_]+)\}")
_LOG_FORMAT = (
    "'$request_method $uri $status \"$upstream_addr\" "
    "node=$cookie_scca_node transport=$arg_transport sid=$arg_sid'"
)
_ACCESS = re.compile(
    r'^(?P<method>\S+) (?P<uri>\S+) (?P<status>\d+) "(?P<upstream>[^"]*)" '
    r"node=(?P<node>\S*) transport=(?P<transport>\S*) sid=(?P<sid>\S*)$"
)


def render_site(listen: str, apps: Sequence[str]) -> str:
    """deploy/nginx.conf with `${SCCA_LISTEN}` and `${SCCA_APP_n}` filled in."""
    values = {"SCCA_LISTEN": listen}
    values.update({f"SCCA_APP_{i + 1}": app for i, app in enumerate(apps)})
    text = TEMPLATE.read_text(encoding="utf-8")
    # Only the lines that configure nginx: the header comment names the placeholders.
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    missing = sorted({name for name in _PLACEHOLDER.findall(body) if name not in values})
    if missing:
        raise ValueError(f"deploy/nginx.conf needs values for {missing}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], body)


def _main_config(work: Path) -> str:
    temp = " ".join(
        f"{kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
daemon off;
worker_processes 1;
pid {work / "nginx.pid"};
error_log {work / "error.log"} warn;
events {{ worker_connections 8192; }}
http {{
    {temp}
    log_format upstreams {_LOG_FORMAT};
    access_log {work / "access.log"} upstreams;
    include {work / "site.conf"};
}}
"""


@dataclass(frozen=True, slots=True)
class AccessLine:
    """One request nginx proxied, as its access log recorded it."""

    method: str
    uri: str
    status: int
    upstream: str
    node: str
    transport: str
    sid: str


@dataclass
class Nginx:
    """A running nginx; `base_url` is where clients connect."""

    port: int
    work: Path
    process: asyncio.subprocess.Process

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[AccessLine]:
        lines: list[AccessLine] = []
        path = self.work / "access.log"
        if not path.exists():
            return lines
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _ACCESS.match(raw)
            if match is not None:
                fields = match.groupdict()
                lines.append(AccessLine(**{**fields, "status": int(fields["status"])}))  # type: ignore[arg-type]
        return lines

    def error_log(self) -> str:
        path = self.work / "error.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _nginx_binary() -> str:
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    if binary is None:
        raise RuntimeError("nginx is required: `apt-get install nginx-light` (bootstrap.sh --test)")
    return binary


async def _wait_listening(port: int, process: asyncio.subprocess.Process, work: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"nginx exited: {(work / 'error.log').read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("nginx did not start listening")


def _write_config(port: int, apps: Sequence[str]) -> Path:
    # Worker processes drop to an unprivileged user: the folder must be reachable.
    work = Path(tempfile.mkdtemp(prefix="scca-nginx-"))
    work.chmod(0o755)
    (work / "site.conf").write_text(render_site(f"127.0.0.1:{port}", apps), encoding="utf-8")
    (work / "nginx.conf").write_text(_main_config(work), encoding="utf-8")
    return work


@asynccontextmanager
async def running_nginx(apps: Sequence[str]) -> AsyncIterator[Nginx]:
    """nginx on a free port in front of `apps` (host:port each); stopped by PID on exit."""
    binary = _nginx_binary()
    port = free_port()
    work = _write_config(port, apps)
    conf = ["-p", str(work), "-c", str(work / "nginx.conf")]
    check = await asyncio.create_subprocess_exec(
        binary, "-t", "-q", *conf, stderr=asyncio.subprocess.PIPE
    )
    _, err = await check.communicate()
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed: {err.decode(errors='replace')}")
    process = await asyncio.create_subprocess_exec(
        binary, *conf, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await _wait_listening(port, process, work)
        yield Nginx(port=port, work=work, process=process)
    finally:
        if process.returncode is None:
            # QUIT would wait for open connections; this is a test proxy.
            os.kill(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                os.kill(process.pid, signal.SIGKILL)
                await process.wait()
        shutil.rmtree(work, ignore_errors=True)
