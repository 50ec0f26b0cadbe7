"""Message tokens at their edges: exact size limits, every rejection's reason, v1 decoding.

The reason of an `InvalidToken` is what the server logs to tell a damaged token from a
forged one, so each check is pinned to its own reason here.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from datetime import UTC, datetime, timedelta, tzinfo

import pytest

from crypto import (
    InvalidToken,
    Role,
    b64url_decode,
    b64url_encode,
    derive_conversation_keys,
    new_key,
    pack,
    peek_header,
    seed_v1_keys,
    unpack,
)
from crypto.tokens import MAX_CONTENT_CHARS

CONV = uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0ff")
KEYS = derive_conversation_keys(bytes(range(32)), CONV, 1)
V1_KEYS = seed_v1_keys(bytes(range(32, 64)), str(CONV))
NONCE_V2 = bytes(12)


def _v2(plain: bytes, *, flags: int = 0, role: int = 0, sequence: int = 1) -> bytes:
    """A version-2 token sealed by hand (what `pack` would write for this plaintext)."""
    header = struct.pack(">BBBII", 2, flags, role, sequence, 1_700_000_000)
    return header + NONCE_V2 + KEYS.aead.encrypt(NONCE_V2, plain, header + CONV.bytes)


def _v1(plain: bytes, *, role: int = 0, sequence: int = 1) -> bytes:
    """A version-1 token (the seed's layout) around an exact plaintext."""
    nonce = bytes(range(16))
    sealed = V1_KEYS.aead.encrypt(nonce, plain, None)
    return struct.pack(">BBIIH", 1, role, sequence, 1_700_000_000, len(sealed)) + sealed + nonce


def _reason(token: bytes, **kwargs: int) -> str:
    with pytest.raises(InvalidToken) as caught:
        unpack(KEYS, CONV, token, **kwargs)
    assert str(caught.value) == "invalid message token"
    return caught.value.reason


def test_each_malformed_token_names_its_own_reason() -> None:
    good = pack(KEYS, CONV, 3, Role.USER, "hello")
    assert _reason(b"") == "empty or not bytes"
    assert _reason(good[:38]) == "too short"
    assert _reason(bytes([2, 2]) + good[2:]) == "unknown flags"
    assert _reason(bytes([3]) + good[1:]) == "unknown version"
    assert _reason(good[:2] + bytes([3]) + good[3:]) == "unknown role"
    assert _reason(good[:3] + bytes(4) + good[7:]) == "sequence zero"
    assert _reason(good, expected_sequence=4) == "sequence mismatch"
    assert _reason(good[:-1] + bytes([good[-1] ^ 1])) == "authentication failed"
    v1 = _v1(b"x" * 20)
    assert _reason(v1[:43]) == "too short"
    assert _reason(v1[:10] + struct.pack(">H", 15) + v1[12:]) == "length field does not match"
    with pytest.raises(InvalidToken) as caught:
        b64url_decode("a")
    assert caught.value.reason == "bad base64url"


def test_tokens_of_exactly_the_minimum_size_are_parsed() -> None:
    # v2: header(11) + nonce(12) + tag(16); v1: header(12) + tag(16) + nonce(16).
    v2 = _v2(b"")
    assert len(v2) == 39
    assert peek_header(v2).version == 2
    v1 = struct.pack(">BBIIH", 1, 0, 1, 0, 16) + bytes(16) + bytes(16)
    assert len(v1) == 44
    header = peek_header(v1)
    assert header.version == 1 and header.compressed is True
    assert _reason(v1) == "authentication failed"


def test_a_v2_plaintext_that_is_not_utf8_is_refused() -> None:
    assert _reason(_v2(b"\xff\xfe")) == "content is not UTF-8"


def test_compressed_content_must_be_a_complete_zlib_stream_within_the_limit() -> None:
    assert _reason(_v2(b"not zlib at all", flags=1)) == "bad compressed data"
    assert _reason(_v2(zlib.compress(b"ok")[:-2], flags=1)) == "bad compressed data"
    bomb = zlib.compress(b"a" * (4 * MAX_CONTENT_CHARS + 1), 9)
    assert _reason(_v2(bomb, flags=1)) == "decompressed content too large"
    at_limit = zlib.compress(b"a" * (4 * MAX_CONTENT_CHARS), 9)
    assert len(unpack(KEYS, CONV, _v2(at_limit, flags=1)).content) == 4 * MAX_CONTENT_CHARS


def test_v1_content_that_is_not_utf8_is_decoded_leniently_as_the_seed_did() -> None:
    message = unpack(V1_KEYS, CONV, _v1(zlib.compress(b"caf\xe9 ok", 9)))
    assert message.content == "caf\ufffd ok"
    raw = unpack(V1_KEYS, CONV, _v1(b"plain \xff bytes"))  # not zlib: the seed kept the bytes
    assert raw.content == "plain \ufffd bytes"


def test_sequence_bounds_are_inclusive() -> None:
    top = pack(KEYS, CONV, 0xFFFFFFFF, Role.USER, "last")
    assert unpack(KEYS, CONV, top, expected_sequence=0xFFFFFFFF).sequence == 0xFFFFFFFF
    for bad in (0, 0x1_0000_0000, True):
        with pytest.raises(ValueError, match=r"^sequence must be in 1\.\.4294967295$"):
            pack(KEYS, CONV, bad, Role.USER, "x")


def test_content_rejections_say_what_is_wrong() -> None:
    cases: list[tuple[object, str]] = [
        (b"bytes", r"^content must be a string$"),
        ("x" * (MAX_CONTENT_CHARS + 1), rf"^content exceeds {MAX_CONTENT_CHARS} characters$"),
        (" \n\t", r"^content must not be empty or only whitespace$"),
        ("a\ud800", r"^content contains unpaired surrogates$"),
    ]
    for content, message in cases:
        with pytest.raises(ValueError, match=message):
            pack(KEYS, CONV, 1, Role.USER, content)  # type: ignore[arg-type]


class _NoOffset(tzinfo):
    """A tzinfo that does not know its offset: as unusable as no tzinfo at all."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None


def test_timestamps_must_know_their_offset_and_fit_in_uint32() -> None:
    for naive in (datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=_NoOffset())):
        with pytest.raises(ValueError, match=r"^timestamp must be timezone-aware$"):
            pack(KEYS, CONV, 1, Role.USER, "x", naive)
    # Half a second before the epoch floors to -1, which is out of range.
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"^timestamp outside the unsigned 32-bit"):
        pack(KEYS, CONV, 1, Role.USER, "x", before_epoch)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert peek_header(pack(KEYS, CONV, 1, Role.USER, "x", epoch)).timestamp == 0
    last = datetime.fromtimestamp(0xFFFFFFFF, UTC)
    assert peek_header(pack(KEYS, CONV, 1, Role.USER, "x", last)).timestamp == 0xFFFFFFFF
    with pytest.raises(ValueError, match=r"^timestamp outside the unsigned 32-bit"):
        pack(KEYS, CONV, 1, Role.USER, "x", last + timedelta(seconds=1))


def test_short_content_is_never_compressed() -> None:
    at_threshold = pack(KEYS, CONV, 1, Role.USER, "a" * 64)
    assert peek_header(at_threshold).compressed is False
    above = pack(KEYS, CONV, 1, Role.USER, "a" * 65)
    assert peek_header(above).compressed is True
    assert unpack(KEYS, CONV, above).content == "a" * 65


def test_b64url_keeps_every_character_of_the_alphabet() -> None:
    # The last character of this encoding is "X", next to the stripped padding.
    assert b64url_encode(b"\x00\x00\x17") == "AAAX"
    assert b64url_decode("AAAX") == b"\x00\x00\x17"
    assert b64url_encode(b"\xff\xfe") == "__4"


def test_another_conversations_keys_do_not_open_a_token() -> None:
    other = derive_conversation_keys(new_key(), CONV, 1)
    token = pack(KEYS, CONV, 1, Role.ASSISTANT, "mine")
    with pytest.raises(InvalidToken) as caught:
        unpack(other, CONV, token)
    assert caught.value.reason == "authentication failed"
