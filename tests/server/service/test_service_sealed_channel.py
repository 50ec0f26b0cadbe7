"""Pub/sub messages between instances: sealed once, forged, stale and replayed ones dropped."""

from __future__ import annotations

from collections import Counter

import pytest

from crypto import ChannelSeal
from server.service.sealed_channel import ReplayWindow, SealedChannel

SECRET = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _channel(
    clock: Clock, rejected: Counter[str], *, name: str = "chan", secret: bytes = SECRET
) -> SealedChannel:
    return SealedChannel(
        ChannelSeal(secret, purpose=b"socketio"),
        name,
        on_reject=lambda reason: rejected.update([reason]),
        max_age_s=30,
        clock=clock,
    )


def test_a_message_goes_through_once_and_its_replay_is_dropped() -> None:
    clock, rejected = Clock(), Counter[str]()
    sender, receiver = _channel(clock, rejected), _channel(clock, rejected)
    message = {"method": "emit", "event": "ai-token", "data": [{"token": "secret words"}]}
    raw = sender.dumps(message)
    assert b"secret words" not in raw and b"ai-token" not in raw
    assert receiver.loads(raw) == message
    with pytest.raises(ValueError, match="replayed"):
        receiver.loads(raw)
    assert rejected == Counter(replayed=1)


def test_a_message_moved_to_another_channel_or_made_up_is_forged() -> None:
    clock, rejected = Clock(), Counter[str]()
    raw = _channel(clock, rejected, name="deployment-a").dumps({"method": "emit"})
    other = _channel(clock, rejected, name="deployment-b")
    for forged in (raw, b'{"method":"emit","event":"ai-complete"}', "text", b""):
        with pytest.raises(ValueError, match="forged"):
            other.loads(forged)
    stranger = _channel(clock, rejected, name="deployment-a", secret=b"x" * 32)
    with pytest.raises(ValueError, match="forged"):
        stranger.loads(raw)
    assert rejected == Counter(forged=5)


def test_a_message_older_than_the_window_is_stale() -> None:
    clock, rejected = Clock(), Counter[str]()
    sender, receiver = _channel(clock, rejected), _channel(clock, rejected)
    fresh, old = sender.dumps({"n": 1}), sender.dumps({"n": 2})
    clock.now += 29.9
    assert receiver.loads(fresh) == {"n": 1}
    clock.now += 0.2
    with pytest.raises(ValueError, match="stale"):
        receiver.loads(old)
    future = sender.dumps({"n": 3})  # a sender whose clock runs far ahead
    clock.now -= 31
    with pytest.raises(ValueError, match="stale"):
        receiver.loads(future)
    assert rejected == Counter(stale=2)


def test_messages_out_of_order_are_delivered_once_each() -> None:
    clock, rejected = Clock(), Counter[str]()
    sender, receiver = _channel(clock, rejected), _channel(clock, rejected)
    raws = [sender.dumps({"n": n}) for n in range(10)]
    order = [3, 0, 9, 1, 2, 8, 4, 7, 5, 6]
    assert [receiver.loads(raws[i])["n"] for i in order] == order
    for raw in raws:
        with pytest.raises(ValueError, match="replayed"):
            receiver.loads(raw)
    assert rejected == Counter(replayed=10)


def test_the_replay_window_forgets_what_is_too_far_behind() -> None:
    window = ReplayWindow(forget_after_s=60)
    assert window.first_sight(b"a", 5000, 0.0)
    assert not window.first_sight(b"a", 5000 - 4096, 0.0)  # beyond the window: refused
    assert window.first_sight(b"a", 5000 - 4095, 0.0)
    assert not window.first_sight(b"a", 5000 - 4095, 0.0)
    assert window.first_sight(b"b", 1, 0.0)  # senders are independent
    assert window.first_sight(b"a", 10_000, 0.0)  # a jump past the window starts afresh
    assert not window.first_sight(b"a", 10_000, 0.0)
    assert window.first_sight(b"a", 9_999, 0.0)
    # A sender quiet for longer than twice the age window is forgotten.
    assert window.first_sight(b"c", 1, 200.0)
    assert window.first_sight(b"a", 10_000, 200.0)


def test_a_flood_of_forgeries_writes_one_log_line_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, rejected = Clock(), Counter[str]()
    receiver = _channel(clock, rejected)
    with caplog.at_level("WARNING", logger="server.service.sealed_channel"):
        for _ in range(1000):
            with pytest.raises(ValueError, match="forged"):
                receiver.loads(b"junk")
        clock.now += 60
        with pytest.raises(ValueError, match="forged"):
            receiver.loads(b"junk")
    assert rejected == Counter(forged=1001)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "pub/sub messages on chan dropped: 1 forged",
        "pub/sub messages on chan dropped: 1000 forged",
    ]
