"""REST adapters for accounts: `/api/auth/*` [ext: the seed used NextAuth]."""

from __future__ import annotations

from aiohttp import web

from protocol.rest import (
    AuthResponse,
    LoginRequest,
    MeResponse,
    PasswordChangeRequest,
    RegisterRequest,
    SessionOut,
    UserOut,
)
from server.appkeys import ACCOUNTS, ADDRESS_LIMITER, REVOKER
from server.rest.browser import clear_session_cookies, set_session_cookies
from server.rest.http import authenticate, client_ip, json_response, read_json
from server.service.accounts import LoginResult
from server.service.address_limits import AddressLimit
from server.service.timefmt import iso

__all__ = ["auth_routes"]


def _signed_in(request: web.Request, result: LoginResult, *, status: int) -> web.Response:
    """The token in the body (bearer clients) and in cookies (browsers)."""
    body = AuthResponse(
        user=UserOut(id=str(result.user_id), email=result.email),
        token=result.token,
        expires_at=iso(result.expires_at),
        csrf_token=result.csrf_token,
    )
    response = json_response(body, status=status)
    set_session_cookies(request, response, result)
    return response


async def register(request: web.Request) -> web.Response:
    """Open an account. A taken email is answered 409, unlike a new one: register hands
    back a session token, which a uniform answer could not. The two answers cost the same
    Argon2 work (`Accounts.register` hashes before it inserts), and each attempt, taken or
    not, spends the address's hourly budget, which bounds how many emails anyone can test.
    [ext] `name` and `image` open the public profile (`Accounts.register` checks them)."""
    body = await read_json(request, RegisterRequest)
    ip = client_ip(request)
    await request.app[ADDRESS_LIMITER].check(AddressLimit.REGISTER, ip)
    result = await request.app[ACCOUNTS].register(
        body.email,
        body.password,
        ip=ip,
        user_agent=request.headers.get("User-Agent"),
        name=body.name,
        image=body.image,
    )
    return _signed_in(request, result, status=201)


async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginRequest)
    result = await request.app[ACCOUNTS].login(
        body.email,
        body.password,
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent"),
    )
    return _signed_in(request, result, status=200)


async def logout(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    await request.app[ACCOUNTS].logout(identity, ip=client_ip(request))
    await request.app[REVOKER].disconnect_sessions([identity.session_id])
    response = web.Response(status=204)
    clear_session_cookies(response)
    return response


async def me(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    user, sessions = await request.app[ACCOUNTS].me(identity)
    return json_response(
        MeResponse(
            user=UserOut(id=str(user.id), email=user.email),
            sessions=[
                SessionOut(
                    id=str(s.id),
                    created_at=iso(s.created_at),
                    expires_at=iso(s.expires_at),
                    last_seen_at=iso(s.last_seen_at),
                    ip=s.ip,
                    user_agent=s.user_agent,
                    current=s.id == identity.session_id,
                )
                for s in sessions
            ],
        )
    )


async def change_password(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    body = await read_json(request, PasswordChangeRequest)
    revoked = await request.app[ACCOUNTS].change_password(
        identity, body.current_password, body.new_password, ip=client_ip(request)
    )
    await request.app[REVOKER].disconnect_sessions(revoked)
    return web.Response(status=204)


def auth_routes() -> list[web.RouteDef]:
    return [
        web.post("/api/auth/register", register),
        web.post("/api/auth/login", login),
        web.post("/api/auth/logout", logout),
        web.get("/api/auth/me", me),
        web.post("/api/auth/password", change_password),
    ]
