"""A Redis pub/sub channel only the server's instances can write to or read.

Every message is sealed once per publish (never per recipient) with `crypto.ChannelSeal`
under the channel's name, and carries, inside the sealed part, the sending instance, a
counter and the time it was sealed. A receiver drops, and counts:

- "forged": it does not open (not sealed by an instance holding an accepted secret, or
  sealed for another channel, or damaged);
- "stale": sealed more than `max_age_s` ago (or that far in the future): a message
  captured and replayed later;
- "replayed": the same sender and counter seen before (a replay within the age window).

Everything the message addresses (room, namespace, event, the conversation a cancel is
for) is inside the sealed part, so it cannot be moved to another room either.

A receiver that restarts forgets the counters it saw, so a message captured in the last
`max_age_s` could be delivered once more to that one instance: the age window bounds
that, and is why it is short.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from crypto import ChannelSeal, SealError

__all__ = ["ReplayWindow", "SealedChannel"]

_LOG = logging.getLogger(__name__)
_WINDOW = 4096  # counters a sender may be out of order by (publishes racing on a pool)
_LOG_EVERY_S = 60.0


class _Envelope(msgspec.Struct, array_like=True, frozen=True):
    sender: bytes
    counter: int
    sealed_at_ms: int
    body: msgspec.Raw


class ReplayWindow:
    """Counters seen per sender: the highest, and which of the `_WINDOW` below it."""

    def __init__(self, *, forget_after_s: float) -> None:
        self._senders: dict[bytes, tuple[int, int, float]] = {}  # highest, bitmap, last seen
        self._forget_after_s = forget_after_s
        self._next_prune = 0.0

    def first_sight(self, sender: bytes, counter: int, now: float) -> bool:
        """Record a counter; False if it was seen already, or is too old to tell."""
        self._prune(now)
        highest, seen, _ = self._senders.get(sender, (0, 0, now))
        if counter > highest:
            shift = counter - highest
            seen = ((seen << shift) | 1) & ((1 << _WINDOW) - 1) if shift < _WINDOW else 1
            self._senders[sender] = (counter, seen, now)
            return True
        offset = highest - counter
        if offset >= _WINDOW or seen >> offset & 1:
            return False
        self._senders[sender] = (highest, seen | 1 << offset, now)
        return True

    def _prune(self, now: float) -> None:
        """Senders quiet for longer than the age window can only send stale replays."""
        if now < self._next_prune:
            return
        self._next_prune = now + self._forget_after_s
        cutoff = now - self._forget_after_s
        for sender in [s for s, (_, _, last) in self._senders.items() if last < cutoff]:
            del self._senders[sender]


class SealedChannel:
    """Encode and decode one channel's messages; the `json` module python-socketio's
    pub/sub managers accept (`dumps`, `loads`) and what the control channels use."""

    def __init__(
        self,
        seal: ChannelSeal,
        channel: str,
        *,
        on_reject: Callable[[str], None],
        max_age_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._seal = seal
        self._context = b"pubsub:" + channel.encode()
        self._channel = channel
        self._on_reject = on_reject
        self._max_age_ms = int(max_age_s * 1000)
        self._clock = clock
        self._sender = uuid.uuid4().bytes
        self._counter = itertools.count(1)
        self._seen = ReplayWindow(forget_after_s=2 * max_age_s)
        # Anyone who can publish on the channel could fill the log: one line a minute
        # per reason at most, with how many were dropped since (the counter has them all).
        self._quiet_until: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(_Envelope)

    def dumps(self, obj: Any, **_: Any) -> bytes:
        body = msgspec.Raw(self._encoder.encode(obj))
        envelope = _Envelope(self._sender, next(self._counter), int(self._clock() * 1000), body)
        return self._seal.seal(self._encoder.encode(envelope), context=self._context)

    def loads(self, raw: bytes | str, **_: Any) -> Any:
        """The message, or `ValueError` (python-socketio drops a message whose decoding
        raises) after counting why."""
        data = raw.encode() if isinstance(raw, str) else raw
        try:
            envelope = self._decoder.decode(self._seal.open(data, context=self._context))
        except (SealError, msgspec.DecodeError):
            raise self._reject("forged") from None
        now = self._clock()
        if abs(now * 1000 - envelope.sealed_at_ms) > self._max_age_ms:
            raise self._reject("stale")
        if not self._seen.first_sight(envelope.sender, envelope.counter, now):
            raise self._reject("replayed")
        return msgspec.json.decode(envelope.body)

    def _reject(self, reason: str) -> ValueError:
        self._on_reject(reason)
        now = self._clock()
        dropped = self._unlogged.get(reason, 0) + 1
        if now >= self._quiet_until.get(reason, 0.0):
            _LOG.warning(
                "pub/sub messages on %s dropped: %d %s", self._channel, dropped, reason
            )
            self._quiet_until[reason] = now + _LOG_EVERY_S
            dropped = 0
        self._unlogged[reason] = dropped
        return ValueError(f"pub/sub message dropped: {reason}")
