"""The entry point behind `run.py`: configuration, database, schema, then serve."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys

from aiohttp import web

import storage
from server.app import create_app
from server.config import ConfigError, Settings, load_settings
from server.embedded_db import EmbeddedPostgres
from server.logs import configure_logging

__all__ = ["main"]

_LOG = logging.getLogger("server")


async def _prepare_database(settings: Settings) -> None:
    assert settings.database_url is not None
    version = await storage.apply_schema(
        settings.database_url,
        app_role=settings.db_app_role,
        app_password=settings.db_app_password,
    )
    _LOG.info("database schema at version %d", version)


def main() -> int:
    """Run the server until SIGINT or SIGTERM; returns the process exit code."""
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    embedded: EmbeddedPostgres | None = None
    try:
        if settings.database_url is None and settings.app_database_url is None:
            embedded = EmbeddedPostgres(settings.data_dir / "postgres")
            settings = dataclasses.replace(settings, database_url=embedded.start())
        if settings.database_url is not None:
            asyncio.run(_prepare_database(settings))
        app = create_app(settings)
        _LOG.info(
            "listening on http://%s:%d (socket path %s)",
            settings.host,
            settings.port,
            settings.socket_path,
        )
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            # Replies get SHUTDOWN_GRACE_S in on_shutdown; after that, only idle
            # keep-alive and long-poll requests remain, and they need no grace.
            shutdown_timeout=2.0,
            access_log=None,
            print=None,
        )
    except storage.StorageError as exc:
        _LOG.error("database error: %s", exc)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()
    return 0
