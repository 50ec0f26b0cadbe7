"""Immutable rows as the rest of the application sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

__all__ = [
    "AuditRecord",
    "ConversationRecord",
    "GenerationRecord",
    "MessageRecord",
    "SessionRecord",
    "UserRecord",
]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """An account: login hash, and the data key wrapped under the password KEK."""

    id: UUID
    email: str
    password_hash: str
    kek_salt: bytes
    wrapped_data_key: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A login session; holds the user's data key wrapped under a server key."""

    id: UUID
    user_id: UUID
    wrapped_data_key: bytes
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    ip: str | None
    user_agent: str | None


IDENTITY_SQL = "NULLIF(current_setting('app.current_user_id', true), '')::uuid"
"""The transaction's identity (what `user_tx` sets), as SQL: queries name it to reach
their rows through an index, where row-level security alone would filter a scan."""

CONVERSATION_COLUMNS = (
    "id, user_id, title, model, message_count, merkle_root, wrapped_key, key_version,"
    " created_at, updated_at, deleted_at, sealed_title, kind, sealed_description, category,"
    " direct_pair"
)
"""What every query that builds a :class:`ConversationRecord` selects (or returns)."""


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A conversation's head: message count, last chain link, wrapped key, title.

    As read from the database, ``title`` is the clear title of a row written before
    schema version 3 that is not sealed yet (else None) and ``sealed_title`` the title
    sealed under the conversation's key. The chat service hands records on with
    ``title`` set to the opened title.

    ``kind`` is ``ai``, ``direct`` or ``group`` (schema version 4). ``user_id`` is the
    creator (the owner of an ``ai`` conversation). Only an ``ai`` conversation has a
    ``wrapped_key``; a shared one's key is sealed to each member (MemberRecord).
    """

    id: UUID
    user_id: UUID
    title: str | None
    model: str
    message_count: int
    merkle_root: bytes | None
    wrapped_key: bytes | None
    key_version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    sealed_title: bytes | None
    kind: str = "ai"
    sealed_description: bytes | None = None
    category: str | None = None
    direct_pair: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message: its encrypted token and its link in the integrity chain; its id and
    author (``sender_id``: None for the model's) since schema version 4."""

    conversation_id: UUID
    seq: int
    role: int
    token: bytes
    link: bytes
    created_at: datetime
    client_msg_id: str | None
    stopped: bool
    id: UUID | None = None
    sender_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class GenerationRecord:
    """The lease on a conversation's one running generation."""

    conversation_id: UUID
    user_id: UUID
    owner: UUID
    sequence: int
    started_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit entry; ``details`` never holds message content."""

    id: int
    user_id: UUID | None
    conversation_id: UUID | None
    action: str
    details: dict[str, object]
    ip: str | None
    created_at: datetime
