"""REST plumbing: JSON bodies in and out, the error middleware, bearer authentication."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from aiohttp import web
from msgspec import UNSET

from protocol import decode
from protocol.exceptions import ProtocolError
from protocol.names import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from protocol.rest import ErrorBody
from server.appkeys import ACCOUNTS, METRICS, SETTINGS
from server.service import exceptions as errors
from server.service.client_address import client_address
from server.service.error_mapping import to_service_error
from server.service.identity import Identity

__all__ = [
    "authenticate",
    "client_ip",
    "error_middleware",
    "error_response",
    "json_response",
    "query_int",
    "read_json",
]

T = TypeVar("T")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOG = logging.getLogger(__name__)


def json_response(payload: msgspec.Struct, *, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(payload), status=status, content_type="application/json"
    )


def error_response(
    status: int, message: str, code: str | None = None, retry_after: float | None = None
) -> web.Response:
    body = ErrorBody(
        error=message,
        code=code if code else UNSET,
        retry_after=retry_after if retry_after is not None else UNSET,
    )
    response = json_response(body, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


async def read_json(request: web.Request, type_: type[T]) -> T:
    """Decode the request body into `type_`; 400 with a field-naming message otherwise."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge() from None
    if not raw:
        raise errors.InvalidInput("body: expected a JSON object")
    try:
        return decode.decode_json(raw, type_)
    except ProtocolError as exc:
        raise errors.InvalidInput(exc.message) from None


def query_int(
    request: web.Request, name: str, default: int | None, *, low: int, high: int
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidInput(f"{name}: expected an integer") from None
    if not low <= value <= high:
        raise errors.InvalidInput(f"{name}: expected an integer between {low} and {high}")
    return value


def client_ip(request: web.Request) -> str | None:
    """The caller's address (`server.service.client_address`), by this app's settings."""
    return client_address(
        request.remote,
        request.headers.get("X-Forwarded-For"),
        trust_proxy=request.app[SETTINGS].trust_proxy,
    )


async def authenticate(request: web.Request) -> Identity:
    """The caller: by `Authorization: Bearer <token>`, else by the session cookie (a
    browser). A cookie authorizes a change (any method but GET, HEAD, OPTIONS) only with
    the session's CSRF token in `X-CSRF-Token`: a cross-site form sends the cookie, but
    can neither read the token nor set a header."""
    accounts = request.app[ACCOUNTS]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthorized("Authentication required")
        return await accounts.authenticate(token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise errors.Unauthorized("Authentication required")
    identity = await accounts.authenticate(cookie)
    if request.method not in _SAFE_METHODS and not accounts.csrf_valid(
        identity, request.headers.get(CSRF_HEADER)
    ):
        raise errors.Forbidden(
            f"CSRF token missing or wrong: send the {CSRF_COOKIE} cookie's value "
            f"in {CSRF_HEADER}"
        )
    return identity


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes `{error, code}` with its status; a 500 never carries internals."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api"):
            raise
        if exc.status == 413:
            return error_response(413, "Request body too large", "LIMIT_EXCEEDED")
        return error_response(exc.status, exc.reason)
    except Exception as exc:
        error = to_service_error(exc)
        if METRICS in request.app:
            request.app[METRICS].error(error.code, "rest")
        retry = error.retry_after
        if error.status == 401:
            response = error_response(401, error.message, error.code)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return error_response(error.status, error.message, error.code, retry)
