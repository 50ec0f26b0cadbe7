"""Decoding at the edge: documented examples pass, everything else is a ProtocolError.

Also: every payload Struct survives an encode/decode round trip, for values generated
from the Structs' own constraints (msgspec.inspect), so a constraint that rejects what
the server itself may send is caught here.
"""

from __future__ import annotations

import json
import typing
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import decode, rest
from protocol import socket_events as se
from protocol.exceptions import ProtocolError
from protocol.names import ErrorCode
from protocol.types import MAX_CONTENT_CHARS

CONV = "3f2b8c1e-6d4a-4e8b-9f1a-2c5d7e9b0a14"
HUGE = 10**30
LONG = "x" * (MAX_CONTENT_CHARS + 1)

SOCKET_REQUESTS: tuple[type[msgspec.Struct], ...] = (
    se.JoinRequest,
    se.SendMessageRequest,
    se.EditMessageRequest,
    se.StopGenerationRequest,
)
REST_REQUESTS: tuple[type[msgspec.Struct], ...] = (
    rest.RegisterRequest,
    rest.LoginRequest,
    rest.PasswordChangeRequest,
    rest.CreateConversationRequest,
    rest.RenameRequest,
    rest.SendRequest,
    rest.EditRequest,
)
DECODERS: dict[str, Callable[[Any], msgspec.Struct]] = {
    "join-conversation": decode.decode_join,
    "send-message": decode.decode_send,
    "edit-message": decode.decode_edit,
    "stop-generation": decode.decode_stop,
}


