"""A real server on a real port, in the test's event loop, against a temporary database."""

from __future__ import annotations

import json as json_module
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from node_client import NodeClient
from polling import eventually

from server.app import create_app
from server.appkeys import CONNECTED
from server.config import Settings, load_settings

__all__ = ["LiveServer", "live_server", "test_settings"]

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def test_settings(app_dsn: str, **env: str) -> Settings:
    """Settings as the environment would give them, for a test server."""
    base = {
        "SECRET_KEY": TEST_SECRET,
        "APP_DATABASE_URL": app_dsn,
        "SCRIPTED_TOKENS": "12",
        "SCRIPTED_DELAY_MS": "2",
        "LOG_LEVEL": "WARNING",
        "CORS_ORIGINS": "http://localhost:3000",
        "REDIS_CHANNEL": f"scca-test-{uuid.uuid4().hex[:8]}",
        # Every test's failed logins come from 127.0.0.1 to one shared server: the
        # address's ceiling is tested where a test sets it (test_server_limits_redis).
        "LOGIN_FAILURES_PER_ADDRESS_PER_HOUR": "1000000",
        # Every test registers from 127.0.0.1, and Redis-backed counters outlive a test:
        # tests of the registration limit set their own.
        "RATE_REGISTERS_PER_HOUR_PER_IP": "1000000",
    }
    base.update(env)
    return load_settings(base)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test


@dataclass
class LiveServer:
    app: web.Application
    base_url: str
    http: aiohttp.ClientSession
    settings: Settings

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One REST call, checked as `call_with_headers`; returns (status, body)."""
        status, body, _ = await self.call_with_headers(
            method, path, token=token, json=json, data=data, headers=headers
        )
        return status, body

    async def call_with_headers(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """One REST call; returns (status, body: decoded JSON or text, headers).

        It also checks what every response must satisfy: no body carries a stack trace or
        a driver's name, and an error from `/api` (but the health report) is JSON
        `{error, code?, retryAfter?}`.
        """
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.base_url + path, json=json, data=data, headers=all_headers
        ) as response:
            text = await response.text()
            status = response.status
            content_type = response.content_type
            response_headers = dict(response.headers)
        assert "Traceback" not in text and "asyncpg" not in text, text
        body: Any = text or None
        if content_type == "application/json" and text:
            body = json_module.loads(text)
        # /api/health answers 503 with its report, not an error body.
        if status >= 400 and path.startswith("/api") and path != "/api/health":
            assert content_type == "application/json", (status, content_type, text)
            assert isinstance(body, dict), (status, text)
            assert isinstance(body.get("error"), str) and body["error"], body
            assert set(body) <= {"error", "code", "retryAfter"}, body
            if "code" in body:
                assert isinstance(body["code"], str) and body["code"], body
        return status, body, response_headers

    async def register(
        self, email: str | None = None, password: str = "correct horse battery"
    ) -> dict[str, Any]:
        """A new user; returns `{user, token, expiresAt}`."""
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        status, body = await self.call(
            "POST", "/api/auth/register", json={"email": email, "password": password}
        )
        assert status == 201, body
        return dict(body)

    async def close_socket(self, client: NodeClient) -> None:
        """Disconnect a client and wait until this server has let its socket go."""
        await client.disconnect()
        connected = self.app[CONNECTED]
        await eventually(
            lambda: not len(connected), what="the server to let a disconnected socket go"
        )

    async def create_conversation(self, token: str, **fields: Any) -> str:
        status, body = await self.call("POST", "/api/conversations", token=token, json=fields)
        assert status == 201, body
        return str(body["id"])


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as http:
        try:
            yield LiveServer(
                app=app, base_url=f"http://{host}:{port}", http=http, settings=settings
            )
        finally:
            await runner.cleanup()
