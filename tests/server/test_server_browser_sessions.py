"""Browser frontends: the session cookie beside the bearer token, CSRF, CORS on REST.

Requests are made as a browser makes them (its Origin, its cookie jar, a relative URL
resolved against the server, no Authorization header), with aiohttp's client.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest
from live_server import LiveServer, live_server, test_settings
from node_client import NodeClients
from pg import TempDatabase
from polling import eventually

ORIGIN = "http://localhost:3000"  # CORS_ORIGINS of the test settings
EVIL = "https://evil.example"
PASSWORD = "correct horse battery"


@asynccontextmanager
async def browser(server: LiveServer) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser tab of the frontend at ORIGIN: a cookie jar (which keeps cookies for an
    IP host only when told to) and the Origin header browsers add."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(
        base_url=server.base_url, cookie_jar=jar, headers={"Origin": ORIGIN}
    ) as session:
        yield session


async def _sign_up(tab: aiohttp.ClientSession) -> dict[str, Any]:
    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    async with tab.post("/api/auth/register", json={"email": email, "password": PASSWORD}) as r:
        assert r.status == 201, await r.text()
        body: dict[str, Any] = await r.json()
        body["set_cookie"] = r.headers.getall("Set-Cookie")
    return body


def _csrf(tab: aiohttp.ClientSession) -> str:
    return next(c.value for c in tab.cookie_jar if c.key == "scca_csrf")


async def test_register_and_login_set_the_session_cookies(server: LiveServer) -> None:
    async with browser(server) as tab:
        body = await _sign_up(tab)
        cookies = {c.split("=", 1)[0]: c for c in body["set_cookie"]}
        session, csrf = cookies["scca_session"], cookies["scca_csrf"]
        parsed = SimpleCookie()
        parsed.load(session)
        assert parsed["scca_session"].value == body["token"]
        for header in (session, csrf):
            assert "Path=/" in header and "SameSite=Lax" in header
            assert f"Max-Age={server.settings.access_token_ttl_s}" in header
            assert "Secure" not in header  # development; production: see below
        assert "HttpOnly" in session and "HttpOnly" not in csrf
        assert _csrf(tab) == body["csrfToken"]
        email = body["user"]["email"]
        async with tab.post("/api/auth/login", json={"email": email, "password": PASSWORD}) as r:
            assert r.status == 200
            login = await r.json()
        assert login["csrfToken"] != body["csrfToken"]  # a new session, its own token
        assert next(c.value for c in tab.cookie_jar if c.key == "scca_session") == login["token"]


async def test_production_cookies_are_secure(server_db: TempDatabase) -> None:
    settings = test_settings(server_db.app_dsn, APP_ENV="production")
    async with live_server(settings) as live, browser(live) as tab:
        body = await _sign_up(tab)
        assert all("Secure" in header for header in body["set_cookie"])


async def test_the_seed_clients_fetch_with_only_the_cookie(server: LiveServer) -> None:
    """seed 000: fetch(`/api/conversations/${id}?from=1&to=50`), no header at all."""
    async with browser(server) as tab:
        account = await _sign_up(tab)
        conversation_id = await server.create_conversation(account["token"], title="trip")
        async with tab.get(f"/api/conversations/{conversation_id}?from=1&to=50") as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["title"] == "trip"
            assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert r.headers["Access-Control-Allow-Credentials"] == "true"
            assert "Origin" in r.headers.getall("Vary")
        # the same request from a page of another origin: served (a GET changes nothing)
        # but not readable by that page: no CORS headers
        async with tab.get(
            f"/api/conversations/{conversation_id}", headers={"Origin": EVIL}
        ) as r:
            assert "Access-Control-Allow-Origin" not in r.headers


async def test_a_preflight_is_answered_for_allowed_origins_only(server: LiveServer) -> None:
    async with aiohttp.ClientSession() as http:
        request = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-csrf-token",
        }
        url = f"{server.base_url}/api/conversations"
        async with http.options(url, headers={"Origin": ORIGIN, **request}) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert r.headers["Access-Control-Allow-Credentials"] == "true"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            allowed = r.headers["Access-Control-Allow-Headers"].lower()
            assert "content-type" in allowed and "x-csrf-token" in allowed
        async with http.options(url, headers={"Origin": EVIL, **request}) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
            assert (await r.json())["code"] == "FORBIDDEN"


async def test_a_cross_site_form_post_with_the_cookie_is_refused(server: LiveServer) -> None:
    async with browser(server) as tab:
        account = await _sign_up(tab)
        form = {"title": "planted"}
        async with tab.post("/api/conversations", data=form, headers={"Origin": EVIL}) as r:
            assert r.status == 403
            body = await r.json()
            assert body["code"] == "FORBIDDEN" and "X-CSRF-Token" in body["error"]
        # JSON with the cookie but no token, or another session's token: refused too
        async with browser(server) as other:
            foreign = (await _sign_up(other))["csrfToken"]
        for token in (None, foreign, "x" * 43):
            headers = {} if token is None else {"X-CSRF-Token": token}
            async with tab.post("/api/conversations", json=form, headers=headers) as r:
                assert r.status == 403, token
        status, listed = await server.call("GET", "/api/conversations", token=account["token"])
        assert status == 200 and listed["conversations"] == []
        # with the session's own token the frontend may change things
        async with tab.post(
            "/api/conversations", json={"title": "mine"}, headers={"X-CSRF-Token": _csrf(tab)}
        ) as r:
            assert r.status == 201, await r.text()
            assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        # a bearer client needs no CSRF token
        status, _ = await server.call(
            "POST", "/api/conversations", token=account["token"], json={"title": "script"}
        )
        assert status == 201


async def test_an_event_source_request_with_only_the_cookie_is_authenticated(
    server: LiveServer,
) -> None:
    async with browser(server) as tab:
        await _sign_up(tab)
        async with tab.get("/api/auth/me", headers={"Accept": "text/event-stream"}) as r:
            assert r.status == 200
        async with (
            aiohttp.ClientSession(base_url=server.base_url) as stranger,
            stranger.get("/api/auth/me") as r,
        ):
            assert r.status == 401


async def test_logout_in_one_tab_ends_the_cookie_session_everywhere(
    server: LiveServer, node: NodeClients
) -> None:
    async with browser(server) as first, browser(server) as second:
        await _sign_up(first)
        for cookie in first.cookie_jar:  # the same browser: both tabs share the cookies
            second.cookie_jar.update_cookies({cookie.key: cookie.value})
        session = next(c.value for c in first.cookie_jar if c.key == "scca_session")
        socket = await node.connect(
            server.base_url, extra_headers={"cookie": f"scca_session={session}", "origin": ORIGIN}
        )
        assert socket.connected.is_set(), socket.connect_error
        async with second.get("/api/auth/me") as r:
            assert r.status == 200
        async with first.post("/api/auth/logout", headers={"X-CSRF-Token": _csrf(first)}) as r:
            assert r.status == 204
            assert any(
                "scca_session=" in h and "Max-Age=0" in h for h in r.headers.getall("Set-Cookie")
            )
        async with second.get("/api/auth/me") as r:
            assert r.status == 401
        await eventually(lambda: not socket.connected.is_set(), timeout=5, what="disconnect")


@pytest.mark.parametrize(("origin", "connects"), [(ORIGIN, True), (EVIL, False)])
async def test_the_socket_handshake_takes_the_cookie_from_allowed_origins(
    server: LiveServer, node: NodeClients, origin: str, connects: bool
) -> None:
    async with browser(server) as tab:
        body = await _sign_up(tab)
    socket = await node.connect(
        server.base_url,
        extra_headers={"cookie": f"scca_session={body['token']}", "origin": origin},
        transports=["polling"],
    )
    assert socket.connected.is_set() is connects, socket.connect_error
    if connects:
        await server.close_socket(socket)
