"""The text of a running reply as Redis holds it: sealed chunks, never clear text.

The resume mirror (`generation_tracker.RedisTracker`) appends one chunk per token with
Redis APPEND, so each chunk is sealed on its own: a length prefix (4 bytes, big-endian)
then a `crypto.ChannelSeal` box of the token range it covers (first and last index,
4 bytes each) and the text. The box is bound to the conversation and the reply's owner,
and a reader accepts the text only when the ranges run without a gap from 0 to the
record's token index: chunks moved from another reply, dropped, repeated or reordered
make the mirror unreadable, which a reader treats as no mirror at all (the socket then
gets the reply when it completes), never as text.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable

from crypto import ChannelSeal, SealError

__all__ = ["SealedMirror"]

_LENGTH = struct.Struct(">I")
_RANGE = struct.Struct(">II")


class _Incomplete(Exception):
    """The chunks open but their token ranges do not run from 0 to the record's index."""


class SealedMirror:
    def __init__(self, seal: ChannelSeal, *, on_reject: Callable[[str], None]) -> None:
        self._seal = seal
        self._on_reject = on_reject

    @staticmethod
    def _context(conversation_id: uuid.UUID, owner: uuid.UUID) -> bytes:
        return b"mirror:" + conversation_id.bytes + owner.bytes

    def chunk(
        self, conversation_id: uuid.UUID, owner: uuid.UUID, first: int, last: int, text: str
    ) -> bytes:
        """The bytes to append for the tokens after index `first` up to `last`."""
        box = self._seal.seal(
            _RANGE.pack(first, last) + text.encode("utf-8"),
            context=self._context(conversation_id, owner),
        )
        return _LENGTH.pack(len(box)) + box

    def read(
        self, conversation_id: uuid.UUID, owner: uuid.UUID, stored: bytes, token_index: int
    ) -> str | None:
        """The text up to `token_index`, or None when the chunks do not make it whole
        (counted as "forged" when a chunk does not open, else "incomplete": a token whose
        append failed while Redis was unreachable leaves a gap)."""
        try:
            return self._join(self._context(conversation_id, owner), stored, token_index)
        except SealError:
            self._on_reject("forged")
        except _Incomplete:
            self._on_reject("incomplete")
        return None

    def _join(self, context: bytes, stored: bytes, token_index: int) -> str:
        parts: list[bytes] = []
        reached, offset = 0, 0
        while offset < len(stored):
            if offset + _LENGTH.size > len(stored):
                raise SealError("truncated")
            (size,) = _LENGTH.unpack_from(stored, offset)
            offset += _LENGTH.size
            plain = self._seal.open(stored[offset : offset + size], context=context)
            offset += size
            if len(plain) < _RANGE.size:
                raise SealError("no range")
            first, last = _RANGE.unpack_from(plain)
            if first != reached or last < first:
                raise _Incomplete
            reached = last
            parts.append(plain[_RANGE.size :])
        if reached != token_index:
            raise _Incomplete
        return b"".join(parts).decode("utf-8", errors="replace")