def _rejects(decoder: Callable[[Any], object], data: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decoder(data)
    assert caught.value.code == ErrorCode.INVALID_PAYLOAD
    assert caught.value.message == str(caught.value)
    return caught.value


# ── documented examples ─────────────────────────────────────────────────────


def test_join_takes_the_seed_bare_id_and_the_ext_object() -> None:
    assert decode.decode_join(CONV) == se.JoinRequest(conversation_id=uuid.UUID(CONV))
    replay = decode.decode_join({"conversationId": CONV, "lastSeq": 2})
    assert replay.conversation_id == uuid.UUID(CONV) and replay.last_seq == 2
    assert decode.decode_join({"conversationId": CONV}).last_seq is None
    assert decode.decode_join({"conversationId": CONV, "lastSeq": 0}).last_seq == 0


def test_send_with_and_without_client_msg_id() -> None:
    plain = decode.decode_send({"content": "Plan three days in Lisbon"})
    assert plain.content == "Plan three days in Lisbon" and plain.client_msg_id is None
    keyed = decode.decode_send({"content": "hi", "clientMsgId": "tab-1:m.42_x"})
    assert keyed.client_msg_id == "tab-1:m.42_x"
    at_limit = decode.decode_send({"content": "y" * MAX_CONTENT_CHARS})
    assert len(at_limit.content) == MAX_CONTENT_CHARS


def test_edit_example() -> None:
    edit = decode.decode_edit({"sequence": 3, "newContent": "Plan four days in Porto"})
    assert edit == se.EditMessageRequest(sequence=3, new_content="Plan four days in Porto")


def test_stop_takes_nothing_a_bare_id_or_an_object() -> None:
    expected = se.StopGenerationRequest(conversation_id=uuid.UUID(CONV))
    assert decode.decode_stop(None) == se.StopGenerationRequest()
    assert decode.decode_stop(CONV) == expected
    assert decode.decode_stop({"conversationId": CONV}) == expected
    assert decode.decode_stop({}) == se.StopGenerationRequest()


# ── rejections name the field ───────────────────────────────────────────────

REJECTED: list[tuple[str, Any, str]] = [
    # join-conversation / leave-conversation
    ("join-conversation", None, "conversationId"),
    ("join-conversation", 42, "conversationId"),
    ("join-conversation", True, "conversationId"),
    ("join-conversation", [CONV], "conversationId"),
    ("join-conversation", "not-a-uuid", "conversationId"),
    ("join-conversation", "   ", "conversationId"),
    ("join-conversation", LONG, "conversationId"),
    ("join-conversation", {}, "conversationId: required field missing"),
    ("join-conversation", {"conversationId": None}, "conversationId"),
    ("join-conversation", {"conversationId": 7}, "conversationId"),
    ("join-conversation", {"conversationId": {"id": CONV}}, "conversationId"),
    ("join-conversation", {"conversationId": "nope"}, "conversationId"),
    ("join-conversation", {"conversationId": CONV, "lastSeq": -1}, "lastSeq"),
    ("join-conversation", {"conversationId": CONV, "lastSeq": HUGE}, "lastSeq"),
    ("join-conversation", {"conversationId": CONV, "lastSeq": True}, "lastSeq"),
    ("join-conversation", {"conversationId": CONV, "lastSeq": "2"}, "lastSeq"),
    ("join-conversation", {"conversationId": CONV, "lastSeq": 2.5}, "lastSeq"),
    ("join-conversation", {"conversationId": CONV, "lastSeq": [2]}, "lastSeq"),
    # send-message
    ("send-message", {}, "content: required field missing"),
    ("send-message", {"content": None}, "content"),
    ("send-message", {"content": 5}, "content"),
    ("send-message", {"content": HUGE}, "content"),
    ("send-message", {"content": True}, "content"),
    ("send-message", {"content": ["hi"]}, "content"),
    ("send-message", {"content": {"content": "hi"}}, "content"),
    ("send-message", {"content": ""}, "content"),
    ("send-message", {"content": LONG}, "content"),
    ("send-message", {"content": "hi", "clientMsgId": 5}, "clientMsgId"),
    ("send-message", {"content": "hi", "clientMsgId": ""}, "clientMsgId"),
    ("send-message", {"content": "hi", "clientMsgId": "has space"}, "clientMsgId"),
    ("send-message", {"content": "hi", "clientMsgId": "k" * 129}, "clientMsgId"),
    ("send-message", {"content": "hi", "clientMsgId": True}, "clientMsgId"),
    # edit-message
    ("edit-message", {"newContent": "x"}, "sequence: required field missing"),
    ("edit-message", {"sequence": 3}, "newContent: required field missing"),
    ("edit-message", {"sequence": None, "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": "3", "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": True, "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": 1.0, "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": float("nan"), "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": 0, "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": -3, "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": HUGE, "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": 2**31, "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": [3], "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": {"value": 3}, "newContent": "x"}, "sequence"),
    ("edit-message", {"sequence": 3, "newContent": None}, "newContent"),
    ("edit-message", {"sequence": 3, "newContent": 7}, "newContent"),
    ("edit-message", {"sequence": 3, "newContent": LONG}, "newContent"),
    ("edit-message", {"sequence": 3, "newContent": {"text": "x"}}, "newContent"),
    # stop-generation
    ("stop-generation", "not-a-uuid", "conversationId"),
    ("stop-generation", {"conversationId": 5}, "conversationId"),
    ("stop-generation", {"conversationId": "nope"}, "conversationId"),
    ("stop-generation", {"conversationId": [CONV]}, "conversationId"),
    ("stop-generation", {"conversationId": True}, "conversationId"),
]


@pytest.mark.parametrize(("event", "data", "field"), REJECTED)
def test_rejections_name_the_field(event: str, data: Any, field: str) -> None:
    error = _rejects(DECODERS[event], data)
    assert field in error.message, error.message


@pytest.mark.parametrize("event", sorted(DECODERS))
@pytest.mark.parametrize("data", [7, 2.5, True, [], [{"content": "hi", "sequence": 1}]])
def test_top_level_shapes_that_are_not_objects(event: str, data: Any) -> None:
    _rejects(DECODERS[event], data)


@pytest.mark.parametrize("event", ["send-message", "edit-message"])
def test_nothing_at_all_is_rejected_where_a_payload_is_required(event: str) -> None:
    _rejects(DECODERS[event], None)


def test_a_struct_instance_is_not_taken_for_json() -> None:
    error = _rejects(decode.decode_send, se.SendMessageRequest(content="hi"))
    assert "object" in error.message


REST_REJECTED: list[tuple[type[msgspec.Struct], bytes, str]] = [
    (rest.RegisterRequest, b'{"email":"a@example.com","password":"short"}', "password"),
    (rest.RegisterRequest, b'{"email":"a@example.com"}', "password: required field missing"),
    (rest.RegisterRequest, b'{"email":"ab","password":"long enough"}', "email"),
    (rest.LoginRequest, b'{"email":"a@example.com","password":""}', "password"),
    (rest.LoginRequest, b'{"email":null,"password":"x"}', "email"),
    (rest.PasswordChangeRequest, b'{"currentPassword":1,"newPassword":"long enough"}',
     "currentPassword"),
    (rest.CreateConversationRequest, b'{"title":"' + b"t" * 201 + b'"}', "title"),
    (rest.CreateConversationRequest, b'{"model":["gpt"]}', "model"),
    (rest.RenameRequest, b"{}", "title: required field missing"),
    (rest.SendRequest, b'{"content":"hi","stream":"yes"}', "stream"),
    (rest.SendRequest, b'{"content":"hi","stream":1}', "stream"),
    (rest.SendRequest, b'{"content":"' + LONG.encode() + b'"}', "content"),
    (rest.SendRequest, b'{"content":"hi","stream":1e999}', "stream"),
    (rest.EditRequest, b'{"sequence":1' + b"0" * 400 + b',"newContent":"x"}', "sequence"),
    (rest.EditRequest, b'{"sequence":true,"newContent":"x"}', "sequence"),
    (rest.EditRequest, b'{"sequence":2,"newContent":{"a":1}}', "newContent"),
    (rest.EditRequest, b'{"sequence":2,', "body: invalid JSON"),
    (rest.EditRequest, b"\xff\xfe{}", "body: invalid JSON"),
    (rest.EditRequest, b"", "body: invalid JSON"),
    (rest.EditRequest, b"null", "expected object"),
    (rest.EditRequest, b'{"sequence":' + b"[" * 100_000, ""),
]  # fmt: skip


@pytest.mark.parametrize(("type_", "raw", "field"), REST_REJECTED)
def test_rest_bodies_are_rejected_naming_the_field(
    type_: type[msgspec.Struct], raw: bytes, field: str
) -> None:
    error = _rejects(lambda body: decode.decode_json(body, type_), raw)
    assert field in error.message, error.message


def test_rest_bodies_decode() -> None:
    raw = b'{"content":"hi","stream":false,"clientMsgId":"m-1"}'
    body = decode.decode_json(raw, rest.SendRequest)
    assert body == rest.SendRequest(content="hi", stream=False, client_msg_id="m-1")
    assert decode.decode_json(b'{"content":"hi"}', rest.SendRequest).stream is True
    assert decode.decode_json(b"{}", rest.CreateConversationRequest).title is None
    assert decode.from_data({"title": None}, rest.RenameRequest) == rest.RenameRequest(title=None)


# What a person writes is checked by the chat service for every transport, with these
# two checks: blank text, a lone surrogate (JSON `\\ud800`, which Python's json accepts,
# cannot be stored as UTF-8), and a trailing newline that slips past msgspec's `$` in the
# clientMsgId pattern. (tests/server/service/ checks that the service applies them.)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "content: expected a non-empty string"),
        (" \t\n\u3000", "content: expected a non-empty string"),
        ("a\ud800", "content: invalid unicode (unpaired surrogate)"),
        ("\udfff b", "content: invalid unicode (unpaired surrogate)"),
    ],
)
def test_text_that_cannot_be_a_message(text: str, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode.check_text(text, "content")
    assert caught.value.code == ErrorCode.INVALID_PAYLOAD
    assert caught.value.message == message


def test_text_that_can_be_a_message() -> None:
    for text in ("hi", " padded ", "\u3000x", "emoji \U0001f600", "y" * MAX_CONTENT_CHARS):
        decode.check_text(text, "content")


def test_client_msg_id_with_a_trailing_newline_is_rejected() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode.check_client_msg_id("m-1\n")
    assert "clientMsgId" in caught.value.message
    decode.check_client_msg_id("tab-1:m.42_x")
    decode.check_client_msg_id(None)


def test_nesting_too_deep_for_python_is_a_protocol_error() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    for decoder in DECODERS.values():
        _rejects(decoder, {"content": deep, "sequence": deep, "conversationId": deep})


# ── fuzz: anything JSON can carry ───────────────────────────────────────────

FIELDS = sorted(
    {
        field.encode_name
        for struct in (*SOCKET_REQUESTS, *REST_REQUESTS)
        for field in typing.cast(mi.StructType, mi.type_info(struct)).fields
    }
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.integers(min_value=-(10**300), max_value=10**300)
    | st.floats()
    | st.text(max_size=30)
    | st.text(st.characters(codec=None, categories=["Cs", "Zs", "Ll"]), max_size=5)
    | st.sampled_from([CONV, "", " ", "0", "-1", LONG])
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=5),
    max_leaves=12,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_protocol_errors(call: Callable[[], object], type_: type[Any]) -> None:
    try:
        result = call()
    except ProtocolError as exc:
        assert exc.code == ErrorCode.INVALID_PAYLOAD
        assert isinstance(exc.message, str) and exc.message
    else:
        assert isinstance(result, type_)


@pytest.mark.parametrize("event", sorted(DECODERS))
@FUZZ
@given(data=JSON_VALUES)
def test_socket_decoders_raise_only_protocol_errors(event: str, data: Any) -> None:
    decoder = DECODERS[event]
    expected = {
        "join-conversation": se.JoinRequest,
        "send-message": se.SendMessageRequest,
        "edit-message": se.EditMessageRequest,
        "stop-generation": se.StopGenerationRequest,
    }[event]
    _only_protocol_errors(lambda: decoder(data), expected)


@pytest.mark.parametrize("type_", [*SOCKET_REQUESTS, *REST_REQUESTS], ids=lambda t: t.__name__)
@FUZZ
@given(data=JSON_VALUES)
def test_from_data_raises_only_protocol_errors(type_: type[msgspec.Struct], data: Any) -> None:
    _only_protocol_errors(lambda: decode.from_data(data, type_), type_)


@pytest.mark.parametrize("type_", REST_REQUESTS, ids=lambda t: t.__name__)
@FUZZ
@given(data=JSON_VALUES | st.binary(max_size=64), as_bytes=st.booleans())
def test_decode_json_raises_only_protocol_errors(
    type_: type[msgspec.Struct], data: Any, as_bytes: bool
) -> None:
    raw = data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=as_bytes).encode(
        "utf-8", "surrogatepass"
    )
    _only_protocol_errors(lambda: decode.decode_json(raw, type_), type_)


