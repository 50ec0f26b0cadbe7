"""Message tokens: one encrypted message as bytes (pack, unpack, peek, re-encrypt).

Version 2 (written by :func:`pack`)::

    version(1)=2 | flags(1) | role(1) | sequence(u32 BE) | timestamp(u32 BE, unix s)
    | nonce(12) | AES-256-GCM(ciphertext + tag(16))

flags bit 0 means the plaintext is zlib-compressed (done only when that shrinks it);
the other bits must be zero. The associated data is the 11 header bytes followed by the
conversation id's 16 bytes, so a token moved to another conversation or position, or
relabelled, fails authentication.

Version 1 is the seed's layout, read only (base64url-decoded to bytes first)::

    version(1)=1 | role(1) | sequence(u32) | timestamp(u32) | length(u16)
    | AES-256-GCM(zlib level 9 content) + tag(16) | nonce(16)

Its header is not authenticated (as in the seed); its keys come from ``seed_v1_keys``.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import os
import re
import struct
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag

from crypto.exceptions import InvalidToken
from crypto.keys import ConversationKeys

__all__ = [
    "MAX_CONTENT_CHARS",
    "Message",
    "Role",
    "TokenHeader",
    "b64url_decode",
    "b64url_encode",
    "pack",
    "peek_header",
    "reencrypt",
    "unpack",
]

MAX_CONTENT_CHARS = 100_000
"""Longest message content accepted by :func:`pack`, in characters (code points)."""


class Role(enum.IntEnum):
    """Author of a message, as stored in the token's role byte."""

    USER = 0
    ASSISTANT = 1
    SYSTEM = 2


@dataclass(frozen=True, slots=True)
class TokenHeader:
    """The clear-text header of a token, readable without a key."""

    version: int
    role: Role
    sequence: int
    timestamp: int
    compressed: bool


@dataclass(frozen=True, slots=True)
class Message:
    """A decrypted message; ``content_hash`` is the first 16 hex digits of SHA-256(content)."""

    sequence: int
    role: Role
    content: str
    timestamp: datetime
    content_hash: str


_V1 = 1
_V2 = 2
_V1_HEADER = struct.Struct(">BBIIH")
_V2_HEADER = struct.Struct(">BBBII")
_V1_NONCE_SIZE = 16
_V2_NONCE_SIZE = 12
_TAG_SIZE = 16
_V1_MIN_SIZE = _V1_HEADER.size + _TAG_SIZE + _V1_NONCE_SIZE
_V2_MIN_SIZE = _V2_HEADER.size + _V2_NONCE_SIZE + _TAG_SIZE
_FLAG_COMPRESSED = 0x01
_MAX_UINT32 = 0xFFFFFFFF
_ROLES = tuple(Role)
_COMPRESS_MIN_BYTES = 64
_COMPRESS_LEVEL = 6
_MAX_PLAIN_BYTES = 4 * MAX_CONTENT_CHARS
# zlib can only reach back 2**wbits - 262 bytes; a window just big enough for the data
# compresses exactly as well as the default and is several times faster to set up.
_ZLIB_LOOKAHEAD = 262
_B64URL_TEXT = re.compile(r"[A-Za-z0-9_-]*")


def pack(
    keys: ConversationKeys,
    conversation_id: uuid.UUID,
    sequence: int,
    role: Role,
    content: str,
    timestamp: datetime | None = None,
    *,
    compress: bool = True,
) -> bytes:
    """Encrypt one message as a version-2 token.

    ``timestamp`` defaults to now and must be timezone-aware; it is stored in whole
    seconds. ``compress=False`` never compresses: in a conversation where more than one
    party writes, compressed lengths would let one learn about another's text placed in
    the same message (README, "Compression"). Raises ``ValueError`` for a sequence
    outside 1..2**32-1, an unknown role, empty or whitespace-only content, content over
    :data:`MAX_CONTENT_CHARS`, text with lone surrogates, or a timestamp outside the
    uint32 range.
    """
    if isinstance(sequence, bool) or not 1 <= sequence <= _MAX_UINT32:
        raise ValueError("sequence must be in 1..4294967295")
    return _seal(keys, conversation_id, sequence, Role(role), _encode_content(content),
                 _unix_seconds(timestamp), compress=compress)


def unpack(
    keys: ConversationKeys,
    conversation_id: uuid.UUID,
    token: bytes,
    expected_sequence: int | None = None,
) -> Message:
    """Decrypt a version-2 or version-1 token; every failure raises :class:`InvalidToken`.

    For version 1 ``keys`` must come from ``seed_v1_keys`` (the seed bound the
    conversation through the key, not through associated data).
    """
    header, nonce, sealed, aad = _split(token)
    if expected_sequence is not None and header.sequence != expected_sequence:
        raise InvalidToken("sequence mismatch")
    if aad is not None:
        aad += conversation_id.bytes
    try:
        plain = keys.aead.decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise InvalidToken("authentication failed") from None
    if header.version == _V2:
        data = _inflate(plain) if header.compressed else plain
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidToken("content is not UTF-8") from None
    else:
        data = _inflate_v1(plain)
        # The seed decoded leniently (Node's Buffer.toString); so do we for its tokens.
        content = data.decode("utf-8", errors="replace")
        data = content.encode("utf-8")
    return Message(
        sequence=header.sequence,
        role=header.role,
        content=content,
        timestamp=datetime.fromtimestamp(header.timestamp, UTC),
        content_hash=hashlib.sha256(data).hexdigest()[:16],
    )


