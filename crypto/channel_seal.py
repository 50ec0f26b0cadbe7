"""Sealing what the server puts outside PostgreSQL: pub/sub messages and resume mirrors.

Redis is outside the trust boundary for content (DESIGN "Trust boundary"): every
message between instances and every mirror of a running reply is AES-256-GCM under a
key derived from the server secret for one purpose (``purpose`` in the HKDF info), so a
sealed pub/sub message cannot be opened as a mirror chunk or the other way round.

Layout: version(1) = 1, key id(4), nonce(12), ciphertext + tag(16). The key id is a
fingerprint of the secret, so instances in the middle of a rolling secret rotation find
the key a message was sealed with among the secrets they accept; the associated data is
the header plus the caller's context (the channel name, a mirror's key), so a message
moved to another channel or key does not open.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.exceptions import SealError, WeakSecretError
from crypto.keys import KEY_SIZE

__all__ = ["ChannelSeal"]

_VERSION = 1
_KEY_ID_SIZE = 4
_NONCE_SIZE = 12
_TAG_SIZE = 16
_HEADER_SIZE = 1 + _KEY_ID_SIZE
_OVERHEAD = _HEADER_SIZE + _NONCE_SIZE + _TAG_SIZE
_INFO = b"scca/v1/channel-seal\x00"
_KEY_ID_LABEL = b"scca/v1/channel-seal/key-id"


def _key_id(secret: bytes) -> bytes:
    return hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).digest()[:_KEY_ID_SIZE]


def _purpose_key(secret: bytes, purpose: bytes) -> AESGCM:
    if len(secret) < KEY_SIZE:
        raise WeakSecretError()
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=_INFO + purpose)
    return AESGCM(key.derive(secret))


class ChannelSeal:
    """Seal with the current secret; open with it or any secret still accepted."""

    def __init__(self, secret: bytes, *, purpose: bytes, accepted: Iterable[bytes] = ()) -> None:
        if not purpose:
            raise ValueError("purpose must not be empty")
        self._header = bytes([_VERSION]) + _key_id(secret)
        self._sealing = _purpose_key(secret, purpose)
        self._opening = {_key_id(secret): self._sealing}
        for other in accepted:
            self._opening.setdefault(_key_id(other), _purpose_key(other, purpose))

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        header = self._header
        return header + nonce + self._sealing.encrypt(nonce, plaintext, header + context)

    def open(self, sealed: bytes, *, context: bytes) -> bytes:
        """The plaintext; raises :class:`SealError` for anything not sealed by an accepted
        secret for this purpose and context."""
        if len(sealed) < _OVERHEAD:
            raise SealError("too short")
        if sealed[0] != _VERSION:
            raise SealError("unknown version")
        header = sealed[:_HEADER_SIZE]
        aead = self._opening.get(header[1:])
        if aead is None:
            raise SealError("unknown key")
        nonce = sealed[_HEADER_SIZE : _HEADER_SIZE + _NONCE_SIZE]
        try:
            return aead.decrypt(nonce, sealed[_HEADER_SIZE + _NONCE_SIZE :], header + context)
        except InvalidTag:
            raise SealError("authentication failed") from None
