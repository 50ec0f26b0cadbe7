"""Event names, room names and error codes: defined once, imported everywhere."""

from __future__ import annotations

import enum
import uuid

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "ClientEvent",
    "ErrorCode",
    "ServerEvent",
    "conversation_id_from_room",
    "conversation_room",
    "token_room",
    "user_room",
]


class ClientEvent(enum.StrEnum):
    """Events a client sends (PROTOCOL.md, "Client to server")."""

    JOIN_CONVERSATION = "join-conversation"
    LEAVE_CONVERSATION = "leave-conversation"
    SEND_MESSAGE = "send-message"
    EDIT_MESSAGE = "edit-message"
    STOP_GENERATION = "stop-generation"
    PING = "ping"


class ServerEvent(enum.StrEnum):
    """Events the server sends (PROTOCOL.md, "Server to client")."""

    STATE = "state"
    USER_JOINED = "user-joined"
    USER_LEFT = "user-left"
    TYPING_START = "typing-start"
    AI_TOKEN = "ai-token"  # noqa: S105 - an event name, not a secret
    AI_COMPLETE = "ai-complete"
    AI_ERROR = "ai-error"
    MESSAGE_ADDED = "message-added"
    MEMBER_ADDED = "member-added"
    CONVERSATION_ADDED = "conversation-added"
    CONVERSATION_UPDATED = "conversation-updated"
    CONVERSATION_TRUNCATED = "conversation-truncated"
    NEEDS_REGENERATION = "needs-regeneration"
    ERROR = "error"
    PONG = "pong"


class ErrorCode(enum.StrEnum):
    """Error codes carried by `error` events, acks and REST error bodies."""

    NOT_FOUND = "NOT_FOUND"
    NO_CONVERSATION = "NO_CONVERSATION"
    SEND_FAILED = "SEND_FAILED"
    EDIT_FAILED = "EDIT_FAILED"
    JOIN_FAILED = "JOIN_FAILED"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    RATE_LIMITED = "RATE_LIMITED"
    BUSY = "BUSY"
    CANCELLED = "CANCELLED"
    UNAUTHORIZED = "UNAUTHORIZED"
    CONFLICT = "CONFLICT"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"
    REPLY_LOST = "REPLY_LOST"
    FORBIDDEN = "FORBIDDEN"
    KEYS_MISSING = "KEYS_MISSING"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    AI_RATE_LIMITED = "AI_RATE_LIMITED"
    AI_UNAVAILABLE = "AI_UNAVAILABLE"
    AI_TIMEOUT = "AI_TIMEOUT"
    AI_ERROR = "AI_ERROR"


_ROOM_PREFIX = "conv:"


def user_room(user_id: uuid.UUID | str) -> str:
    """The Socket.IO room of every socket of one user, on every instance: `user:{id}`."""
    return f"user:{user_id}"


def conversation_room(conversation_id: uuid.UUID | str) -> str:
    """The Socket.IO room of a conversation: `conv:{id}` as the seed names it."""
    return f"{_ROOM_PREFIX}{conversation_id}"


def conversation_id_from_room(room: str) -> str | None:
    """The conversation id of a `conv:` room, or None for any other room."""
    return room[len(_ROOM_PREFIX) :] if room.startswith(_ROOM_PREFIX) else None


def token_room(conversation_id: uuid.UUID | str, *, with_partial: bool) -> str:
    """The room that receives a conversation's `ai-token` events in one of two shapes.

    Every socket in `conv:{id}` is also in exactly one of these: the seed's payload with
    the growing `partial`, or [ext] deltas only (a client that asked `partial: false`).
    """
    return f"{_ROOM_PREFIX}{conversation_id}#{'partial' if with_partial else 'delta'}"


# Browser sessions [ext]: login and register set both cookies; a state-changing request
# authorized by the session cookie must carry the CSRF cookie's value in this header.
SESSION_COOKIE = "scca_session"
CSRF_COOKIE = "scca_csrf"
CSRF_HEADER = "X-CSRF-Token"
