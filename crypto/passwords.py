"""Password hashing for login: Argon2id PHC strings."""

from __future__ import annotations

import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["PasswordHasher"]

_OWASP_TIME_COST = 2
_OWASP_MEMORY_COST = 19_456  # KiB
_OWASP_PARALLELISM = 1


class PasswordHasher:
    """Argon2id hashing with OWASP's minimum parameters by default (t=2, m=19 MiB, p=1).

    ``verify`` never raises for a wrong password or a damaged hash; ``dummy_verify`` costs
    the same as a real check so that logins for unknown accounts take as long.
    """

    __slots__ = ("_dummy_hash", "_hasher")

    def __init__(
        self,
        *,
        time_cost: int = _OWASP_TIME_COST,
        memory_cost: int = _OWASP_MEMORY_COST,
        parallelism: int = _OWASP_PARALLELISM,
    ) -> None:
        if time_cost < 1 or parallelism < 1 or memory_cost < 8 * parallelism:
            raise ValueError("invalid Argon2 parameters")
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        """Hash ``password`` into a ``$argon2id$...`` PHC string.

        Raises ``ValueError`` if the text cannot be encoded as UTF-8 (lone surrogates).
        """
        try:
            return self._hasher.hash(password)
        except UnicodeEncodeError:
            raise ValueError("password is not valid UTF-8 text") from None

    def verify(self, hashed: str, password: str) -> bool:
        """True if ``password`` matches ``hashed``; False on mismatch or a malformed hash."""
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError, UnicodeEncodeError, ValueError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        """True if ``hashed`` was made with other parameters (or cannot be parsed)."""
        try:
            return self._hasher.check_needs_rehash(hashed)
        except (InvalidHashError, ValueError):
            return True

    def dummy_verify(self, password: str) -> None:
        """Spend the time of one verification against a hash made once per instance."""
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self.verify(self._dummy_hash, password)
