"""Fixed rate-limit windows, for tests that count within one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["one_window"]


@asynccontextmanager
async def one_window(window_s: int, needed_s: float) -> AsyncIterator[None]:
    """Run a counting phase inside one fixed window (waiting for the next window when
    this one has less than `needed_s` left), and check that it did end there."""
    left = window_s - time.time() % window_s
    if left < needed_s:
        await asyncio.sleep(left + 0.05)
    window = int(time.time() // window_s)
    yield
    assert int(time.time() // window_s) == window, "the phase spanned two rate windows"
