"""People as others see them: public profiles, and finding someone by exact email.

The account row (users) holds hashes and wrapped keys and is visible to its owner only;
what another person may learn of a user is their profile: name, image and the public
half of their X25519 key pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from storage.connection import Connection
from storage.exceptions import NotFound, convert_errors

__all__ = [
    "ProfileRecord",
    "find_user_id_by_email",
    "get_profiles",
    "get_wrapped_private_key",
    "insert_profile",
    "set_key_pair",
    "update_profile",
]

_COLUMNS = "user_id, name, image, public_key, updated_at"


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    user_id: UUID
    name: str | None
    image: str | None
    public_key: bytes | None
    updated_at: datetime


@convert_errors()
async def insert_profile(
    con: Connection, user_id: UUID, *, name: str | None, image: str | None
) -> ProfileRecord:
    """The identity's own profile, created with their account."""
    row = await con.fetchrow(
        f"INSERT INTO profiles (user_id, name, image) VALUES ($1, $2, $3) RETURNING {_COLUMNS}",
        user_id,
        name,
        image,
    )
    assert row is not None  # INSERT ... RETURNING yields the row or raises
    return ProfileRecord(**row)


@convert_errors()
async def update_profile(
    con: Connection,
    user_id: UUID,
    *,
    name: str | None,
    image: str | None,
    keep_name: bool = False,
    keep_image: bool = False,
) -> ProfileRecord:
    """Set the identity's name and image (a ``keep_`` flag leaves that one as it is), in
    one statement; the profile is created if the account predates profiles."""
    row = await con.fetchrow(
        "INSERT INTO profiles AS p (user_id, name, image) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_id) DO UPDATE SET"
        " name = CASE WHEN $4 THEN p.name ELSE excluded.name END,"
        " image = CASE WHEN $5 THEN p.image ELSE excluded.image END,"
        " updated_at = now()"
        f" RETURNING {_COLUMNS}",
        user_id,
        None if keep_name else name,
        None if keep_image else image,
        keep_name,
        keep_image,
    )
    assert row is not None  # an upsert returns its row
    return ProfileRecord(**row)


@convert_errors()
async def get_profiles(con: Connection, user_ids: Sequence[UUID]) -> dict[UUID, ProfileRecord]:
    """Profiles by user id; ids without a profile are left out."""
    rows = await con.fetch(
        f"SELECT {_COLUMNS} FROM profiles WHERE user_id = ANY($1::uuid[])", list(user_ids)
    )
    return {row["user_id"]: ProfileRecord(**row) for row in rows}


@convert_errors()
async def find_user_id_by_email(con: Connection, email: str) -> UUID | None:
    """The id of the account with exactly this email (any case), or None. Only an
    identified transaction gets an answer."""
    found: UUID | None = await con.fetchval("SELECT find_user_id_by_email($1)", email)
    return found


@convert_errors()
async def get_wrapped_private_key(con: Connection, user_id: UUID) -> bytes | None:
    """The identity's X25519 private key wrapped under their data key (None: no pair yet)."""
    wrapped: bytes | None = await con.fetchval(
        "SELECT wrapped_private_key FROM users WHERE id = $1", user_id
    )
    return wrapped


@convert_errors()
async def set_key_pair(
    con: Connection, user_id: UUID, *, public_key: bytes, wrapped_private_key: bytes
) -> None:
    """Store the identity's key pair: the private half on their account row, the public
    half on their profile (created here for an account that predates profiles)."""
    status = await con.execute(
        "UPDATE users SET wrapped_private_key = $2 WHERE id = $1", user_id, wrapped_private_key
    )
    if status == "UPDATE 0":
        raise NotFound(f"user {user_id}")
    await con.execute(
        "INSERT INTO profiles (user_id, public_key) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET public_key = excluded.public_key,"
        " updated_at = now()",
        user_id,
        public_key,
    )
