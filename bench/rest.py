"""The few REST calls the benchmarks make (accounts and conversations), over aiohttp."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["Account", "RestError", "create_conversation", "new_email", "register"]

PASSWORD = "bench-password-0123456789"  # throwaway benchmark accounts


class RestError(RuntimeError):
    """A REST call answered with an unexpected status; carries the error code if any."""

    def __init__(self, status: int, code: str | None, path: str) -> None:
        super().__init__(f"{path}: HTTP {status} {code or ''}".strip())
        self.status = status
        self.code = code or f"HTTP_{status}"


@dataclass(frozen=True, slots=True)
class Account:
    email: str
    user_id: str
    token: str


def new_email(run_id: str, index: int) -> str:
    """A unique address for a benchmark account."""
    return f"bench-{run_id}-{index}-{secrets.token_hex(3)}@example.com"


async def _call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    path: str,
    body: Any,
    token: str | None,
    expect: tuple[int, ...],
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url + path, json=body, headers=headers) as response:
        try:
            payload = await response.json(content_type=None)
        except ValueError:
            payload = None
        if response.status not in expect:
            code = payload.get("code") if isinstance(payload, dict) else None
            raise RestError(response.status, code, path)
        return payload


async def register(
    http: aiohttp.ClientSession, url: str, email: str, password: str = PASSWORD
) -> Account:
    """Register (or, when the address is taken, log in) and return the account's token."""
    body = {"email": email, "password": password}
    try:
        payload = await _call(http, "POST", url, "/api/auth/register", body, None, (201,))
    except RestError as exc:
        if exc.status != 409:
            raise
        payload = await _call(http, "POST", url, "/api/auth/login", body, None, (200,))
    return Account(email=email, user_id=str(payload["user"]["id"]), token=str(payload["token"]))


async def create_conversation(
    http: aiohttp.ClientSession, url: str, token: str, model: str, title: str = "bench"
) -> str:
    """A new conversation with `model`; returns its id."""
    body = {"title": title, "model": model}
    payload = await _call(http, "POST", url, "/api/conversations", body, token, (201,))
    return str(payload["id"])
