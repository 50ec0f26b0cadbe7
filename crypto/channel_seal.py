"""Sealing what the server puts outside PostgreSQL: pub/sub messages and resume mirrors.

Redis is outside the trust boundary for content (DESIGN "Trust boundary"): every
message between instances and every mirror of a running reply is AES-256-GCM under a
key derived from the server secret for one purpose (``purpose`` in the HKDF info), so a
sealed pub/sub message cannot be opened as a mirror chunk or the other way round.

Layout: version(1) = 1, key id(4), salt(16), nonce(12), ciphertext + tag(16). The key
id is a fingerprint of the secret, so instances in the middle of a rolling secret
rotation find the key a message was sealed with among the secrets they accept. The salt
is drawn once per sealing object (once per process and purpose) and selects a key of its
own (HKDF of the purpose key and the salt): random 96-bit nonces stay far below their
collision bound (2**32 messages per key) however long the secret lives. The associated
data is the header plus the caller's context (the channel name, a mirror's key), so a
message moved to another channel or key does not open.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
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
_SALT_SIZE = 16
_NONCE_SIZE = 12
_TAG_SIZE = 16
_HEADER_SIZE = 1 + _KEY_ID_SIZE + _SALT_SIZE
_OVERHEAD = _HEADER_SIZE + _NONCE_SIZE + _TAG_SIZE
_INFO = b"scca/v1/channel-seal\x00"
_SALTED_INFO = b"scca/v1/channel-seal/salted\x00"
_KEY_ID_LABEL = b"scca/v1/channel-seal/key-id"
_OPENED_KEYS = 256  # salted keys kept by a receiver: one per sending process and purpose


def _key_id(secret: bytes) -> bytes:
    return hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).digest()[:_KEY_ID_SIZE]


def _purpose_key(secret: bytes, purpose: bytes) -> bytes:
    if len(secret) < KEY_SIZE:
        raise WeakSecretError()
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=_INFO + purpose)
    return key.derive(secret)


def _salted(purpose_key: bytes, salt: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=_SALTED_INFO)
    return AESGCM(key.derive(purpose_key))


class ChannelSeal:
    """Seal with the current secret; open with it or any secret still accepted."""

    def __init__(self, secret: bytes, *, purpose: bytes, accepted: Iterable[bytes] = ()) -> None:
        if not purpose:
            raise ValueError("purpose must not be empty")
        salt = os.urandom(_SALT_SIZE)
        own = _purpose_key(secret, purpose)
        self._header = bytes([_VERSION]) + _key_id(secret) + salt
        self._sealing = _salted(own, salt)
        self._purpose_keys = {_key_id(secret): own}
        for other in accepted:
            self._purpose_keys.setdefault(_key_id(other), _purpose_key(other, purpose))
        self._opened: OrderedDict[bytes, AESGCM] = OrderedDict({self._header[1:]: self._sealing})

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
        aead = self._key_for(header[1:])
        nonce = sealed[_HEADER_SIZE : _HEADER_SIZE + _NONCE_SIZE]
        try:
            return aead.decrypt(nonce, sealed[_HEADER_SIZE + _NONCE_SIZE :], header + context)
        except InvalidTag:
            raise SealError("authentication failed") from None

    def _key_for(self, key_id_and_salt: bytes) -> AESGCM:
        """The salted key of a sender, derived once and kept (least recently used out)."""
        aead = self._opened.get(key_id_and_salt)
        if aead is not None:
            self._opened.move_to_end(key_id_and_salt)
            return aead
        purpose_key = self._purpose_keys.get(key_id_and_salt[:_KEY_ID_SIZE])
        if purpose_key is None:
            raise SealError("unknown key")
        aead = _salted(purpose_key, key_id_and_salt[_KEY_ID_SIZE:])
        self._opened[key_id_and_salt] = aead
        if len(self._opened) > _OPENED_KEYS:
            self._opened.popitem(last=False)
        return aead
