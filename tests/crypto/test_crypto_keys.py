"""Key hierarchy: HKDF, Argon2id KEKs, key wrapping, password change and key rotation."""

from __future__ import annotations

import uuid

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto import (
    KEK_MEMORY_COST,
    KEK_PARALLELISM,
    KEK_TIME_COST,
    KEY_SIZE,
    ConversationKeys,
    InvalidToken,
    KeyUnwrapError,
    Role,
    WeakSecretError,
    derive_conversation_keys,
    derive_kek,
    new_key,
    new_salt,
    next_link,
    pack,
    reencrypt,
    session_wrapping_key,
    unpack,
    unwrap_key,
    verify_chain,
    wrap_key,
)
from crypto.keys import _hkdf

# RFC 5869, appendix A, test cases 1-3 (HKDF-SHA256).
RFC5869 = [
    (
        "0b" * 22,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        "34007208d5b887185865",
    ),
    (
        bytes(range(0x00, 0x50)).hex(),
        bytes(range(0x60, 0xB0)).hex(),
        bytes(range(0xB0, 0x100)).hex(),
        82,
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        "0b" * 22,
        "",
        "",
        42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        "9d201395faa4b61a96c8",
    ),
]

CONV = uuid.UUID("11111111-2222-4333-8444-555555555555")
USER = uuid.UUID("99999999-8888-4777-8666-555555555555")
FAST_KEK = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "okm"), RFC5869)
def test_hkdf_rfc5869_vectors(ikm: str, salt: str, info: str, length: int, okm: str) -> None:
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=bytes.fromhex(salt) or None,
        info=bytes.fromhex(info),
    ).derive(bytes.fromhex(ikm))
    assert derived.hex() == okm


def test_our_hkdf_is_rfc5869_with_empty_salt() -> None:
    # Case 3 has no salt and no info: its first 32 bytes are what our derivation yields.
    ikm, _, _, _, okm = RFC5869[2]
    assert _hkdf(bytes.fromhex(ikm), b"").hex() == okm[:64]


def test_conversation_keys_are_hkdf_with_documented_info() -> None:
    root = bytes(range(32))
    keys = derive_conversation_keys(root, CONV, 7)
    suffix = (7).to_bytes(4, "big") + CONV.bytes

    def hkdf(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)

    assert keys.enc == hkdf(b"scca/v2/conversation/enc\x00" + suffix)
    assert keys.integrity == hkdf(b"scca/v2/conversation/integrity\x00" + suffix)


def test_conversation_keys_are_separated() -> None:
    root = new_key()
    keys = derive_conversation_keys(root, CONV, 1)
    assert len(keys.enc) == len(keys.integrity) == KEY_SIZE
    assert keys.enc != keys.integrity
    assert keys == derive_conversation_keys(root, CONV, 1)
    assert keys != derive_conversation_keys(root, CONV, 2)
    assert keys != derive_conversation_keys(root, uuid.uuid4(), 1)
    assert keys != derive_conversation_keys(new_key(), CONV, 1)


def test_conversation_key_checks() -> None:
    with pytest.raises(WeakSecretError):
        derive_conversation_keys(b"k" * 31, CONV, 1)
    with pytest.raises(ValueError):
        derive_conversation_keys(new_key(), CONV, -1)
    with pytest.raises(ValueError):
        derive_conversation_keys(new_key(), CONV, 2**32)
    with pytest.raises(ValueError):
        ConversationKeys(enc=b"short", integrity=new_key())
    with pytest.raises(ValueError):
        ConversationKeys(enc=new_key(), integrity=new_key() + b"x")


def test_random_material() -> None:
    assert len(new_key()) == 32 and len(new_salt()) == 16
    assert len({new_key() for _ in range(100)}) == 100
    assert len({new_salt() for _ in range(100)}) == 100


def test_derive_kek_is_argon2id_with_owasp_minimum() -> None:
    assert KEK_TIME_COST >= 2 and KEK_MEMORY_COST >= 19_456 and KEK_PARALLELISM >= 1
    salt = bytes(range(16))
    kek = derive_kek("correct horse", salt)
    assert len(kek) == 32
    assert kek == hash_secret_raw(
        b"correct horse", salt, time_cost=2, memory_cost=19_456, parallelism=1,
        hash_len=32, type=Type.ID,
    )
    assert kek == derive_kek("correct horse", salt)
    assert kek != derive_kek("correct horsf", salt)
    assert kek != derive_kek("correct horse", bytes(16))


def test_derive_kek_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        derive_kek("pw", b"short")
    with pytest.raises(ValueError):
        derive_kek("lone \udc00 surrogate", new_salt())
    with pytest.raises(ValueError):
        derive_kek("pw", new_salt(), memory_cost=1)


def test_wrap_unwrap_round_trip_and_layout() -> None:
    wrapping, key = new_key(), new_key()
    context = b"user-data-key:" + USER.bytes
    wrapped = wrap_key(wrapping, key, context=context)
    assert wrapped[0] == 1 and len(wrapped) == 1 + 12 + 32 + 16
    assert key not in wrapped
    assert unwrap_key(wrapping, wrapped, context=context) == key
    assert wrap_key(wrapping, key, context=context) != wrapped  # fresh nonce


