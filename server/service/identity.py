"""Who is acting: the authenticated user, their session and their unwrapped data key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

__all__ = ["Identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller. Built only by `Accounts.authenticate`; never from client data."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    data_key: bytes = field(repr=False)
