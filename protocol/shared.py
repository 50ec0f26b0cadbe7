"""[ext] Shapes of shared conversations that REST bodies and Socket.IO events both carry:
a person as others see them, a member, a last message, a conversation as a list shows it.

Fields that may be null are always present (no defaults): a client reads `null`, never a
missing key.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ConversationItem",
    "LastMessage",
    "Participant",
    "PublicUser",
]


class _Shape(msgspec.Struct, rename="camel", kw_only=True):
    pass


class PublicUser(_Shape):
    """A person as others see them: never their email or anything of their account."""

    id: str
    name: str | None
    image: str | None


class Participant(_Shape):
    user_id: str
    role: str
    joined_at: str
    user: PublicUser


class LastMessage(_Shape):
    id: str
    sequence: int
    sender_id: str | None
    preview: str
    timestamp: str


class ConversationItem(_Shape):
    """A conversation in `GET /api/conversations` (the seed's summary fields first) and
    in `conversation-added`. `title` is a group's name; `description` and `category`
    are a group's (null otherwise)."""

    id: str
    title: str | None
    model: str
    message_count: int
    created_at: str
    updated_at: str
    merkle_root: str | None
    kind: str
    participants: list[Participant]
    last_message: LastMessage | None
    unread_count: int
    description: str | None
    category: str | None
