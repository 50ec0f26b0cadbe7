"""REST request and response bodies (PROTOCOL.md "REST"), and the SSE events."""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from protocol.types import ClientMsgId, Content, Email, LoginPassword, Password, Sequence, Title

__all__ = [
    "AuthResponse",
    "ConversationDetail",
    "ConversationList",
    "ConversationSummary",
    "CreateConversationRequest",
    "CreatedConversation",
    "DeleteResponse",
    "EditRequest",
    "EditResponse",
    "ErrorBody",
    "Health",
    "Integrity",
    "LoginRequest",
    "MeResponse",
    "MessageOut",
    "Pagination",
    "PasswordChangeRequest",
    "RegisterRequest",
    "RenameRequest",
    "SendRequest",
    "SendResponse",
    "SessionOut",
    "SseComplete",
    "SseError",
    "SseStart",
    "SseToken",
    "UserOut",
    "Viewport",
]


class _Body(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base of every REST body: camelCase on the wire."""


# ── accounts [ext: the seed used NextAuth] ──────────────────────────────────


class RegisterRequest(_Body):
    email: Email
    password: Password


class LoginRequest(_Body):
    email: Email
    password: LoginPassword


class PasswordChangeRequest(_Body):
    current_password: str
    new_password: Password


class UserOut(_Body):
    id: str
    email: str


class AuthResponse(_Body):
    user: UserOut
    token: str
    expires_at: str
    csrf_token: str


class SessionOut(_Body):
    id: str
    created_at: str
    expires_at: str
    last_seen_at: str
    ip: str | None
    user_agent: str | None
    current: bool


class MeResponse(_Body):
    user: UserOut
    sessions: list[SessionOut]


# ── conversations (seed section 8) ──────────────────────────────────────────


class ConversationSummary(_Body):
    id: str
    title: str | None
    model: str
    message_count: int
    created_at: str
    updated_at: str
    merkle_root: str | None


class Pagination(_Body):
    limit: int
    offset: int
    has_more: bool


class ConversationList(_Body):
    conversations: list[ConversationSummary]
    pagination: Pagination


class CreateConversationRequest(_Body):
    title: Title | None = None
    model: str | None = None


class CreatedConversation(_Body):
    id: str
    title: str | None
    model: str
    message_count: int
    created_at: str


class RenameRequest(_Body):
    title: Title | None


class Integrity(_Body):
    valid: bool
    last_valid_sequence: int


class Viewport(_Body, rename={"from_": "from", "to": "to"}):
    from_: int
    to: int


class MessageOut(_Body):
    """One message of a viewport; a message that fails to decrypt carries `error`."""

    sequence: int
    is_decrypted: bool
    role: str | UnsetType = UNSET
    content: str | UnsetType = UNSET
    timestamp: str | UnsetType = UNSET
    content_hash: str | UnsetType = UNSET
    stopped: bool | UnsetType = UNSET
    error: str | UnsetType = UNSET


class ConversationDetail(_Body):
    id: str
    title: str | None
    model: str
    message_count: int
    merkle_root: str | None
    integrity: Integrity
    viewport: Viewport
    messages: list[MessageOut]


class DeleteResponse(_Body):
    success: bool
    deleted_at: str


class SendRequest(_Body):
    content: Content
    stream: bool = True
    client_msg_id: ClientMsgId | None = None


class SendResponse(_Body):
    response: str
    message_count: int
    sequence: int
    stopped: bool | UnsetType = UNSET


class EditRequest(_Body):
    sequence: Sequence
    new_content: Content


class EditResponse(_Body):
    success: bool
    edited_sequence: int
    deleted_count: int
    space_reclaimed_bytes: int
    new_message_count: int
    needs_regeneration_from: int
    warning: str


class ErrorBody(_Body):
    error: str
    code: str | UnsetType = UNSET
    retry_after: float | UnsetType = UNSET


class Health(_Body):
    status: str
    database: str
    redis: str


# ── Server-Sent Events of `POST /api/conversations/{id}/messages` ───────────


class SseStart(_Body):
    sequence: int
    user_sequence: int


class SseToken(_Body):
    token: str
    partial: str


class SseComplete(_Body):
    message_count: int
    response: str
    stopped: bool | UnsetType = UNSET


class SseError(_Body):
    message: str
    code: str
