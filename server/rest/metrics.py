"""`GET /metrics` in Prometheus text format, behind a bearer token when one is configured.

- `METRICS_TOKEN` set: the scrape must send `Authorization: Bearer <token>` (compared in
  constant time), else 401.
- No token in production (`APP_ENV=production`): 404, as if there were no such route; the
  figures (connected sockets, errors by code, refusals) are for the operator only.
- No token in development: open, as before.

The database and Redis round trips it reports are measured at most every few seconds
(`Metrics.measure_backends`), so scraping never costs a database query per request.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from protocol.names import ErrorCode
from server.appkeys import SETTINGS
from server.config import Settings
from server.rest.http import error_response
from server.service.metrics import Metrics, Probe

__all__ = ["ScrapeAccess", "metrics_handler", "scrape_access"]


class ScrapeAccess(enum.Enum):
    SERVE = "serve"
    UNAUTHORIZED = "unauthorized"  # 401: no token, or the wrong one
    OFF = "off"  # 404: production without METRICS_TOKEN


def scrape_access(settings: Settings, authorization: str | None) -> ScrapeAccess:
    """Whether a scrape with this `Authorization` header is served."""
    token = settings.metrics_token
    if token is None:
        return ScrapeAccess.OFF if settings.production else ScrapeAccess.SERVE
    scheme, _, presented = (authorization or "").partition(" ")
    # compare_digest: the time taken says nothing about how much of the token matched.
    if scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    ):
        return ScrapeAccess.SERVE
    return ScrapeAccess.UNAUTHORIZED


def metrics_handler(
    metrics: Metrics,
    database_probe: Probe,
    redis_probe: Probe | None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        access = scrape_access(request.app[SETTINGS], request.headers.get("Authorization"))
        if access is ScrapeAccess.OFF:
            raise web.HTTPNotFound()
        if access is ScrapeAccess.UNAUTHORIZED:
            response = error_response(401, "Metrics need the bearer token", ErrorCode.UNAUTHORIZED)
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        await metrics.measure_backends(database_probe, redis_probe)
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle
