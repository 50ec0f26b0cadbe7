"""Version-1 tokens (the seed's layout) are read, migrated and chained like the seed did."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import uuid
import zlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto import (
    InvalidToken,
    Role,
    b64url_decode,
    derive_conversation_keys,
    new_key,
    next_link,
    peek_header,
    reencrypt,
    root_hex,
    seed_v1_keys,
    unpack,
    verify_chain,
)

MASTER = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
CONV_TEXT = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
CONV = uuid.UUID(CONV_TEXT)

# Produced by the seed's own Node.js code (packMessage / computeMerkleRoot of section 6,
# run under Node with MASTER and CONV_TEXT above).
NODE_TOKENS = [
    "AQAAAAABZVPxAAA0K5FnDgTMVoRYtYZMSLOwb2fnvisp36yII1VPawmAXJ6dTLuyLXC5OC9F8RUztzToipzt9KVP2FvX"
    "7bXdjtqZX0pRD9I",
    "AQEAAAACZVPxAQBHGDXSmH2U04mJ6aGq2d6GM-vZoiuOKLRKPN7e7c03C7isaLc3TRL26Swej-0tagldxpdlhouBT6il"
    "FfNZtvYkHZRWhSsdrrIzuxAIg31IB9PugOM3S7pJ",
    "AQIAAAADZVPxAgAZFYW4Z7FMhFF4YuTLo6F1K0-92sXZtwOlPFWBA1rOt3BE_TpabmH73bQ",
]
NODE_CONTENTS = [
    (1, Role.USER, 1_700_000_000, "Hello, Gunther! How are you?"),
    (2, Role.ASSISTANT, 1_700_000_001, "Très bien 👋 — and 你好. " + "Long answer. " * 20),
    (3, Role.SYSTEM, 1_700_000_002, " "),
]
NODE_ROOT = "59ea3ef028e03a8d3f3090c385735fb5d600af181e252679724f489da620b301"
NODE_ENC_KEY = "a9f05eca0ea08c283c4e62d4173fa583a2833e7adbd155575e57cf5ff842c2a8"
NODE_INT_KEY = "a62c8923573435173db8f55f2d1f2db59e56f0cc0b3b7c0aa457d4e6813e7a7d"


def _seed_key(master: bytes, extract_label: str, info: str) -> bytes:
    """deriveConversationKey / deriveIntegrityKey, written out from the seed's text."""
    prk = hmac.new(master, extract_label.encode(), hashlib.sha256).digest()
    return hmac.new(prk, info.encode() + bytes([1]), hashlib.sha256).digest()


def _seed_enc_key(master: bytes, conv: str) -> bytes:
    return _seed_key(master, "gunther-v1-key-extract", f"conv-{conv}-aes256gcm")


def _seed_int_key(master: bytes, conv: str) -> bytes:
    return _seed_key(master, "gunther-v1-integrity-extract", f"conv-{conv}-hmac-sha256")


def _seed_pack(
    master: bytes, conv: str, seq: int, role: int, ts: int, content: str, *, deflate: bool = True
) -> str:
    """packMessage: header(10) | len(u16) | AES-GCM(zlib9(content)) + tag | nonce(16), base64url."""
    header = bytes([1, role]) + seq.to_bytes(4, "big") + ts.to_bytes(4, "big")
    body = content.encode("utf-8")
    if deflate:
        body = zlib.compress(body, 9)
    nonce = os.urandom(16)
    ciphertext = AESGCM(_seed_enc_key(master, conv)).encrypt(nonce, body, None)
    blob = header + len(ciphertext).to_bytes(2, "big") + ciphertext + nonce
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


def _seed_merkle_root(master: bytes, conv: str, tokens: list[str]) -> str:
    """computeMerkleRoot with the integrity key."""
    if not tokens:
        return "0" * 64
    key = _seed_int_key(master, conv)
    current = hmac.new(key, b"", hashlib.sha256).digest()
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        current = hmac.new(key, current + raw, hashlib.sha256).digest()
    return current.hex()


def test_seed_key_derivation_matches_the_seed() -> None:
    keys = seed_v1_keys(MASTER, CONV_TEXT)
    assert keys.enc == _seed_enc_key(MASTER, CONV_TEXT) == bytes.fromhex(NODE_ENC_KEY)
    assert keys.integrity == _seed_int_key(MASTER, CONV_TEXT) == bytes.fromhex(NODE_INT_KEY)
    other = seed_v1_keys(MASTER, "another-conversation")
    assert other.enc != keys.enc and other.integrity != keys.integrity