def test_unwrap_fails_closed() -> None:
    wrapping, key = new_key(), new_key()
    wrapped = wrap_key(wrapping, key, context=b"conversation-key:" + CONV.bytes)
    cases = [
        (new_key(), wrapped, b"conversation-key:" + CONV.bytes),
        (wrapping, wrapped, b"conversation-key:" + uuid.uuid4().bytes),
        (wrapping, wrapped, b""),
        (wrapping, b"\x02" + wrapped[1:], b"conversation-key:" + CONV.bytes),
    ]
    context = b"conversation-key:" + CONV.bytes
    cases += [(wrapping, wrapped[:n], context) for n in range(len(wrapped))]
    for index in range(len(wrapped)):
        flipped = bytearray(wrapped)
        flipped[index] ^= 0x01
        cases.append((wrapping, bytes(flipped), b"conversation-key:" + CONV.bytes))
    for wrapping_key, blob, context in cases:
        with pytest.raises(KeyUnwrapError) as info:
            unwrap_key(wrapping_key, blob, context=context)
        assert str(info.value) == "cannot unwrap key"


def test_wrap_argument_checks() -> None:
    with pytest.raises(ValueError):
        wrap_key(b"x" * 16, new_key(), context=b"c")
    with pytest.raises(ValueError):
        wrap_key(new_key(), b"", context=b"c")
    with pytest.raises(ValueError):
        unwrap_key(b"x" * 33, b"\x01" * 61, context=b"c")


def test_session_wrapping_key() -> None:
    secret = new_key() + new_key()
    session = uuid.uuid4()
    key = session_wrapping_key(secret, session)
    assert len(key) == 32
    assert key == session_wrapping_key(secret, session)
    assert key != session_wrapping_key(secret, uuid.uuid4())
    assert key != session_wrapping_key(new_key(), session)
    data_key = new_key()
    wrapped = wrap_key(key, data_key, context=b"session:" + session.bytes)
    assert unwrap_key(session_wrapping_key(secret, session), wrapped,
                      context=b"session:" + session.bytes) == data_key
    with pytest.raises(WeakSecretError):
        session_wrapping_key(b"s" * 31, session)


def test_password_change_keeps_the_data_key_and_messages() -> None:
    user_context = b"user-data-key:" + USER.bytes
    conv_context = b"conversation-key:" + CONV.bytes
    salt = new_salt()
    data_key = new_key()
    wrapped_data_key = wrap_key(derive_kek("old password", salt, **FAST_KEK), data_key,
                                context=user_context)
    conversation_key = new_key()
    wrapped_conv_key = wrap_key(data_key, conversation_key, context=conv_context)
    token = pack(derive_conversation_keys(conversation_key, CONV, 1), CONV, 1, Role.USER, "kept")

    # Password change: unwrap with the old KEK, wrap under a KEK from the new password.
    old_kek = derive_kek("old password", salt, **FAST_KEK)
    recovered = unwrap_key(old_kek, wrapped_data_key, context=user_context)
    new_salt_ = new_salt()
    rewrapped = wrap_key(derive_kek("new password", new_salt_, **FAST_KEK), recovered,
                         context=user_context)

    data_again = unwrap_key(derive_kek("new password", new_salt_, **FAST_KEK), rewrapped,
                            context=user_context)
    conv_again = unwrap_key(data_again, wrapped_conv_key, context=conv_context)
    keys = derive_conversation_keys(conv_again, CONV, 1)
    assert unpack(keys, CONV, token).content == "kept"
    with pytest.raises(KeyUnwrapError):
        unwrap_key(derive_kek("old password", new_salt_, **FAST_KEK), rewrapped,
                   context=user_context)
    with pytest.raises(KeyUnwrapError):
        unwrap_key(derive_kek("wrong password", salt, **FAST_KEK), wrapped_data_key,
                   context=user_context)


def test_rotation_keeps_tokens_readable_and_retires_old_keys() -> None:
    old = derive_conversation_keys(new_key(), CONV, 1)
    new = derive_conversation_keys(new_key(), CONV, 2)
    contents = ["first", "second " * 40, "third"]
    tokens = [pack(old, CONV, i + 1, Role(i % 2), text) for i, text in enumerate(contents)]
    originals = [unpack(old, CONV, t) for t in tokens]

    rotated = [reencrypt(old, new, CONV, t) for t in tokens]
    for seq, (token, original) in enumerate(zip(rotated, originals, strict=True), start=1):
        message = unpack(new, CONV, token, expected_sequence=seq)
        assert message == original  # same sequence, role, timestamp, content, hash
        with pytest.raises(InvalidToken):
            unpack(old, CONV, token)
    with pytest.raises(InvalidToken):
        reencrypt(new, old, CONV, tokens[0])  # wrong "old" key

    links: list[bytes] = []
    for token in rotated:
        links.append(next_link(new.integrity, links[-1] if links else None, token))
    assert verify_chain(new.integrity, rotated, links) is None
    assert verify_chain(old.integrity, rotated, links) == 0


def test_only_the_conversation_key_opens_its_tokens() -> None:
    # Crypto-shredding: once the wrapped conversation key is deleted, nothing else the
    # server keeps (the user's data key, a KEK, the server secret) derives working keys.
    data_key = new_key()
    conversation_key = new_key()
    token = pack(derive_conversation_keys(conversation_key, CONV, 1), CONV, 1, Role.USER, "gone")
    others = (data_key, derive_kek("pw", new_salt(), **FAST_KEK), session_wrapping_key(
        new_key(), uuid.uuid4()))
    for candidate in others:
        with pytest.raises(InvalidToken):
            unpack(derive_conversation_keys(candidate, CONV, 1), CONV, token)
    keys = derive_conversation_keys(conversation_key, CONV, 1)
    assert unpack(keys, CONV, token).content == "gone"
