"""Where the machine's own PostgreSQL and Redis are, for tests that talk to them directly."""

from __future__ import annotations

import os

__all__ = ["redis_url"]


def redis_url() -> str:
    """The machine's Redis (every suite shares it: tests keep to their own keys and channels)."""
    return os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
