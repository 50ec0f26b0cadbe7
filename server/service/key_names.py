"""Names for Redis keys that would otherwise carry an email or a client address.

Rate counters and throttles are keyed by what they count; Redis is outside the trust
boundary, so the parts a person could be recognised by go there as a keyed hash
(HMAC-SHA256 under a key derived from the server secret for one purpose), never in
clear. Every instance with the same secret computes the same names.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["KeyNames"]

_LABEL = b"scca/v1/redis-key-names\x00"


class KeyNames:
    def __init__(self, secret: bytes, purpose: str) -> None:
        self._key = hmac.new(secret, _LABEL + purpose.encode(), hashlib.sha256).digest()

    def __call__(self, value: str) -> str:
        """A 128-bit keyed hash of `value`, as 32 hex digits."""
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.hexdigest()[:32]
