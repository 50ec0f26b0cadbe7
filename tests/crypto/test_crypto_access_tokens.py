"""Access tokens: issue, verify, and every way a forged or stale token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import (
    AccessClaims,
    AccessTokenError,
    WeakSecretError,
    issue_access_token,
    verify_access_token,
)

SECRET = bytes(range(32)) * 2
USER = uuid.UUID("a0a0a0a0-b1b1-4c2c-9d3d-e4e4e4e4e4e4")
SESSION = uuid.UUID("f5f5f5f5-0606-4717-8828-393939393939")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _by_hand(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "sub": str(USER), "sid": str(SESSION), "iat": now, "nbf": now, "exp": now + 600,
        "typ": "access",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _reason(token: str, secret: bytes = SECRET, **kwargs: Any) -> str:
    with pytest.raises(AccessTokenError) as info:
        verify_access_token(secret, token, **kwargs)
    return str(info.value)


def test_issue_and_verify_round_trip() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    token, expires = issue_access_token(
        SECRET, user_id=USER, session_id=SESSION, ttl=timedelta(minutes=15), now=now
    )
    assert expires == now + timedelta(minutes=15)
    claims = verify_access_token(SECRET, token)
    assert claims == AccessClaims(USER, SESSION, now, expires)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert set(payload) == {"sub", "sid", "iat", "nbf", "exp", "typ"}
    assert payload["typ"] == "access"
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_token_carries_no_key_material() -> None:
    token, _ = issue_access_token(SECRET, user_id=USER, session_id=SESSION,
                                  ttl=timedelta(minutes=5))
    payload_text = base64.urlsafe_b64decode(token.split(".")[1] + "==").decode()
    assert set(json.loads(payload_text)) == {"sub", "sid", "iat", "nbf", "exp", "typ"}


def test_hand_built_token_is_accepted() -> None:
    # Guards the helpers below: a correct token built by hand verifies.
    token = _by_hand({"alg": "HS256", "typ": "JWT"}, _claims(), SECRET)
    assert verify_access_token(SECRET, token).user_id == USER


@pytest.mark.parametrize("token", ["", "abc", "abc.def", "a.b.c", "a.b.c.d", "..", "x" * 5000])
def test_malformed_tokens(token: str) -> None:
    assert _reason(token) in {"malformed token", "invalid token"}


def test_missing_parts_of_a_real_token() -> None:
    token, _ = issue_access_token(SECRET, user_id=USER, session_id=SESSION,
                                  ttl=timedelta(minutes=5))
    header, payload, signature = token.split(".")
    assert _reason(f"{header}.{payload}") == "malformed token"
    assert _reason(f"{header}.{payload}.") == "invalid signature"
    assert _reason(f".{payload}.{signature}") == "malformed token"
    assert _reason(f"{header}..{signature}") == "invalid signature"  # checked before JSON


def test_expired_and_leeway() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    token, _ = issue_access_token(SECRET, user_id=USER, session_id=SESSION,
                                  ttl=timedelta(minutes=5), now=past)
    assert _reason(token) == "token expired"
    now = int(datetime.now(UTC).timestamp())
    just_expired = jwt.encode(_claims(iat=now - 60, nbf=now - 60, exp=now - 2), SECRET, "HS256")
    assert verify_access_token(SECRET, just_expired, leeway_seconds=5).user_id == USER
    assert _reason(just_expired, leeway_seconds=0) == "token expired"


def test_not_yet_valid() -> None:
    now = int(datetime.now(UTC).timestamp())
    future_nbf = jwt.encode(_claims(nbf=now + 3600), SECRET, "HS256")
    assert _reason(future_nbf) == "token not yet valid"
    token, _ = issue_access_token(SECRET, user_id=USER, session_id=SESSION,
                                  ttl=timedelta(minutes=5),
                                  now=datetime.now(UTC) + timedelta(hours=1))
    assert _reason(token) == "token not yet valid"


def test_wrong_signature() -> None:
    token, _ = issue_access_token(SECRET, user_id=USER, session_id=SESSION,
                                  ttl=timedelta(minutes=5))
    assert _reason(token, secret=bytes(64)) == "invalid signature"
    header, _, signature = token.split(".")
    other_payload = _b64(json.dumps(_claims(sub=str(uuid.uuid4()))).encode())
    assert _reason(f"{header}.{other_payload}.{signature}") == "invalid signature"


def test_alg_none_is_refused() -> None:
    for alg in ("none", "None", "NONE"):
        token = _by_hand({"alg": alg, "typ": "JWT"}, _claims(), None)
        assert _reason(token) == "algorithm not allowed"


def test_other_algorithms_are_refused() -> None:
    hs512 = jwt.encode(_claims(), SECRET, algorithm="HS512")
    assert _reason(hs512) == "algorithm not allowed"
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs256 = jwt.encode(_claims(), private_key, algorithm="RS256")
    assert _reason(rs256) == "algorithm not allowed"
    # Key confusion: an RS256 header over a valid HMAC signature made with our secret.
    confused = _by_hand({"alg": "RS256", "typ": "JWT"}, _claims(), SECRET)
    assert _reason(confused) == "algorithm not allowed"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "sid", "typ"])
def test_required_claims(claim: str) -> None:
    token = jwt.encode(_claims(**{claim: None}), SECRET, "HS256")
    assert _reason(token) == "missing claim"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"typ": "refresh"}, "wrong token type"),
        ({"typ": 1}, "wrong token type"),
        ({"sub": "not-a-uuid"}, "malformed token"),
        ({"sid": "not-a-uuid"}, "malformed token"),
        ({"sid": 12345}, "malformed token"),
        ({"sub": 12345}, "malformed token"),
        ({"exp": "tomorrow"}, "malformed token"),
        ({"iat": "yesterday"}, "malformed token"),
    ],
)
def test_bad_claim_values(overrides: dict[str, Any], reason: str) -> None:
    token = jwt.encode(_claims(**overrides), SECRET, "HS256")
    assert _reason(token) == reason


def test_weak_secrets_are_refused() -> None:
    with pytest.raises(WeakSecretError):
        issue_access_token(b"s" * 31, user_id=USER, session_id=SESSION, ttl=timedelta(minutes=1))
    token, _ = issue_access_token(SECRET, user_id=USER, session_id=SESSION,
                                  ttl=timedelta(minutes=1))
    with pytest.raises(WeakSecretError):
        verify_access_token(b"", token)


def test_issue_argument_checks() -> None:
    with pytest.raises(ValueError):
        issue_access_token(SECRET, user_id=USER, session_id=SESSION, ttl=timedelta(0))
    with pytest.raises(ValueError):
        issue_access_token(SECRET, user_id=USER, session_id=SESSION, ttl=timedelta(minutes=1),
                           now=datetime(2024, 1, 1))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.lists(st.text(max_size=60), max_size=4).map(".".join))
def test_garbage_only_raises_access_token_error(text: str) -> None:
    with pytest.raises(AccessTokenError):
        verify_access_token(SECRET, text)
