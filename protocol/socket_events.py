"""Socket.IO payloads, both directions, exactly as PROTOCOL.md spells them.

Python names are snake_case; on the wire they are camelCase (`rename="camel"`).
Fields that only our extensions use default to `UNSET` so they never appear in a
payload sent to a client that only knows the seed.
"""

from __future__ import annotations

import uuid

import msgspec
from msgspec import UNSET, UnsetType

from protocol.shared import ConversationItem, LastMessage, PublicUser
from protocol.types import ClientMsgId, Content, NonNegativeInt, Sequence

__all__ = [
    "AiComplete",
    "AiError",
    "AiToken",
    "ConversationAdded",
    "ConversationTruncated",
    "ConversationUpdated",
    "EditAck",
    "EditMessageRequest",
    "ErrorAck",
    "ErrorEvent",
    "GeneratingState",
    "JoinAck",
    "JoinRequest",
    "MemberAdded",
    "MessageAdded",
    "NeedsRegeneration",
    "OkAck",
    "PingAck",
    "Pong",
    "SendAck",
    "SendMessageRequest",
    "StatePayload",
    "StopAck",
    "StopGenerationRequest",
    "TypingStart",
    "UserJoined",
    "UserLeft",
]


class _Payload(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base of every payload: camelCase on the wire, unset extensions omitted.

    `success` fields never have a default: `omit_defaults` would drop them.
    """


# ── client to server ────────────────────────────────────────────────────────


class JoinRequest(_Payload):
    """`join-conversation`: the seed sends a bare id; we also take this object [ext]."""

    conversation_id: uuid.UUID
    last_seq: NonNegativeInt | None = None


class SendMessageRequest(_Payload):
    """`send-message {content, clientMsgId?}`."""

    content: Content
    client_msg_id: ClientMsgId | None = None


class EditMessageRequest(_Payload):
    """`edit-message {sequence, newContent}`: destructive edit."""

    sequence: Sequence
    new_content: Content


class StopGenerationRequest(_Payload):
    """`stop-generation` [ext]: stop the running reply of the joined conversation."""

    conversation_id: uuid.UUID | None = None


# ── server to client ────────────────────────────────────────────────────────


class GeneratingState(_Payload):
    """[ext] A reply being streamed when a socket joins: what was streamed so far."""

    sequence: int
    partial: str
    token_index: int


class StatePayload(_Payload):
    """`state`, sent to a socket that joined a conversation."""

    conversation_id: str
    title: str | None
    message_count: int
    merkle_root: str | None
    joined_at: str
    generating: GeneratingState | UnsetType = UNSET
    integrity_valid: bool | UnsetType = UNSET


class JoinAck(StatePayload, kw_only=True):
    """Ack of a successful join: `{success: true, ...state}`."""

    success: bool


class UserJoined(_Payload):
    user_id: str
    timestamp: str


class UserLeft(_Payload):
    user_id: str
    timestamp: str
    reason: str | UnsetType = UNSET


class TypingStart(_Payload):
    user_id: str
    timestamp: str


class AiToken(_Payload):
    """One streamed piece of the assistant reply; `partial` is all text so far."""

    sequence: int
    token: str
    token_index: int
    partial: str | UnsetType = UNSET


class AiComplete(_Payload):
    sequence: int
    content: str
    message_count: int
    timestamp: str
    stopped: bool | UnsetType = UNSET


class AiError(_Payload):
    """[ext] The reply of `sequence` failed; the user's message stays stored."""

    sequence: int
    code: str
    message: str


class MessageAdded(_Payload):
    """[ext] A stored message other tabs should show, or one replayed after `lastSeq`.

    In a direct or group conversation also `conversationId`, the message's `id`, its
    author's `senderId` and `sender`, and it reaches every member in the room."""

    sequence: int
    role: str
    content: str
    timestamp: str
    client_msg_id: str | UnsetType = UNSET
    conversation_id: str | UnsetType = UNSET
    id: str | UnsetType = UNSET
    sender_id: str | UnsetType = UNSET
    sender: PublicUser | UnsetType = UNSET


class MemberAdded(_Payload):
    """[ext] To the conversation's room: a member joined the conversation."""

    conversation_id: str
    user_id: str
    role: str
    by: str


class ConversationUpdated(_Payload):
    """[ext] To each member's `user:{id}` room: a conversation has a new last message."""

    conversation_id: str
    last_message: LastMessage
    unread_count: int


class ConversationAdded(_Payload):
    """[ext] To a new member's `user:{id}` room: the conversation as the list shows it
    (`GET /api/conversations`' item)."""

    conversation: ConversationItem


class ConversationTruncated(_Payload):
    edited_sequence: int
    deleted_count: int
    new_message_count: int
    by_user: str
    timestamp: str
    warning: str


class NeedsRegeneration(_Payload):
    from_sequence: int
    reason: str
    edited_sequence: int


class ErrorEvent(_Payload):
    code: str
    message: str


class Pong(_Payload):
    timestamp: int


# ── acks ────────────────────────────────────────────────────────────────────


class ErrorAck(_Payload):
    """Every failed ack: `{success: false, code, error}` (+ `retryAfter` seconds when limited)."""

    code: str
    error: str
    success: bool
    retry_after: float | UnsetType = UNSET


class SendAck(_Payload):
    message_count: int
    success: bool
    sequence: int | UnsetType = UNSET
    stopped: bool | UnsetType = UNSET
    duplicate: bool | UnsetType = UNSET


class EditAck(_Payload):
    deleted_count: int
    new_message_count: int
    success: bool


class OkAck(_Payload):
    """A plain successful ack (`leave-conversation`)."""

    success: bool


class PingAck(_Payload):
    """[ext] The ack of `ping`: like every ack, it carries `success`."""

    success: bool
    timestamp: int


class StopAck(_Payload):
    stopped: bool
    success: bool
