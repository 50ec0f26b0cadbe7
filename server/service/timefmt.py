"""Timestamps on the wire: ISO 8601 in UTC with milliseconds, as JavaScript's toISOString()."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "now_iso"]


def iso(moment: datetime) -> str:
    """`2024-01-15T10:00:00.000Z` for any aware or naive-UTC datetime."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return iso(datetime.now(UTC))