def test_tokens_written_by_the_seed_under_node_are_read() -> None:
    keys = seed_v1_keys(MASTER, CONV_TEXT)
    for text, (seq, role, ts, content) in zip(NODE_TOKENS, NODE_CONTENTS, strict=True):
        message = unpack(keys, CONV, b64url_decode(text), expected_sequence=seq)
        assert message.content == content
        assert message.role is role
        assert message.sequence == seq
        assert message.timestamp == datetime.fromtimestamp(ts, UTC)
        assert message.content_hash == hashlib.sha256(content.encode()).hexdigest()[:16]
        header = peek_header(b64url_decode(text))
        assert (header.version, header.sequence, header.timestamp) == (1, seq, ts)


def test_chain_over_seed_tokens_reproduces_the_seed_merkle_root() -> None:
    keys = seed_v1_keys(MASTER, CONV_TEXT)
    raw = [b64url_decode(text) for text in NODE_TOKENS]
    link = None
    links = []
    for token in raw:
        link = next_link(keys.integrity, link, token)
        links.append(link)
    assert root_hex(link) == NODE_ROOT == _seed_merkle_root(MASTER, CONV_TEXT, NODE_TOKENS)
    assert verify_chain(keys.integrity, raw, links) is None


@pytest.mark.parametrize(
    ("seq", "role", "content"),
    [
        (1, 0, "hi"),
        (2, 1, "Ünïcødé and astral 𝄞𝄞𝄞 " * 30),
        (4_294_967_295, 2, "x" * 100_000),
        (9, 1, "\u3000 leading ideographic space"),
    ],
)
def test_hand_built_seed_tokens_decode(seq: int, role: int, content: str) -> None:
    conv = str(uuid.uuid4())
    master = new_key()
    text = _seed_pack(master, conv, seq, role, 1_716_000_000, content)
    message = unpack(seed_v1_keys(master, conv), uuid.UUID(conv), b64url_decode(text), seq)
    assert (message.sequence, message.role, message.content) == (seq, Role(role), content)
    assert message.timestamp == datetime.fromtimestamp(1_716_000_000, UTC)


def test_seed_legacy_uncompressed_fallback() -> None:
    text = _seed_pack(MASTER, CONV_TEXT, 1, 0, 1_700_000_000, "stored raw", deflate=False)
    message = unpack(seed_v1_keys(MASTER, CONV_TEXT), CONV, b64url_decode(text))
    assert message.content == "stored raw"


def test_seed_tokens_fail_closed() -> None:
    keys = seed_v1_keys(MASTER, CONV_TEXT)
    raw = b64url_decode(NODE_TOKENS[0])
    with pytest.raises(InvalidToken):
        unpack(seed_v1_keys(new_key(), CONV_TEXT), CONV, raw)  # wrong master key
    with pytest.raises(InvalidToken):
        unpack(seed_v1_keys(MASTER, str(uuid.uuid4())), CONV, raw)  # other conversation
    with pytest.raises(InvalidToken):
        unpack(keys, CONV, raw, expected_sequence=2)
    for length in range(len(raw)):
        with pytest.raises(InvalidToken):
            unpack(keys, CONV, raw[:length])
    bad_length = raw[:10] + struct.pack(">H", len(raw) - 12 - 16 + 1) + raw[12:]
    with pytest.raises(InvalidToken):
        peek_header(bad_length)
    bad_role = raw[:1] + b"\x03" + raw[2:]
    with pytest.raises(InvalidToken):
        unpack(keys, CONV, bad_role)
    # The seed never authenticated its header; the ciphertext bytes are still covered.
    for index in range(12, len(raw)):
        flipped = bytearray(raw)
        flipped[index] ^= 0x10
        with pytest.raises(InvalidToken):
            unpack(keys, CONV, bytes(flipped))


def test_seed_zip_bomb_is_refused() -> None:
    body = zlib.compress(b"B" * 20_000_000, 9)
    header = bytes([1, 0]) + (1).to_bytes(4, "big") + (1).to_bytes(4, "big")
    nonce = os.urandom(16)
    ciphertext = AESGCM(_seed_enc_key(MASTER, CONV_TEXT)).encrypt(nonce, body, None)
    assert len(ciphertext) < 65_536
    blob = header + len(ciphertext).to_bytes(2, "big") + ciphertext + nonce
    with pytest.raises(InvalidToken):
        unpack(seed_v1_keys(MASTER, CONV_TEXT), CONV, blob)


def test_migration_rewrites_seed_tokens_as_version_2() -> None:
    old = seed_v1_keys(MASTER, CONV_TEXT)
    new = derive_conversation_keys(new_key(), CONV, 1)
    for text, (seq, role, ts, content) in zip(NODE_TOKENS, NODE_CONTENTS, strict=True):
        migrated = reencrypt(old, new, CONV, b64url_decode(text))
        assert migrated[0] == 2
        message = unpack(new, CONV, migrated, expected_sequence=seq)
        assert (message.role, message.content) == (role, content)
        assert message.timestamp == datetime.fromtimestamp(ts, UTC)
        with pytest.raises(InvalidToken):
            unpack(old, CONV, migrated)
