"""Who is acting: the authenticated user, their session and their unwrapped data key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

__all__ = ["Identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller. Built only by `Accounts`; never from client data.

    `data_key` is the user's data key as it was when the identity was built.
    `session_key` opens the session row's copy of it: a password change replaces the
    data key, and an identity that outlives it (a socket's) picks the new one up from
    the session row (`keyring.current_identity`).
    """

    user_id: uuid.UUID
    session_id: uuid.UUID
    data_key: bytes = field(repr=False)
    session_key: bytes = field(default=b"", repr=False)
