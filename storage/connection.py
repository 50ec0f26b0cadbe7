"""The part of an asyncpg connection the storage functions use, as a type."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

__all__ = ["Connection", "Row"]

Row = Mapping[str, Any]
"""A fetched row (an ``asyncpg.Record``): column name to value."""


class Connection(Protocol):
    """What :func:`storage.pool.user_tx` yields: an ``asyncpg.Connection``.

    Storage functions accept any object with these methods, which keeps
    their own code type-checked although asyncpg ships no type information.
    """

    async def execute(self, query: str, *args: object) -> str:
        """Run a statement; return its command tag."""
        ...

    async def executemany(self, command: str, args: Iterable[Sequence[object]]) -> None:
        """Run a statement once per argument tuple."""
        ...

    async def fetch(self, query: str, *args: object) -> list[Row]:
        """Run a query; return all rows."""
        ...

    async def fetchrow(self, query: str, *args: object) -> Row | None:
        """Run a query; return the first row or None."""
        ...

    async def fetchval(self, query: str, *args: object) -> Any:
        """Run a query; return one value of the first row (None if no row)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A transaction, or a savepoint inside one (asyncpg nests them that way)."""
        ...
