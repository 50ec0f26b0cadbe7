"""Keys, password hashes, chain links and access tokens at their edges.

Exact bounds (a 32-byte secret is enough, key version 0 and 2**32-1 are valid), the
reason each failure reports, and the Argon2 parameters a hash is really made with.
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime, timedelta, tzinfo

import jwt
import pytest

from crypto import (
    AccessTokenError,
    ConversationKeys,
    KeyUnwrapError,
    PasswordHasher,
    WeakSecretError,
    derive_conversation_keys,
    derive_kek,
    issue_access_token,
    new_key,
    next_link,
    session_wrapping_key,
    unwrap_key,
    verify_access_token,
    wrap_key,
)

SECRET_32 = bytes(range(32))
USER, SESSION = uuid.uuid4(), uuid.uuid4()


# ── key wrapping ────────────────────────────────────────────────────────────


def _unwrap_reason(wrapping_key: bytes, wrapped: bytes) -> str:
    with pytest.raises(KeyUnwrapError) as caught:
        unwrap_key(wrapping_key, wrapped, context=b"ctx")
    assert str(caught.value) == "cannot unwrap key"
    return caught.value.reason


def test_unwrap_reports_why_and_knows_the_shortest_wrapped_key() -> None:
    key = new_key()
    # version(1) + nonce(12) + tag(16) + at least one byte: 30 is the shortest possible.
    assert _unwrap_reason(key, bytes([1]) + bytes(28)) == "too short"
    assert _unwrap_reason(key, bytes([1]) + bytes(29)) == "authentication failed"
    wrapped = wrap_key(key, b"k", context=b"ctx")
    assert len(wrapped) == 30
    assert unwrap_key(key, wrapped, context=b"ctx") == b"k"
    assert _unwrap_reason(key, bytes([2]) + wrapped[1:]) == "unknown version"
    assert _unwrap_reason(new_key(), wrapped) == "authentication failed"


def test_wrapping_arguments_are_checked_with_a_message() -> None:
    for call in (
        lambda: wrap_key(bytes(31), b"k", context=b""),
        lambda: unwrap_key(bytes(33), bytes(40), context=b""),
        lambda: wrap_key("x" * 32, b"k", context=b""),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match=r"^wrapping key must be 32 bytes$"):
            call()
    with pytest.raises(ValueError, match=r"^key to wrap must not be empty$"):
        wrap_key(new_key(), b"", context=b"")
    with pytest.raises(ValueError, match=r"^ConversationKeys\.enc must be 32 bytes$"):
        ConversationKeys(enc=bytes(16), integrity=bytes(32))


def test_key_versions_span_the_whole_uint32_range() -> None:
    key, conv = new_key(), uuid.uuid4()
    first, last = derive_conversation_keys(key, conv, 0), derive_conversation_keys(
        key, conv, 0xFFFFFFFF
    )
    assert first != last != derive_conversation_keys(key, conv, 1)
    for bad in (-1, 0x1_0000_0000):
        with pytest.raises(ValueError, match=r"^key_version must fit in an unsigned 32-bit"):
            derive_conversation_keys(key, conv, bad)


def test_a_secret_of_exactly_32_bytes_is_enough_and_31_is_not() -> None:
    assert len(session_wrapping_key(SECRET_32, SESSION)) == 32
    token, _ = issue_access_token(SECRET_32, user_id=USER, session_id=SESSION,
                                  ttl=timedelta(minutes=1))
    assert verify_access_token(SECRET_32, token).user_id == USER
    for call in (
        lambda: session_wrapping_key(SECRET_32[:31], SESSION),
        lambda: verify_access_token(SECRET_32[:31], token),
    ):
        with pytest.raises(WeakSecretError, match=r"^secret must be at least 32 bytes$"):
            call()


# ── Argon2 ──────────────────────────────────────────────────────────────────


def test_kek_salt_bound_and_argument_errors() -> None:
    assert len(derive_kek("pw", bytes(8), time_cost=1, memory_cost=8)) == 32
    with pytest.raises(ValueError, match=r"^salt must be at least 8 bytes$"):
        derive_kek("pw", bytes(7))
    with pytest.raises(ValueError, match=r"^password is not valid UTF-8 text$"):
        derive_kek("a\udc00", bytes(16))
    with pytest.raises(ValueError, match=r"^invalid Argon2 parameters: "):
        derive_kek("pw", bytes(16), time_cost=1, memory_cost=1)


def _phc_bytes(part: str) -> bytes:
    return base64.b64decode(part + "=" * (-len(part) % 4))


def test_password_hashes_use_a_16_byte_salt_and_a_32_byte_hash() -> None:
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    phc = hasher.hash("correct horse")
    algorithm, version, params, salt, digest = phc.split("$")[1:]
    assert (algorithm, version, params) == ("argon2id", "v=19", "m=8,t=1,p=1")
    assert (len(_phc_bytes(salt)), len(_phc_bytes(digest))) == (16, 32)
    assert hasher.verify(phc, "correct horse") and not hasher.verify(phc, "wrong")


def test_argon2_memory_must_be_at_least_8_kib_per_lane() -> None:
    PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    PasswordHasher(time_cost=1, memory_cost=16, parallelism=2)
    for kwargs in (
        {"memory_cost": 7, "parallelism": 1},
        {"memory_cost": 8, "parallelism": 2},
        {"time_cost": 0},
        {"parallelism": 0},
    ):
        with pytest.raises(ValueError, match=r"^invalid Argon2 parameters$"):
            PasswordHasher(**kwargs)


def test_hashing_a_lone_surrogate_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^password is not valid UTF-8 text$"):
        PasswordHasher(time_cost=1, memory_cost=8).hash("x\ud800")


# ── chain ───────────────────────────────────────────────────────────────────


def test_a_previous_link_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^previous link must be 32 bytes$"):
        next_link(new_key(), bytes(31), b"token")


# ── access tokens ───────────────────────────────────────────────────────────


def _reason(token: object, secret: bytes = SECRET_32) -> str:
    with pytest.raises(AccessTokenError) as caught:
        verify_access_token(secret, token)  # type: ignore[arg-type]
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


def _claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(USER), "sid": str(SESSION), "iat": now, "nbf": now, "exp": now + 60,
        "typ": "access",
    }
    claims.update(extra)
    return claims


def test_only_a_text_token_is_read() -> None:
    token, _ = issue_access_token(SECRET_32, user_id=USER, session_id=SESSION,
                                  ttl=timedelta(minutes=1))
    assert _reason(token.encode()) == "malformed token"
    assert _reason("") == "malformed token"


def test_an_unexpected_claim_check_is_an_invalid_token() -> None:
    # PyJWT refuses an audience nobody asked for: none of the named reasons applies.
    assert _reason(jwt.encode(_claims(aud="someone"), SECRET_32, algorithm="HS256")) == (
        "invalid token"
    )


def test_an_expiry_beyond_the_calendar_is_malformed() -> None:
    assert _reason(jwt.encode(_claims(exp=10**12), SECRET_32, algorithm="HS256")) == (
        "malformed token"
    )


def test_five_seconds_of_clock_skew_and_no_more() -> None:
    # PyJWT compares whole seconds: an expiry exactly 5 s ago is already past the leeway
    # of 5, one 4 s ago is not.
    now = int(time.time())
    expired = jwt.encode(_claims(iat=now - 60, nbf=now - 60, exp=now - 5), SECRET_32,
                         algorithm="HS256")
    assert _reason(expired) == "token expired"
    fresh = jwt.encode(_claims(iat=now - 60, nbf=now - 60, exp=now - 3), SECRET_32,
                       algorithm="HS256")
    assert verify_access_token(SECRET_32, fresh).session_id == SESSION


class _NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None


def test_issuing_checks_ttl_and_clock() -> None:
    with pytest.raises(ValueError, match=r"^ttl must be positive$"):
        issue_access_token(SECRET_32, user_id=USER, session_id=SESSION, ttl=timedelta(0))
    for naive in (datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=_NoOffset())):
        with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
            issue_access_token(SECRET_32, user_id=USER, session_id=SESSION,
                               ttl=timedelta(minutes=1), now=naive)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    token, expires = issue_access_token(SECRET_32, user_id=USER, session_id=SESSION,
                                        ttl=timedelta(minutes=1), now=now)
    assert expires == now + timedelta(minutes=1)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
