"""Member key pairs: sealing a conversation key to a member who may be offline.

In a shared conversation every member has an X25519 key pair. The private key is kept
wrapped under the member's own data key (:func:`wrap_private_key`), so it is readable
only while that member is logged in; the public key is stored in the clear. To add a
member, an admin seals the conversation key to the member's public key
(:func:`seal_to_member`); the member opens it at their next login
(:func:`open_from_member`). No secret of the member is needed to seal, which is why an
offline member can be added.

A seal is ephemeral-static X25519: each call makes a fresh ephemeral pair, so two seals
of the same key share nothing, and the sender keeps no secret that could open it later.
"""

from __future__ import annotations

import hmac
import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crypto.exceptions import KeyUnwrapError
from crypto.keys import unwrap_key, wrap_key

__all__ = [
    "MemberKeyPair",
    "new_member_key_pair",
    "open_from_member",
    "public_key_of",
    "seal_to_member",
    "unwrap_private_key",
    "wrap_private_key",
]

_X25519_SIZE = 32
_SEAL_VERSION = 1
_SEAL_HEADER = bytes([_SEAL_VERSION])
_NONCE_SIZE = 12
_TAG_SIZE = 16
_AES_KEY_SIZE = 32
# Ends in NUL so the fixed-size public keys (in the HKDF info) and the caller's context
# (in the associated data) that follow cannot be confused with a longer label.
_SEAL_LABEL = b"scca/v2/member-seal\x00"
_PRIVATE_KEY_CONTEXT = b"member-private-key:"


@dataclass(frozen=True, slots=True, repr=False)
class MemberKeyPair:
    """A member's X25519 key pair as raw bytes (32 each).

    The repr is redacted so that logging the pair never writes the private key.
    """

    public_key: bytes
    private_key: bytes

    def __post_init__(self) -> None:
        for name in ("public_key", "private_key"):
            _check_x25519(getattr(self, name), f"MemberKeyPair.{name}")

    def __repr__(self) -> str:
        return "MemberKeyPair(<redacted>)"

    __str__ = __repr__


def _check_x25519(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != _X25519_SIZE:
        raise ValueError(f"{what} must be {_X25519_SIZE} bytes")


def _raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_member_key_pair() -> MemberKeyPair:
    """Return a fresh random X25519 key pair."""
    private = X25519PrivateKey.generate()
    return MemberKeyPair(public_key=_raw_public(private), private_key=private.private_bytes_raw())


def public_key_of(private_key: bytes) -> bytes:
    """Return the raw public key of a raw private key (``ValueError`` unless 32 bytes)."""
    _check_x25519(private_key, "private key")
    return _raw_public(X25519PrivateKey.from_private_bytes(private_key))


def _private_key_context(user_id: uuid.UUID) -> bytes:
    return _PRIVATE_KEY_CONTEXT + user_id.bytes


def wrap_private_key(data_key: bytes, private_key: bytes, *, user_id: uuid.UUID) -> bytes:
    """Wrap a member's private key under their data key, bound to their user id.

    The binding means a wrapped private key copied onto another user's row does not
    unwrap there, even under the same data key.
    """
    _check_x25519(private_key, "private key")
    return wrap_key(data_key, private_key, context=_private_key_context(user_id))


def unwrap_private_key(data_key: bytes, wrapped: bytes, *, user_id: uuid.UUID) -> bytes:
    """Reverse :func:`wrap_private_key`; :class:`KeyUnwrapError` on any mismatch or damage.

    A result that is not 32 bytes is refused too: it cannot be an X25519 private key.
    """
    private_key = unwrap_key(data_key, wrapped, context=_private_key_context(user_id))
    if len(private_key) != _X25519_SIZE:
        raise KeyUnwrapError("wrong length")
    return private_key


def _shared_secret(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """The X25519 shared secret; ``ValueError`` if it is all zero.

    An all-zero secret means a low-order peer key: anyone can compute it, so it is refused
    (OpenSSL may already refuse it with ``ValueError``; the check does not rely on that).
    """
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    if hmac.compare_digest(shared, bytes(_X25519_SIZE)):
        raise ValueError("all-zero shared secret")
    return shared


def _wrapping_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    # Both public keys in the info tie the key to this exact exchange.
    info = _SEAL_LABEL + ephemeral_public + recipient_public
    hkdf = HKDF(algorithm=hashes.SHA256(), length=_AES_KEY_SIZE, salt=None, info=info)
    return hkdf.derive(shared)


def seal_to_member(public_key: bytes, key: bytes, *, context: bytes) -> bytes:
    """Encrypt ``key`` so that only the holder of ``public_key``'s private key opens it.

    Layout: version(1) = 1 | ephemeral public key(32) | nonce(12) | ciphertext + tag(16).
    The associated data is the version byte, the seal label and ``context`` (conversation,
    key version and recipient), so a seal moved to another place does not open. Raises
    ``ValueError`` for a public key that is not 32 bytes, an empty key, or a low-order
    public key (whose shared secret is all zero).
    """
    _check_x25519(public_key, "public key")
    if not key:
        raise ValueError("key to seal must not be empty")
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = _raw_public(ephemeral)
    try:
        shared = _shared_secret(ephemeral, public_key)
    except ValueError:
        raise ValueError("public key is of low order") from None
    wrapping_key = _wrapping_key(shared, ephemeral_public, public_key)
    nonce = os.urandom(_NONCE_SIZE)
    sealed = AESGCM(wrapping_key).encrypt(nonce, key, _SEAL_HEADER + _SEAL_LABEL + context)
    return _SEAL_HEADER + ephemeral_public + nonce + sealed


def open_from_member(private_key: bytes, sealed: bytes, *, context: bytes) -> bytes:
    """Reverse :func:`seal_to_member`; :class:`KeyUnwrapError` on any mismatch or damage.

    Damage, another recipient, another context and a low-order ephemeral key all fail
    alike (reason "authentication failed"), so a caller learns nothing about which.
    """
    _check_x25519(private_key, "private key")
    if len(sealed) < 1 + _X25519_SIZE + _NONCE_SIZE + _TAG_SIZE + 1:
        raise KeyUnwrapError("too short")
    if sealed[0] != _SEAL_VERSION:
        raise KeyUnwrapError("unknown version")
    ephemeral_public = sealed[1 : 1 + _X25519_SIZE]
    nonce = sealed[1 + _X25519_SIZE : 1 + _X25519_SIZE + _NONCE_SIZE]
    body = sealed[1 + _X25519_SIZE + _NONCE_SIZE :]
    private = X25519PrivateKey.from_private_bytes(private_key)
    try:
        shared = _shared_secret(private, ephemeral_public)
        wrapping_key = _wrapping_key(shared, ephemeral_public, _raw_public(private))
        return AESGCM(wrapping_key).decrypt(nonce, body, _SEAL_HEADER + _SEAL_LABEL + context)
    except (ValueError, InvalidTag):
        raise KeyUnwrapError("authentication failed") from None
