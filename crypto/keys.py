"""Key material: random keys, Argon2id key-encryption keys, AES-GCM key wrapping, HKDF.

Hierarchy (see DESIGN "Keys"):

* password + own salt -> :func:`derive_kek` (Argon2id) -> unwraps the user's random data key;
* each conversation has a random conversation key wrapped under the user's data key
  (``context`` = the conversation id), and :func:`derive_conversation_keys` turns it into
  separate encryption and integrity keys. Destroying the wrapped conversation key shreds
  the conversation;
* a password change replaces the data key with a new random one and re-wraps every
  conversation key under it; no message is touched;
* at login the data key is wrapped for the session under :func:`session_wrapping_key`;
* short fields a person writes about a conversation (its title) are sealed under that
  conversation's keys with :func:`seal_field`.

Legacy conversations written by the seed use :func:`seed_v1_keys` instead.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass, field

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.exceptions import InvalidToken, KeyUnwrapError, WeakSecretError

__all__ = [
    "KEK_MEMORY_COST",
    "KEK_PARALLELISM",
    "KEK_TIME_COST",
    "KEY_SIZE",
    "SALT_SIZE",
    "ConversationKeys",
    "derive_conversation_keys",
    "derive_kek",
    "new_key",
    "new_salt",
    "open_field",
    "seal_field",
    "seed_v1_keys",
    "session_wrapping_key",
    "unwrap_key",
    "wrap_key",
]

KEY_SIZE = 32
"""Bytes in every symmetric key (AES-256, HMAC-SHA256)."""

SALT_SIZE = 16
"""Bytes in a salt from :func:`new_salt`."""

KEK_TIME_COST = 2
KEK_MEMORY_COST = 19_456
"""KiB; with ``KEK_TIME_COST`` and ``KEK_PARALLELISM`` the OWASP minimum for Argon2id."""
KEK_PARALLELISM = 1

_WRAP_VERSION = 1
_WRAP_NONCE_SIZE = 12
_TAG_SIZE = 16
_WRAP_HEADER = bytes([_WRAP_VERSION])
_MIN_SALT_SIZE = 8  # Argon2's own lower bound

# HKDF "info" labels end in NUL so the fixed-size fields that follow cannot be confused
# with a longer label.
_INFO_SESSION = b"scca/v2/session-wrapping-key\x00"
_INFO_CONV_ENC = b"scca/v2/conversation/enc\x00"
_INFO_CONV_INT = b"scca/v2/conversation/integrity\x00"
_MAX_KEY_VERSION = 0xFFFFFFFF
# Associated data of a sealed field starts with this label: a message token's starts
# with its own version byte 2, a wrapped key's with _WRAP_HEADER and its context label.
_FIELD_LABEL = b"scca/v2/sealed-field\x00"


@dataclass(frozen=True, slots=True, repr=False)
class ConversationKeys:
    """The encryption and integrity keys of one conversation (32 bytes each).

    ``aead`` is the ready AES-GCM object for ``enc``, built once so that packing and
    unpacking do not rebuild it per message; it takes no part in equality.
    """

    enc: bytes
    integrity: bytes
    aead: AESGCM = field(init=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("enc", "integrity"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != KEY_SIZE:
                raise ValueError(f"ConversationKeys.{name} must be {KEY_SIZE} bytes")
        object.__setattr__(self, "aead", AESGCM(self.enc))

    def __repr__(self) -> str:
        return "ConversationKeys(<redacted>)"

    __str__ = __repr__


def new_key() -> bytes:
    """Return a fresh random 32-byte key."""
    return os.urandom(KEY_SIZE)


def new_salt() -> bytes:
    """Return a fresh random 16-byte salt."""
    return os.urandom(SALT_SIZE)


def derive_kek(
    password: str,
    salt: bytes,
    *,
    time_cost: int = KEK_TIME_COST,
    memory_cost: int = KEK_MEMORY_COST,
    parallelism: int = KEK_PARALLELISM,
) -> bytes:
    """Derive a 32-byte key-encryption key from a password with Argon2id (raw hash).

    Use a salt of its own (not the login hash's salt). Raises ``ValueError`` for a salt
    shorter than 8 bytes or a password that is not encodable as UTF-8.
    """
    if len(salt) < _MIN_SALT_SIZE:
        raise ValueError(f"salt must be at least {_MIN_SALT_SIZE} bytes")
    try:
        secret = password.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("password is not valid UTF-8 text") from None
    try:
        return hash_secret_raw(
            secret=secret,
            salt=salt,
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=KEY_SIZE,
            type=Type.ID,
        )
    except HashingError as exc:
        raise ValueError(f"invalid Argon2 parameters: {exc}") from None


def _check_aes_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError(f"{what} must be {KEY_SIZE} bytes")


def _check_secret(secret: bytes) -> None:
    if len(secret) < KEY_SIZE:
        raise WeakSecretError()


def wrap_key(wrapping_key: bytes, key: bytes, *, context: bytes) -> bytes:
    """Encrypt ``key`` under ``wrapping_key`` (AES-256-GCM), bound to ``context``.

    Layout: version(1) = 1, nonce(12), ciphertext + tag(16). The associated data is the
    version byte followed by ``context`` (for example ``b"conversation-key:" + id.bytes``),
    so a wrapped key moved to another owner does not unwrap.
    """
    _check_aes_key(wrapping_key, "wrapping key")
    if not key:
        raise ValueError("key to wrap must not be empty")
    nonce = os.urandom(_WRAP_NONCE_SIZE)
    sealed = AESGCM(wrapping_key).encrypt(nonce, key, _WRAP_HEADER + context)
    return _WRAP_HEADER + nonce + sealed


def unwrap_key(wrapping_key: bytes, wrapped: bytes, *, context: bytes) -> bytes:
    """Reverse :func:`wrap_key`; raises :class:`KeyUnwrapError` on any mismatch or damage."""
    _check_aes_key(wrapping_key, "wrapping key")
    if len(wrapped) < 1 + _WRAP_NONCE_SIZE + _TAG_SIZE + 1:
        raise KeyUnwrapError("too short")
    if wrapped[0] != _WRAP_VERSION:
        raise KeyUnwrapError("unknown version")
    nonce = wrapped[1 : 1 + _WRAP_NONCE_SIZE]
    sealed = wrapped[1 + _WRAP_NONCE_SIZE :]
    try:
        return AESGCM(wrapping_key).decrypt(nonce, sealed, _WRAP_HEADER + context)
    except InvalidTag:
        raise KeyUnwrapError("authentication failed") from None


def seal_field(keys: ConversationKeys, plaintext: bytes, *, context: bytes) -> bytes:
    """Encrypt a short field (a title) under a conversation's encryption key.

    Same layout as :func:`wrap_key`: version(1) = 1, nonce(12), ciphertext + tag(16). The
    associated data is the version byte, a label of its own and ``context`` (which names
    the conversation, key version and purpose), so a sealed field copied to another
    conversation, version or purpose does not open. The nonce is random, as for message
    tokens under the same key.
    """
    nonce = os.urandom(_WRAP_NONCE_SIZE)
    sealed = keys.aead.encrypt(nonce, plaintext, _WRAP_HEADER + _FIELD_LABEL + context)
    return _WRAP_HEADER + nonce + sealed


def open_field(keys: ConversationKeys, sealed: bytes, *, context: bytes) -> bytes:
    """Reverse :func:`seal_field`; raises :class:`InvalidToken` on any mismatch or damage.

    (A sealed field is a small token of its own: it fails the way a message token does.)
    """
    if len(sealed) < 1 + _WRAP_NONCE_SIZE + _TAG_SIZE:
        raise InvalidToken("sealed field too short")
    if sealed[0] != _WRAP_VERSION:
        raise InvalidToken("unknown sealed field version")
    nonce = sealed[1 : 1 + _WRAP_NONCE_SIZE]
    try:
        return keys.aead.decrypt(
            nonce, sealed[1 + _WRAP_NONCE_SIZE :], _WRAP_HEADER + _FIELD_LABEL + context
        )
    except InvalidTag:
        raise InvalidToken("sealed field authentication failed") from None


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(secret)


def session_wrapping_key(secret_key: bytes, session_id: uuid.UUID) -> bytes:
    """Derive the key that wraps a user's data key for one login session.

    HKDF-SHA256 over the server secret, info = purpose label + session id. Raises
    :class:`WeakSecretError` if the secret is shorter than 32 bytes.
    """
    _check_secret(secret_key)
    return _hkdf(secret_key, _INFO_SESSION + session_id.bytes)


def derive_conversation_keys(
    conversation_key: bytes, conversation_id: uuid.UUID, key_version: int
) -> ConversationKeys:
    """Derive a conversation's encryption and integrity keys from its conversation key.

    Two HKDF-SHA256 derivations whose info is purpose label + key version (uint32 BE) +
    conversation id, so the two keys are independent and bound to this conversation and
    version. Raises :class:`WeakSecretError` for a key shorter than 32 bytes and
    ``ValueError`` for a version outside 0..2**32-1.
    """
    _check_secret(conversation_key)
    if not 0 <= key_version <= _MAX_KEY_VERSION:
        raise ValueError("key_version must fit in an unsigned 32-bit integer")
    suffix = key_version.to_bytes(4, "big") + conversation_id.bytes
    return ConversationKeys(
        enc=_hkdf(conversation_key, _INFO_CONV_ENC + suffix),
        integrity=_hkdf(conversation_key, _INFO_CONV_INT + suffix),
    )


def _seed_derive(master_key: bytes, extract_label: bytes, info: bytes) -> bytes:
    prk = hmac.new(master_key, extract_label, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def seed_v1_keys(master_key: bytes, conversation_id: str) -> ConversationKeys:
    """The seed's per-conversation keys (``deriveConversationKey`` / ``deriveIntegrityKey``).

    Reproduced byte for byte so version-1 tokens and the seed's ``merkleRoot`` can be
    read: PRK = HMAC(master, label), key = HMAC(PRK, info || 0x01). ``conversation_id`` is
    the id exactly as the seed formatted it (its UUID text).
    """
    _check_secret(master_key)
    conv = conversation_id.encode("utf-8")
    return ConversationKeys(
        enc=_seed_derive(master_key, b"gunther-v1-key-extract", b"conv-" + conv + b"-aes256gcm"),
        integrity=_seed_derive(
            master_key, b"gunther-v1-integrity-extract", b"conv-" + conv + b"-hmac-sha256"
        ),
    )
