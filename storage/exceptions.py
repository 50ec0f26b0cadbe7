"""Errors raised by the storage package, and the one place asyncpg's become ours.

Hierarchy::

    StorageError                 anything the database refused or failed to do
    ├── NotFound                 the row is missing (or belongs to someone else)
    ├── Conflict                 a unique constraint said no (.constraint names it)
    ├── Forbidden                privilege or row-level security violation
    ├── Unavailable              cannot reach the database, or lost the connection
    └── MigrationError           the schema cannot be brought to this code's version

Every public storage function runs inside :func:`convert_errors`, so callers
only ever see these classes, never an ``asyncpg`` exception.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import asyncpg  # type: ignore[import-untyped,unused-ignore]

__all__ = [
    "Conflict",
    "ErrorBoundary",
    "Forbidden",
    "MigrationError",
    "NotFound",
    "StorageError",
    "Unavailable",
    "convert_errors",
]

P = ParamSpec("P")
T = TypeVar("T")


class StorageError(Exception):
    """Base class of every error the storage package raises."""


class NotFound(StorageError):
    """The row does not exist, or is not visible to the current identity."""


class Conflict(StorageError):
    """A unique constraint rejected the write (duplicate email, seq, client_msg_id)."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class Forbidden(StorageError):
    """Missing privilege, or the row would violate a row-level security policy."""


class Unavailable(StorageError):
    """The database cannot be reached, refused the connection, or went away."""


class MigrationError(StorageError):
    """The database's schema version cannot be brought to the one in schema.sql."""


# SQLSTATE classes 08 (connection), 53 (insufficient resources) and 57P
# (operator intervention: shutdown, crash, cannot connect now, database dropped).
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.DatabaseDroppedError,
    OSError,  # refused, reset, unreachable; TimeoutError is one too
)


def _is_closed_interface(exc: BaseException) -> bool:
    """asyncpg reports a closed pool or connection as a bare InterfaceError."""
    return isinstance(exc, asyncpg.InterfaceError) and (
        "closed" in str(exc) or "closing" in str(exc)
    )


def translate(exc: BaseException) -> StorageError | None:
    """Return our error for a database-layer exception, None for anything else."""
    if isinstance(exc, StorageError) or not isinstance(exc, Exception):
        return None
    message = str(exc) or type(exc).__name__
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(message, constraint=getattr(exc, "constraint_name", None))
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return Forbidden(message)
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFound(message)
    if isinstance(exc, _UNAVAILABLE_TYPES) or _is_closed_interface(exc):
        return Unavailable(message)
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return StorageError(message)
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return StorageError(message)
    return None


class ErrorBoundary:
    """Context manager and async-function decorator that converts asyncpg errors.

    ``with convert_errors(): ...`` re-raises any asyncpg (or socket) error as
    the matching :class:`StorageError`, chained to the original. Errors that
    did not come from the database layer pass through untouched.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        converted = translate(exc)
        if converted is not None:
            raise converted from exc

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            with self:
                return await fn(*args, **kwargs)

        return wrapper


def convert_errors() -> ErrorBoundary:
    """The boundary every storage function runs in; see :class:`ErrorBoundary`."""
    return ErrorBoundary()
