"""Fixtures for the storage tests: one temporary database, an app-role pool."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest_asyncio

# tests/support holds the shared database helper; the repository root holds
# the packages under test (needed when pytest is started as a script).
for _path in (Path(__file__).resolve().parents[1] / "support", Path(__file__).resolve().parents[2]):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from pg import TempDatabase, connected, temporary_database  # noqa: E402

from storage import create_pool  # noqa: E402


@pytest_asyncio.fixture(scope="session")
async def database() -> AsyncIterator[TempDatabase]:
    """A fresh database with the schema, shared by the whole storage suite."""
    async with temporary_database() as db:
        yield db


@pytest_asyncio.fixture(scope="session")
async def pool(database: TempDatabase) -> AsyncIterator[asyncpg.Pool]:
    """A pool connected as the application role."""
    app_pool = await create_pool(database.app_dsn, min_size=1, max_size=10)
    yield app_pool
    await app_pool.close()


@pytest_asyncio.fixture
async def admin(database: TempDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the test database, for inspecting it."""
    async with connected(database.admin_dsn) as con:
        yield con
