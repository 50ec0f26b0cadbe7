"""Errors raised by the crypto package.

    CryptoError
    ├── InvalidToken       a message token does not open (any reason)
    ├── KeyUnwrapError     a wrapped key does not unwrap (wrong key, context or damage)
    ├── AccessTokenError   an access token is rejected ("token expired", ...)
    ├── SealError          a sealed pub/sub message or mirror does not open
    └── WeakSecretError    a secret or key shorter than 32 bytes

Errors of cryptography, zlib, argon2-cffi and PyJWT are converted into these where they
enter (``ValueError`` is kept for bad arguments from our own callers, as in ``pack``).
Messages are fixed or short human phrases: they never carry key material, plaintext
or the exact check that failed (that detail, when kept, lives in ``reason`` for logs).
"""

from __future__ import annotations

__all__ = [
    "AccessTokenError",
    "CryptoError",
    "InvalidToken",
    "KeyUnwrapError",
    "SealError",
    "WeakSecretError",
]


class CryptoError(Exception):
    """Base class of every error raised by this package."""


class InvalidToken(CryptoError):
    """A message token is malformed, truncated, relabelled, tampered with or under another key.

    ``str()`` is always ``"invalid message token"``; ``reason`` names the failed check
    for server logs only.
    """

    MESSAGE = "invalid message token"

    def __init__(self, reason: str = "") -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason


class KeyUnwrapError(CryptoError):
    """A wrapped key cannot be unwrapped: wrong password or key, wrong context, or damage."""

    MESSAGE = "cannot unwrap key"

    def __init__(self, reason: str = "") -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason


class SealError(CryptoError):
    """Something sealed by :class:`crypto.channel_seal.ChannelSeal` does not open: forged,
    damaged, moved to another context, or sealed with a secret no longer accepted."""

    MESSAGE = "cannot open sealed data"

    def __init__(self, reason: str = "") -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason


class AccessTokenError(CryptoError):
    """An access token was rejected; ``str()`` is a short reason such as "token expired"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WeakSecretError(CryptoError):
    """A secret or key is shorter than 32 bytes."""

    def __init__(self, message: str = "secret must be at least 32 bytes") -> None:
        super().__init__(message)
