"""Headers every HTTP response carries (REST, docs, health, metrics, the socket path).

- `Server` names the product, not its versions (aiohttp would write its own and
  Python's exact versions, a gift to anyone matching known vulnerabilities);
- `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and a CSP with
  `frame-ancestors 'none'` (nothing here is meant to be framed or sniffed),
  `Referrer-Policy: no-referrer`;
- `Cache-Control: no-store` on `/api` answers unless a route set its own: they are
  per-user (conversations, exports, sessions), and no cache may keep them.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["SERVER_NAME", "security_headers"]

SERVER_NAME = "scca"
_FIXED = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: runs before aiohttp writes its defaults (which it only sets
    where nothing is set yet)."""
    response.headers["Server"] = SERVER_NAME
    for name, value in _FIXED.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api"):
        response.headers.setdefault("Cache-Control", "no-store")
