"""REST bodies of the privacy operations [ext]: export, erasure, verification, key rotation.

    GET    /api/conversations/{id}/export      -> ConversationExportDocument (or Markdown)
    GET    /api/account/export                 -> AccountExport
    DELETE /api/conversations/{id}?hard=true   -> HardDeleteResponse
    DELETE /api/account   DeleteAccountRequest -> 204
    POST   /api/conversations/{id}/verify      -> VerifyResponse
    POST   /api/conversations/{id}/rotate-key  -> RotateKeyResponse
"""

from __future__ import annotations

import msgspec

from protocol.rest import Integrity, MessageOut
from protocol.types import LoginPassword

__all__ = [
    "EXPORT_FORMAT_VERSION",
    "AccountExport",
    "ConversationExport",
    "ConversationExportDocument",
    "DeleteAccountRequest",
    "ExportedUser",
    "HardDeleteResponse",
    "RotateKeyResponse",
    "VerifyResponse",
]

EXPORT_FORMAT_VERSION = 1
"""Version of the export documents' layout; bumped when a field changes meaning."""


class _Body(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base of every body here: camelCase on the wire."""


class ConversationExport(_Body):
    """One conversation, every message decrypted, with the chain verified.

    `messages` are the same objects `GET /api/conversations/{id}` returns, for all of
    the conversation; a message that does not decrypt has `isDecrypted: false`.
    """

    id: str
    title: str | None
    model: str
    message_count: int
    key_version: int
    created_at: str
    updated_at: str
    merkle_root: str | None
    integrity: Integrity
    messages: list[MessageOut]


class ConversationExportDocument(_Body):
    format_version: int
    exported_at: str
    conversation: ConversationExport


class ExportedUser(_Body):
    id: str
    email: str
    created_at: str


class AccountExport(_Body):
    """Everything of one account that can be read back: its live conversations."""

    format_version: int
    exported_at: str
    user: ExportedUser
    conversations: list[ConversationExport]


class HardDeleteResponse(_Body):
    success: bool
    deleted_at: str
    hard: bool


class DeleteAccountRequest(_Body):
    password: LoginPassword


class VerifyResponse(_Body):
    """A full check: every chain link recomputed and every message decrypted.

    `firstBadSequence` is the first message whose link (or position) is wrong, null
    when the whole chain holds; `rootMatches` says whether the chain recomputed from
    the tokens ends at the stored head; `undecryptable` lists messages that fail to
    decrypt. `valid` is true only when all three are clean.
    """

    valid: bool
    message_count: int
    first_bad_sequence: int | None
    root_matches: bool
    undecryptable: list[int]


class RotateKeyResponse(_Body):
    key_version: int
    reencrypted: int
