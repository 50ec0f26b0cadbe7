"""REST request and response bodies (PROTOCOL.md "REST"), and the SSE events.

[ext] Shared conversations (PROTOCOL.md "Shared conversations", seed 004's routes):
profiles and lookup, direct and group conversations, members, and people's messages
under `/api/messages`. Their shapes of a person, a member and a conversation come from
`protocol.shared`, which the Socket.IO events carry too.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from protocol.shared import ConversationItem, LastMessage, Participant, PublicUser
from protocol.types import ClientMsgId, Content, Email, LoginPassword, Password, Sequence, Title

__all__ = [
    "AddParticipantRequest",
    "AuthResponse",
    "ConversationDetail",
    "ConversationList",
    "ConversationResponse",
    "ConversationSummary",
    "CreateConversationRequest",
    "CreatedConversation",
    "DeleteResponse",
    "DirectRequest",
    "EditRequest",
    "EditResponse",
    "ErrorBody",
    "GroupRequest",
    "Health",
    "Integrity",
    "LoginRequest",
    "LookupRequest",
    "LookupResponse",
    "MeResponse",
    "MessageOut",
    "MessagePage",
    "MessagePagination",
    "Pagination",
    "ParticipantAdded",
    "PasswordChangeRequest",
    "PeopleMessageOut",
    "PostMessageRequest",
    "PostMessageResponse",
    "ProfileUpdateRequest",
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
    """[ext] `name` and `image` are the public profile others see (`{id, name, image}`):
    a name of 1 to 100 printable characters, an http(s) image URL."""

    email: Email
    password: Password
    name: str | None = None
    image: str | None = None


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
    """[ext] Each item is a ConversationItem: the seed's summary fields, then `kind`,
    `participants`, `lastMessage`, `unreadCount`, `description`, `category`."""

    conversations: list[ConversationItem]
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
    """The seed's viewport, and [ext] what the list shows of the conversation: `kind`
    (`ai`, `direct`, `group`), `participants`, `lastMessage`, `unreadCount` (the
    caller's; 0 for `ai`), and a group's `description` and `category` (null otherwise)."""

    id: str
    title: str | None
    model: str
    message_count: int
    merkle_root: str | None
    integrity: Integrity
    viewport: Viewport
    messages: list[MessageOut]
    kind: str
    participants: list[Participant]
    last_message: LastMessage | None
    unread_count: int
    description: str | None
    category: str | None


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


# ── people and shared conversations [ext] (seed 004's routes) ──────────────


class ProfileUpdateRequest(_Body):
    """`PATCH /api/profile`: a field left out stays as it is; `null` clears it."""

    name: str | UnsetType | None = UNSET
    image: str | UnsetType | None = UNSET


class LookupRequest(_Body):
    """`POST /api/users/lookup`: an exact email (any case). A POST, so the email is never
    in a URL or an access log; not found and malformed answer the same 404."""

    email: str


class LookupResponse(_Body):
    user: PublicUser


class DirectRequest(_Body):
    user_id: uuid.UUID


# Seed 003's GroupCategory; the service checks it (`server.service.shared_chat`).
_GROUP_CATEGORIES = ("GENERAL", "FOOD_SHARE", "NEWS", "RECIPES", "TIPS", "LOCAL_EVENTS")
_GroupCategory = Annotated[
    str, msgspec.Meta(extra_json_schema={"enum": list(_GROUP_CATEGORIES)})
]
_GroupName = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=100, description="1 to 100 characters, not only whitespace."
    ),
]
_GroupDescription = Annotated[str, msgspec.Meta(max_length=1000)]


class GroupRequest(_Body):
    """`POST /api/conversations/group`: the caller becomes its admin, `memberIds` its
    members (the caller's own id among them is ignored). `category` defaults to
    GENERAL."""

    name: _GroupName
    member_ids: list[uuid.UUID]
    description: _GroupDescription | None = None
    category: _GroupCategory | None = None


class ConversationResponse(_Body):
    conversation: ConversationItem


class AddParticipantRequest(_Body):
    user_id: uuid.UUID


class ParticipantAdded(_Body):
    conversation_id: str
    user_id: str
    role: str
    by: str


class PeopleMessageOut(_Body):
    """A message of `/api/messages`: `senderId` and `sender` are its author's (null for an
    `ai` conversation's assistant); `content` is null and `error` set when it does not
    decrypt."""

    id: str
    conversation_id: str
    sequence: int
    sender_id: str | None
    sender: PublicUser | None
    role: str
    content: str | None
    timestamp: str
    client_msg_id: str | None
    error: str | UnsetType = UNSET


class MessagePagination(_Body):
    """`hasMore`: older messages exist below this page (given when paging back, by
    `offset` or `before`); left out for `after`, where a page shorter than `limit` is
    the last one."""

    limit: int
    offset: int
    has_more: bool | UnsetType = UNSET


class MessagePage(_Body):
    messages: list[PeopleMessageOut]
    pagination: MessagePagination


class PostMessageRequest(_Body):
    conversation_id: uuid.UUID
    content: Content
    client_msg_id: ClientMsgId | None = None


class PostMessageResponse(_Body):
    """`duplicate: true` (status 200) answers a repeated `clientMsgId` with the message
    first stored; left out otherwise."""

    message: PeopleMessageOut
    message_count: int
    duplicate: bool = False


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
