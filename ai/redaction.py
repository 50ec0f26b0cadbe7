"""Keeping prompts out of the SDKs' own debug logs.

The anthropic SDK logs every request's options, prompt included, at DEBUG level on
`anthropic._base_client`. Providers install this filter on their SDK's logger when they
are created (never at import), so turning on DEBUG logging cannot leak conversations.
"""

from __future__ import annotations

import logging

__all__ = ["RequestDumpFilter", "hide_request_dumps"]


class RequestDumpFilter(logging.Filter):
    """Drops the SDK log records that dump request options (and so the prompt)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Request options"))


def hide_request_dumps(logger_name: str) -> None:
    """Install RequestDumpFilter on `logger_name` once."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(existing, RequestDumpFilter) for existing in logger.filters):
        logger.addFilter(RequestDumpFilter())
