"""The frame checks on their own: what engine.io would choke on is caught before it does,
and decoding a client's Socket.IO packet fails with `UndecodableFrame` or not at all."""

from __future__ import annotations

import pytest
from engineio import packet as eio_packet
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio import packet as sio_packet

from server.realtime.engine.exceptions import FrameFault, UndecodableFrame
from server.realtime.engine.frame_guard import engineio_frame_fault, frame_checked
from server.realtime.engine.guarded_engine import GuardedEngineServer
from server.realtime.engine.wire_packet import WirePacket

_CLIENT_TYPES = {0, 1, 2, 3, 5, 6}


@settings(max_examples=500, deadline=None)
@given(frame=st.text(max_size=30) | st.sampled_from(["b", "bA", "b====", "4", "6", "0{}", "٣"]))
def test_a_text_frame_passed_to_engineio_is_one_it_decodes(frame: str) -> None:
    fault = engineio_frame_fault(frame)
    try:
        eio_packet.Packet(encoded_packet=frame)
    except Exception as exc:  # what engine.io would have crashed on
        assert fault is not None, f"{frame!r} passed the check, engine.io raised {exc!r}"


@pytest.mark.parametrize(
    ("frame", "fault"),
    [
        ("", FrameFault.EMPTY),
        ("9", FrameFault.UNKNOWN_TYPE),
        ("x42", FrameFault.UNKNOWN_TYPE),
        ("٣probe", FrameFault.UNKNOWN_TYPE),  # int() reads it as 3
        ("0", FrameFault.UNEXPECTED),
        ("6", FrameFault.UNEXPECTED),
        ("bA", FrameFault.MALFORMED),
        ("2probe", None),
        ("3", None),
        ("42[]", None),
        ("5", None),
        ("1", None),
        ("bAAEC", None),
        (b"\x00garbage", None),  # a binary MESSAGE: Socket.IO decides
    ],
)
def test_engineio_frame_faults(frame: str | bytes, fault: FrameFault | None) -> None:
    assert engineio_frame_fault(frame) == fault


@settings(max_examples=1000, deadline=None)
@given(
    packet=st.text(max_size=40)
    | st.binary(max_size=40)
    | st.builds(lambda head, body: head + body, st.sampled_from("0123456789"), st.text())
)
def test_a_client_packet_decodes_or_raises_undecodable_frame_only(packet: str | bytes) -> None:
    try:
        decoded = WirePacket(encoded_packet=packet)
    except UndecodableFrame:
        return
    assert not packet or decoded.packet_type in _CLIENT_TYPES


@pytest.mark.parametrize(
    ("packet", "fault"),
    [
        ("2" + "[" * 50_000 + "]" * 50_000, FrameFault.TOO_DEEP),
        ('2["a",' + "9" * 4_301 + "]", FrameFault.HUGE_NUMBER),
        ('2["a",', FrameFault.BAD_JSON),
        ("2{'a': 1}", FrameFault.BAD_JSON),
        ("4{}", FrameFault.UNEXPECTED),  # CONNECT_ERROR goes from server to client only
        ("7[]", FrameFault.UNKNOWN_TYPE),
        ("-", FrameFault.MALFORMED),
        (b"\x00", FrameFault.MALFORMED),
        (b'2["a"]', FrameFault.MALFORMED),  # python-socketio reads bytes with str methods
        ("2123456789012345678901234567890123456789012345678901234567890123456789012345678901"
         "234567890123456789012345[]", FrameFault.MALFORMED),  # an ack id over 100 digits
    ],
)
def test_what_each_decode_failure_is_reported_as(packet: str | bytes, fault: FrameFault) -> None:
    with pytest.raises(UndecodableFrame) as caught:
        WirePacket(encoded_packet=packet)
    assert caught.value.fault == fault
    assert isinstance(caught.value, ValueError)


def test_well_formed_packets_still_decode() -> None:
    event = WirePacket(encoded_packet='2/chat,7["send-message",{"content":"hi"}]')
    assert (event.packet_type, event.namespace, event.id) == (sio_packet.EVENT, "/chat", 7)
    assert event.data == ["send-message", {"content": "hi"}]
    assert WirePacket(encoded_packet='0{"token":"t"}').data == {"token": "t"}
    at_the_limit = WirePacket(encoded_packet='2["n",' + "9" * 4_300 + "]")
    assert at_the_limit.data[1] == int("9" * 4_300)


def test_attachments_that_do_not_fit_their_packet() -> None:
    pkt = WirePacket(encoded_packet='51-["a",{"_placeholder":true,"num":0}]')
    assert pkt.add_attachment(b"\x01") is True and pkt.data == ["a", b"\x01"]
    with pytest.raises(UndecodableFrame) as extra:
        pkt.add_attachment(b"\x02")
    assert extra.value.fault == FrameFault.UNEXPECTED
    nowhere = WirePacket(encoded_packet='51-["a",{"_placeholder":true,"num":5}]')
    with pytest.raises(UndecodableFrame) as caught:
        nowhere.add_attachment(b"\x01")
    assert caught.value.fault == FrameFault.MALFORMED


def test_the_engine_checks_frames_on_the_websocket_driver_it_already_had() -> None:
    engine = GuardedEngineServer(async_mode="aiohttp")
    driver = engine._async["websocket"]  # noqa: SLF001
    assert driver.__name__ == "FrameChecked_UncompressedWebSocket"
    assert frame_checked(driver) is driver
