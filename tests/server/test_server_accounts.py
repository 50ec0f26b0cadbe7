"""Accounts and sessions over REST and Socket.IO: register, login, logout, me, password.

Every test runs against a live server and a real database; sockets are the real
socket.io-client. Stored rows are read back with the administrator's connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import argon2
import asyncpg
import pytest
from live_server import TEST_SECRET, LiveServer
from node_client import NodeClients
from pg import TempDatabase

import crypto
from crypto import keys as crypto_keys
from server.appkeys import CONNECTED

PASSWORD = "correct horse battery"


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


async def login(
    server: LiveServer, email: str, password: str = PASSWORD, **kw: Any
) -> tuple[int, Any]:
    status, body, _ = await server.call_with_headers(
        "POST", "/api/auth/login", json={"email": email, "password": password}, **kw
    )
    return status, body


def _session_id(token: str) -> uuid.UUID:
    return crypto.verify_access_token(TEST_SECRET.encode(), token).session_id


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


# ── register ────────────────────────────────────────────────────────────────


async def test_register_returns_user_token_and_expiry_with_normalised_email(
    server: LiveServer,
) -> None:
    local = f"MiXeD.Case-{uuid.uuid4().hex[:8]}"
    status, body, _ = await server.call_with_headers(
        "POST",
        "/api/auth/register",
        json={"email": f"  {local}@Example.COM  ", "password": PASSWORD},
    )
    assert status == 201, body
    assert set(body) == {"user", "token", "expiresAt", "csrfToken"}
    assert body["user"]["email"] == f"{local.lower()}@example.com"
    uuid.UUID(body["user"]["id"])
    claims = crypto.verify_access_token(TEST_SECRET.encode(), body["token"])
    assert str(claims.user_id) == body["user"]["id"]
    expires = _parse_iso(body["expiresAt"])
    assert expires == claims.expires_at
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24, seconds=5)

    # taken, in any case and with surrounding spaces
    for variant in (f"{local}@example.com", f" {local.upper()}@EXAMPLE.COM"):
        status, conflict, _ = await server.call_with_headers(
            "POST",
            "/api/auth/register",
            json={"email": variant, "password": "another password"},
        )
        assert status == 409, conflict
        assert conflict["code"] == "CONFLICT"
    # the normalised address logs in from any spelling
    status, logged_in = await login(server, f"{local.upper()}@example.com ")
    assert status == 200, logged_in
    assert logged_in["user"] == body["user"]


async def test_register_does_the_same_argon2_work_whether_or_not_the_email_is_taken(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Register cannot answer a taken email like a new one (the new one gets a session
    token: README, security); the time it takes must not tell them apart either. Both
    derive the login hash and the key-encryption key before looking at the email."""
    work: list[tuple[str, int, int]] = []
    phc_hash = argon2.PasswordHasher.hash
    raw_hash = crypto_keys.hash_secret_raw

    def spy_phc(self: argon2.PasswordHasher, *args: Any, **kwargs: Any) -> str:
        work.append(("login hash", self.time_cost, self.memory_cost))
        return phc_hash(self, *args, **kwargs)

    def spy_raw(**kwargs: Any) -> bytes:
        work.append(("kek", kwargs["time_cost"], kwargs["memory_cost"]))
        return raw_hash(**kwargs)

    monkeypatch.setattr(argon2.PasswordHasher, "hash", spy_phc)
    monkeypatch.setattr(crypto_keys, "hash_secret_raw", spy_raw)
    email = _email("taken")
    body = {"email": email, "password": PASSWORD}
    assert (await server.call("POST", "/api/auth/register", json=body))[0] == 201
    new_account = sorted(work)
    work.clear()
    assert (await server.call("POST", "/api/auth/register", json=body))[0] == 409
    assert sorted(work) == new_account
    assert [kind for kind, _, _ in new_account] == ["kek", "login hash"]


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "a@b",
        "two words@example.com",
        "@example.com",
        "user@",
        "a@@example.com",
        "x" * 250 + "@example.com",
        "",
    ],
)
async def test_register_rejects_an_invalid_email(server: LiveServer, email: str) -> None:
    status, body, _ = await server.call_with_headers(
        "POST", "/api/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert status == 400, body
    assert body["code"] == "INVALID_PAYLOAD"
    assert "email" in body["error"]


async def test_register_password_length_bounds(server: LiveServer) -> None:
    for password in ("x" * 7, "", "y" * 1025):
        status, body, _ = await server.call_with_headers(
            "POST",
            "/api/auth/register",
            json={"email": _email("short"), "password": password},
        )
        assert status == 400, (len(password), body)
        assert "password" in body["error"]
        assert body["code"] == "INVALID_PAYLOAD"
    for password in ("x" * 8, "é" * 1024):
        email = _email("bounds")
        status, body, _ = await server.call_with_headers(
            "POST",
            "/api/auth/register",
            json={"email": email, "password": password},
        )
        assert status == 201, (len(password), body)
        status, body = await login(server, email, password)
        assert status == 200, body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (None, "body"),
        (b"{not json", "body"),
        (b'{"email": "a@example.com", "password": ', "body"),
        ({"password": PASSWORD}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": 5, "password": PASSWORD}, "email"),
        ({"email": ["a@example.com"], "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": 12345678}, "password"),
        ({"email": "a@example.com", "password": None}, "password"),
    ],
)
async def test_register_rejects_malformed_bodies_naming_the_field(
    server: LiveServer, payload: Any, field: str
) -> None:
    if payload is None or isinstance(payload, bytes):
        status, body, _ = await server.call_with_headers(
            "POST",
            "/api/auth/register",
            data=payload,
            headers={"Content-Type": "application/json"},
        )
    else:
        status, body, _ = await server.call_with_headers("POST", "/api/auth/register", json=payload)
    assert status == 400, body
    assert body["error"].startswith(f"{field}:"), body
    assert body["code"] == "INVALID_PAYLOAD"


