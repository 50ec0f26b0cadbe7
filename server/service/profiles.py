"""People as others see them: a name and an image, and finding someone by email.

Profiles are the only thing of an account that other people read (`{id, name, image}`);
emails, hashes and keys stay on the account row, which row-level security shows its
owner only. Finding someone by their exact email is counted per user (Action.LOOKUP)
and answers one "not found" for every reason it gives no person.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit

import asyncpg
from msgspec import UNSET, UnsetType

import storage
from protocol.shared import PublicUser
from server.service import exceptions as errors
from server.service.event_limits import Action, EventLimiter
from server.service.identity import Identity

__all__ = ["ProfileService", "check_profile", "public_user", "public_users"]

_MAX_NAME = 100
_MAX_IMAGE = 2048
_NOBODY = "No person with this email"


def check_profile(name: str | None, image: str | None) -> tuple[str | None, str | None]:
    """A name (trimmed, 1-100 printable characters) and an image (an http(s) URL of at
    most 2,048 characters), each optional; InvalidInput naming the field otherwise."""
    if name is not None:
        name = name.strip()
        if not name or len(name) > _MAX_NAME or not name.isprintable():
            raise errors.InvalidInput(
                f"name: expected 1 to {_MAX_NAME} printable characters"
            )
    if image is not None:
        parts = urlsplit(image) if len(image) <= _MAX_IMAGE and image.isprintable() else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise errors.InvalidInput(
                f"image: expected an http or https URL of at most {_MAX_IMAGE} characters"
            )
    return name, image


def public_user(user_id: uuid.UUID, profile: storage.ProfileRecord | None) -> PublicUser:
    """`{id, name, image}`; a person whose profile is gone shows only their id."""
    return PublicUser(
        id=str(user_id),
        name=profile.name if profile else None,
        image=profile.image if profile else None,
    )


async def public_users(
    con: storage.Connection, user_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, PublicUser]:
    """`public_user` for many people, in one query."""
    ids = list(dict.fromkeys(user_ids))
    profiles = await storage.get_profiles(con, ids)
    return {user_id: public_user(user_id, profiles.get(user_id)) for user_id in ids}


class ProfileService:
    """Read and change one's own profile; find someone to talk to."""

    def __init__(self, pool: asyncpg.Pool, *, limiter: EventLimiter) -> None:
        self._pool = pool
        self._limiter = limiter

    async def get(self, identity: Identity, user_id: uuid.UUID) -> PublicUser:
        """Anyone's public profile, by id (ids are random: knowing one is the right)."""
        async with storage.user_tx(self._pool, identity.user_id) as con:
            profiles = await storage.get_profiles(con, [user_id])
        if user_id not in profiles:
            raise errors.NotFound("No such person")
        return public_user(user_id, profiles[user_id])

    async def update(
        self,
        identity: Identity,
        *,
        name: str | UnsetType | None = UNSET,
        image: str | UnsetType | None = UNSET,
    ) -> PublicUser:
        """Change one's name and image in one statement: None clears a field, UNSET
        keeps it."""
        checked_name, checked_image = check_profile(
            None if isinstance(name, UnsetType) else name,
            None if isinstance(image, UnsetType) else image,
        )
        async with storage.user_tx(self._pool, identity.user_id) as con:
            profile = await storage.update_profile(
                con,
                identity.user_id,
                name=checked_name,
                image=checked_image,
                keep_name=isinstance(name, UnsetType),
                keep_image=isinstance(image, UnsetType),
            )
        return public_user(identity.user_id, profile)

    async def find_by_email(self, identity: Identity, email: str) -> PublicUser:
        """The person with exactly this email, counted against the caller's lookups.
        Not found, malformed and any other refusal all answer the same NotFound."""
        await self._limiter.check(identity.user_id, Action.LOOKUP)
        email = email.strip() if isinstance(email, str) else ""
        # PostgreSQL text holds no NUL: such an email is nobody's.
        if not email or len(email) > 254 or "@" not in email or "\x00" in email:
            raise errors.NotFound(_NOBODY)
        async with storage.user_tx(self._pool, identity.user_id) as con:
            user_id = await storage.find_user_id_by_email(con, email)
            profiles = await storage.get_profiles(con, [user_id]) if user_id else {}
        if user_id is None:
            raise errors.NotFound(_NOBODY)
        return public_user(user_id, profiles.get(user_id))
