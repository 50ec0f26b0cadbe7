"""Undecodable frames on the socket path, sent by a raw client to a real server process:
each is answered by closing its connection, logged in exactly one line (no traceback),
and counted in /metrics; everybody else is served as before.

Left to the libraries, each of these frames wrote a 10-to-28-line traceback and got no
answer (an empty or garbage Engine.IO frame even got an HTTP 500 written into the open
websocket).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from instances import Instance, instance_env, running_instances
from node_client import NodeClients
from pg import TempDatabase

ORIGIN = {"Origin": "http://localhost:3000"}
PROTOCOL_ERROR = 1002

# (name, frame, the fault logged and counted, connect the namespace first?)
FRAMES: list[tuple[str, str | bytes, str, bool]] = [
    ("deep JSON", "42" + "[" * 100_000 + "]" * 100_000, "too_deep", True),
    ("huge integer", '42["ping",' + "9" * 5_000 + "]", "huge_number", True),
    ("bad JSON", '42["ping",', "bad_json", True),
    ("unknown Engine.IO type", "9hello", "unknown_type", True),
    ("unknown Socket.IO type", '49["ping"]', "unknown_type", True),
    ("CONNECT_ERROR from a client", '44{"message":"no"}', "unexpected", True),
    ("Engine.IO NOOP from a client", "6", "unexpected", True),
    ("empty text frame", "", "empty", True),
    ("garbage text", "\x00\xff\ufffd garbage", "unknown_type", True),
    ("garbage bytes", b"\x00\x01\x02garbage", "malformed", True),
    ("bad base64", "bA", "malformed", True),
    ("empty Socket.IO packet", "4", "empty", True),
    ("binary event before connecting", '451-["ping",{"_placeholder":true,"num":0}]',
     "unexpected", False),
    ("stray binary attachment", b"\x01\x02", "malformed", True),
]


async def _register(app: Instance, http: aiohttp.ClientSession) -> str:
    body = {"email": f"frames-{id(http)}-{app.port}@example.com", "password": "correct horse"}
    async with http.post(f"{app.base_url}/api/auth/register", json=body) as response:
        assert response.status == 201
        return str((await response.json())["token"])


async def _send_bad_frame(
    app: Instance, http: aiohttp.ClientSession, token: str, frame: str | bytes, connect: bool
) -> tuple[int | None, list[str]]:
    """Open a websocket session (and its namespace), send `frame`: the close code and
    any text frames received after it."""
    url = f"ws://127.0.0.1:{app.port}/api/socket/?EIO=4&transport=websocket"
    after: list[str] = []
    async with http.ws_connect(url, headers=ORIGIN) as ws:
        assert (await asyncio.wait_for(ws.receive_str(), 5)).startswith("0{")
        if connect:
            await ws.send_str("40" + json.dumps({"token": token}))
            assert (await asyncio.wait_for(ws.receive_str(), 5)).startswith("40{")
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        while True:
            message = await asyncio.wait_for(ws.receive(), 10)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            after.append(message.data)
        return ws.close_code, after


async def _metrics(app: Instance, http: aiohttp.ClientSession) -> dict[str, float]:
    async with http.get(f"{app.base_url}/metrics") as response:
        text = await response.text()
    prefix = "scca_undecodable_frames_total{"
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('"')[1]] = float(value)
    return found


async def test_each_undecodable_frame_closes_its_connection_in_one_log_line(
    server_db: TempDatabase, tmp_path: Path, node: NodeClients
) -> None:
    env = instance_env(app_dsn=server_db.app_dsn, data_dir=tmp_path / "data", LOG_LEVEL="INFO")
    async with (
        running_instances([env], tmp_path / "logs") as [app],
        aiohttp.ClientSession() as http,
    ):
        token = await _register(app, http)
        bystander = await node.connect(app.base_url, token=token)
        assert bystander.connected.is_set(), bystander.connect_error
        before = len(app.logs().splitlines())
        expected: dict[str, int] = {}
        for name, frame, fault, connect in FRAMES:
            code, after = await _send_bad_frame(app, http, token, frame, connect)
            assert code == PROTOCOL_ERROR, (name, code, after)
            assert after == [], (name, after)
            expected[fault] = expected.get(fault, 0) + 1

        logged = app.logs().splitlines()[before:]
        assert "Traceback" not in "\n".join(logged), "\n".join(logged)
        assert len(logged) == len(FRAMES), "\n".join(logged)
        faults = [line.rsplit(": ", 1)[1].split(" ")[0] for line in logged]
        assert sorted(faults) == sorted(fault for _, _, fault, _ in FRAMES), logged
        assert all("undecodable frame" in line and "WARNING" in line for line in logged)
        assert await _metrics(app, http) == expected

        [pong] = await bystander.emit("ping")
        assert "timestamp" in pong
        await bystander.disconnect()


async def _poll(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, headers=ORIGIN) as response:
        return response.status, await response.text()


async def test_an_undecodable_packet_over_long_polling_closes_the_session(
    server_db: TempDatabase, tmp_path: Path
) -> None:
    env = instance_env(app_dsn=server_db.app_dsn, data_dir=tmp_path / "data", LOG_LEVEL="INFO")
    async with (
        running_instances([env], tmp_path / "logs") as [app],
        aiohttp.ClientSession() as http,
    ):
        token = await _register(app, http)
        base = f"{app.base_url}/api/socket/?EIO=4&transport=polling"
        status, opening = await _poll(http, base)
        assert status == 200 and opening.startswith("0{")
        url = f"{base}&sid={json.loads(opening[1:])['sid']}"
        async with http.post(url, data="40" + json.dumps({"token": token}), headers=ORIGIN) as r:
            assert r.status == 200
        status, connected = await _poll(http, url)
        assert connected.startswith("40{"), connected
        before = len(app.logs().splitlines())

        waiting: asyncio.Task[tuple[int, Any]] = asyncio.create_task(_poll(http, url))
        async with http.post(url, data='42["ping",' + "9" * 5_000 + "]", headers=ORIGIN) as r:
            assert r.status == 200
        # The poll in flight gets the CLOSE packet, or, had it not reached the server yet,
        # finds the session gone; the next one finds it gone.
        status, answer = await asyncio.wait_for(waiting, 10)
        assert (status, answer) == (200, "1") or status == 400, (status, answer)
        assert (await _poll(http, url))[0] == 400
        logged = app.logs().splitlines()[before:]
        assert "Traceback" not in "\n".join(logged), "\n".join(logged)
        ours = [line for line in logged if "undecodable frame" in line]
        assert len(ours) == 1 and "polling" in ours[0] and "huge_number" in ours[0], logged
        # Polls of the closed session are engine.io's to answer (400): it notes the first
        # such request of the process in a line of its own, and later ones at INFO.
        others = [line for line in logged if line not in ours]
        assert all("Session is disconnected" in x or "Invalid session" in x for x in others)
        assert await _metrics(app, http) == {"huge_number": 1.0}
