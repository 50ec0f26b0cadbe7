"""The integrity chain finds the first bad position exactly."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import pytest

from crypto import (
    GENESIS,
    Role,
    derive_conversation_keys,
    new_key,
    next_link,
    pack,
    root_hex,
    verify_chain,
)

CONV = uuid.uuid4()
KEYS = derive_conversation_keys(new_key(), CONV, 1)
K = KEYS.integrity


def _build(count: int) -> tuple[list[bytes], list[bytes]]:
    tokens = [pack(KEYS, CONV, i, Role(i % 2), f"message {i} " * (i % 7 + 1))
              for i in range(1, count + 1)]
    links: list[bytes] = []
    for token in tokens:
        links.append(next_link(K, links[-1] if links else None, token))
    return tokens, links


def test_link_definition() -> None:
    token = b"\x02some token bytes"
    start = hmac.new(K, b"", hashlib.sha256).digest()
    first = next_link(K, None, token)
    assert first == hmac.new(K, start + token, hashlib.sha256).digest()
    assert next_link(K, GENESIS, token) == first
    second = next_link(K, first, b"next")
    assert second == hmac.new(K, first + b"next", hashlib.sha256).digest()
    assert bytes(32) == GENESIS
    assert root_hex(GENESIS) == "0" * 64
    assert root_hex(None) is None
    assert root_hex(second) == second.hex()


def test_link_depends_on_key_token_and_previous() -> None:
    first = next_link(K, None, b"a")
    assert next_link(new_key(), None, b"a") != first
    assert next_link(K, None, b"b") != first
    assert next_link(K, first, b"a") != first
    with pytest.raises(ValueError):
        next_link(K, b"short", b"a")


def test_intact_chain_verifies() -> None:
    tokens, links = _build(12)
    assert verify_chain(K, tokens, links) is None
    assert verify_chain(K, [], []) is None
    # Verifying a tail from a stored link, as after loading a page of messages.
    assert verify_chain(K, tokens[5:], links[5:], start_link=links[4]) is None
    assert verify_chain(K, tokens[5:], links[5:]) == 0
    assert verify_chain(K, tokens, links, start_link=GENESIS) is None


@pytest.mark.parametrize("position", [0, 1, 6, 11])
def test_tampered_token_is_located(position: int) -> None:
    tokens, links = _build(12)
    damaged = bytearray(tokens[position])
    damaged[-1] ^= 0x80
    tokens[position] = bytes(damaged)
    assert verify_chain(K, tokens, links) == position


@pytest.mark.parametrize("position", [0, 4, 11])
def test_tampered_link_is_located(position: int) -> None:
    tokens, links = _build(12)
    links[position] = bytes(32)
    assert verify_chain(K, tokens, links) == position


def test_swapped_messages_are_located() -> None:
    tokens, links = _build(12)
    tokens[3], tokens[7] = tokens[7], tokens[3]
    assert verify_chain(K, tokens, links) == 3
    tokens, links = _build(12)
    tokens[3], tokens[7] = tokens[7], tokens[3]
    links[3], links[7] = links[7], links[3]
    assert verify_chain(K, tokens, links) == 3  # link 7 was made after link 6, not link 2


def test_removed_and_extra_positions_are_located() -> None:
    tokens, links = _build(6)
    assert verify_chain(K, tokens[:5], links) == 5
    assert verify_chain(K, tokens, links[:5]) == 5
    assert verify_chain(K, tokens[:2] + tokens[3:], links[:2] + links[3:]) == 2
    assert verify_chain(K, tokens, [*links[:2], links[3], *links[3:]]) == 2
    assert verify_chain(K, [], links) == 0


def test_wrong_integrity_key_fails_at_first_position() -> None:
    tokens, links = _build(3)
    assert verify_chain(KEYS.enc, tokens, links) == 0
