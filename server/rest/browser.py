"""What a browser frontend needs from REST: the session cookies and CORS.

- Login and register set two cookies, always: `scca_session` (the same JWT as the
  bearer token, `HttpOnly`, `SameSite=Lax`, `Secure` in production, path `/`, the JWT's
  lifetime) and `scca_csrf` (the session's CSRF token, readable by the page's script).
  Logout clears both. The session row behind them is the bearer token's, so revoking it
  ends both. A client that uses the bearer token simply ignores the cookies.
- A request authorized by the cookie that changes anything (any method but GET, HEAD,
  OPTIONS) must send the CSRF token in `X-CSRF-Token`: a cross-site form can carry the
  cookie but neither read the token nor set a header (checked in `http.authenticate`).
- CORS for the origins of CORS_ORIGINS (the Socket.IO allowlist), credentials allowed,
  never `*`: the response to an allowed origin names it; a preflight from any other
  origin is refused (403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from protocol.names import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from server.appkeys import SETTINGS
from server.rest.http import error_response
from server.service.accounts import LoginResult

__all__ = [
    "clear_session_cookies",
    "cors_headers",
    "cors_preflight_middleware",
    "set_session_cookies",
]

_ALLOWED_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
_ALLOWED_HEADERS = f"Authorization, Content-Type, {CSRF_HEADER}, Last-Event-ID"
_EXPOSED_HEADERS = "Retry-After, WWW-Authenticate"
_PREFLIGHT_MAX_AGE_S = "600"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def set_session_cookies(
    request: web.Request, response: web.StreamResponse, result: LoginResult
) -> None:
    settings = request.app[SETTINGS]
    for name, value, script_may_read in (
        (SESSION_COOKIE, result.token, False),
        (CSRF_COOKIE, result.csrf_token, True),
    ):
        response.set_cookie(
            name,
            value,
            path="/",
            max_age=settings.access_token_ttl_s,
            samesite="Lax",
            secure=settings.production,
            httponly=not script_may_read,
        )


def clear_session_cookies(response: web.StreamResponse) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.del_cookie(name, path="/")


def _allowed(request: web.Request, origin: str) -> bool:
    return origin in request.app[SETTINGS].cors_origins


def _cors_headers(response: web.StreamResponse, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
    response.headers.add("Vary", "Origin")


@web.middleware
async def cors_preflight_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Answer CORS preflights for `/api` (the Socket.IO path has engine.io's own, with
    the same origins)."""
    preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    if not preflight or not request.path.startswith("/api"):
        return await handler(request)
    origin = request.headers.get("Origin")
    if origin is None or not _allowed(request, origin):
        return error_response(403, "Origin not allowed", "FORBIDDEN")
    response = web.Response(status=204)
    _cors_headers(response, origin)
    response.headers["Access-Control-Allow-Methods"] = _ALLOWED_METHODS
    response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = _PREFLIGHT_MAX_AGE_S
    return response


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every `/api` response to an allowed origin names it,
    streamed ones (SSE) and errors included."""
    origin = request.headers.get("Origin")
    if origin is None or not request.path.startswith("/api"):
        return
    if _allowed(request, origin) and "Access-Control-Allow-Origin" not in response.headers:
        _cors_headers(response, origin)
