"""Shared fixtures: a temporary database, a live server, and the real Node client.

A module that needs a database of its own overrides `server_db` (module scope); `server`
and `admin` then follow it.

The suite needs PostgreSQL and Redis on this machine's standard ports (or
TEST_DATABASE_URL / TEST_REDIS_URL) and Node.js with tests/node installed.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest_asyncio

_SUPPORT = Path(__file__).resolve().parent / "support"
if str(_SUPPORT) not in sys.path:
    sys.path.insert(0, str(_SUPPORT))

from live_server import LiveServer, live_server, test_settings  # noqa: E402
from node_client import NodeClients  # noqa: E402
from pg import TempDatabase, connected, temporary_database  # noqa: E402


@pytest_asyncio.fixture(scope="session")
async def server_db() -> AsyncIterator[TempDatabase]:
    """One temporary database for the server-level tests (each test uses its own users)."""
    async with temporary_database() as db:
        yield db


@pytest_asyncio.fixture
async def server(server_db: TempDatabase) -> AsyncIterator[LiveServer]:
    """A fresh server on a random port, scripted model, in-process manager."""
    async with live_server(test_settings(server_db.app_dsn)) as live:
        yield live


@pytest_asyncio.fixture
async def admin(server_db: TempDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to `server_db` (row-level security does not apply)."""
    async with connected(server_db.admin_dsn) as con:
        yield con


@pytest_asyncio.fixture(scope="session")
async def node() -> AsyncIterator[NodeClients]:
    """The real socket.io-client 4.x, in one Node process for the whole session."""
    async with NodeClients() as clients:
        yield clients
