"""Sealed fields: a short text under a conversation's encryption key, bound to a context."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import (
    InvalidToken,
    KeyUnwrapError,
    derive_conversation_keys,
    new_key,
    open_field,
    seal_field,
    unwrap_key,
    wrap_key,
)

KEYS = derive_conversation_keys(new_key(), uuid.uuid4(), 1)
CONTEXT = b"conversation-field:title\x00" + bytes(20)


@given(st.binary(max_size=800), st.binary(max_size=64))
def test_a_field_opens_with_its_keys_and_context(plaintext: bytes, context: bytes) -> None:
    sealed = seal_field(KEYS, plaintext, context=context)
    assert open_field(KEYS, sealed, context=context) == plaintext
    # version(1) | nonce(12) | ciphertext | tag(16): nothing else is stored
    assert sealed[0] == 1 and len(sealed) == 1 + 12 + len(plaintext) + 16


def test_each_seal_is_fresh() -> None:
    assert seal_field(KEYS, b"same", context=CONTEXT) != seal_field(KEYS, b"same", context=CONTEXT)


def test_a_field_does_not_open_elsewhere_or_damaged() -> None:
    sealed = seal_field(KEYS, b"Trip to Lisbon", context=CONTEXT)
    other_keys = derive_conversation_keys(new_key(), uuid.uuid4(), 1)
    attempts = {
        "other context": (KEYS, sealed, CONTEXT + b"x"),
        "other keys": (other_keys, sealed, CONTEXT),
        "version byte": (KEYS, bytes([2]) + sealed[1:], CONTEXT),
        "nonce": (KEYS, sealed[:1] + bytes([sealed[1] ^ 1]) + sealed[2:], CONTEXT),
        "ciphertext": (KEYS, sealed[:14] + bytes([sealed[14] ^ 1]) + sealed[15:], CONTEXT),
        "tag": (KEYS, sealed[:-1] + bytes([sealed[-1] ^ 1]), CONTEXT),
        "truncated": (KEYS, sealed[: 1 + 12 + 15], CONTEXT),
        "empty": (KEYS, b"", CONTEXT),
    }
    for name, (keys, data, context) in attempts.items():
        with pytest.raises(InvalidToken) as caught:
            open_field(keys, data, context=context)
        assert str(caught.value) == "invalid message token", name
        assert b"Lisbon" not in repr(caught.value).encode(), name


def test_a_sealed_field_and_a_wrapped_key_are_never_taken_for_each_other() -> None:
    """Same layout, same key: the associated data keeps the two apart."""
    key = new_key()
    wrapped = wrap_key(KEYS.enc, key, context=CONTEXT)
    with pytest.raises(InvalidToken):
        open_field(KEYS, wrapped, context=CONTEXT)
    sealed = seal_field(KEYS, key, context=CONTEXT)
    with pytest.raises(KeyUnwrapError):
        unwrap_key(KEYS.enc, sealed, context=CONTEXT)
