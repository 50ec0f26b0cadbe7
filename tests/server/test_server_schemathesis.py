"""schemathesis against /api/openapi.json on a live server, authenticated: no 5xx, and no
response that contradicts the schema."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from live_server import LiveServer

ST = Path(sys.executable).parent / "st"


async def test_the_api_matches_its_openapi_document(server: LiveServer, tmp_path: Path) -> None:
    assert ST.exists() or shutil.which("st"), "schemathesis is part of the test extras"
    account = await server.register()
    await server.create_conversation(account["token"], title="fuzz target")
    proc = await asyncio.create_subprocess_exec(
        str(ST if ST.exists() else "st"),
        "run",
        f"{server.base_url}/api/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance,status_code_conformance,"
        "content_type_conformance",
        "--header",
        f"Authorization: Bearer {account['token']}",
        # these two end the session the run is authenticated with
        "--exclude-path",
        "/api/auth/logout",
        "--exclude-path",
        "/api/auth/password",
        "--phases",
        "examples,fuzzing",
        "--max-examples",
        "40",
        "--seed",
        "20261124",
        "--workers",
        "1",
        "--warnings",
        "off",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
