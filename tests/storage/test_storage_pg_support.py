"""The shared temporary-database helper explains itself when PostgreSQL is down."""

from __future__ import annotations

import pytest
from pg import DatabaseUnreachable, temporary_database


async def test_unreachable_cluster_gives_one_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/postgres")
    with pytest.raises(DatabaseUnreachable, match="pg_ctlcluster 15 main start"):
        async with temporary_database():
            pytest.fail("no database can have been created")
