"""Short-lived access tokens: HS256 JWTs that carry only ids, times and a type."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError

from crypto.exceptions import AccessTokenError, WeakSecretError

__all__ = ["ACCESS_TOKEN_TYPE", "AccessClaims", "issue_access_token", "verify_access_token"]

ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret
"""Value of the ``typ`` claim of an access token."""

_ALGORITHM = "HS256"
_MIN_SECRET_BYTES = 32
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "typ"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified content of an access token."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime


def _check_secret(secret: bytes) -> None:
    if len(secret) < _MIN_SECRET_BYTES:
        raise WeakSecretError()


def issue_access_token(
    secret: bytes,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    ttl: timedelta,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """Sign an access token; return it with its expiry (whole seconds, UTC).

    Claims: ``sub`` (user id), ``sid`` (session id), ``iat``, ``nbf``, ``exp`` and
    ``typ="access"``. Raises :class:`WeakSecretError` for a secret under 32 bytes and
    ``ValueError`` for a non-positive ``ttl`` or a naive ``now``.
    """
    _check_secret(secret)
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    issued = int(now.timestamp())
    expires = int((now + ttl).timestamp())
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": issued,
        "nbf": issued,
        "exp": expires,
        "typ": ACCESS_TOKEN_TYPE,
    }
    token = jwt.encode(payload, secret, algorithm=_ALGORITHM)
    return token, datetime.fromtimestamp(expires, UTC)


def _reason(exc: jwt.PyJWTError) -> str:
    # Order matters: several of these are subclasses of DecodeError.
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token not yet valid"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "invalid signature"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return "missing claim"
    if isinstance(exc, jwt.DecodeError | jwt.InvalidIssuedAtError | InvalidSubjectError):
        return "malformed token"
    return "invalid token"


def _uuid_claim(payload: dict[str, Any], name: str) -> uuid.UUID:
    value = payload.get(name)
    if not isinstance(value, str):
        raise AccessTokenError("malformed token")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise AccessTokenError("malformed token") from None


def verify_access_token(secret: bytes, token: str, *, leeway_seconds: int = 5) -> AccessClaims:
    """Check an access token and return its claims.

    Only HS256 is accepted; ``exp``, ``iat``, ``sub``, ``sid`` and ``typ`` are required,
    ``typ`` must be ``"access"``, ``sub`` and ``sid`` must be UUIDs, ``nbf`` is honoured
    when present. Every rejection raises :class:`AccessTokenError` with a short reason;
    a secret under 32 bytes raises :class:`WeakSecretError`.
    """
    _check_secret(secret)
    if not isinstance(token, str) or not token:
        raise AccessTokenError("malformed token")
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            options={"require": _REQUIRED_CLAIMS},
            leeway=leeway_seconds,
        )
    except jwt.PyJWTError as exc:
        raise AccessTokenError(_reason(exc)) from None
    if payload.get("typ") != ACCESS_TOKEN_TYPE:
        raise AccessTokenError("wrong token type")
    user_id = _uuid_claim(payload, "sub")
    session_id = _uuid_claim(payload, "sid")
    try:
        issued_at = datetime.fromtimestamp(payload["iat"], UTC)
        expires_at = datetime.fromtimestamp(payload["exp"], UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise AccessTokenError("malformed token") from None
    return AccessClaims(
        user_id=user_id, session_id=session_id, issued_at=issued_at, expires_at=expires_at
    )
