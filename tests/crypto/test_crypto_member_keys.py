"""Member key pairs: X25519 keys wrapped under a data key, conversation keys sealed to members."""

from __future__ import annotations

import os
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

import crypto
from crypto import KeyUnwrapError, new_key, unwrap_key, wrap_key
from crypto import member_keys as mk
from crypto.member_keys import (
    MemberKeyPair,
    new_member_key_pair,
    open_from_member,
    public_key_of,
    seal_to_member,
    unwrap_private_key,
    wrap_private_key,
)

# Written out here, not imported, so a change to the module's constants shows up as a failure.
LABEL = b"scca/v2/member-seal\x00"
CONTEXT = b"conversation-key:" + uuid.uuid4().bytes + (3).to_bytes(4, "big") + uuid.uuid4().bytes
PAIR = new_member_key_pair()

# RFC 7748, section 6.1 (Alice's and Bob's key pairs).
RFC7748 = [
    (
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    ),
    (
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    ),
]

# Points whose X25519 shared secret with any private key is all zero (order 1, 2 and 8,
# and a non-canonical encoding of 0).
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (2**255 - 19).to_bytes(32, "little"),
]


def _raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _hand_seal(ephemeral_public: bytes, shared: bytes, recipient: bytes, key: bytes) -> bytes:
    """A seal built from the layout alone: version | ephemeral | nonce | ciphertext + tag."""
    wrapping_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=LABEL + ephemeral_public + recipient
    ).derive(shared)
    nonce = os.urandom(12)
    body = AESGCM(wrapping_key).encrypt(nonce, key, b"\x01" + LABEL + CONTEXT)
    return b"\x01" + ephemeral_public + nonce + body


def test_new_pair_is_a_matching_x25519_pair() -> None:
    pair = new_member_key_pair()
    assert len(pair.public_key) == 32 and len(pair.private_key) == 32
    assert public_key_of(pair.private_key) == pair.public_key
    assert _raw_public(X25519PrivateKey.from_private_bytes(pair.private_key)) == pair.public_key
    assert new_member_key_pair().private_key != pair.private_key


@pytest.mark.parametrize(("private_hex", "public_hex"), RFC7748)
def test_public_key_of_matches_rfc7748(private_hex: str, public_hex: str) -> None:
    assert public_key_of(bytes.fromhex(private_hex)).hex() == public_hex


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_wrong_sizes_are_refused(size: int) -> None:
    with pytest.raises(ValueError):
        public_key_of(bytes(size))
    with pytest.raises(ValueError):
        seal_to_member(os.urandom(size), new_key(), context=CONTEXT)
    with pytest.raises(ValueError):
        MemberKeyPair(public_key=bytes(size), private_key=PAIR.private_key)
    with pytest.raises(ValueError):
        wrap_private_key(new_key(), os.urandom(size), user_id=uuid.uuid4())


def test_pair_repr_and_str_are_redacted() -> None:
    pair = new_member_key_pair()
    texts = [repr(pair), str(pair), f"{pair}", repr([pair]), repr({"pair": pair})]
    assert repr(pair) == str(pair) == "MemberKeyPair(<redacted>)"
    for text in texts:
        for secret in (pair.private_key.hex(), pair.private_key.hex().upper()):
            assert secret not in text
        assert repr(pair.private_key) not in text


def test_private_key_wrap_round_trip_and_binding() -> None:
    data_key, user = new_key(), uuid.uuid4()
    wrapped = wrap_private_key(data_key, PAIR.private_key, user_id=user)
    assert unwrap_private_key(data_key, wrapped, user_id=user) == PAIR.private_key
    assert len(wrapped) == 1 + 12 + 32 + 16
    context = b"member-private-key:" + user.bytes  # the documented binding, spelled out
    assert unwrap_key(data_key, wrapped, context=context) == PAIR.private_key
    with pytest.raises(KeyUnwrapError):
        unwrap_private_key(data_key, wrapped, user_id=uuid.uuid4())
    with pytest.raises(KeyUnwrapError):
        unwrap_private_key(new_key(), wrapped, user_id=user)
    with pytest.raises(KeyUnwrapError):
        unwrap_private_key(data_key, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), user_id=user)


@pytest.mark.parametrize("size", [1, 31, 33])
def test_unwrapped_private_key_must_be_32_bytes(size: int) -> None:
    data_key, user = new_key(), uuid.uuid4()
    wrapped = wrap_key(data_key, os.urandom(size), context=b"member-private-key:" + user.bytes)
    with pytest.raises(KeyUnwrapError):
        unwrap_private_key(data_key, wrapped, user_id=user)


@given(st.binary(min_size=1, max_size=96), st.binary(max_size=80))
def test_seal_round_trip_and_layout(key: bytes, context: bytes) -> None:
    sealed = seal_to_member(PAIR.public_key, key, context=context)
    assert open_from_member(PAIR.private_key, sealed, context=context) == key
    assert sealed[0] == 1 and len(sealed) == 1 + 32 + 12 + len(key) + 16


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError):
        seal_to_member(PAIR.public_key, b"", context=CONTEXT)


