"""Version-2 message tokens: round trips, validation, tamper and swap detection."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import struct
import tracemalloc
import uuid
import zlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import (
    MAX_CONTENT_CHARS,
    ConversationKeys,
    InvalidToken,
    Role,
    TokenHeader,
    b64url_decode,
    b64url_encode,
    derive_conversation_keys,
    new_key,
    pack,
    peek_header,
    reencrypt,
    unpack,
)

CONV = uuid.UUID("0b7f1c0e-2a55-4f3e-9a4c-1f2e3d4c5b6a")
OTHER_CONV = uuid.UUID("5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a")
KEYS = derive_conversation_keys(bytes(range(32)), CONV, 1)
WHEN = datetime(2024, 5, 17, 12, 30, 45, tzinfo=UTC)


def _keys() -> ConversationKeys:
    return derive_conversation_keys(new_key(), CONV, 1)


@settings(max_examples=150, deadline=None)
@given(
    content=st.text(min_size=1, max_size=2_000).filter(lambda s: not s.isspace()),
    sequence=st.integers(min_value=1, max_value=2**32 - 1),
    role=st.sampled_from(Role),
    seconds=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_round_trip_any_text(content: str, sequence: int, role: Role, seconds: int) -> None:
    when = datetime.fromtimestamp(seconds, UTC)
    token = pack(KEYS, CONV, sequence, role, content, when)
    message = unpack(KEYS, CONV, token, expected_sequence=sequence)
    assert message.content == content
    assert message.sequence == sequence
    assert message.role is role
    assert message.timestamp == when
    assert message.timestamp.tzinfo is not None
    header = peek_header(token)
    assert (header.version, header.role, header.sequence, header.timestamp) == (
        2, role, sequence, seconds,
    )


def test_content_hash_is_sha256_prefix_of_utf8() -> None:
    message = unpack(KEYS, CONV, pack(KEYS, CONV, 1, Role.USER, "héllo 🌍", WHEN))
    assert message.content_hash == hashlib.sha256("héllo 🌍".encode()).hexdigest()[:16]
    assert len(message.content_hash) == 16


@pytest.mark.parametrize("filler", ["a", "😀", "é"])
def test_content_at_the_limit_round_trips(filler: str) -> None:
    content = filler * MAX_CONTENT_CHARS
    token = pack(KEYS, CONV, 7, Role.ASSISTANT, content, WHEN)
    assert unpack(KEYS, CONV, token).content == content


def test_random_content_at_the_limit_round_trips() -> None:
    rng = random.Random(20240517)
    points = [cp for cp in (rng.randrange(0x20, 0x110000) for _ in range(4_000))
              if not 0xD800 <= cp <= 0xDFFF]
    content = "".join(map(chr, points)) * (MAX_CONTENT_CHARS // len(points) + 1)
    content = content[:MAX_CONTENT_CHARS]
    assert len(content) == MAX_CONTENT_CHARS
    token = pack(KEYS, CONV, 1, Role.USER, content, WHEN)
    assert unpack(KEYS, CONV, token).content == content


@pytest.mark.parametrize(
    "content",
    [
        "",
        " ",
        "\n\t  \r",
        "\u3000\u2003",
        "x" * (MAX_CONTENT_CHARS + 1),
        "😀" * (MAX_CONTENT_CHARS + 1),
        "bad \ud800 surrogate",
    ],
)
def test_bad_content_is_rejected_with_value_error(content: str) -> None:
    with pytest.raises(ValueError):
        pack(KEYS, CONV, 1, Role.USER, content, WHEN)


@pytest.mark.parametrize("sequence", [0, -1, 2**32, True])
def test_bad_sequence_is_rejected(sequence: int) -> None:
    with pytest.raises(ValueError):
        pack(KEYS, CONV, sequence, Role.USER, "hi", WHEN)


def test_bad_role_and_timestamps_are_rejected() -> None:
    with pytest.raises(ValueError):
        pack(KEYS, CONV, 1, 3, "hi", WHEN)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pack(KEYS, CONV, 1, Role.USER, "hi", datetime(2024, 1, 1))  # naive
    with pytest.raises(ValueError):
        pack(KEYS, CONV, 1, Role.USER, "hi", datetime(1969, 12, 31, tzinfo=UTC))
    with pytest.raises(ValueError):
        pack(KEYS, CONV, 1, Role.USER, "hi", datetime(2106, 2, 8, tzinfo=UTC))


def test_timestamp_default_and_other_zones() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    message = unpack(KEYS, CONV, pack(KEYS, CONV, 1, Role.USER, "hi"))
    assert before <= message.timestamp <= datetime.now(UTC)
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 5, 17, 14, 30, 45, 999_999, tzinfo=plus_two)
    assert unpack(KEYS, CONV, pack(KEYS, CONV, 1, Role.USER, "hi", local)).timestamp == WHEN


def test_layout_and_compression_flag() -> None:
    short = pack(KEYS, CONV, 258, Role.SYSTEM, "hi", WHEN)
    assert short[:11] == struct.pack(">BBBII", 2, 0, 2, 258, int(WHEN.timestamp()))
    assert len(short) == 11 + 12 + len(b"hi") + 16
    assert peek_header(short) == TokenHeader(2, Role.SYSTEM, 258, int(WHEN.timestamp()), False)

    repetitive = "all work and no play " * 200
    packed = pack(KEYS, CONV, 1, Role.USER, repetitive, WHEN)
    assert packed[1] == 1 and peek_header(packed).compressed
    assert len(packed) < len(repetitive) // 5

    incompressible = os.urandom(600).hex()[:600]
    noisy = pack(KEYS, CONV, 1, Role.USER, incompressible, WHEN)
    # hex digits do compress a little; truly random bytes as text must not grow
    assert len(noisy) <= 11 + 12 + 600 + 16
    random_text = bytes(os.urandom(300)).decode("latin-1").replace("\x00", "x")
    raw = pack(KEYS, CONV, 1, Role.USER, random_text, WHEN)
    assert len(raw) <= 11 + 12 + len(random_text.encode()) + 16
    assert unpack(KEYS, CONV, raw).content == random_text


def test_compression_can_be_refused_and_reencrypt_keeps_the_choice() -> None:
    """Shared conversations never compress: the token's length is the text's."""
    repetitive = "all work and no play " * 200
    plain = pack(KEYS, CONV, 1, Role.USER, repetitive, WHEN, compress=False)
    assert not peek_header(plain).compressed and plain[1] == 0
    assert len(plain) == 11 + 12 + len(repetitive.encode()) + 16
    assert unpack(KEYS, CONV, plain).content == repetitive
    other = derive_conversation_keys(b"k" * 32, CONV, 2)
    squeezed = reencrypt(KEYS, other, CONV, plain)
    assert peek_header(squeezed).compressed
    kept = reencrypt(KEYS, other, CONV, plain, compress=False)
    assert not peek_header(kept).compressed
    assert unpack(other, CONV, kept).content == repetitive


def test_nonces_are_fresh() -> None:
    tokens = {pack(KEYS, CONV, 1, Role.USER, "same", WHEN) for _ in range(50)}
    assert len(tokens) == 50


@pytest.mark.parametrize(
    "content",
    [
        "plain, short enough to stay uncompressed: q8Z!rT0p#vL2&mW9xK4$",
        "squeezed " * 12 + "then a tail of its own, which zlib spells out",
    ],
)
def test_every_single_bit_flip_is_detected(content: str) -> None:
    token = pack(KEYS, CONV, 42, Role.ASSISTANT, content, WHEN)
    assert 90 <= len(token) <= 110, len(token)
    assert peek_header(token).compressed == (len(content) > 64)
    assert unpack(KEYS, CONV, token).sequence == 42
    for bit in range(len(token) * 8):
        flipped = bytearray(token)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(InvalidToken):
            unpack(KEYS, CONV, bytes(flipped))


def test_truncation_at_every_length_is_detected() -> None:
    token = pack(KEYS, CONV, 3, Role.USER, "truncate me " * 20, WHEN)
    for length in range(len(token)):
        with pytest.raises(InvalidToken):
            unpack(KEYS, CONV, token[:length])
    for length in range(11 + 12 + 16):
        with pytest.raises(InvalidToken):
            peek_header(token[:length])
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, token + b"\x00")


def test_position_swap_is_detected() -> None:
    first = pack(KEYS, CONV, 1, Role.USER, "first", WHEN)
    second = pack(KEYS, CONV, 2, Role.ASSISTANT, "second", WHEN)
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, second, expected_sequence=1)
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, first, expected_sequence=2)
    # Rewriting the clear sequence to fit the new position breaks the AAD instead.
    moved = second[:3] + struct.pack(">I", 1) + second[7:]
    assert peek_header(moved).sequence == 1
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, moved, expected_sequence=1)


def test_role_relabel_and_timestamp_change_are_detected() -> None:
    token = pack(KEYS, CONV, 5, Role.ASSISTANT, "I am the assistant", WHEN)
    relabelled = token[:2] + bytes([Role.SYSTEM]) + token[3:]
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, relabelled)
    redated = token[:7] + struct.pack(">I", 0) + token[11:]
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, redated)


def test_move_to_other_conversation_is_detected() -> None:
    token = pack(KEYS, CONV, 1, Role.USER, "belongs to CONV", WHEN)
    with pytest.raises(InvalidToken):
        unpack(KEYS, OTHER_CONV, token)  # same keys, other conversation id
    with pytest.raises(InvalidToken):
        unpack(derive_conversation_keys(bytes(range(32)), OTHER_CONV, 1), OTHER_CONV, token)


def test_wrong_key_is_detected() -> None:
    token = pack(KEYS, CONV, 1, Role.USER, "secret", WHEN)
    with pytest.raises(InvalidToken):
        unpack(_keys(), CONV, token)
    with pytest.raises(InvalidToken):
        unpack(derive_conversation_keys(bytes(range(32)), CONV, 2), CONV, token)


def _forge(keys: ConversationKeys, flags: int, body: bytes, role: int = 0, seq: int = 1) -> bytes:
    header = struct.pack(">BBBII", 2, flags, role, seq, 1_700_000_000)
    nonce = os.urandom(12)
    return header + nonce + AESGCM(keys.enc).encrypt(nonce, body, header + CONV.bytes)


def test_header_fields_outside_the_format_are_rejected() -> None:
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, _forge(KEYS, 0x02, b"hi"))
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, _forge(KEYS, 0, b"hi", role=3))
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, _forge(KEYS, 0, b"hi", seq=0))
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, _forge(KEYS, 0, b"\xff\xfe not utf-8"))
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, _forge(KEYS, 1, b"not zlib at all"))
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, _forge(KEYS, 1, zlib.compress(b"hello")[:-3]))
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, _forge(KEYS, 1, zlib.compress(b"hello") + b"trailing"))
    assert unpack(KEYS, CONV, _forge(KEYS, 1, zlib.compress(b"hello"))).content == "hello"


def test_zip_bomb_is_refused_without_inflating_it() -> None:
    bomb = zlib.compress(b"A" * 50_000_000, 9)
    assert len(bomb) < 100_000
    token = _forge(KEYS, 1, bomb)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidToken):
            unpack(KEYS, CONV, token)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak
    just_fits = _forge(KEYS, 1, zlib.compress(b"A" * (4 * MAX_CONTENT_CHARS)))
    assert len(unpack(KEYS, CONV, just_fits).content) == 4 * MAX_CONTENT_CHARS
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, _forge(KEYS, 1, zlib.compress(b"A" * (4 * MAX_CONTENT_CHARS + 1))))


@pytest.mark.parametrize("token", [b"", b"\x00", b"\x03" + bytes(60), b"\xff" * 80])
def test_unknown_versions_and_empty_are_rejected(token: bytes) -> None:
    with pytest.raises(InvalidToken):
        peek_header(token)
    with pytest.raises(InvalidToken):
        unpack(KEYS, CONV, token)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_invalid_token(blob: bytes) -> None:
    for candidate in (blob, b"\x02" + blob, b"\x01" + blob):
        try:
            unpack(KEYS, CONV, candidate)
        except InvalidToken as exc:
            assert str(exc) == "invalid message token"
        else:  # pragma: no cover - would mean a forgery
            pytest.fail("random bytes decrypted")
        with contextlib.suppress(InvalidToken):
            peek_header(candidate)


def test_invalid_token_message_never_names_the_check() -> None:
    messages = set()
    token = pack(KEYS, CONV, 2, Role.USER, "x", WHEN)
    for bad, expected in [(token[:5], None), (token, 1), (b"\x09" + token[1:], None)]:
        with pytest.raises(InvalidToken) as info:
            unpack(KEYS, CONV, bad, expected_sequence=expected)
        messages.add(str(info.value))
        assert info.value.reason
    assert messages == {"invalid message token"}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


@pytest.mark.parametrize("text", ["A", "AAAAA", "AB=", "AB+C", "AB/C", "AB C", "é", "AB\n"])
def test_b64url_rejects_bad_text(text: str) -> None:
    with pytest.raises(InvalidToken):
        b64url_decode(text)
