"""The integrity chain of a conversation: one HMAC link per message.

``link_n = HMAC-SHA256(k_int, link_{n-1} || token_n)`` over the token's raw bytes, and the
conversation's ``merkleRoot`` is the last link, so append and truncate cost O(1) while a
full verify stays possible.

The chain starts exactly like the seed's ``computeMerkleRoot``: before the first message
the "previous link" is ``HMAC-SHA256(k_int, b"")``. :data:`GENESIS` (32 zero bytes) is the
key-free stand-in for that start value, so a chain over version-1 tokens with the seed's
integrity key reproduces the seed's ``merkleRoot``, and the hex of an empty chain
(``root_hex(GENESIS)``) is the seed's all-zero root.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

__all__ = ["GENESIS", "LINK_SIZE", "next_link", "root_hex", "verify_chain"]

LINK_SIZE = 32
"""Bytes in one chain link (an HMAC-SHA256 output)."""

GENESIS = bytes(LINK_SIZE)
"""Stands for "no previous link"; ``next_link(k, GENESIS, t) == next_link(k, None, t)``."""


def _start(integrity_key: bytes) -> bytes:
    return hmac.digest(integrity_key, b"", "sha256")


def next_link(integrity_key: bytes, previous: bytes | None, token: bytes) -> bytes:
    """Return the link of ``token`` following ``previous`` (``None`` or GENESIS: first)."""
    if previous is None or previous == GENESIS:
        previous = _start(integrity_key)
    elif len(previous) != LINK_SIZE:
        raise ValueError(f"previous link must be {LINK_SIZE} bytes")
    return hmac.digest(integrity_key, previous + token, "sha256")


def verify_chain(
    integrity_key: bytes,
    tokens: Sequence[bytes],
    links: Sequence[bytes],
    *,
    start_link: bytes | None = None,
) -> int | None:
    """Return the 0-based index of the first position whose link is wrong, or ``None``.

    ``start_link`` is the link before ``tokens[0]`` (``None`` when it is the first message).
    If the sequences differ in length and every shared position is good, the first
    position present in only one of them is reported. Links are compared in constant time.
    """
    previous = start_link
    for index, (token, link) in enumerate(zip(tokens, links, strict=False)):
        expected = next_link(integrity_key, previous, token)
        if not hmac.compare_digest(expected, link):
            return index
        previous = expected
    if len(tokens) != len(links):
        return min(len(tokens), len(links))
    return None


def root_hex(link: bytes | None) -> str | None:
    """The hex text of a conversation's last link (its ``merkleRoot``), or ``None``."""
    return None if link is None else link.hex()