def test_each_seal_has_a_fresh_ephemeral_key_and_nonce() -> None:
    key = new_key()
    first = seal_to_member(PAIR.public_key, key, context=CONTEXT)
    second = seal_to_member(PAIR.public_key, key, context=CONTEXT)
    assert first != second
    assert first[1:33] != second[1:33]  # ephemeral public key
    assert first[33:45] != second[33:45]  # nonce
    assert first[1:33] != PAIR.public_key


def test_a_seal_opens_only_for_its_recipient_and_context() -> None:
    sealed = seal_to_member(PAIR.public_key, new_key(), context=CONTEXT)
    with pytest.raises(KeyUnwrapError) as info:
        open_from_member(new_member_key_pair().private_key, sealed, context=CONTEXT)
    assert info.value.reason == "authentication failed"
    for context in (b"", CONTEXT[:-1], CONTEXT + b"\x00", CONTEXT[:-1] + b"\x01"):
        if context != CONTEXT:
            with pytest.raises(KeyUnwrapError):
                open_from_member(PAIR.private_key, sealed, context=context)


def test_every_damaged_byte_is_refused() -> None:
    sealed = seal_to_member(PAIR.public_key, new_key(), context=CONTEXT)
    # 0x80 in the ephemeral key's last byte is the bit X25519 ignores: the shared secret
    # stays the same, so only the ephemeral key in the HKDF info catches it.
    for index in range(len(sealed)):
        for bit in (0x01, 0x80):
            damaged = bytearray(sealed)
            damaged[index] ^= bit
            with pytest.raises(KeyUnwrapError):
                open_from_member(PAIR.private_key, bytes(damaged), context=CONTEXT)


def test_truncated_and_unknown_versions_have_their_reasons() -> None:
    sealed = seal_to_member(PAIR.public_key, b"k", context=CONTEXT)
    for cut in (0, 1, 33, 45, len(sealed) - 1):
        with pytest.raises(KeyUnwrapError) as info:
            open_from_member(PAIR.private_key, sealed[:cut], context=CONTEXT)
        assert info.value.reason == "too short"
    for version in (0, 2, 255):
        with pytest.raises(KeyUnwrapError) as info:
            open_from_member(PAIR.private_key, bytes([version]) + sealed[1:], context=CONTEXT)
        assert info.value.reason == "unknown version"
    assert str(info.value) == "cannot unwrap key"


@pytest.mark.parametrize("point", LOW_ORDER)
def test_low_order_public_key_is_refused(point: bytes) -> None:
    with pytest.raises(ValueError):
        seal_to_member(point, new_key(), context=CONTEXT)


@pytest.mark.parametrize("point", LOW_ORDER)
def test_a_seal_forged_with_a_low_order_ephemeral_key_does_not_open(point: bytes) -> None:
    # With a low-order ephemeral key the shared secret is all zero, so anyone can build a
    # seal that would otherwise authenticate: it must be refused all the same.
    forged = _hand_seal(point, bytes(32), PAIR.public_key, new_key())
    with pytest.raises(KeyUnwrapError) as info:
        open_from_member(PAIR.private_key, forged, context=CONTEXT)
    assert info.value.reason == "authentication failed"


def test_a_seal_built_by_hand_from_the_layout_opens() -> None:
    key = new_key()
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(PAIR.public_key))
    sealed = _hand_seal(_raw_public(ephemeral), shared, PAIR.public_key, key)
    assert open_from_member(PAIR.private_key, sealed, context=CONTEXT) == key


def test_a_seal_opens_by_hand_from_the_layout() -> None:
    key = new_key()
    sealed = seal_to_member(PAIR.public_key, key, context=CONTEXT)
    ephemeral_public, nonce, body = sealed[1:33], sealed[33:45], sealed[45:]
    recipient = X25519PrivateKey.from_private_bytes(PAIR.private_key)
    shared = recipient.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    wrapping_key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=LABEL + ephemeral_public + PAIR.public_key,
    ).derive(shared)
    assert AESGCM(wrapping_key).decrypt(nonce, body, b"\x01" + LABEL + CONTEXT) == key


def test_private_key_round_trip_then_open() -> None:
    data_key, user = new_key(), uuid.uuid4()
    wrapped = wrap_private_key(data_key, PAIR.private_key, user_id=user)
    key = new_key()
    sealed = seal_to_member(PAIR.public_key, key, context=CONTEXT)
    private_key = unwrap_private_key(data_key, wrapped, user_id=user)
    assert open_from_member(private_key, sealed, context=CONTEXT) == key


def test_module_exports() -> None:
    assert set(mk.__all__) == {
        "MemberKeyPair",
        "new_member_key_pair",
        "public_key_of",
        "wrap_private_key",
        "unwrap_private_key",
        "seal_to_member",
        "open_from_member",
    }
    for name in mk.__all__:
        assert getattr(crypto, name) is getattr(mk, name)
