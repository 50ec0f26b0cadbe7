"""What every response and every log line holds, whatever the client sent."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import aiohttp
from instances import instance_env, running_instances
from live_server import LiveServer
from node_client import NodeClients
from pg import TempDatabase

from server.logs import OneLineFormatter

FORGED = "2026-12-02T00:00:00 INFO server: user admin logged in"


async def test_every_response_names_no_versions_and_refuses_framing(server: LiveServer) -> None:
    account = await server.register()
    conversation_id = await server.create_conversation(account["token"])
    auth = {"Authorization": f"Bearer {account['token']}"}
    requests = [
        ("/api/health", {}),
        (f"/api/conversations/{conversation_id}", auth),
        (f"/api/conversations/{'0' * 8}-0000-4000-8000-{'0' * 12}", auth),  # 404
        ("/api/conversations", {}),  # 401
        ("/api/openapi.json", {}),
        ("/metrics", {}),
        ("/api/socket/?EIO=4&transport=polling", {}),
    ]
    async with aiohttp.ClientSession(base_url=server.base_url) as http:
        for path, headers in requests:
            async with http.get(path, headers=headers) as r:
                assert r.headers["Server"] == "scca", (path, r.headers["Server"])
                assert r.headers["X-Content-Type-Options"] == "nosniff", path
                assert r.headers["X-Frame-Options"] == "DENY", path
                assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path
                if path.startswith("/api/conversations"):
                    assert r.headers["Cache-Control"] == "no-store", path


def test_a_client_string_cannot_forge_a_log_line() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("test.one-line")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("refused event=%s", f"x\n{FORGED}\r\x1b[2J")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("with a traceback %s", "a\nb")
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"WARNING test.one-line: refused event=x\\n{FORGED}\\r\\x1b[2J"
    assert lines[1] == "ERROR test.one-line: with a traceback a\\nb"
    assert lines[2] == "Traceback (most recent call last):"  # tracebacks stay readable
    assert not any(line.startswith(FORGED) for line in lines)


async def test_an_event_name_with_a_newline_writes_one_escaped_line(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    """The server's own log (a real process at LOG_LEVEL=INFO), as an operator reads it."""
    env = instance_env(app_dsn=server_db.app_dsn, data_dir=tmp_path / "data", LOG_LEVEL="INFO")
    async with running_instances([env], tmp_path / "logs") as [app]:
        async with aiohttp.ClientSession() as http:
            email = f"forger-{tmp_path.name}@example.com"
            body = {"email": email, "password": "correct horse battery"}
            async with http.post(f"{app.base_url}/api/auth/register", json=body) as r:
                token = (await r.json())["token"]
        client = await node.connect(app.base_url, token=token)
        [ack] = await client.emit(f"x\n{FORGED}")
        assert ack["success"] is False and ack["code"] == "UNKNOWN_EVENT"
        await client.disconnect()
        lines = app.logs().splitlines()
        assert not any(line.startswith(FORGED) for line in lines), lines
        assert any(f"x\\n{FORGED}" in line for line in lines), lines
