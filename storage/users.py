"""Accounts: registration, login lookup, password changes, erasure."""

from __future__ import annotations

from uuid import UUID

from storage.connection import Connection
from storage.exceptions import NotFound, convert_errors
from storage.records import UserRecord

__all__ = [
    "delete_user",
    "find_user_for_login",
    "get_user",
    "insert_user",
    "update_password",
    "update_password_hash",
]


_SELECT = (
    "SELECT id, email, password_hash, kek_salt, wrapped_data_key, created_at"
    " FROM users WHERE id = $1"
)
_SELECT_FOR_UPDATE = (
    "SELECT id, email, password_hash, kek_salt, wrapped_data_key, created_at"
    " FROM users WHERE id = $1 FOR NO KEY UPDATE"
)


@convert_errors()
async def insert_user(
    con: Connection,
    *,
    user_id: UUID,
    email: str,
    password_hash: str,
    kek_salt: bytes,
    wrapped_data_key: bytes,
) -> UserRecord:
    """Create an account; the email is stored lowercased.

    The transaction must act as ``user_id`` (``user_tx(pool, user_id)``).
    Raises :class:`Conflict` if the email is taken.
    """
    row = await con.fetchrow(
        "INSERT INTO users (id, email, password_hash, kek_salt, wrapped_data_key)"
        " VALUES ($1, lower($2), $3, $4, $5)"
        " RETURNING id, email, password_hash, kek_salt, wrapped_data_key, created_at",
        user_id,
        email,
        password_hash,
        kek_salt,
        wrapped_data_key,
    )
    assert row is not None  # INSERT ... RETURNING yields the row or raises
    return UserRecord(**row)


@convert_errors()
async def find_user_for_login(con: Connection, email: str) -> UserRecord | None:
    """Look an account up by email (case-insensitively), with or without identity.

    Goes through the ``find_user_for_login`` SECURITY DEFINER function, the
    only way past row-level security for a not-yet-identified caller.
    """
    row = await con.fetchrow(
        "SELECT id, email, password_hash, kek_salt, wrapped_data_key, created_at"
        " FROM find_user_for_login($1)",
        email,
    )
    return None if row is None else UserRecord(**row)


@convert_errors()
async def get_user(
    con: Connection, user_id: UUID, *, for_update: bool = False
) -> UserRecord | None:
    """The account ``user_id``, if visible to the current identity.

    ``for_update=True`` locks the row against other changes of its keys until the
    transaction ends (FOR NO KEY UPDATE: rows that merely reference the account, such as
    audit entries, can still be added meanwhile).
    """
    row = await con.fetchrow(_SELECT_FOR_UPDATE if for_update else _SELECT, user_id)
    return None if row is None else UserRecord(**row)


@convert_errors()
async def update_password(
    con: Connection,
    user_id: UUID,
    *,
    password_hash: str,
    kek_salt: bytes,
    wrapped_data_key: bytes,
) -> None:
    """Replace the login hash and re-wrap the data key under the new password.

    Raises :class:`NotFound` if the account is missing or not visible.
    """
    status = await con.execute(
        "UPDATE users"
        " SET password_hash = $2, kek_salt = $3, wrapped_data_key = $4, updated_at = now()"
        " WHERE id = $1",
        user_id,
        password_hash,
        kek_salt,
        wrapped_data_key,
    )
    if status == "UPDATE 0":
        raise NotFound("user {user_id}")


@convert_errors()
async def update_password_hash(con: Connection, user_id: UUID, password_hash: str) -> None:
    """Store a rehash of the same password (new Argon2 parameters).

    Raises :class:`NotFound` if the account is missing or not visible.
    """
    status = await con.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        user_id,
        password_hash,
    )
    if status == "UPDATE 0":
        raise NotFound("user {user_id}")


@convert_errors()
async def delete_user(con: Connection, user_id: UUID) -> bool:
    """Erase an account and, by cascade, everything it owns. False if missing."""
    status = await con.execute("DELETE FROM users WHERE id = $1", user_id)
    return status != "DELETE 0"