def peek_header(token: bytes) -> TokenHeader:
    """Read a token's header without a key; raises :class:`InvalidToken` if malformed."""
    return _split(token)[0]


def reencrypt(
    old: ConversationKeys,
    new: ConversationKeys,
    conversation_id: uuid.UUID,
    token: bytes,
    *,
    compress: bool = True,
) -> bytes:
    """Decrypt ``token`` with ``old`` keys and write it again as version 2 under ``new``.

    Sequence, role and timestamp are kept; ``compress`` as for :func:`pack`. Used for
    key rotation and for migrating version-1 tokens. Raises :class:`InvalidToken` if
    ``token`` does not open.
    """
    message = unpack(old, conversation_id, token)
    return _seal(new, conversation_id, message.sequence, message.role,
                 message.content.encode("utf-8"), int(message.timestamp.timestamp()),
                 compress=compress)


def b64url_encode(data: bytes) -> str:
    """URL-safe base64 without padding (the seed's ``base64url``)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded URL-safe base64; raises :class:`InvalidToken` on any bad input."""
    if (
        not isinstance(text, str)
        or len(text) % 4 == 1
        or _B64URL_TEXT.fullmatch(text) is None
    ):
        raise InvalidToken("bad base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode_content(content: str) -> bytes:
    if not isinstance(content, str):
        raise ValueError("content must be a string")
    if len(content) > MAX_CONTENT_CHARS:
        raise ValueError(f"content exceeds {MAX_CONTENT_CHARS} characters")
    if not content or content.isspace():
        raise ValueError("content must not be empty or only whitespace")
    try:
        return content.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("content contains unpaired surrogates") from None


def _unix_seconds(timestamp: datetime | None) -> int:
    if timestamp is None:
        return int(time.time())
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    seconds = int(timestamp.timestamp() // 1)
    if not 0 <= seconds <= _MAX_UINT32:
        raise ValueError("timestamp outside the unsigned 32-bit unix-seconds range")
    return seconds


def _seal(
    keys: ConversationKeys,
    conversation_id: uuid.UUID,
    sequence: int,
    role: Role,
    data: bytes,
    timestamp: int,
    *,
    compress: bool,
) -> bytes:
    flags = 0
    if compress and len(data) > _COMPRESS_MIN_BYTES:
        wbits = min(15, max(9, (len(data) + _ZLIB_LOOKAHEAD).bit_length()))
        packed = zlib.compress(data, _COMPRESS_LEVEL, wbits)
        if len(packed) < len(data):
            data = packed
            flags = _FLAG_COMPRESSED
    header = _V2_HEADER.pack(_V2, flags, role, sequence, timestamp)
    nonce = os.urandom(_V2_NONCE_SIZE)
    return header + nonce + keys.aead.encrypt(nonce, data, header + conversation_id.bytes)


def _split(token: bytes) -> tuple[TokenHeader, bytes, bytes, bytes | None]:
    """Parse a token into (header, nonce, sealed, header-AAD or None for version 1)."""
    if not isinstance(token, bytes | bytearray | memoryview) or len(token) == 0:
        raise InvalidToken("empty or not bytes")
    token = bytes(token)
    version = token[0]
    if version == _V2:
        if len(token) < _V2_MIN_SIZE:
            raise InvalidToken("too short")
        _, flags, role, sequence, timestamp = _V2_HEADER.unpack_from(token)
        if flags & ~_FLAG_COMPRESSED:
            raise InvalidToken("unknown flags")
        end = _V2_HEADER.size
        aad: bytes | None = token[:end]
        nonce = token[end : end + _V2_NONCE_SIZE]
        sealed = token[end + _V2_NONCE_SIZE :]
        compressed = bool(flags)
    elif version == _V1:
        if len(token) < _V1_MIN_SIZE:
            raise InvalidToken("too short")
        _, role, sequence, timestamp, length = _V1_HEADER.unpack_from(token)
        start = _V1_HEADER.size
        if length < _TAG_SIZE or start + length != len(token) - _V1_NONCE_SIZE:
            raise InvalidToken("length field does not match")
        aad = None
        sealed = token[start : start + length]
        nonce = token[start + length :]
        compressed = True
    else:
        raise InvalidToken("unknown version")
    if role >= len(_ROLES):
        raise InvalidToken("unknown role")
    if sequence == 0:
        raise InvalidToken("sequence zero")
    header = TokenHeader(version, _ROLES[role], sequence, timestamp, compressed)
    return header, nonce, sealed, aad


def _bounded_inflate(data: bytes) -> tuple[bytes, bool]:
    """Inflate a zlib stream of at most ``_MAX_PLAIN_BYTES``; return (output, complete)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, _MAX_PLAIN_BYTES + 1)
    except zlib.error:
        return b"", False
    if len(out) > _MAX_PLAIN_BYTES or inflater.unconsumed_tail:
        raise InvalidToken("decompressed content too large")
    return out, inflater.eof and not inflater.unused_data


def _inflate(data: bytes) -> bytes:
    out, complete = _bounded_inflate(data)
    if not complete:
        raise InvalidToken("bad compressed data")
    return out


def _inflate_v1(data: bytes) -> bytes:
    out, complete = _bounded_inflate(data)
    # The seed fell back to the raw bytes when inflate failed ("legacy" plaintext).
    return out if complete else data
