"""Decode-and-validate at the edge: untrusted data in, typed payloads or ProtocolError out.

python-socketio hands handlers data that is already parsed JSON (any shape a hostile
client can send); REST hands us bytes. Both end here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeVar

import msgspec

from protocol.exceptions import ProtocolError
from protocol.socket_events import (
    EditMessageRequest,
    JoinRequest,
    SendMessageRequest,
    StopGenerationRequest,
)

__all__ = [
    "check_client_msg_id",
    "check_text",
    "decode_edit",
    "decode_join",
    "decode_json",
    "decode_send",
    "decode_stop",
    "from_data",
]

T = TypeVar("T")

_PATH = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _friendly(error: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """Turn msgspec's `Expected `int` >= 1, got `0` - at `$.sequence`` into
    `sequence: expected int >= 1, got 0`."""
    text = str(error)
    missing = re.match(
        r"^Object missing required field `(?P<field>[^`]+)`(?: - at `\$(?P<path>[^`]*)`)?$", text
    )
    if missing is not None:
        prefix = (missing.group("path") or "").lstrip(".")
        field = f"{prefix}.{missing.group('field')}" if prefix else missing.group("field")
        return f"{field}: required field missing"
    match = _PATH.match(text)
    if match is None:  # pragma: no cover - the pattern matches any string
        return text
    what = match.group("what").replace("`", "")
    what = what[:1].lower() + what[1:]
    path = (match.group("path") or "").lstrip(".")
    path = re.sub(r"\[(\d+)\]", r".\1", path) if path else ""
    return f"{path}: {what}" if path else what


def check_text(value: str, field: str) -> None:
    """Non-empty after trimming, and encodable: JSON's `\\ud800` escapes can smuggle in
    lone surrogates that no UTF-8 store can hold."""
    if not value.strip():
        raise ProtocolError(f"{field}: expected a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(f"{field}: invalid unicode (unpaired surrogate)") from None


def check_client_msg_id(value: str | None) -> None:
    """msgspec matches patterns with `re.search`, where `$` also matches before a final
    newline; an idempotency key must be exactly the documented characters."""
    if value is not None and value.endswith("\n"):
        raise ProtocolError("clientMsgId: expected letters, digits and . _ : -")


def from_data(data: Any, type_: type[T]) -> T:
    """Convert already-parsed data into `type_`, or raise ProtocolError naming the field."""
    if isinstance(data, msgspec.Struct):
        raise ProtocolError("expected a JSON object")
    try:
        return msgspec.convert(data, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_friendly(exc)) from None
    except (TypeError, ValueError, RecursionError):
        raise ProtocolError("unreadable payload") from None


def decode_json(raw: bytes, type_: type[T]) -> T:
    """Decode a JSON body into `type_`, or raise ProtocolError naming the field."""
    try:
        return msgspec.json.decode(raw, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_friendly(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        # msgspec raises UnicodeDecodeError for a `\\ud800`-style lone surrogate escape.
        raise ProtocolError("body: invalid JSON") from None
    except RecursionError:
        raise ProtocolError("body: nested too deeply") from None


def decode_join(data: Any) -> JoinRequest:
    """`join-conversation`: the seed's bare id string, or `{conversationId, lastSeq}` [ext]."""
    if isinstance(data, str):
        try:
            return JoinRequest(conversation_id=uuid.UUID(data))
        except ValueError:
            raise ProtocolError("conversationId: expected a UUID string") from None
    if not isinstance(data, dict):
        raise ProtocolError("conversationId: expected a UUID string or an object")
    return from_data(data, JoinRequest)


def decode_send(data: Any) -> SendMessageRequest:
    """`send-message {content, clientMsgId?}` (its content is checked by the chat service,
    for every transport, with `check_text` and `check_client_msg_id`)."""
    return from_data(data, SendMessageRequest)


def decode_edit(data: Any) -> EditMessageRequest:
    """`edit-message {sequence, newContent}`."""
    return from_data(data, EditMessageRequest)


def decode_stop(data: Any) -> StopGenerationRequest:
    """`stop-generation` with nothing, a bare id, or `{conversationId}`."""
    if data is None:
        return StopGenerationRequest()
    if isinstance(data, str):
        try:
            return StopGenerationRequest(conversation_id=uuid.UUID(data))
        except ValueError:
            raise ProtocolError("conversationId: expected a UUID string") from None
    return from_data(data, StopGenerationRequest)