async def test_register_rejects_non_object_json(server: LiveServer) -> None:
    payloads: list[Any] = [[], "text", 42, None]
    for payload in payloads:
        status, body, _ = await server.call_with_headers(
            "POST",
            "/api/auth/register",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 400, (payload, body)


async def test_register_rejects_a_body_that_is_not_utf8(server: LiveServer) -> None:
    status, body, _ = await server.call_with_headers(
        "POST",
        "/api/auth/register",
        data=b'{"email": "\xff\xfe@example.com", "password": "12345678"}',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400, body


async def test_register_rejects_an_email_with_a_nul_character(server: LiveServer) -> None:
    status, body, _ = await server.call_with_headers(
        "POST",
        "/api/auth/register",
        json={"email": "nul\u0000char@example.com", "password": PASSWORD},
    )
    assert status == 400, body
    assert "email" in body["error"]


async def test_login_with_a_nul_character_is_the_uniform_401(server: LiveServer) -> None:
    status, body = await login(server, "nul\u0000char@example.com", "some password")
    assert status == 401, body
    assert body == {"error": "Invalid email or password", "code": "UNAUTHORIZED"}


# ── login ───────────────────────────────────────────────────────────────────


async def test_login_opens_a_new_session_and_hides_which_part_was_wrong(
    server: LiveServer,
) -> None:
    email = _email("login")
    account = await server.register(email=email)
    status, body = await login(server, email)
    assert status == 200, body
    assert set(body) == {"user", "token", "expiresAt", "csrfToken"}
    assert body["user"] == account["user"]
    assert body["token"] != account["token"]
    assert _session_id(body["token"]) != _session_id(account["token"])

    status, wrong_password, headers = await server.call_with_headers(
        "POST",
        "/api/auth/login",
        json={"email": email, "password": "wrong password!"},
    )
    assert status == 401
    assert headers.get("WWW-Authenticate") == "Bearer"
    status, unknown_email, _ = await server.call_with_headers(
        "POST",
        "/api/auth/login",
        json={"email": _email("nobody"), "password": "wrong password!"},
    )
    assert status == 401
    assert unknown_email == wrong_password
    assert wrong_password["code"] == "UNAUTHORIZED"
    status, not_an_email, _ = await server.call_with_headers(
        "POST",
        "/api/auth/login",
        json={"email": "not-an-email", "password": "wrong password!"},
    )
    assert status == 401 and not_an_email == wrong_password
    status, body, _ = await server.call_with_headers(
        "POST", "/api/auth/login", json={"email": email, "password": ""}
    )
    assert status == 400 and "password" in body["error"]
    status, body, _ = await server.call_with_headers("POST", "/api/auth/login")
    assert status == 400 and body["error"].startswith("body")


async def test_failed_logins_are_throttled_for_that_account_and_address(
    server: LiveServer,
) -> None:
    """Three free failures (spellings of one address share them), then a wait before
    the next try, even with the right password; the rest of the policy, across instances
    and addresses, is in test_server_limits_redis.py."""
    email = _email("limited")
    await server.register(email=email)
    for attempt in range(3):
        spelling = email.upper() if attempt % 2 else f" {email} "
        status, body = await login(server, spelling, "wrong password!")
        assert status == 401, (attempt, body)
    status, body, headers = await server.call_with_headers(
        "POST", "/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert status == 429, body
    assert body["code"] == "RATE_LIMITED"
    assert headers["Retry-After"] == "1"
    assert 0 < body["retryAfter"] <= 1
    # another account from the same address is unaffected
    other = _email("unaffected")
    await server.register(email=other)
    status, body = await login(server, other)
    assert status == 200, body


# ── me and logout ───────────────────────────────────────────────────────────


async def test_me_lists_active_sessions_with_exactly_one_current(server: LiveServer) -> None:
    email = _email("me")
    first = await server.register(email=email)
    status, second = await login(server, email, headers={"User-Agent": "scca-test-agent/1.0"})
    assert status == 200
    status, third = await login(server, email)
    assert status == 200

    status, me, _ = await server.call_with_headers("GET", "/api/auth/me", token=second["token"])
    assert status == 200, me
    assert me["user"] == first["user"]
    sessions = me["sessions"]
    assert len(sessions) == 3
    expected_keys = {"id", "createdAt", "expiresAt", "lastSeenAt", "ip", "userAgent", "current"}
    for session in sessions:
        assert set(session) == expected_keys, session
        for key in ("createdAt", "expiresAt", "lastSeenAt"):
            _parse_iso(session[key])
        assert session["ip"] == "127.0.0.1"
    assert {s["id"] for s in sessions} == {
        str(_session_id(t["token"])) for t in (first, second, third)
    }
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    assert current[0]["id"] == str(_session_id(second["token"]))
    assert current[0]["userAgent"] == "scca-test-agent/1.0"

    status, _, _ = await server.call_with_headers("GET", "/api/auth/me")
    assert status == 401
    status, _, _ = await server.call_with_headers(
        "GET", "/api/auth/me", headers={"Authorization": f"Basic {second['token']}"}
    )
    assert status == 401
    status, _, _ = await server.call_with_headers("GET", "/api/auth/me", token="not-a-jwt")
    assert status == 401


async def test_logout_revokes_only_that_session(server: LiveServer) -> None:
    email = _email("logout")
    first = await server.register(email=email)
    status, second = await login(server, email)
    assert status == 200

    status, body, _ = await server.call_with_headers(
        "POST", "/api/auth/logout", token=first["token"]
    )
    assert status == 204, body
    assert body is None
    status, body, headers = await server.call_with_headers(
        "GET", "/api/auth/me", token=first["token"]
    )
    assert status == 401
    assert body["code"] == "UNAUTHORIZED"
    assert headers.get("WWW-Authenticate") == "Bearer"
    status, body, _ = await server.call_with_headers(
        "POST", "/api/auth/logout", token=first["token"]
    )
    assert status == 401
    status, body, _ = await server.call_with_headers("POST", "/api/auth/logout")
    assert status == 401

    status, me, _ = await server.call_with_headers("GET", "/api/auth/me", token=second["token"])
    assert status == 200
    assert [s["id"] for s in me["sessions"]] == [str(_session_id(second["token"]))]
    status, _, _ = await server.call_with_headers("GET", "/api/conversations", token=first["token"])
    assert status == 401


# ── password change ─────────────────────────────────────────────────────────


async def test_password_change_keeps_messages_and_revokes_other_sessions(
    server: LiveServer, node: NodeClients
) -> None:
    email = _email("password")
    new_password = "a brand new passphrase"
    account = await server.register(email=email)
    token = account["token"]
    status, other = await login(server, email)
    assert status == 200
    conversation_id = await server.create_conversation(token, title="before the change")
    status, sent, _ = await server.call_with_headers(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        token=token,
        json={"content": "remember this", "stream": False},
    )
    assert status == 200, sent
    current_socket = await node.connect(server.base_url, token=token)
    other_socket = await node.connect(server.base_url, token=other["token"])
    assert current_socket.connected.is_set() and other_socket.connected.is_set()

    for payload, field in [
        ({"currentPassword": "not my password", "newPassword": new_password}, "currentPassword"),
        ({"currentPassword": PASSWORD, "newPassword": "short"}, "newPassword"),
        ({"currentPassword": PASSWORD}, "newPassword"),
        ({"newPassword": new_password}, "currentPassword"),
    ]:
        status, body, _ = await server.call_with_headers(
            "POST", "/api/auth/password", token=token, json=payload
        )
        assert status == 400, (payload, body)
        assert field in body["error"], body
    status, body, _ = await server.call_with_headers("POST", "/api/auth/password", token=token)
    assert status == 400 and body["error"].startswith("body")
    status, _, _ = await server.call_with_headers(
        "POST",
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": new_password},
    )
    assert status == 401
    # nothing was revoked by the failed attempts
    status, _, _ = await server.call_with_headers("GET", "/api/auth/me", token=other["token"])
    assert status == 200

    status, body, _ = await server.call_with_headers(
        "POST",
        "/api/auth/password",
        token=token,
        json={"currentPassword": PASSWORD, "newPassword": new_password},
    )
    assert status == 204, body

    status, _, _ = await server.call_with_headers("GET", "/api/auth/me", token=other["token"])
    assert status == 401
    await asyncio.wait_for(other_socket.closed.wait(), 6)
    assert other_socket.disconnect_reason == "io server disconnect"
    assert current_socket.connected.is_set()
    [pong] = await current_socket.emit("ping")
    assert isinstance(pong["timestamp"], int)

    expected = ["remember this", sent["response"]]
    status, detail, _ = await server.call_with_headers(
        "GET", f"/api/conversations/{conversation_id}", token=token
    )
    assert status == 200, detail
    assert [m["content"] for m in detail["messages"]] == expected
    assert all(m["isDecrypted"] for m in detail["messages"])

    status, body = await login(server, email, PASSWORD)
    assert status == 401, body
    status, fresh = await login(server, email, new_password)
    assert status == 200, fresh
    status, detail, _ = await server.call_with_headers(
        "GET", f"/api/conversations/{conversation_id}", token=fresh["token"]
    )
    assert status == 200, detail
    assert [m["content"] for m in detail["messages"]] == expected
    assert detail["integrity"] == {"valid": True, "lastValidSequence": 2}
    # the new session can write too: a key unwrapped from the new KEK encrypts
    status, sent_again, _ = await server.call_with_headers(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        token=fresh["token"],
        json={"content": "and this", "stream": False},
    )
    assert status == 200, sent_again
    assert sent_again["messageCount"] == 4
    await server.close_socket(current_socket)


# ── sockets refused ─────────────────────────────────────────────────────────


async def test_sockets_with_bad_tokens_are_refused(server: LiveServer, node: NodeClients) -> None:
    email = _email("sockets")
    account = await server.register(email=email)
    victim = await server.register()
    user_id = uuid.UUID(account["user"]["id"])
    status, logged_out = await login(server, email)
    assert status == 200
    status, _, _ = await server.call_with_headers(
        "POST", "/api/auth/logout", token=logged_out["token"]
    )
    assert status == 204
    session_id = _session_id(account["token"])
    secret = TEST_SECRET.encode()

    expired, _ = crypto.issue_access_token(
        secret,
        user_id=user_id,
        session_id=session_id,
        ttl=timedelta(minutes=5),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    other_key, _ = crypto.issue_access_token(
        b"a-completely-different-signing-key-0123456789",
        user_id=user_id,
        session_id=session_id,
        ttl=timedelta(hours=1),
    )
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "typ": "access",
    }
    alg_none = (
        _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        + "."
        + _b64url(json.dumps(claims).encode())
        + "."
    )
    swapped_sid, _ = crypto.issue_access_token(
        secret,
        user_id=user_id,
        session_id=_session_id(victim["token"]),
        ttl=timedelta(hours=1),
    )
    missing = await node.connect(server.base_url)
    assert missing.connect_error == "Authentication token required"
    empty = await node.connect(server.base_url, auth={"token": ""})
    assert empty.connect_error == "Authentication token required"

    refused = {
        "garbage": "garbage",
        "expired": expired,
        "other key": other_key,
        "alg none": alg_none,
        "logged out": logged_out["token"],
        "swapped sid": swapped_sid,
        "truncated": account["token"][:-4],
    }
    reasons: dict[str, str] = {}
    for name, bad_token in refused.items():
        client = await node.connect(server.base_url, token=bad_token)
        assert client.connect_error is not None, name
        assert client.connect_error.startswith("Authentication failed: "), (name, client)
        assert TEST_SECRET not in client.connect_error
        assert not client.connected.is_set(), name
        reasons[name] = client.connect_error
        status, _, _ = await server.call_with_headers("GET", "/api/auth/me", token=bad_token)
        assert status == 401, name
    assert "expired" in reasons["expired"]
    # no connect handler got past authentication for either user
    connected = server.app[CONNECTED]
    assert connected.count_for_user(user_id) == 0
    assert connected.count_for_user(uuid.UUID(victim["user"]["id"])) == 0

    # the genuine token still connects, and the query-string form is checked just the same
    good = await node.connect(server.base_url, token=account["token"])
    assert good.connected.is_set(), good.connect_error
    by_query = await node.connect(server.base_url, query={"token": swapped_sid})
    assert by_query.connect_error is not None
    assert by_query.connect_error.startswith("Authentication failed")
    await server.close_socket(good)


# ── what is stored ──────────────────────────────────────────────────────────


async def _rows(con: asyncpg.Connection, table: str, user_ids: list[uuid.UUID]) -> list[Any]:
    column = "id" if table == "users" else "user_id"
    return list(await con.fetch(f"SELECT * FROM {table} WHERE {column} = ANY($1)", user_ids))


async def test_stored_rows_hold_no_password_email_or_plain_key(
    server: LiveServer, server_db: TempDatabase
) -> None:
    emails = [_email("stored-a"), _email("stored-b")]
    passwords = ["first user's passphrase", "second user's passphrase"]
    accounts = [
        await server.register(email=e, password=p) for e, p in zip(emails, passwords, strict=True)
    ]
    for account, email, password in zip(accounts, emails, passwords, strict=True):
        status, _ = await login(server, email, password)
        assert status == 200
        await server.create_conversation(account["token"], title="stored")
    user_ids = [uuid.UUID(a["user"]["id"]) for a in accounts]

    con = await asyncpg.connect(server_db.admin_dsn)
    try:
        users = await _rows(con, "users", user_ids)
        sessions = await _rows(con, "sessions", user_ids)
        conversations = await _rows(con, "conversations", user_ids)
    finally:
        await con.close()

    assert len(users) == 2 and len(sessions) == 4 and len(conversations) == 2
    for user in users:
        assert user["password_hash"].startswith("$argon2id$"), user["password_hash"][:12]
        assert len(user["kek_salt"]) >= 16
    wrapped = {
        "users": [u["wrapped_data_key"] for u in users],
        "sessions": [s["wrapped_data_key"] for s in sessions],
        "conversations": [c["wrapped_key"] for c in conversations],
    }
    for table, keys in wrapped.items():
        # version + 96-bit nonce + 32-byte key + 128-bit tag at the least
        assert all(len(k) >= 1 + 12 + 32 + 16 for k in keys), table
        assert len(set(keys)) == len(keys), f"{table}: two wrapped keys are equal"
    all_wrapped = [k for keys in wrapped.values() for k in keys]
    assert len(set(all_wrapped)) == len(all_wrapped)
    assert users[0]["kek_salt"] != users[1]["kek_salt"]

    secrets_ = [p.encode() for p in passwords] + [e.encode() for e in emails]
    secrets_ += [a["token"].encode() for a in accounts]
    for row in [*users, *sessions, *conversations]:
        for column, value in row.items():
            if isinstance(value, bytes):
                for secret in secrets_:
                    assert secret not in value, column
            if isinstance(value, str) and column != "email":
                for password in passwords:
                    assert password not in value, column
                for account in accounts:
                    assert account["token"] not in value, column


async def test_audit_log_records_account_events_without_passwords(
    server: LiveServer, server_db: TempDatabase
) -> None:
    email = _email("audit")
    new_password = "the replacement passphrase"
    unknown = _email("audit-unknown")
    account = await server.register(email=email)
    status, second = await login(server, email)
    assert status == 200
    status, _ = await login(server, email, "definitely wrong password")
    assert status == 401
    con = await asyncpg.connect(server_db.admin_dsn)
    try:
        anonymous_before = await con.fetchval(
            "SELECT count(*) FROM audit_log WHERE user_id IS NULL AND action = 'login_failed'"
        )
    finally:
        await con.close()
    status, _ = await login(server, unknown, "unknown user's password")
    assert status == 401
    status, _, _ = await server.call_with_headers("POST", "/api/auth/logout", token=second["token"])
    assert status == 204
    status, _, _ = await server.call_with_headers(
        "POST",
        "/api/auth/password",
        token=account["token"],
        json={"currentPassword": PASSWORD, "newPassword": new_password},
    )
    assert status == 204

    con = await asyncpg.connect(server_db.admin_dsn)
    try:
        rows = await con.fetch(
            "SELECT action, details::text AS details, ip FROM audit_log"
            " WHERE user_id = $1 ORDER BY id",
            uuid.UUID(account["user"]["id"]),
        )
        anonymous = await con.fetch(
            "SELECT action, details::text AS details FROM audit_log"
            " WHERE user_id IS NULL AND action = 'login_failed' ORDER BY id OFFSET $1",
            anonymous_before,
        )
    finally:
        await con.close()
    actions = [r["action"] for r in rows]
    assert actions == ["register", "login", "login_failed", "logout", "password_change"], actions
    assert all(r["ip"] == "127.0.0.1" for r in rows)
    assert len(anonymous) == 1, "a failed login for an unknown email leaves one entry"
    assert json.loads(anonymous[0]["details"]) == {"reason": "unknown"}
    for row in [*rows, *anonymous]:
        details = row["details"]
        for secret in (PASSWORD, new_password, "definitely wrong", "unknown user's", email):
            assert secret not in details, (row["action"], details)
    failed = next(r for r in rows if r["action"] == "login_failed")
    assert json.loads(failed["details"]) == {"reason": "password"}