# ── round trip of every Struct ──────────────────────────────────────────────

_SAFE_INT = 2**53 - 1


def _strategy(info: mi.Type) -> st.SearchStrategy[Any]:
    """Values that satisfy a msgspec type, constraints included."""
    if isinstance(info, mi.Metadata):
        return _strategy(info.type)
    if isinstance(info, mi.StructType):
        required = {f.name: _strategy(f.type) for f in info.fields if f.required}
        optional = {f.name: _strategy(f.type) for f in info.fields if not f.required}
        return st.fixed_dictionaries(required, optional=optional).map(lambda kw: info.cls(**kw))
    if isinstance(info, mi.UnionType):
        return st.one_of([_strategy(t) for t in info.types])
    if isinstance(info, mi.IntType):
        low = info.ge if info.ge is not None else -_SAFE_INT
        high = info.le if info.le is not None else _SAFE_INT
        return st.integers(min_value=low, max_value=high)
    if isinstance(info, mi.StrType):
        low, high = info.min_length or 0, min(info.max_length or 40, 40)
        if info.pattern is not None:
            strings = st.from_regex(info.pattern, fullmatch=True)
            return strings.filter(lambda s: low <= len(s) <= high)
        return st.text(min_size=low, max_size=high)
    if isinstance(info, mi.ListType):
        return st.lists(_strategy(info.item_type), max_size=3)
    simple: dict[type[mi.Type], st.SearchStrategy[Any]] = {
        mi.BoolType: st.booleans(),
        mi.NoneType: st.none(),
        mi.UUIDType: st.uuids(),
        mi.FloatType: st.floats(allow_nan=False, allow_infinity=False),
    }
    if type(info) in simple:
        return simple[type(info)]
    raise AssertionError(f"no strategy for {info!r}: extend _strategy")


def _structs(module: Any) -> list[type[msgspec.Struct]]:
    found = [getattr(module, name) for name in module.__all__]
    return [s for s in found if isinstance(s, type) and issubclass(s, msgspec.Struct)]


ALL_STRUCTS = [*_structs(se), *_structs(rest)]


def test_every_struct_is_covered() -> None:
    names = {s.__name__ for s in ALL_STRUCTS}
    assert {"StatePayload", "ErrorAck", "SendRequest", "SseComplete", "Viewport"} <= names
    assert len(names) == len(se.__all__) + len(rest.__all__)


@pytest.mark.parametrize("struct", ALL_STRUCTS, ids=lambda s: s.__name__)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(struct: type[msgspec.Struct], data: st.DataObject) -> None:
    value = data.draw(_strategy(mi.type_info(struct)))
    encoded = msgspec.json.encode(value)
    assert msgspec.json.decode(encoded, type=struct, strict=True) == value
    assert decode.decode_json(encoded, struct) == value
    assert msgspec.convert(msgspec.to_builtins(value), type=struct, strict=True) == value
