"""The entry point behind `run.py`: configuration, database, schema, then serve."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
import warnings

from aiohttp import web

import storage
from server.app import create_app, drain
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


async def _serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then drain before aiohttp's own shutdown.

    aiohttp's shutdown stops reading from every open connection before its hooks run,
    so events of sockets still connected would go unanswered; here the listening socket
    is closed first, then `drain` answers every event (refusing new replies) while
    running replies finish, and only then does aiohttp tear down.
    """
    app = create_app(settings)
    # Replies get SHUTDOWN_GRACE_S in `drain`; after it only idle keep-alive and
    # long-poll requests remain, and they need no grace.
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        _LOG.info(
            "listening on http://%s:%d (socket path %s)",
            settings.host,
            settings.port,
            settings.socket_path,
        )
        await stop.wait()
        _LOG.info("stopping: no new connections; draining")
        await site.stop()
        await drain(app)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()


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
            # Its wrapper asks platformdirs for a runtime folder it does not need; on a
            # machine without XDG_RUNTIME_DIR that prints a warning to every new user.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            embedded = EmbeddedPostgres(settings.data_dir / "postgres")
            settings = dataclasses.replace(settings, database_url=embedded.start())
        if settings.database_url is not None:
            asyncio.run(_prepare_database(settings))
        asyncio.run(_serve(settings))
    except storage.StorageError as exc:
        _LOG.error("database error: %s", exc)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()
    return 0
