"""Which new socket connections are let in, by the caller's address.

Every new Engine.IO session, on every path the socket server serves, spends one unit of
its address's connection budget (`AddressLimiter`, `RATE_CONNECTS_PER_MIN_PER_IP`) when
its handshake arrives, before engine.io allocates anything for it. A Socket.IO connect is
then free for the session's first connect (its handshake paid) and counted for any
further one on the same session (connect, disconnect, connect again: each asks the
database to authenticate a token).

Past the budget the check raises python-socketio's `ConnectionRefusedError`, as a connect
handler would: the client's `connect_error` says "Too many connections from this
address" with `data: {retryAfter}` in seconds.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web
from socketio.exceptions import ConnectionRefusedError as SocketRefused

from server.service import exceptions as errors
from server.service.address_limits import AddressLimit, AddressLimiter
from server.service.client_address import client_address

__all__ = ["SocketAdmission", "socket_address"]

# Set in a session's environ once its handshake was counted; the first connect takes it.
_HANDSHAKE_COUNTED = "scca.handshake_counted"


def socket_address(environ: dict[str, Any], *, trust_proxy: bool) -> str | None:
    """The client's address for a socket request (`server.service.client_address`)."""
    request = environ.get("aiohttp.request")
    if not isinstance(request, web.Request):
        return None
    return client_address(
        request.remote, request.headers.get("X-Forwarded-For"), trust_proxy=trust_proxy
    )


class SocketAdmission:
    def __init__(self, limiter: AddressLimiter, *, trust_proxy: bool) -> None:
        self._limiter = limiter
        self._trust_proxy = trust_proxy

    async def handshake(self, environ: dict[str, Any]) -> None:
        """A new Engine.IO session (`ChatSocketServer.admit_handshakes`)."""
        await self._check(AddressLimit.HANDSHAKE, environ)
        environ[_HANDSHAKE_COUNTED] = True

    async def connect(self, environ: dict[str, Any]) -> None:
        """A Socket.IO connect, from the namespace's connect handler."""
        if environ.pop(_HANDSHAKE_COUNTED, False):
            return
        await self._check(AddressLimit.CONNECT, environ)

    async def _check(self, limit: AddressLimit, environ: dict[str, Any]) -> None:
        address = socket_address(environ, trust_proxy=self._trust_proxy)
        try:
            await self._limiter.check(limit, address)
        except errors.RateLimited as exc:
            retry_after = math.ceil(exc.retry_after or 1)
            raise SocketRefused(exc.message, {"retryAfter": retry_after}) from None
