"""Constrained scalar types shared by the payload Structs."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = [
    "MAX_CONTENT_CHARS",
    "ClientMsgId",
    "Content",
    "Email",
    "Limit",
    "LoginPassword",
    "NonNegativeInt",
    "Offset",
    "Password",
    "Sequence",
    "Title",
]

MAX_CONTENT_CHARS = 100_000
_INT32_MAX = 2**31 - 1

Content = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_CONTENT_CHARS,
        description="Message text: non-empty after trimming, at most 100,000 characters.",
    ),
]
Sequence = Annotated[
    int, msgspec.Meta(ge=1, le=_INT32_MAX, description="Message sequence, counting from 1.")
]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0, le=_INT32_MAX)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=100)]
Offset = Annotated[int, msgspec.Meta(ge=0, le=_INT32_MAX)]
ClientMsgId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="Client-chosen idempotency key for a send.",
    ),
]
# Titles and model names are stored as text: PostgreSQL refuses NUL in text columns.
Title = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\x00]*$")]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]
# Login takes any non-empty password up to the limit: a rule tightened later must not
# lock out accounts created before it.
LoginPassword = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
