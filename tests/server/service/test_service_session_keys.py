"""A session's copy of the data key dies with the session: blanked at logout and
revocation (elsewhere), and at expiry by the periodic sweep tested here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from pg import TempDatabase
from polling import eventually
from service_harness import ChatHarness, local_throttle

import storage
from server.service import exceptions as errors
from server.service.accounts import Accounts, session_key_sweep_loop

PASSWORD = "correct horse battery"


async def _two_sessions(harness: ChatHarness) -> tuple[str, str]:
    """Tokens of two sessions of one new user."""
    email = f"sweep-{uuid.uuid4().hex[:12]}@example.com"
    first = await harness.accounts.register(email, PASSWORD, ip=None, user_agent=None)
    second = await harness.accounts.login(email, PASSWORD, ip=None, user_agent=None)
    return first.token, second.token


async def _expire(admin: asyncpg.Connection, token_session: uuid.UUID) -> None:
    await admin.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1",
        token_session,
    )


async def _key(admin: asyncpg.Connection, session_id: uuid.UUID) -> bytes:
    key: bytes = await admin.fetchval(
        "SELECT wrapped_data_key FROM sessions WHERE id = $1", session_id
    )
    return key


async def test_an_expired_session_loses_its_key_and_a_live_one_keeps_it(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    expiring_token, live_token = await _two_sessions(harness)
    expiring = await harness.accounts.authenticate(expiring_token)
    live = await harness.accounts.authenticate(live_token)
    await _expire(admin, expiring.session_id)
    # Expired is dead at once for every read, sweep or no sweep.
    with pytest.raises(errors.Unauthorized, match="session expired or revoked"):
        await harness.accounts.authenticate(expiring_token)
    assert await _key(admin, expiring.session_id) != b""

    assert await harness.accounts.blank_expired_session_keys() >= 1
    assert await _key(admin, expiring.session_id) == b""
    assert await _key(admin, live.session_id) != b""
    assert (await harness.accounts.authenticate(live_token)).data_key == live.data_key
    assert await harness.accounts.blank_expired_session_keys() == 0


async def test_the_sweep_goes_through_every_batch(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    tokens = [token for _ in range(3) for token in await _two_sessions(harness)]
    ids = [(await harness.accounts.authenticate(t)).session_id for t in tokens]
    for session_id in ids:
        await _expire(admin, session_id)
    assert await harness.accounts.blank_expired_session_keys(batch_size=2) >= len(ids)
    assert [await _key(admin, session_id) for session_id in ids] == [b""] * len(ids)


async def test_the_sweep_loop_blanks_what_expires_while_it_runs(
    harness: ChatHarness, admin: asyncpg.Connection
) -> None:
    token, _ = await _two_sessions(harness)
    session_id = (await harness.accounts.authenticate(token)).session_id
    task = asyncio.create_task(session_key_sweep_loop(harness.accounts, 0.05))
    try:
        await _expire(admin, session_id)

        async def blanked() -> bool:
            return await _key(admin, session_id) == b""

        await eventually(blanked, what="the sweep loop to blank an expired session's key")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_sweep_loop_outlives_a_database_that_is_away(
    server_db: TempDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await storage.create_pool(server_db.app_dsn, min_size=0, max_size=1)
    await pool.close()  # every use now fails as the database being away does
    accounts = Accounts(pool, b"s" * 32, token_ttl=timedelta(minutes=1), throttle=local_throttle())
    caplog.set_level(logging.WARNING, logger="server.service.accounts")
    task = asyncio.create_task(session_key_sweep_loop(accounts, 0.01))
    try:
        await eventually(
            lambda: sum("session key sweep failed" in r.message for r in caplog.records) >= 2,
            what="two failed sweeps, logged, with the loop still running",
        )
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
