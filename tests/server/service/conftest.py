"""Fixtures of the chat service's unit tests: the service without transports, on the
session's database (`server_db`), and the machine's Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as redis_asyncio
from machine_services import redis_url
from pg import TempDatabase
from service_harness import ChatHarness, chat_harness


@pytest_asyncio.fixture
async def harness(server_db: TempDatabase) -> AsyncIterator[ChatHarness]:
    async with chat_harness(server_db, SCRIPTED_DELAY_MS="0") as built:
        yield built


@pytest_asyncio.fixture
async def redis_client() -> AsyncIterator[redis_asyncio.Redis]:
    """A connection to the machine's Redis (each test keeps to keys of its own prefix)."""
    connection = redis_asyncio.Redis.from_url(redis_url())
    yield connection
    await connection.aclose()
