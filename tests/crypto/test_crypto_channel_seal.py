"""The seal of what leaves for Redis: opens only with its secret, purpose and context."""

from __future__ import annotations

import pytest

from crypto import ChannelSeal, SealError, WeakSecretError

OLD, NEW = b"o" * 32, b"n" * 32


def test_a_sealed_message_opens_with_its_secret_purpose_and_context() -> None:
    seal = ChannelSeal(NEW, purpose=b"pubsub")
    sealed = seal.seal(b"hello", context=b"channel-a")
    assert b"hello" not in sealed
    assert seal.open(sealed, context=b"channel-a") == b"hello"
    assert seal.seal(b"hello", context=b"channel-a") != sealed  # a fresh nonce each time


@pytest.mark.parametrize(
    ("opener", "context", "reason"),
    [
        (ChannelSeal(NEW, purpose=b"pubsub"), b"channel-b", "authentication failed"),
        (ChannelSeal(NEW, purpose=b"mirror"), b"channel-a", "authentication failed"),
        (ChannelSeal(OLD, purpose=b"pubsub"), b"channel-a", "unknown key"),
    ],
    ids=["other context", "other purpose", "other secret"],
)
def test_anything_else_refuses_it(opener: ChannelSeal, context: bytes, reason: str) -> None:
    sealed = ChannelSeal(NEW, purpose=b"pubsub").seal(b"hello", context=b"channel-a")
    with pytest.raises(SealError) as raised:
        opener.open(sealed, context=context)
    assert raised.value.reason == reason
    assert str(raised.value) == "cannot open sealed data"


def test_every_damaged_byte_is_refused() -> None:
    seal = ChannelSeal(NEW, purpose=b"pubsub")
    sealed = seal.seal(b"some text", context=b"c")
    for index in range(len(sealed)):
        damaged = bytearray(sealed)
        damaged[index] ^= 0x01
        with pytest.raises(SealError):
            seal.open(bytes(damaged), context=b"c")
    for cut in (0, 1, 5, 17, len(sealed) - 1):
        with pytest.raises(SealError):
            seal.open(sealed[:cut], context=b"c")


def test_during_a_rotation_the_accepted_secret_still_opens_but_never_seals() -> None:
    before = ChannelSeal(OLD, purpose=b"pubsub")
    rotated = ChannelSeal(NEW, purpose=b"pubsub", accepted=[OLD])
    from_old = before.seal(b"in flight", context=b"c")
    assert rotated.open(from_old, context=b"c") == b"in flight"
    from_new = rotated.seal(b"after", context=b"c")
    assert from_new[1:5] != from_old[1:5]  # sealed under the new key id
    with pytest.raises(SealError):
        before.open(from_new, context=b"c")  # the old instance does not know the new secret
    old_accepting_new = ChannelSeal(OLD, purpose=b"pubsub", accepted=[NEW])
    assert old_accepting_new.open(from_new, context=b"c") == b"after"


def test_a_short_secret_or_no_purpose_is_refused() -> None:
    with pytest.raises(WeakSecretError):
        ChannelSeal(b"short", purpose=b"pubsub")
    with pytest.raises(WeakSecretError):
        ChannelSeal(NEW, purpose=b"pubsub", accepted=[b"short"])
    with pytest.raises(ValueError, match="purpose"):
        ChannelSeal(NEW, purpose=b"")


def test_each_sealing_process_has_a_key_of_its_own_and_every_peer_opens_it() -> None:
    one, two = ChannelSeal(NEW, purpose=b"p"), ChannelSeal(NEW, purpose=b"p")
    a, b = one.seal(b"from one", context=b"c"), two.seal(b"from two", context=b"c")
    assert a[5:21] != b[5:21]  # the salts that select each sender's key differ
    reader = ChannelSeal(NEW, purpose=b"p")
    for _ in range(2):  # derived once, then kept
        assert reader.open(a, context=b"c") == b"from one"
        assert reader.open(b, context=b"c") == b"from two"
    # Many senders come and go: the reader keeps a bounded number of keys, and still
    # opens a sender it has forgotten.
    for _ in range(300):
        reader.open(ChannelSeal(NEW, purpose=b"p").seal(b"x", context=b"c"), context=b"c")
    assert reader.open(a, context=b"c") == b"from one"
